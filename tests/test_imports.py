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


def test_speed_table_records_both_detector_passes(monkeypatch):
    """tools.speed_ratios' per-net table counts the close-up pass too, its own R- and O-net
    rows of their own, and the attribute net and MaskNet, and leaves the detector's nets as
    they were."""
    cv2 = pytest.importorskip("cv2")
    monkeypatch.syspath_prepend(str(ROOT))
    speed_ratios = importlib.import_module("tools.speed_ratios")
    from masksegx import FaceMaskSegmenter
    from masksegx.examples import MULTI_FACE_EXAMPLE

    segmenter = FaceMaskSegmenter(threads=1)
    nets = segmenter.detector._nets, segmenter.detector._close_up_nets
    recorded = speed_ratios.recorded_net_inputs(segmenter, cv2.imread(MULTI_FACE_EXAMPLE.path))
    assert {
        "ds_mtcnn_pnet", "ds_mtcnn_rnet", "ds_mtcnn_rnet_closeup", "ds_mtcnn_onet", "ds_mtcnn_onet_closeup",
        "attributes", "masknet",
    } <= set(recorded)
    assert (segmenter.detector._nets, segmenter.detector._close_up_nets) == nets
