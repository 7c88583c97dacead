"""Face-mask segmentation as a Ray Data batch function (``pip install "masksegx[ray]"``).

>>> import ray
>>> from masksegx.ray_adapter import MaskSegmentationBatch
>>> images = ray.data.read_images("photos/", include_paths=True)   # columns "image" (RGB), "path"
>>> results = images.map_batches(
...     MaskSegmentationBatch,
...     fn_constructor_kwargs={"method": "fused"},
...     compute=ray.data.ActorPoolStrategy(size=4),   # 4 actors, each loads the models once
...     batch_size=16,
... )
>>> for row in results.iter_rows():
...     row["path"], row["num_faces"], row["faces"]

This module does not import Ray: :class:`MaskSegmentationBatch` only takes and returns numpy
batch dicts, so it also works as a plain function over a dict of arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .batch import face_record
from .io import DatasetError, read_image
from .pipeline import FaceMaskSegmenter

ORDERS = ("rgb", "bgr")


class MaskSegmentationBatch:
    """A callable class for ``ray.data.Dataset.map_batches``: images in, per-face results out.

    Input batch (numpy format): an ``image_column`` of uint8 HxWx3 arrays (an object array of
    them, or one NxHxWx3 array), or else a ``path_column`` of image file paths read here.
    ``order`` is the channel order of the image column: ``"rgb"`` (default), as
    ``ray.data.read_images`` gives it, or ``"bgr"`` as ``cv2.imread`` does. Paths are read
    with OpenCV, whatever ``order``.

    Output batch: **one row per input image**, so images without faces and unreadable ones keep
    a row: every input column except the image column passes through (e.g. ``path``), plus

    ``faces``      list of dicts, best face first, the same records ``masksegx segment``
                   writes: box, score, landmarks, gender, gender_prob, coverage,
                   coverage_probs, wearing, wearing_probs, mask_pixels and mask as COCO RLE
                   (``{"size": [h, w], "counts": str}``, :func:`masksegx.rle.decode`);
    ``num_faces``  int;
    ``error``      ``""``, or why the image could not be read or segmented (then no faces).

    Other keyword arguments go to :class:`~masksegx.pipeline.FaceMaskSegmenter`, built once
    per instance: in Ray, once per actor of the pool.
    """

    def __init__(
        self,
        *,
        image_column: str = "image",
        path_column: str = "path",
        order: str = "rgb",
        **segmenter_settings: Any,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
        self.image_column = image_column
        self.path_column = path_column
        self.order = order
        self.segmenter = FaceMaskSegmenter(**segmenter_settings)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.image_column in batch:
            images = [self._from_column(image) for image in batch[self.image_column]]
        elif self.path_column in batch:
            images = [_read(path) for path in batch[self.path_column]]
        else:
            raise ValueError(
                f"batch: expected an {self.image_column!r} or {self.path_column!r} column, "
                f"got {sorted(batch)}"
            )
        faces: list[list[dict[str, Any]]] = []
        errors: list[str] = []
        for image in images:
            records: list[dict[str, Any]] = []
            error = ""
            if isinstance(image, str):
                error = image
            else:
                try:
                    records = [face_record(face) for face in self.segmenter(image)]
                except (TypeError, ValueError) as err:
                    error = str(err)
            faces.append(records)
            errors.append(error)
        out = {name: np.asarray(column) for name, column in batch.items()
               if name != self.image_column}
        out["faces"] = _object_array(faces)
        out["num_faces"] = np.array([len(f) for f in faces], np.int64)
        out["error"] = np.array(errors, dtype=object)
        return out

    def _from_column(self, image: Any) -> Any:
        image = np.asarray(image)
        if self.order == "rgb" and image.ndim == 3 and image.shape[2] == 3:
            return np.ascontiguousarray(image[:, :, ::-1])
        return image  # the segmenter names what is wrong with anything else


def _read(path: Any) -> Any:
    """The BGR image at ``path``, or the error message."""
    try:
        return read_image(str(path))
    except (DatasetError, OSError) as err:
        return str(err)


def _object_array(items: list[list[dict[str, Any]]]) -> np.ndarray:
    # np.array(list of lists) would build a 2-D array when the lists have equal lengths.
    out = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        out[index] = item
    return out
