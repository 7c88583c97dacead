"""Training of the shipped nets (optional extra ``masksegx[train]``, PyTorch).

Never imported by inference code: ``import masksegx`` does not load torch. Each command reads
the shared data folder (``--data``) or a cache built from it, and writes only where its
arguments say (``--out``, ``--card``, ...); the model cards in ``masksegx/models`` give the
commands of the shipped runs. Modules:

- detector: :mod:`.nets` (the P-, R-, O- and landmark nets and their parameter/MAC counts),
  :mod:`.samples` (MTCNN sample generation), :mod:`.box_conventions` (the sources' face boxes
  measured against a teacher's and redrawn in one convention), :mod:`.cascade` (a minimal
  PyTorch cascade for hard-negative mining), :mod:`.train_detector` (the command that trains
  the P-, R- and O-net, exports ONNX and writes the model card), :mod:`.tune_onet_landmarks`
  (a landmark-weighted second pass on the O-net) and :mod:`.train_landmarks` (the cascade's
  landmark net);
- attributes: :mod:`.attr_cache` (the aligned-crop cache), :mod:`.attr_net` (the trimmed
  depthwise-separable VGG-11), :mod:`.train_attributes` (its training with the eq. 15 loss and
  the ablation variants, ONNX export) and :mod:`.attr_report` (evaluation, model card and
  ablation tables);
- segmentation: :mod:`.seg_cache` (the training cache), :mod:`.seg_augment` (samples and
  synthetic composites drawn from it), :mod:`.seg_nets` (MaskNet and the U-Net baseline) and
  :mod:`.train_segmentation` (their training and ONNX export);
- :mod:`.export`: the ONNX export and onnxruntime check that every trainer uses.
"""
