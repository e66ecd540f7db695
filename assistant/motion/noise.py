"""The noise floor of one analysis: how far a region's mean motion vector wanders when nothing moves.

Real micro-expressions move the skin 0.05-0.4 px at the 256 px crop and a still face's flow wanders 0.01-0.05 px per
region, so a fixed pixel threshold is either deaf to real AUs or fires on noise, depending on the camera, the
compression and the face. Each analysis therefore measures its own floor, as the spread (per axis, px) of a region's
mean flow vector under no expression:

- `null pair` (sequences): the flow from the onset frame to a neighbouring frame (the one before the onset, or the
  one right after it when the apex is far enough away) goes through the same registration and flow as the real
  pair; the mean vectors of all regions are pooled.
- `stable area`: windows tiled over the stable face content (forehead, nose bridge, contour:
  `assistant.motion.register.stable_mask`) of the real flow, after a robust similarity fit there is taken out (so a
  head motion that the chosen compensation left in, `nose` or `none`, is not mistaken for noise).

A sequence uses the larger of the null pair's floor and STABLE_WEIGHT times the stable area's (the stable bands also
catch the tails of strong AUs nearby, so the stable estimate is trusted only in part; STABLE_WEIGHT is chosen by
`meu calibrate rules` on the realistic calibration split and read from `intensity_calibration.json`). The null pair
sees the camera's frame-to-frame noise; the stable area sees what the onset -> apex pair itself adds: on a soft,
low-texture face the compression blocks and sensor pattern stay fixed to the frame while registration moves the
face, and the flow reads them as motion of up to the head's own shift, which a neighbouring frame (the head has
barely moved) never shows.

Both pool many 2-D mean vectors m whose length is Rayleigh distributed under noise, so the per-axis spread is
median(|m|) / sqrt(2 ln 2): a median, so that one region that does move (a blink, a real AU at the forehead) does
not inflate the floor. A region's signal-to-noise ratio is then |its mean vector| / floor.
"""

from __future__ import annotations

import math

import numpy as np

from assistant import calibration
from assistant.motion.register import inter_ocular, residual_head_motion

# px at 256: a region's mean vector is not resolved finer than this from 8-bit frames (resampling, rounding), and
# real still faces never measure below it; keeps SNR finite and honest on clean synthetic input
FLOOR_MIN_PX = 0.01
RAYLEIGH_MEDIAN = math.sqrt(2 * math.log(2))
WINDOW = 0.15  # stable-area window side, in inter-ocular distances (the stable bands are narrow)
MIN_COVER = 0.5  # a window counts when this share of it is stable content
MIN_WINDOWS = 4
REFERENCE_SIZE = 256


def _floor(vectors: list[np.ndarray], size: int) -> float:
    lengths = np.array([float(np.hypot(*v)) for v in vectors])
    return max(float(np.median(lengths)) / RAYLEIGH_MEDIAN, FLOOR_MIN_PX * size / REFERENCE_SIZE)


def stable_weight_now() -> float:
    """STABLE_WEIGHT in force now (read at call time, see `assistant.calibration`)."""
    return float(calibration.load("intensity_calibration.json").get("stable_weight", 1.0))


def combine_floors(estimates: dict[str, float], stable_weight: float | None = None) -> tuple[float | None, str]:
    """The floor an analysis uses, and which estimate set it: the null pair's when there is one, raised to
    `stable_weight` x the stable area's when that is larger; the stable area's alone for a pair."""
    w = stable_weight_now() if stable_weight is None else stable_weight
    null, stable = estimates.get("null pair"), estimates.get("stable area")
    if null is None:
        return (stable, "stable area") if stable is not None else (None, "")
    if stable is not None and w * stable > null:
        return w * stable, "stable area"
    return null, "null pair"


def noise_from_regions(null_flow: np.ndarray, masks: dict) -> float | None:
    """Floor from the flow of a pair with no expression, pooled over the region masks (already face-masked)."""
    vectors = [null_flow[m].mean(axis=0) for m in masks.values() if m.any()]
    return _floor(vectors, null_flow.shape[0]) if vectors else None


def noise_from_stable(flow: np.ndarray, stable: np.ndarray, points68: np.ndarray) -> float | None:
    """Floor from region-sized windows of stable content in the analysed flow itself; None when there are too few."""
    side = max(4, int(round(WINDOW * inter_ocular(points68))))
    ys, xs = np.nonzero(stable)
    if len(xs) == 0:
        return None
    flow = flow - residual_head_motion(flow, stable).field(flow.shape[:2], None)
    vectors = []
    for y0 in range(int(ys.min()), int(ys.max()) + 1, side):
        for x0 in range(int(xs.min()), int(xs.max()) + 1, side):
            m = stable[y0:y0 + side, x0:x0 + side]
            if m.size and m.mean() >= MIN_COVER:
                vectors.append(flow[y0:y0 + side, x0:x0 + side][m].mean(axis=0))
    if len(vectors) < MIN_WINDOWS:
        return None
    return _floor(vectors, flow.shape[0])
