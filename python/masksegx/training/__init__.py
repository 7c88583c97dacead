"""Training of the depthwise-separable MTCNN (optional extra ``masksegx[train]``, PyTorch).

Never imported by inference code: ``import masksegx`` does not load torch. Modules:
:mod:`.nets` (the P-, R-, O-nets and their parameter/MAC counts), :mod:`.samples` (MTCNN sample
generation), :mod:`.cascade` (a minimal PyTorch cascade for hard-negative mining) and
:mod:`.train_detector` (the command that trains, exports ONNX and writes the model card).
"""
