"""The bad-input corpus: tiny broken or unusual image files, generated rather than committed.

``write_corpus(folder)`` writes every file of ``FILES`` there and returns their paths;
``python tests/bad_inputs.py DIR`` does the same from the command line (fuzz seeds).
"""

from __future__ import annotations

import os
import struct
import sys
import zlib

import cv2
import numpy as np


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims ``width`` x ``height`` RGB pixels but whose single
    IDAT holds one compressed row: a decompression-bomb header in 60 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * min(width, 64))))
            + _png_chunk(b"IEND", b""))


def png_huge_chunk() -> bytes:
    """A 60-byte PNG whose IDAT chunk claims 4 GB (fuzz finding: OpenCV allocated it)."""
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + struct.pack(">I", 0xFFFFF90C) + b"IDAT" + b"x\x9cc`\x18\xe2")


def _encoded(ext: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def _face_like(size: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    image = np.stack([(xx * 5) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    return image


def _corrupt(data: bytes) -> bytes:
    """Keep the first 30 bytes (signature and header), scramble the rest."""
    body = np.frombuffer(data, np.uint8)[30:].copy()
    body[::3] ^= 0xA5
    return data[:30] + body.tobytes()


_JPEG = _encoded(".jpg", _face_like())
_PNG = _encoded(".png", _face_like())

#: file name -> bytes; what each must do is in tests/test_bad_inputs.py.
FILES = {
    "empty.jpg": b"",
    "empty.png": b"",
    "text.png": b"this is not an image\n",
    "truncated.jpg": _JPEG[: len(_JPEG) // 2],
    "truncated.png": _PNG[: len(_PNG) // 2],
    "corrupt.jpg": _corrupt(_JPEG),
    "corrupt.png": _corrupt(_PNG),
    "bomb.png": png_header_only(100_000, 100_000),
    "wide.png": _encoded(".png", np.zeros((1, 40_000, 3), np.uint8)),
    "bomb_in_limit.png": png_header_only(30_000, 30_000),
    "huge_chunk.png": png_huge_chunk(),
    "gray.png": _encoded(".png", _face_like()[:, :, 0]),
    "rgba.png": _encoded(".png", np.dstack([_face_like(), np.full((48, 48), 128, np.uint8)])),
    "deep16.png": _encoded(".png", _face_like().astype(np.uint16) * 257),
    "pixel.png": _encoded(".png", np.full((1, 1, 3), 200, np.uint8)),
    "ok.jpg": _JPEG,
    "ok.png": _PNG,
}


def write_corpus(folder: str | os.PathLike) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, data in FILES.items():
        paths[name] = os.path.join(folder, name)
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


if __name__ == "__main__":
    write_corpus(sys.argv[1])
