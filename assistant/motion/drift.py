"""Slow drift cancelled with the offset frame: what grows steadily from onset to offset is not the expression.

Real sequences drift: over an onset..offset sequence the last frame is the one most different from the onset in most
real clips (docs/reading_real_faces.md), and the part of that drift no head model removes (a turn read a little
wrong, skin or jaw that settles, light that changes) reaches the onset -> apex field and is read as AUs in every
region it crosses. The offset frame is where the expression has gone (that is what a sheet's offset means), so the
onset -> offset field holds the drift and no expression; where the drift grows steadily, the share
`(apex - onset) / (offset - onset)` of it is in the apex field, and subtracting that share of the offset field
leaves the expression.

The subtraction cancels nothing when the face did not drift and mixes the offset frame's noise in, so it is judged by
the face's median motion, as the rigid3d head model is chosen in `assistant.motion.analyze`: kept only where it
leaves the face clearly stiller (`DRIFT_STILLER`). Its noise stays about that of one flow, so the null pair's floor is
used as it is: both flows start from the onset frame, so under frame noise alone the cancelled field's noise is
sqrt(1 - share + share^2) of one flow's (0.87 at a share of 0.5), under independent registration errors alone
sqrt(1 + share^2) (1.12); on world v2's calibration split the floors measured on the stable face area of both fields
differ by a median factor of 0.90 (0.97 with the turns on a quadratic course). An image pair, or a clip whose offset
is not known, has no offset frame and is analysed as before.
"""

from __future__ import annotations

import numpy as np

# The cancelled field is kept when its median motion over the face is below this share of the field's own: chosen
# by benchmarks/drift.py on world v2's calibration split from 0.8-1.25 (macro F1 of `rules` 0.734 at 0.9, 1.0 and 1.1;
# 9 false alarms at 0.9 and 1.0, and the tie goes to the smaller ratio; never cancelling 0.723; docs/benchmarks.md,
# "Drift cancelled with the offset frame").
DRIFT_STILLER = 0.9
DRIFT_MODES = ("offset", "none")


def drift_share(onset: int, apex: int, offset: int | None) -> float | None:
    """The share of the onset -> offset drift reached at the apex, or None when there is no usable offset frame (an
    offset at or before the apex still holds the expression)."""
    if offset is None or offset <= apex or apex <= onset:
        return None
    return (apex - onset) / (offset - onset)


def cancel_drift(flow: np.ndarray, offset_flow: np.ndarray, share: float) -> np.ndarray:
    """The onset -> apex field without `share` of the onset -> offset field."""
    return (flow - share * offset_flow).astype(np.float32)

