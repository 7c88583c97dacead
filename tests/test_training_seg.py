"""Segmentation training code (needs torch: skipped where it is not installed) and the shipped
mask nets' ONNX interface (onnxruntime only)."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
# masknet ships in the package; the U-Net baseline lives beside the tools that score it.
MASK_NETS = [REPO / "python/masksegx/models/masknet.onnx", REPO / "tools/models/unet_baseline.onnx"]


@pytest.mark.parametrize("path", MASK_NETS, ids=lambda path: path.name)
def test_mask_nets_interface(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("input", "prob")
    assert inp.shape[1:] == [3, 160, 160]
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 160, 160)).astype(np.float32)
    prob = session.run(["prob"], {"input": x})[0]
    assert prob.shape == (2, 1, 160, 160) and prob.min() >= 0 and prob.max() <= 1


@pytest.mark.parametrize("arch", ["masknet", "unet"])
def test_seg_nets_shapes_and_counts(arch):
    torch = pytest.importorskip("torch")
    from masksegx.training.seg_nets import build, count_parameters_and_macs

    net = build(arch).eval()
    with torch.no_grad():
        prob = net(torch.rand(2, 3, 64, 64) * 255)
    assert prob.shape == (2, 1, 64, 64) and 0 <= float(prob.min()) and float(prob.max()) <= 1
    params, macs = count_parameters_and_macs(net, 160)
    expected = {"masknet": (113_081, 53_429_184), "unet": (488_001, 1_043_660_800)}[arch]
    assert (params, macs) == expected
    with pytest.raises(ValueError, match="arch"):
        build("vgg")


def test_loss_and_schedule():
    torch = pytest.importorskip("torch")
    from masksegx.training.train_segmentation import LEARNING_RATE, learning_rate, segmentation_loss

    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    good = segmentation_loss(torch.where(target > 0, 10.0, -10.0), target)
    bad = segmentation_loss(torch.where(target > 0, -10.0, 10.0), target)
    assert float(good) < 0.01 < 1.0 < float(bad)
    assert learning_rate(0.0) < learning_rate(0.03) == pytest.approx(LEARNING_RATE)
    assert learning_rate(1.0) == pytest.approx(0.0) and learning_rate(0.5) < LEARNING_RATE


def test_export_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from masksegx.learned import MaskNet
    from masksegx.training.seg_nets import build
    from masksegx.training.train_segmentation import export_onnx

    torch.manual_seed(0)
    report = export_onnx(build("masknet"), tmp_path / "m.onnx", 64)
    assert report["max_abs_diff"] < 1e-4 and "Conv" in report["ops"]
    net = MaskNet(tmp_path / "m.onnx")
    assert net.input_size == 64
    assert net.probability(np.zeros((30, 40, 3), np.uint8)).shape == (30, 40)
