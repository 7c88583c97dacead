"""Imports run one way: the runtime package never loads evaluation, training or the CLI."""

import subprocess
import sys

FORBIDDEN = ("masksegx.eval", "masksegx.training", "masksegx.cli")


def test_runtime_imports_load_no_eval_training_or_cli_module():
    # A fresh interpreter: in this one the other tests have imported everything already.
    code = (
        "import sys, masksegx, masksegx.batch, masksegx.ray_adapter, masksegx.io\n"
        f"print('\\n'.join(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []
