"""Heads that branch off the attribute network's trunk: build, train and add them to the model.

A head is a second (third, ...) output of ``attributes.onnx``, trained on features of the trunk
cached once per crop (:func:`branch_inputs`); the trunk and the joint output do not change. Two
kinds (:attr:`Head.source`):

- ``"block"``: a branch of its own, a copy of the trunk's last block (depthwise and 1x1
  convolutions, max pooling; :func:`last_block`) on the same input, global average pooling and
  one softmax layer. The copy starts from the trunk's weights and is trained with the layer. Its
  4x4 input still knows where on the face things lie, which the trunk's pooled features averaged
  away; it costs the block's multiply-adds again.
- ``"pooled"``: one softmax layer on the trunk's pooled features (the joint head's input); it
  costs next to nothing.

The heads (:data:`HEADS`, by output): ``wearing`` [N, 3], a block head (:mod:`.train_wearing`,
shipped), and ``gender`` [N, 2], either kind (:mod:`.train_gender`, not shipped). Each head's nodes
and initializers carry its own name prefix, so a head is replaced or removed without touching
the others (:func:`without_head`, :func:`with_head`).
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..attributes import GENDER_OUTPUT, GENDERS, WEARING_OUTPUT, WEARING_STATES, network_input


@dataclass(frozen=True)
class Head:
    """A head: the graph output it writes, its number of classes and what it reads (``"block"``:
    a copy of the last block on that block's input; ``"pooled"``: the trunk's pooled features)."""

    output: str
    classes: int
    source: str = "block"

    def __post_init__(self) -> None:
        if self.source not in ("block", "pooled"):
            raise ValueError(f"source: expected 'block' or 'pooled', got {self.source!r}")

    @property
    def prefix(self) -> str:
        """Prefix of the head's node and initializer names."""
        return f"{self.output}_head/"


WEARING_HEAD = Head(WEARING_OUTPUT, len(WEARING_STATES))
GENDER_HEAD = Head(GENDER_OUTPUT, len(GENDERS))
HEADS = (WEARING_HEAD, GENDER_HEAD)


def _in_a_head(name: str) -> bool:
    return any(name.startswith(head.prefix) for head in HEADS)


def without_head(model: Any, head: Head) -> Any:
    """A copy of the ONNX ``model`` without ``head`` (unchanged when it has none)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep_nodes = [n for n in graph.node if not n.name.startswith(head.prefix)]
    keep_init = [t for t in graph.initializer if not t.name.startswith(head.prefix)]
    keep_out = [o for o in graph.output if o.name != head.output]
    for field, kept in ((graph.node, keep_nodes), (graph.initializer, keep_init),
                        (graph.output, keep_out)):
        del field[:]
        field.extend(kept)
    return out


def _trunk_pool(model: Any) -> Any:
    """The trunk's single GlobalAveragePool node (ValueError when there is not exactly one)."""
    pools = [n for n in model.graph.node
             if n.op_type == "GlobalAveragePool" and not _in_a_head(n.name)]
    if len(pools) != 1:
        raise ValueError(f"model: expected one GlobalAveragePool, found {len(pools)}")
    return pools[0]


def last_block(model: Any) -> list[Any]:
    """The trunk's last block, the nodes a branch copies: depthwise Conv, Relu, 1x1 Conv, Relu,
    MaxPool, the MaxPool feeding the trunk's single GlobalAveragePool; ValueError for any other
    structure."""
    graph = model.graph
    producer = {name: n for n in graph.node for name in n.output}
    chain, name = [], _trunk_pool(model).input[0]
    for expected in ("MaxPool", "Relu", "Conv", "Relu", "Conv"):
        node = producer.get(name)
        if node is None or node.op_type != expected:
            raise ValueError("model: the GlobalAveragePool's input is not made by a depthwise "
                             "Conv, Relu, 1x1 Conv, Relu, MaxPool block")
        chain.append(node)
        name = node.input[0]
    chain.reverse()
    return chain


def _attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def branch_module(model: Any, head: Head) -> torch.nn.Sequential:
    """The head before training (logits out). A block head: a torch copy of the trunk's last
    block (:func:`last_block`, its weights) followed by global average pooling and a softmax
    layer of the head's classes; a pooled head: the softmax layer on the pooled features."""
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    if head.source == "pooled":
        pointwise = last_block(model)[2]
        channels = int(weights[pointwise.input[1]].shape[0])
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels, head.classes))
    layers: list[torch.nn.Module] = []
    channels = 0
    for node in last_block(model):
        if node.op_type == "Relu":
            layers.append(torch.nn.ReLU())
            continue
        kernel = tuple(_attribute(node, "kernel_shape", ()))
        strides = tuple(_attribute(node, "strides", (1, 1)))
        pads = tuple(_attribute(node, "pads", (0, 0, 0, 0)))
        if len(pads) != 4 or pads[:2] != pads[2:] or _attribute(node, "ceil_mode", 0):
            raise ValueError(f"model: {node.name} has padding {pads}; the branch copies "
                             "symmetric padding only")
        if node.op_type == "MaxPool":
            layers.append(torch.nn.MaxPool2d(kernel, strides, pads[:2]))
            continue
        weight = weights[node.input[1]]
        bias = weights[node.input[2]] if len(node.input) > 2 else np.zeros(len(weight), np.float32)
        groups = int(_attribute(node, "group", 1))
        conv = torch.nn.Conv2d(weight.shape[1] * groups, weight.shape[0], kernel, strides,
                               pads[:2], groups=groups)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            conv.bias.copy_(torch.from_numpy(bias.copy()))  # type: ignore[union-attr]
        layers.append(conv)
        channels = weight.shape[0]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(channels, head.classes))


def output_layer(branch: torch.nn.Sequential) -> torch.nn.Linear:
    """The softmax layer of a :func:`branch_module` (its last module)."""
    layer = branch[-1]
    if not isinstance(layer, torch.nn.Linear):
        raise ValueError(f"branch: ends in {type(layer).__name__}, expected Linear")
    return layer


def _head_input(model: Any, head: Head) -> str:
    """The trunk tensor a head reads: its last block's input, or the pooled features."""
    if head.source == "pooled":
        return str(_trunk_pool(model).output[0])
    return str(last_block(model)[0].input[0])


def feature_session(model: Any, head: Head) -> Any:
    """An onnxruntime session (one thread) whose outputs are the model's and the tensor the
    ``head`` reads (:func:`branch_inputs` caches it)."""
    import onnx
    import onnxruntime

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(
        _head_input(model, head), onnx.TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(probe.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def branch_inputs(session: Any, crops: np.ndarray, settings: dict[str, Any],
                  batch: int = 256, mirror: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The head's inputs [2, N, C, H, W] for aligned crops [N, S, S, 3], of each crop and of
    its mirror (the predictor's two passes), and the joint probabilities [N, 22] averaged over
    both; with ``mirror=False`` the crop's pass alone ([1, N, C, H, W], its joint output)."""
    name = session.get_inputs()[0].name
    features, joint = [], []
    for start in range(0, len(crops), batch):
        x = np.stack([network_input(c, settings) for c in crops[start : start + batch]])
        passes = [x, np.ascontiguousarray(x[:, :, :, ::-1])] if mirror else [x]
        outputs = [session.run(None, {name: part}) for part in passes]
        features.append(np.stack([out[-1] for out in outputs]))
        joint.append(np.mean([out[0] for out in outputs], axis=0))
    return np.concatenate(features, axis=1).astype(np.float32), np.concatenate(joint)


def fit_branch(template: torch.nn.Sequential, features: np.ndarray, targets: np.ndarray,
               decay: float, epochs: int, learning_rate: float, seed: int = 0,
               batch: int = 128) -> torch.nn.Sequential:
    """A copy of the branch ``template`` trained on rows ``features`` [M, C, H, W] (AdamW with
    ``decay``, one-cycle schedule peaking at ``learning_rate``, cross-entropy). ``targets``:
    class indices [M] or class probabilities [M, classes] (soft labels)."""
    torch.manual_seed(seed)
    branch = deepcopy(template)
    torch.nn.init.normal_(output_layer(branch).weight, std=0.01)
    torch.nn.init.zeros_(output_layer(branch).bias)
    optimizer = torch.optim.AdamW(branch.parameters(), lr=learning_rate, weight_decay=decay)
    steps = epochs * -(-len(features) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps,
                                                   pct_start=0.1)
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(targets.astype(np.float32 if targets.ndim == 2 else np.int64))
    branch.train()
    for _ in range(epochs):
        order = rng.permutation(len(features))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            logits = branch(torch.from_numpy(features[rows]))
            loss = torch.nn.functional.cross_entropy(logits, y[rows])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward is unannotated
            optimizer.step()
            schedule.step()
    return branch.eval()


def mean_probs(branch: torch.nn.Sequential, features: np.ndarray, batch: int = 1024) -> np.ndarray:
    """The branch's softmax per crop [N, classes] from branch inputs [P, N, C, H, W], averaged
    over the P passes (the crop and its mirror, as the predictor averages them)."""
    probs = []
    with torch.no_grad():
        for start in range(0, features.shape[1], batch):
            part = [torch.softmax(branch(torch.from_numpy(features[k, start : start + batch])), 1)
                    for k in range(len(features))]
            probs.append(torch.stack(part).mean(0).numpy())
    return np.concatenate(probs)


def predict(branch: torch.nn.Sequential, features: np.ndarray) -> np.ndarray:
    """The most probable class per crop from branch inputs [P, N, C, H, W]
    (:func:`mean_probs`)."""
    classes: np.ndarray = np.argmax(mean_probs(branch, features), axis=1)
    return classes


def photo_folds(names: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold per crop, the crops of one photo (cache names ``photo#face``) in the same fold."""
    photos = np.array([name.rsplit("#", 1)[0] for name in names])
    unique = np.unique(photos)
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {photo: k % folds for k, photo in enumerate(unique)}
    return np.array([fold_of[photo] for photo in photos])


def with_head(model: Any, branch: torch.nn.Sequential, head: Head) -> Any:
    """``model`` (without ``head``) plus the trained ``branch`` (:func:`branch_module`'s layers):
    for a block head the block's copy on the block's input and a GlobalAveragePool, for a pooled
    head the trunk's pooled features; then Flatten, Gemm and Softmax, as the output
    ``head.output`` [batch, head.classes]."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    prefix = head.prefix
    block = [] if head.source == "pooled" else last_block(out)
    tensor = _head_input(out, head)
    for index, (node, layer) in enumerate(zip(block, list(branch))):
        made = onnx.NodeProto()
        made.CopyFrom(node)
        made.name = f"{prefix}{index}_{node.op_type}"
        del made.input[:], made.output[:]
        inputs = [tensor]
        if isinstance(layer, torch.nn.Conv2d):
            for part in ("weight", "bias"):
                name = f"{prefix}{index}.{part}"
                value = getattr(layer, part).detach().numpy()
                graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
                inputs.append(name)
        tensor = f"{prefix}{index}_out"
        made.input.extend(inputs)
        made.output.append(tensor)
        graph.node.append(made)
    linear = output_layer(branch)
    if linear.out_features != head.classes:
        raise ValueError(f"branch: {linear.out_features} classes, the {head.output} head has "
                         f"{head.classes}")
    flat, logits = f"{prefix}flat", f"{prefix}logits"
    if head.source == "pooled":
        pooled = tensor
    else:
        pooled = f"{prefix}pooled"
        graph.node.append(helper.make_node("GlobalAveragePool", [tensor], [pooled],
                                           name=f"{prefix}GlobalAveragePool"))
    graph.initializer.extend([
        numpy_helper.from_array(linear.weight.detach().numpy().astype(np.float32),
                                f"{prefix}weight"),
        numpy_helper.from_array(linear.bias.detach().numpy().astype(np.float32), f"{prefix}bias"),
    ])
    graph.node.extend([
        helper.make_node("Flatten", [pooled], [flat], name=f"{prefix}Flatten", axis=1),
        helper.make_node("Gemm", [flat, f"{prefix}weight", f"{prefix}bias"], [logits],
                         name=f"{prefix}Gemm", transB=1),
        helper.make_node("Softmax", [logits], [head.output], name=f"{prefix}Softmax", axis=1),
    ])
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    dims = [batch.dim_param or batch.dim_value, head.classes]
    graph.output.append(helper.make_tensor_value_info(head.output, onnx.TensorProto.FLOAT, dims))
    onnx.checker.check_model(out)
    return out


def without_heads(model: Any) -> Any:
    """A copy of the ONNX ``model`` without any of :data:`HEADS`: the trunk alone."""
    for head in HEADS:
        model = without_head(model, head)
    return model

