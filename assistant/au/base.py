"""The one interface every AU detector backend implements, and a helper to build its output.

A detector turns a clip (and its motion analysis, when the pipeline has already computed it, so the flow is not
computed twice) into `AUEvidence`: one probability per AU it knows, a person's side when it can tell, its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from assistant.types import AUEvidence, AUScore, Clip, MotionAnalysis


@runtime_checkable
class AUDetector(Protocol):
    name: str

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        """AU probabilities for `clip`; `analysis` is reused when given."""
        ...


def make_evidence(codes: Sequence[int], probabilities: Iterable[float], backend: str, *,
                  sides: Sequence[str | None] | None = None, threshold: float = 0.5) -> AUEvidence:
    """Evidence sorted by AU code, probabilities clipped to 0..1."""
    probs = [min(1.0, max(0.0, float(p))) for p in probabilities]
    if len(probs) != len(codes):
        raise ValueError(f"{len(codes)} AU codes but {len(probs)} probabilities")
    sides = list(sides) if sides is not None else [None] * len(codes)
    scores = sorted((AUScore(int(c), p, s) for c, p, s in zip(codes, probs, sides)), key=lambda s: s.code)
    return AUEvidence(scores=scores, backend=backend, threshold=threshold)
