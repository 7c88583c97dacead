"""The package's ONNX reader against hand-encoded models and, when installed, the onnx package."""

import numpy as np
import pytest

from masksegx._onnx_graph import load_graph, parse_model
from onnx_builder import model, node, tiny_onet, tiny_rnet


def test_reads_nodes_attributes_initializers_and_names(rng):
    weight = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    shape = np.array([0, -1], np.int64)
    data = model(
        [
            node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], group=1, pads=[0, 0, 0, 0]),
            node("Constant", [], ["c"], value=np.array([-3, 7], np.int64)),
            node("LeakyRelu", ["y"], ["z"], alpha=0.25, mode="text", scales=[0.5, -1.5]),
        ],
        {"w": weight, "shape": shape},
        [("x", ["N", 3, 8, 8]), ("w", [4, 3, 1, 1])],
        [("z", ["N", 4, 8, 8])],
        opset=11,
    )
    graph = parse_model(data)
    assert graph.inputs == ("x",)  # initializers listed as inputs are not graph inputs
    assert graph.outputs == ("z",) and graph.opset == 11
    assert [n.op_type for n in graph.nodes] == ["Conv", "Constant", "LeakyRelu"]
    conv, constant, leaky = graph.nodes
    assert conv.inputs == ("x", "w") and conv.outputs == ("y",)
    assert conv.attributes == {"kernel_shape": [1, 1], "group": 1, "pads": [0, 0, 0, 0]}
    assert constant.attributes["value"].dtype == np.int64
    np.testing.assert_array_equal(constant.attributes["value"], [-3, 7])
    assert leaky.attributes["alpha"] == pytest.approx(0.25)
    assert leaky.attributes["mode"] == "text"
    assert leaky.attributes["scales"] == pytest.approx([0.5, -1.5])
    np.testing.assert_array_equal(graph.initializers["w"], weight)
    np.testing.assert_array_equal(graph.initializers["shape"], shape)


def test_truncated_and_garbage_files_raise_value_error_naming_the_file(tmp_path, rng):
    data = tiny_rnet(rng)
    for name, content in [
        ("truncated.onnx", data[: len(data) // 2]),
        ("cut_short.onnx", data[:-3]),
        ("garbage.onnx", b"this is not a protobuf file at all \xff\xff\xff"),
        ("empty.onnx", b""),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=name):
            load_graph(path)


def test_agrees_with_the_onnx_package(tmp_path, rng):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    for data in (tiny_rnet(rng), tiny_onet(rng)):
        reference = onnx.load_from_string(data)
        onnx.checker.check_model(reference)
        graph = parse_model(data)
        assert [n.op_type for n in reference.graph.node] == [n.op_type for n in graph.nodes]
        for tensor in reference.graph.initializer:
            expected = numpy_helper.to_array(tensor)
            np.testing.assert_array_equal(expected, graph.initializers[tensor.name])

    # float_data / int64_data storage and unpacked fields as the onnx package writes them.
    weights = rng.standard_normal((2, 3)).astype(np.float32)
    graph_proto = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, alpha=0.5, name="g")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [
            helper.make_tensor("w", onnx.TensorProto.FLOAT, [2, 3], weights.ravel().tolist()),
            helper.make_tensor("i", onnx.TensorProto.INT64, [3], [-1, 0, 2**40]),
        ],
    )
    path = tmp_path / "helper.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]), path)
    graph = load_graph(path)
    assert graph.opset == 17 and graph.inputs == ("x",)
    np.testing.assert_array_equal(graph.initializers["w"], weights)
    np.testing.assert_array_equal(graph.initializers["i"], [-1, 0, 2**40])
    assert graph.nodes[0].attributes == {"transB": 1, "alpha": 0.5}


def test_shapes_and_metadata_of_the_shipped_attribute_net():
    from masksegx._models import ATTRIBUTES_MODEL

    graph = load_graph(ATTRIBUTES_MODEL)
    assert graph.input_shapes == (("batch", 3, 64, 64),)
    assert graph.output_shapes == (("batch", 22), ("batch", 3))  # probs, wearing
    assert "crop_size" in graph.metadata["masksegx_attributes"]
