"""Test helper: watch what the real spectral pipeline is called with."""

import masksegx.spectral
from masksegx.eval import baselines


def record_compensations(monkeypatch):
    """Wrap the ``segment_spectral`` that :mod:`masksegx.eval.baselines` calls; returns the list
    of ``params.compensation`` per call."""
    calls = []
    real = masksegx.spectral.segment_spectral

    def recording(image, *, region=None, params=None):
        calls.append(params.compensation if params is not None else None)
        return real(image, region=region, params=params)

    monkeypatch.setattr(baselines, "segment_spectral", recording)
    return calls
