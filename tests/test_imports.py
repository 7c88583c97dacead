"""Imports run one way: the runtime package never loads evaluation, training or the CLI."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("masksegx.eval", "masksegx.training", "masksegx.cli")


def test_runtime_imports_load_no_eval_training_or_cli_module():
    # A fresh interpreter: in this one the other tests have imported everything already.
    code = (
        "import sys, masksegx, masksegx.batch, masksegx.ray_adapter, masksegx.io\n"
        f"print('\\n'.join(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []


ROOT = Path(__file__).resolve().parents[1]
TOOLS = sorted(path.stem for path in (ROOT / "tools").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", TOOLS)
def test_every_doc_tool_imports(name, monkeypatch):
    """The scripts that regenerate the docs load against the current package: a reshaped
    constant breaks them at import, long before anyone regenerates a table."""
    monkeypatch.syspath_prepend(str(ROOT))
    try:
        importlib.import_module(f"tools.{name}")
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("tools", "masksegx"):
            raise
        pytest.skip(f"tools.{name} needs {err.name}")
