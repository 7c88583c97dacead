"""Stand-ins for masksegx.spectral and masksegx.fcm, which are written in parallel.

They let the evaluation code that calls them be tested before they exist; the tests that need
the real modules are guarded with ``pytest.importorskip`` until the merge.
"""

import dataclasses
import sys
import types
from typing import NamedTuple

import numpy as np


class FakeFcmResult(NamedTuple):
    centers: np.ndarray
    memberships: np.ndarray
    iterations: int
    objective: float


def fake_fuzzy_cmeans(features, k, *, m=2.0, tol=1e-4, max_iter=100, seed=0):
    """Stand-in with the interface of masksegx.fcm.fuzzy_cmeans: hard 2-means on feature 0."""
    assert features.dtype == np.float32 and features.ndim == 2 and k == 2
    split = features[:, 0] > features[:, 0].mean()
    memberships = np.stack([~split, split], axis=1).astype(np.float32)
    centers = np.stack([features[~split].mean(0), features[split].mean(0)])
    return FakeFcmResult(centers, memberships, 1, 0.0)


@dataclasses.dataclass
class FakeSpectralParams:
    compensation: object = "combined"


def fake_segment_spectral(image, *, region=None, params=None):
    """Stand-in for masksegx.spectral.segment_spectral: compensate, then NBRI > 0.2."""
    if region is None:
        region = np.ones(image.shape[:2], bool)
    if callable(params.compensation):
        image = params.compensation(image, region)
    fake_segment_spectral.compensations.append(params.compensation)
    b, r = image[..., 0].astype(float), image[..., 2].astype(float)
    return types.SimpleNamespace(mask=(b - r) / np.maximum(b + r, 1) > 0.2)


def install(monkeypatch):
    """Install stand-ins for the modules other people write (until they are merged); returns
    the fake ``segment_spectral``, whose ``compensations`` list records each call's choice."""
    fake_segment_spectral.compensations = []
    spectral = types.ModuleType("masksegx.spectral")
    spectral.SpectralParams = FakeSpectralParams
    spectral.segment_spectral = fake_segment_spectral
    fcm = types.ModuleType("masksegx.fcm")
    fcm.fuzzy_cmeans = fake_fuzzy_cmeans
    monkeypatch.setitem(sys.modules, "masksegx.spectral", spectral)
    monkeypatch.setitem(sys.modules, "masksegx.fcm", fcm)
    return fake_segment_spectral
