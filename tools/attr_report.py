"""Attribute model card + ablation tables: ``python -m masksegx.training.attr_report`` from a
checkout (see that module; needs ../shared/data)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from masksegx.training.attr_report import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
