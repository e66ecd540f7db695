"""Which flow measurements an AU's evidence rests on: regions whose motion points the way FACS says the AU moves them.

Used to name the source of flow evidence ("flow in the left mouth corner") for the `rules` and `fusion` detectors;
the `blendshapes` detector names its scores itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from assistant.facs import FACS, image_direction
from assistant.types import AUEvidence, EvidenceSource, RegionMotion

AGREE_COS = 0.5  # within 60 degrees of the FACS direction


def flow_sources(code: int, regions: list[RegionMotion], side: str | None = None) -> tuple[EvidenceSource, ...]:
    """Moving regions that agree with AU `code` (only the person's `side` of sided regions when given), largest
    motion first."""
    if code not in FACS:
        return ()
    out: dict[tuple[str, str | None], EvidenceSource] = {}
    for action in FACS[code].actions:
        for r in regions:
            if r.region != action.region or r.intensity == "none" or (side and r.side and r.side != side):
                continue
            v = np.array([r.dx, r.dy], dtype=np.float64)
            d = image_direction(action, r.side)
            n = float(np.linalg.norm(v)) * float(np.linalg.norm(d))
            if n > 0 and float(v @ d) / n >= AGREE_COS:
                out.setdefault((r.region, r.side), EvidenceSource("flow", r.label, r.motion_px, r.side,
                                                                   r.region))
    return tuple(sorted(out.values(), key=lambda s: -s.value))


def with_flow_sources(evidence: AUEvidence, regions: list[RegionMotion]) -> AUEvidence:
    """`evidence` with each score's flow sources filled in (scores that already name sources are kept)."""
    scores = [s if s.sources else dataclasses.replace(s, sources=flow_sources(s.code, regions, s.side))
              for s in evidence.scores]
    return dataclasses.replace(evidence, scores=scores)
