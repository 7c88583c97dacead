"""``python -m masksegx``: the same command line as the ``masksegx`` script."""

import sys

from .cli import main

sys.exit(main())
