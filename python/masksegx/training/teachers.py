"""Gender teachers for pseudo-labels, run on the attribute cache's aligned crops.

- ``gender-v1`` (``models/gender-v1.onnx``, CC0): dlib's 32x32 gender chip, cut from the crop
  with the crop's landmarks (:class:`masksegx.eval.attributes.GenderV1`).
- ``mini_xception`` (``models/gender_mini_XCEPTION.21-0.95.hdf5``, MIT, oarriaga/
  face_classification): a Keras 2.0.5 HDF5 file. :class:`MiniXception` rebuilds its graph from
  the file's ``model_config`` (Conv2D, SeparableConv2D, BatchNormalization, Activation,
  MaxPooling2D, Add, GlobalAveragePooling2D, TensorFlow "same"/"valid" padding) and runs it in
  PyTorch with the stored weights; reading needs ``h5py`` (the ``train`` extra). Input: a 64x64
  grayscale face, ``x / 255 * 2 - 1``; output softmax ``[woman, man]``. It was trained on loose
  IMDB face boxes, so the aligned crop is shown zoomed out (:data:`MINI_XCEPTION_ZOOM`).

    python -m masksegx.training.teachers --data ../shared/data --cache .data/attr \\
        .data/attr_extra --out .data/teachers.npz --zooms 1.0,1.15,1.3,1.45

writes both teachers' P(male) for every crop of the cache (``p_gender_v1``, ``p_mini_xception``)
and their accuracy on the gender-labelled crops per source and split (also the share the
pseudo-label rule keeps and its accuracy there) to the same name with ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..eval.attributes import GenderV1
from .attr_cache import read_caches

GENDER_V1 = "models/gender-v1.onnx"
MINI_XCEPTION = "models/gender_mini_XCEPTION.21-0.95.hdf5"
#: The aligned crop is shrunk by this factor about its centre (replicated border) before the
#: 64x64 resize: the teacher saw loose face boxes with hair and chin. ``--zooms`` picks it on
#: MTFL and UTKFace *training* crops instead.
MINI_XCEPTION_ZOOM = 1.3
#: Training faces that ``--zooms`` scores each zoom on.
ZOOM_SAMPLE = 2000
#: A teacher-labelled face keeps its label when the teachers agree (same side of 0.5) and
#: their mean P(male) is at least this far from 0.5 (:func:`.train_attributes.pseudo_labels`).
PSEUDO_MARGIN = 0.3


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MiniXception:
    """The Keras mini-Xception graph of an HDF5 file, evaluated with torch functions."""

    def __init__(self, path: str | Path) -> None:
        import h5py

        with h5py.File(path, "r") as file:
            config = json.loads(file.attrs["model_config"])
            weights = file["model_weights"]
            self.weights: dict[str, dict[str, torch.Tensor]] = {}
            for layer in config["config"]["layers"]:
                name = layer["name"]
                if name in weights and name in weights[name]:
                    group = weights[name][name]
                    self.weights[name] = {key.split(":")[0]: torch.from_numpy(np.asarray(group[key]))
                                          for key in group}
        self.layers: list[dict[str, Any]] = config["config"]["layers"]
        self.output = config["config"]["output_layers"][0][0]

    def _conv(self, x: torch.Tensor, kernel: torch.Tensor, config: dict[str, Any],
              groups: int = 1) -> torch.Tensor:
        # Keras kernels are HWIO (depthwise: HWC1); torch wants OIHW.
        weight = kernel.permute(3, 2, 0, 1) if groups == 1 else kernel.permute(2, 3, 0, 1)
        stride = config.get("strides", [1, 1])[0]
        if config.get("padding") == "same":
            kh, kw = weight.shape[2:]
            top, bottom = _same_padding(x.shape[2], kh, stride)
            left, right = _same_padding(x.shape[3], kw, stride)
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, weight.contiguous(), stride=stride, groups=groups)

    @torch.no_grad()
    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """P(male) of uint8 grayscale faces [N, 64, 64]."""
        x = torch.from_numpy(gray.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None]
        values: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            kind, name, config = layer["class_name"], layer["name"], layer["config"]
            inputs = [values[node[0]] for node in layer["inbound_nodes"][0]] if layer[
                "inbound_nodes"] else [x]
            h = inputs[0]
            w = self.weights.get(name, {})
            if kind == "InputLayer":
                out = h
            elif kind == "Conv2D":
                out = self._conv(h, w["kernel"], config)
                if "bias" in w:
                    out = out + w["bias"][None, :, None, None]
            elif kind == "SeparableConv2D":
                out = self._conv(h, w["depthwise_kernel"], config, groups=h.shape[1])
                out = self._conv(out, w["pointwise_kernel"], {"padding": "valid"})
            elif kind == "BatchNormalization":
                out = F.batch_norm(h, w["moving_mean"], w["moving_variance"], w["gamma"],
                                   w["beta"], False, 0.0, config["epsilon"])
            elif kind == "Activation":
                out = (torch.relu(h) if config["activation"] == "relu"
                       else torch.softmax(h, dim=1))
            elif kind == "MaxPooling2D":
                size, stride = config["pool_size"][0], config["strides"][0]
                top, bottom = _same_padding(h.shape[2], size, stride)
                left, right = _same_padding(h.shape[3], size, stride)
                out = F.max_pool2d(F.pad(h, (left, right, top, bottom), value=-math.inf),
                                   size, stride)
            elif kind == "Add":
                out = inputs[0] + inputs[1]
            elif kind == "GlobalAveragePooling2D":
                out = h.mean(dim=(2, 3))
            else:
                raise ValueError(f"mini-Xception: unsupported Keras layer {kind!r}")
            values[name] = out
        probs = values[self.output]
        return probs[:, 1].numpy().astype(np.float32)


def zoomed_gray(crops: np.ndarray, zoom: float, size: int = 64) -> np.ndarray:
    """Grayscale ``size`` x ``size`` views of BGR crops [N, S, S, 3], shrunk by ``zoom`` about
    their centre (replicated border)."""
    side = crops.shape[1]
    matrix = cv2.getRotationMatrix2D((side / 2 - 0.5, side / 2 - 0.5), 0.0, 1.0 / zoom)
    out = np.empty((len(crops), size, size), np.uint8)
    for k, crop in enumerate(crops):
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if zoom != 1.0:
            gray = cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        out[k] = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return out


def mini_xception_p_male(model: MiniXception, crops: np.ndarray, zoom: float = MINI_XCEPTION_ZOOM,
                         batch: int = 512) -> np.ndarray:
    """mini-Xception P(male) of aligned BGR crops, the mean over the crop and its mirror."""
    out = []
    for start in range(0, len(crops), batch):
        gray = zoomed_gray(crops[start : start + batch], zoom)
        out.append(0.5 * (model(gray) + model(np.ascontiguousarray(gray[:, :, ::-1]))))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def gender_v1_p_male(model: GenderV1, crops: np.ndarray, landmarks: np.ndarray,
                     batch: int = 512) -> np.ndarray:
    """gender-v1 P(male) of aligned BGR crops and their landmarks (crop pixels)."""
    out = []
    for start in range(0, len(crops), batch):
        blobs = np.concatenate([model.blob(crop, points) for crop, points in
                                zip(crops[start : start + batch], landmarks[start : start + batch])])
        out.append(model.session.run(None, {model.input: blobs})[0][:, 1])
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def accuracy(p_male: np.ndarray, gender: np.ndarray) -> float:
    return float(((p_male > 0.5).astype(int) == gender).mean()) if len(gender) else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, nargs="+", default=[Path(".data/attr")],
                        help="cache folder(s), as training's --cache")
    parser.add_argument("--out", type=Path, required=True, help="teachers' P(male) per crop (.npz)")
    parser.add_argument("--zooms", default="", help="comma-separated mini-Xception zooms: use "
                        f"the most accurate on {ZOOM_SAMPLE} random gender-labelled training "
                        f"crops (default: {MINI_XCEPTION_ZOOM})")
    parser.add_argument("--reuse", action="store_true",
                        help="read the probabilities back from --out, only score them")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    crops, meta, _ = read_caches(args.cache)
    start = time.time()
    mini = MiniXception(args.data / MINI_XCEPTION)
    v1 = GenderV1(args.data / GENDER_V1)
    gendered = meta["gender"] >= 0
    zoom, zoom_scores = MINI_XCEPTION_ZOOM, {}
    if args.zooms:
        train = np.flatnonzero(gendered & (meta["split"] == 0))
        sample = np.sort(np.random.default_rng(0).choice(train, min(ZOOM_SAMPLE, len(train)),
                                                         replace=False))
        for candidate in (float(z) for z in args.zooms.split(",")):
            p = mini_xception_p_male(mini, crops[sample], candidate)
            zoom_scores[candidate] = accuracy(p, meta["gender"][sample])
            print(f"mini-Xception zoom {candidate}: training-crop accuracy "
                  f"{zoom_scores[candidate]:.4f} ({len(sample)} faces)", flush=True)
        zoom = max(zoom_scores, key=lambda z: zoom_scores[z])
    if args.reuse:
        stored = np.load(args.out)
        if not np.array_equal(stored["name"], meta["name"]):
            raise SystemExit(f"--reuse: {args.out} was written for other caches")
        p_mini, p_v1 = stored["p_mini_xception"], stored["p_gender_v1"]
    else:
        p_mini = mini_xception_p_male(mini, crops, zoom)
        p_v1 = gender_v1_p_male(v1, crops, meta["landmarks"].astype(np.float64))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out, name=meta["name"], source=meta["source"],
                            p_gender_v1=p_v1, p_mini_xception=p_mini)
    scores: dict[str, dict[str, float]] = {}
    for source in np.unique(meta["source"][gendered]):
        for split in (0, 1):
            chosen = gendered & (meta["source"] == source) & (meta["split"] == split)
            truth = meta["gender"][chosen]
            mean = 0.5 * (p_v1[chosen] + p_mini[chosen])
            # The pseudo-label rule (train_attributes.pseudo_labels) on labelled faces.
            agree = ((p_v1[chosen] > 0.5) == (p_mini[chosen] > 0.5)) & (
                np.abs(mean - 0.5) >= PSEUDO_MARGIN)
            entry = {"n": int(chosen.sum()), "gender_v1": accuracy(p_v1[chosen], truth),
                     "mini_xception": accuracy(p_mini[chosen], truth),
                     "mean": accuracy(mean, truth), "kept": float(agree.mean()),
                     "kept_accuracy": accuracy(mean[agree], truth[agree])}
            scores[f"{source}_{'val' if split else 'train'}"] = entry
            print(f"{source} {'val' if split else 'train'}: {entry}", flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"zoom": zoom, "zoom_training_accuracy": zoom_scores, "pseudo_margin": PSEUDO_MARGIN,
         "crop_space": scores},
        indent=1) + "\n")
    print(f"wrote {args.out} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
