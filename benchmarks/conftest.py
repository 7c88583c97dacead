"""Shared fixtures for the latency suites: real photo content at the sizes the issues name."""

import os
import sys

import cv2
import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # numpy references live with the tests

EXAMPLE = os.path.join(HERE, "..", "python", "masksegx", "data", "example_blue_mask.jpg")
SIZES = {"250x250": (250, 250), "640x480": (640, 480)}


def pytest_addoption(parser):
    parser.addoption(
        "--reference-models", default=None,
        help="folder of the reference detectors' models for the side-by-side suite (default: "
             "$MASKSEGX_REFERENCE_MODELS, else ../shared/data/models when it exists)",
    )


def pytest_configure(config):
    # Single-threaded figures first: OpenCV would otherwise use every core for its peers.
    cv2.setNumThreads(1)


@pytest.fixture(params=list(SIZES), scope="session")
def photo(request):
    """A real BGR photo resized to each benchmark size (width x height)."""
    image = cv2.imread(EXAMPLE)
    return cv2.resize(image, SIZES[request.param], interpolation=cv2.INTER_AREA)
