"""Document generators and evaluation scripts of the repository (not part of the wheel).

Each module is a command run from the repository root against the installed masksegx (or the
working tree with ``PYTHONPATH=python``), for example ``python -m tools.paper_tables --out
docs/paper_tables.md``; most read the shared data folder (``--data``, default
``../shared/data`` beside the repository). What each one writes or checks:

- :mod:`.paper_tables`: the paper's Tables 3 and 4 on our dev sets (``docs/paper_tables.md``);
- :mod:`.eval_learned`: spectral / learned / fused / U-Net scores in both framings and the
  fused settings search (``docs/learned_seg.md``, ``docs/learned_seg.json``);
- :mod:`.pipeline_ablation`: the gender priors and the pipeline ablation
  (``docs/pipeline_ablation.md``);
- :mod:`.tune_spectral`: the ``SpectralParams`` defaults;
- :mod:`.compare_detectors`: the detector comparison (``docs/detectors.md``);
- :mod:`.check_detector_backends`: native vs onnxruntime detector agreement and speed;
- :mod:`.bench_table`: the kernel speed table (``> docs/kernel_speed.md``), from the benchmarks;
- :mod:`.figures`: the documentation's figures (``docs/img``; the ``docs`` extra's matplotlib);
- :mod:`.speed_ratios`: the side-by-side speed table (``docs/speed.md``: the whole pipeline and our
  detector beside RFB-320, RetinaFace, YuNet and the standard MTCNN on the bundled 3-face
  photo, one run) and the multiply-adds per net against the GEMM peak;
- :mod:`.gil_share`: the share of a segmenter call that runs without the GIL;
- :mod:`.synth_preview`: a grid of synthetic masked faces, to check their placement by eye.

``tools/models/`` holds ``unet_baseline.onnx`` (and its training metrics), the small standard
U-Net that only the Table 4 comparison scores. CI and build scripts live in ``.ci/``; the
attribute model card is written by ``python -m masksegx.training.attr_report``.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Default ``--data``: the shared data folder beside the repository.
DATA = REPO.parent / "shared" / "data"
#: The Table 4 U-Net baseline (``masksegx.training.train_segmentation --arch unet``).
UNET_BASELINE = REPO / "tools" / "models" / "unet_baseline.onnx"
