"""Training of the shipped nets (optional extra ``masksegx[train]``, PyTorch).

Never imported by inference code: ``import masksegx`` does not load torch. Modules:
:mod:`.nets` (the P-, R-, O-nets and their parameter/MAC counts), :mod:`.samples` (MTCNN sample
generation), :mod:`.cascade` (a minimal PyTorch cascade for hard-negative mining) and
:mod:`.train_detector` (the command that trains, exports ONNX and writes the model card),
:mod:`.tune_onet_landmarks` (a landmark-weighted second pass on the O-net) and
:mod:`.train_landmarks` (the cascade's landmark net);
:mod:`.attr_cache` (the attribute network's aligned-crop cache from ../shared/data),
:mod:`.attr_net` (the trimmed depthwise-separable VGG-11) and :mod:`.train_attributes` (its
training with the eq. 15 loss and the ablation variants, ONNX export).
"""
