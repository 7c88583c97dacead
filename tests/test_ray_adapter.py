"""The Ray Data adapter: its batch function on plain numpy dicts, and on a local Ray instance."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from masksegx import FaceMaskSegmenter, rle
from masksegx.batch import face_record
from masksegx.examples import EXAMPLES
from masksegx.ray_adapter import MaskSegmentationBatch


@pytest.fixture(scope="module")
def adapter():
    return MaskSegmentationBatch()


@pytest.fixture(scope="module")
def expected():
    """What the segmenter itself gives for each bundled photo, as JSON-ready records."""
    segmenter = FaceMaskSegmenter()
    return [[face_record(face) for face in segmenter(cv2.imread(e.path))] for e in EXAMPLES]


def rgb_images():
    return [cv2.imread(e.path)[:, :, ::-1] for e in EXAMPLES]


def object_column(items):
    column = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        column[index] = item
    return column


def test_image_column_gives_one_row_per_image(adapter, expected):
    ids = np.array([7, 8])
    out = adapter({"image": object_column(rgb_images()), "id": ids})
    assert sorted(out) == ["error", "faces", "id", "num_faces"]
    np.testing.assert_array_equal(out["id"], ids)
    assert list(out["faces"]) == expected
    assert list(out["num_faces"]) == [len(faces) for faces in expected]
    assert list(out["error"]) == ["", ""]
    mask = rle.decode(out["faces"][0][0]["mask"])
    assert mask.shape == cv2.imread(EXAMPLES[0].path).shape[:2]


def test_path_column_reports_unreadable_files(adapter, expected, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    paths = np.array([EXAMPLES[1].path, str(broken), EXAMPLES[0].path])
    out = adapter({"path": paths})
    np.testing.assert_array_equal(out["path"], paths)
    assert out["faces"][0] == expected[1] and out["faces"][2] == expected[0]
    assert out["faces"][1] == [] and out["num_faces"][1] == 0
    assert "broken.jpg" in out["error"][1]


def test_uniform_batch_array_and_bgr_order(expected):
    image = cv2.imread(EXAMPLES[1].path)
    out = MaskSegmentationBatch(order="bgr")({"image": np.stack([image, image])})
    assert list(out["faces"]) == [expected[1], expected[1]]


def test_bad_images_get_an_error_row_not_an_exception(adapter):
    out = adapter({"image": object_column([np.zeros((4, 4), np.float32)])})
    assert out["num_faces"][0] == 0 and "image" in out["error"][0]


def test_bad_arguments(adapter):
    with pytest.raises(ValueError, match="batch"):
        adapter({"pixels": np.zeros(1)})
    with pytest.raises(ValueError, match="order"):
        MaskSegmentationBatch(order="hsv")
    with pytest.raises(ValueError, match="method"):
        MaskSegmentationBatch(method="magic")


def test_masksegx_never_imports_ray():
    code = "import sys, masksegx, masksegx.ray_adapter; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_on_a_local_ray_instance_with_an_actor_pool(expected):
    ray = pytest.importorskip("ray")
    # Two actors hold one CPU each; a third keeps Ray Data's own tasks from waiting forever.
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    try:
        images = rgb_images()
        rows = [{"image": image, "name": f"{i}-{j}"}
                for i, image in enumerate(images) for j in range(2)]
        results = ray.data.from_items(rows).map_batches(
            MaskSegmentationBatch,
            fn_constructor_kwargs={"method": "fused"},
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=2,
        )
        got = {row["name"]: row for row in results.take_all()}
    finally:
        ray.shutdown()
    assert sorted(got) == ["0-0", "0-1", "1-0", "1-1"]
    for name, row in got.items():
        index = int(name[0])
        assert row["faces"] == expected[index] and row["num_faces"] == len(expected[index])
        assert row["error"] == ""
