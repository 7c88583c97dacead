"""Train the learned face-mask segmentation nets, export ONNX and a metrics JSON.

    python -m masksegx.training.seg_cache --data /work/shared/data --out .data/seg   # once, CPU
    python -m masksegx.training.train_segmentation --cache .data/seg --out DIR --device cuda \\
        --time-limit 240 [--arch masknet unet] [--size 160] [--batch-size 128] [--workers N]

Both architectures (:mod:`.seg_nets`: the shipped depthwise-separable ``masknet`` and the
``unet`` baseline of Table 4) are trained *on the same batches* in one process (one data
pipeline, one optimiser each), so the comparison is fair. Samples come from
:mod:`.seg_augment` (labelled ffhq/real_dev images and synthetic MaskTheFace composites made on
the fly, framings "whole image" and "detector box", photometric augmentation).

Loss: binary cross-entropy on the logits + soft Dice (1 - 2|p t| / (|p| + |t|)) per image,
averaged. AdamW (lr 3e-3, weight decay 1e-4), linear warm-up over the first 3 % of the time
budget then cosine decay to 0 at its end: the schedule follows *elapsed time*, so a run stopped
by ``--time-limit`` still ends at lr 0. bf16 autocast on CUDA. The exported weights are an
exponential moving average of the trained ones (decay ``min(0.998, (1 + n) / (10 + n))``).

``--time-limit`` bounds the whole command (data start-up, training, evaluation, export):
training stops at ``time-limit - reserve`` seconds. ``--max-steps`` caps the steps (smoke runs).

Outputs in ``--out``: ``<arch>.onnx`` (opset 17, input ``input`` float32 [N, 3, S, S] BGR
0..255, output ``prob`` [N, 1, S, S]; dynamic batch), ``seg_metrics.json`` (steps, samples,
seconds, losses, whole-image mIoU on the cache's real_dev_val and ffhq_val images, parameters,
MACs, onnxruntime single-thread latency), and ``<arch>.pt`` (state dict) with ``--save-state``
or when the ONNX export fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .._models import onnx_session
from ..eval.metrics import SegmentationScores
from .export import max_abs_difference, write_onnx
from .seg_augment import SegmentationCache, make_sample
from .seg_nets import ARCHS, INPUT_SIZE, SegmentationNet, build, count_parameters_and_macs

OPSET = 17
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
WARMUP_SHARE = 0.03
EMA_DECAY = 0.998
VIRTUAL_LENGTH = 10**9


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class _Samples(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, cache_dir: Path, seed: int, size: int) -> None:
        self.cache_dir, self.seed, self.size = cache_dir, seed, size
        self.cache: SegmentationCache | None = None

    def __len__(self) -> int:
        return VIRTUAL_LENGTH

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is None:  # loaded per worker
            self.cache = SegmentationCache(self.cache_dir)
        view, target = make_sample(self.cache, self.seed, index, self.size)
        return (torch.from_numpy(view.transpose(2, 0, 1).copy()),
                torch.from_numpy((target * 255).astype(np.uint8)))


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dims = (1, 2, 3)
    dice = 1 - (2 * (prob * target).sum(dims) + 1) / (prob.sum(dims) + target.sum(dims) + 1)
    return bce + dice.mean()


def learning_rate(fraction: float) -> float:
    if fraction < WARMUP_SHARE:
        return LEARNING_RATE * max(fraction / WARMUP_SHARE, 0.02)
    progress = min((fraction - WARMUP_SHARE) / (1 - WARMUP_SHARE), 1.0)
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, step: int) -> None:
    decay = min(EMA_DECAY, (1 + step) / (10 + step))
    for e, p in zip(ema.state_dict().values(), net.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        else:
            e.copy_(p)


@torch.no_grad()
def evaluate(net: torch.nn.Module, items: list[tuple[str, np.ndarray, npt.NDArray[np.bool_]]], size: int,
             device: str) -> dict[str, float]:
    """Whole-image mIoU (threshold 0.5) per validation set, as masksegx.learned does it."""
    net.eval()
    scores: dict[str, SegmentationScores] = {}
    for name, image, truth in items:
        h, w = truth.shape
        interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
        x = cv2.resize(image, (size, size), interpolation=interp).transpose(2, 0, 1)[None]
        prob = net(torch.from_numpy(x.astype(np.float32)).to(device)).float()[0, 0].cpu().numpy()
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        scores.setdefault(name, SegmentationScores()).add(prob > 0.5, truth)
    return {name: round(s.miou, 4) for name, s in scores.items()}


def export_onnx(net: torch.nn.Module, path: Path, size: int) -> dict[str, object]:
    net = copy.deepcopy(net).cpu().float().eval()
    model = write_onnx(net, (1, 3, size, size), path, ["prob"], OPSET,
                       {"input": {0: "batch"}, "prob": {0: "batch"}})
    session = onnx_session(str(path), 1)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255
    max_diff = max_abs_difference(net, session, [x], ["prob"])
    one = x[:1].numpy()
    for _ in range(5):
        session.run(["prob"], {"input": one})
    times = []
    for _ in range(30):
        start = time.perf_counter()
        session.run(["prob"], {"input": one})
        times.append(time.perf_counter() - start)
    return {"bytes": path.stat().st_size, "max_abs_diff": max_diff,
            "ops": sorted({n.op_type for n in model.graph.node}),
            "ort_ms_single_thread": round(1000 * float(np.median(times)), 3)}


def train(args: argparse.Namespace) -> dict[str, object]:
    start = time.time()
    torch.manual_seed(args.seed)
    device = args.device
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    cache = SegmentationCache(args.cache)
    validation = cache.validation()
    nets: dict[str, SegmentationNet] = {arch: build(arch).to(device) for arch in args.arch}
    if device == "cuda":
        # torch's stubs give Module.to no memory_format overload (the call is valid).
        nets = {a: n.to(memory_format=torch.channels_last) for a, n in nets.items()}  # type: ignore[call-overload]
    emas = {arch: copy.deepcopy(net).eval() for arch, net in nets.items()}
    optimisers = {
        arch: torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        for arch, net in nets.items()
    }
    workers = (args.workers if args.workers is not None
               else max(1, min(8, (os.cpu_count() or 2) - 1)))
    loader = DataLoader(
        _Samples(args.cache, args.seed, args.size), batch_size=args.batch_size, shuffle=False,
        num_workers=workers, pin_memory=device == "cuda", drop_last=True,
        worker_init_fn=_worker_init,
        persistent_workers=workers > 0, prefetch_factor=6 if workers > 0 else None,
    )
    train_until = start + args.time_limit - args.reserve
    budget = max(train_until - time.time(), 1.0)
    train_start = time.time()
    log(f"training {list(nets)} on {device}: size {args.size}, batch {args.batch_size}, "
        f"{workers} workers, {budget:.0f} s budget")
    losses: dict[str, list[float]] = {a: [] for a in nets}
    step, last_log, wait = 0, time.time(), 0.0
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                else torch.autocast("cpu", enabled=False))
    batch_start = time.time()
    for images, targets in loader:
        wait += time.time() - batch_start
        now = time.time()
        if now >= train_until or (args.max_steps and step >= args.max_steps):
            break
        fraction = (now - train_start) / budget
        if args.max_steps:
            fraction = max(fraction, step / args.max_steps)
        lr = learning_rate(fraction)
        x = images.to(device, non_blocking=True).float()
        t = targets.to(device, non_blocking=True).float().unsqueeze(1) / 255.0
        if device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        for arch, net in nets.items():
            net.train()
            for group in optimisers[arch].param_groups:
                group["lr"] = lr
            with autocast:
                logits = net.logits(x)
            loss = segmentation_loss(logits.float(), t)
            optimisers[arch].zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optimisers[arch].step()
            _ema_update(emas[arch], net, step)
            if step % 10 == 0:  # .item() synchronises: not every step
                losses[arch].append(float(loss.detach()))
        step += 1
        if time.time() - last_log > args.log_every:
            last_log = time.time()
            recent = {a: round(float(np.mean(v[-10:])), 4) for a, v in losses.items()}
            log(f"step {step} ({step * args.batch_size} samples) lr {lr:.2e} loss {recent} "
                f"data wait {wait:.0f} s")
        batch_start = time.time()
    train_seconds = time.time() - train_start
    del loader
    log(f"stopped after {step} steps, {train_seconds:.0f} s; evaluating and exporting")
    net_reports: dict[str, dict[str, object]] = {}
    report: dict[str, object] = {
        "command": " ".join(sys.argv), "device": device, "size": args.size,
        "batch_size": args.batch_size, "workers": workers, "seed": args.seed, "steps": step,
        "samples": step * args.batch_size,
        "train_seconds": round(train_seconds, 1), "data_wait_seconds": round(wait, 1),
        "cache_manifest": json.loads((args.cache / "manifest.json").read_text())
        if (args.cache / "manifest.json").is_file() else None, "nets": net_reports}
    for arch, ema in emas.items():
        params, macs = count_parameters_and_macs(copy.deepcopy(ema).cpu().float(), args.size)
        entry: dict[str, object] = {
            "params": params, "macs": macs,
            "final_loss": round(float(np.mean(losses[arch][-10:])), 4) if losses[arch] else None}
        try:
            entry["val_miou_whole_image"] = evaluate(ema, validation, args.size, device)
        except Exception as error:  # never lose the trained weights to the log's evaluation
            entry["val_error"] = repr(error)
        save_state = args.save_state
        try:
            entry.update(export_onnx(ema, args.out / f"{arch}.onnx", args.size))
        except Exception as error:  # keep the weights: export them elsewhere from the .pt
            entry["export_error"] = repr(error)
            save_state = True
        if save_state:
            torch.save({k: v.cpu() for k, v in ema.state_dict().items()}, args.out / f"{arch}.pt")
        net_reports[arch] = entry
        log(f"{arch}: {entry}")
    report["total_seconds"] = round(time.time() - start, 1)
    (args.out / "seg_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}/ in {report['total_seconds']} s")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--export", type=Path, metavar="STATE.pt",
                        help="only export a saved state dict of --arch (one) to --out/<arch>.onnx")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for the whole command")
    parser.add_argument("--reserve", type=float, default=None,
                        help="seconds kept for evaluation and export "
                        "(default 20, CPU 10 %% of the limit + 15)")
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--size", type=int, default=INPUT_SIZE, help="net input side, a multiple of 16")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=float, default=15.0)
    parser.add_argument("--save-state", action="store_true", help="also write <arch>.pt state dicts")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args(argv)
    if args.reserve is None:
        args.reserve = 20.0 if args.device == "cuda" else 15.0 + 0.1 * args.time_limit
    if args.size % 16 or args.size < 32:
        parser.error("--size: expected a multiple of 16, at least 32")
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    if args.export is not None:
        if len(args.arch) != 1:
            parser.error("--export needs exactly one --arch")
        net = build(args.arch[0])
        net.load_state_dict(torch.load(args.export, map_location="cpu"))
        args.out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(export_onnx(net, args.out / f"{args.arch[0]}.onnx", args.size)))
        return 0
    if args.cache is None:
        parser.error("--cache is required for training")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
