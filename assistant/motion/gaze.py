"""The eyes' openings are not skin: what the eyeball does there is never read as a facial action.

Between an onset and an apex frame the eyes often move: a saccade of 4 degrees slides the iris and the sclera by
about 1 px at the 256 px crop (the eyeball's radius is about 12 mm, an inter-ocular distance of 63 mm is 72-82 px
here), and people watching a film make several a second. Read as skin, that motion leaks into the eyelid regions,
which straddle the lid margins, and the flow's smoothing carries it a pixel or two onto the lids: on still photos
whose eyes alone moved 1-3 px, 13-34 % of the pairs named AU5 or AU7, and a look aside hid real lid actions
(`benchmarks/gaze.py`). A real upper lid also follows the eye up and down; that part is motion of the lid and is still
read as such.

So each eye's opening (the polygon of its six landmarks, widened by `OPENING_MARGIN` inter-ocular distances to take the
flow's spill across the margin and the polygon's straight cut of a curved lid) is removed from the face mask before
anything is measured (`MotionConfig.eyes` "masked", the default; "read" keeps the analysis from before, which AU heads
trained then are served with; the long-video tracker always masks): region means, stillness for the head model's choice,
the noise floor from a null pair, the colour map and the learned heads' motion input. The lid regions keep the lid skin
above and below the opening (about half of an upper-lid region's pixels, two thirds of a lower one's), and AU43 is read
from the landmarks (`assistant.au.eyelids`)."""

from __future__ import annotations

import cv2
import numpy as np

from assistant.motion.register import inter_ocular

EYES_68 = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
# Inter-ocular distances (about 3 px at the 256 px crop). Chosen on the calibration split's photos by the rule in
# `benchmarks/gaze.py`: among the margins that cost the lid AUs nothing there, the one that left the fewest gaze shifts
# of up to 2 px named (none), then the smaller.
OPENING_MARGIN = 0.0375
# `MotionConfig.eyes`: "masked" (the openings left out, default) or "read" (as skin: the motion core before the mask,
# which AU heads trained before it are served with)
EYE_MODES = ("masked", "read")


def opening_margin(eyes: str) -> float | None:
    """What a cache key records of `eyes`: the margin of the openings masked, None where they are read."""
    return OPENING_MARGIN if eyes == "masked" else None


def eye_openings(points68: np.ndarray, shape: tuple[int, int], margin: float | None = None) -> np.ndarray:
    """(H, W) bool: both eyes' openings, widened by `margin` inter-ocular distances (None: `OPENING_MARGIN`)."""
    margin = OPENING_MARGIN if margin is None else margin
    p = np.asarray(points68, dtype=np.float64)
    mask = np.zeros(shape, np.uint8)
    for eye in EYES_68:
        cv2.fillPoly(mask, [np.round(p[list(eye)] * 16).astype(np.int32)], 1, shift=4)  # sub-pixel corners
    radius = int(round(margin * inter_ocular(p)))
    if radius > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return mask.astype(bool)
