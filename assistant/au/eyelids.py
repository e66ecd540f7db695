"""AU43 (the upper lids lowered; 43E: the eyes closed) from the eye's opening on the landmarks of both frames.

Read from the lids' flow, AU43 was the AU most often named that nobody coded on real clips (12 of 16): the lowered
brow of AU4 pushes the upper-lid skin down by 0.3-0.4 px, and a small head pitch moves the lids too. Lids that come
down close the eye, which the landmarks of both frames show directly: for each eye, the height of the upper lid above
the line through the eye's corners, as a share of the eye's width (so head motion and zoom cancel). AU43 is named when
the upper lid has lost a large share of that height. Landmarks are good to about a pixel, 10-15 % of an upper lid's
height at the 256 px crop, so this never reads a micro AU43 of a few tenths of a pixel: it reads lids that visibly
come down, and 43E when the eye closes. The lower lid is left out: AU6 and AU7 raise it. A blink (AU45) at the apex
frame looks the same as AU43 on two frames and cannot be told apart.
"""

from __future__ import annotations

import math

import numpy as np

from assistant.types import AUScore, EvidenceSource, FaceLandmarks, RegionMotion

# iBUG 68 eye points (the person's right eye is 36-41, on the image's left): corners, and the two upper-lid points
EYES_68 = {"R": ((36, 39), (37, 38)), "L": ((42, 45), (43, 44))}
# share of the upper lid's height lost at p = 0.5, and the logistic's width: chosen on the calibration split
CLOSURE_MIDPOINT = 0.45
CLOSURE_WIDTH = 0.06
CLOSED = 0.8  # closure from which the eye counts as closed (43E)
MIN_HEIGHT = 0.02  # an upper lid lower than this share of the eye's width on the onset frame: no reading


def upper_lid_height(points68: np.ndarray, side: str) -> float:
    """Height of the upper lid above the line through the eye's corners, as a share of the eye's width."""
    p = np.asarray(points68, dtype=np.float64)
    (a, b), lid = EYES_68[side]
    axis = p[b] - p[a]
    width = float(np.linalg.norm(axis))
    if width <= 0:
        return 0.0
    normal = np.array([axis[1], -axis[0]]) / width  # points up in the image for a level eye
    return float(np.mean([(p[i] - p[a]) @ normal for i in lid])) / width


def closure(onset: FaceLandmarks, apex: FaceLandmarks) -> dict[str, float]:
    """Per eye ("L", "R": the person's sides), the share of the upper lid's onset height lost at the apex."""
    out = {}
    for side in EYES_68:
        before = upper_lid_height(onset.points68, side)
        if before >= MIN_HEIGHT:
            out[side] = 1.0 - upper_lid_height(apex.points68, side) / before
    return out


def au43_score(onset: FaceLandmarks, apex: FaceLandmarks | None) -> AUScore | None:
    """AU43's score from the two frames' landmarks, or None when the apex frame has none (then it is not scored)."""
    if apex is None:
        return None
    lost = closure(onset, apex)
    if not lost:
        return None
    side, worst = max(lost.items(), key=lambda kv: kv[1])
    probability = 1.0 / (1.0 + math.exp(-(worst - CLOSURE_MIDPOINT) / CLOSURE_WIDTH))
    both = len(lost) == 2 and min(lost.values()) >= CLOSURE_MIDPOINT
    sources = tuple(EvidenceSource("landmarks", f"{'left' if s == 'L' else 'right'} eye's upper lid", -v, s)
                    for s, v in sorted(lost.items(), key=lambda kv: -kv[1]))
    return AUScore(43, probability, None if both else side, sources)


def lid_against_brow(regions: list[RegionMotion]) -> list[RegionMotion]:
    """The table AU5 is scored on: each upper lid's motion less the upward motion of the brow above it (the mean of
    its inner and outer brow, upward part only). A raised brow drags the upper-lid skin up (0.2-0.7 px per px of brow
    on the realistic world's people), which read alone is an AU5 nobody coded; an upper lid that rises on its own
    rises more than its brow. Chosen on the calibration split, where it removed AU5 false alarms at the same F1; that
    split draws no AU5 (CASME II's combinations), so what it costs AU5's recall is not measured there: a 1.6 px lid
    rise under a 0.9 px brow raise still names AU5 (`tests/test_eyelids.py`). The same idea for AU7 (the lower lid
    against the upper lid) was tried and lost F1 there, so AU7 reads the lower lid."""
    table = {(r.region, r.side): r for r in regions}
    out = []
    for r in regions:
        brows = [table[(b, r.side)] for b in ("inner_brow", "outer_brow") if (b, r.side) in table]
        if r.region == "upper_eyelid" and brows:
            up = min(0.0, float(np.mean([b.dy for b in brows])))  # image y points down
            r = r.moved(r.dx, r.dy - up)
        out.append(r)
    return out
