"""Coverage-guided fuzzing (atheris) of the image-reading entry points.

Each input is a file's bytes: it goes through ``read_image`` and ``read_mask`` (via a temporary
file, as the CLI and ``masksegx segment`` read inputs), ``cv2.imdecode`` as they call it, and,
when it decodes to a small image, through ``segment_spectral`` and the RLE round trip the
batch writer uses. Unreadable input must raise ``DatasetError`` (a ValueError); a decoded
image must be uint8 HxWx3. Anything else is a finding.

    python fuzz/fuzz_images.py -max_total_time=60 CORPUS_DIR   # seed it: python tests/bad_inputs.py DIR
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris
import numpy as np

with atheris.instrument_imports(include=["masksegx"]):
    from masksegx import rle, segment_spectral
    from masksegx.eval.datasets import DatasetError, read_image, read_mask

EXPECTED = (TypeError, ValueError)
#: Images up to this many pixels also go through the spectral pipeline (keeps runs fast).
SEGMENT_PIXELS = 64 * 64
_FILE = os.path.join(tempfile.mkdtemp(prefix="masksegx-fuzz-"), "input.img")


def test_one_input(data: bytes) -> None:
    with open(_FILE, "wb") as f:
        f.write(data)
    for mask_value in (255, 2):
        try:
            mask = read_mask(_FILE, mask_value)
            assert mask.dtype == np.bool_ and mask.ndim == 2, (mask.dtype, mask.shape)
        except DatasetError:
            pass
    try:
        image = read_image(_FILE)
    except DatasetError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    if image.shape[0] * image.shape[1] > SEGMENT_PIXELS:
        return
    try:
        result = segment_spectral(image)
    except EXPECTED:
        return
    decoded = rle.decode(rle.encode(result.mask))
    assert np.array_equal(decoded, result.mask)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
