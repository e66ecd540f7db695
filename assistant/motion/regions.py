"""Named facial regions from the 68 landmarks, and the per-region motion table.

Regions are ellipses placed relative to iBUG landmarks and sized by the inter-ocular distance `d`, so they follow
any face shape and size. Sides are the **person's**: the person's right eye is iBUG 36-41 (image left).

Only pixels inside the face (`assistant.motion.register.face_mask`) and outside the eyes' openings
(`assistant.motion.gaze`; unless `MotionConfig.eyes` is "read") count. Intensity comes from the length of the region's
*mean* motion vector (coherent motion, in pixels scaled to a 256 px working size), because incoherent flow noise
averages out while muscle motion does not, **and** from its signal-to-noise ratio against the analysis' own noise floor
(`assistant.motion.noise`): a region is `none` below SNR_MIN whatever its size in pixels, else weak / moderate / strong
by INTENSITY_THRESHOLDS_PX. Both come from `intensity_calibration.json` (`intensity_words`), written by `meu calibrate
rules` (`eval/calibrate.py`) on the realistic synthetic calibration split only."""

from __future__ import annotations

import cv2
import numpy as np

from assistant import calibration
from assistant.prompts import DIRECTION_COLOURS, DIRECTIONS
from assistant.types import RegionMotion

REFERENCE_SIZE = 256

# Per side: iBUG indices of (brow outer pair, brow inner pair, upper lid pair, lower lid pair, eye centre ring,
# mouth corner, nose wing). "R" = person's right = image left.
_SIDE_POINTS = {
    "R": {"brow_outer": (17, 18), "brow_inner": (20, 21), "upper_lid": (37, 38), "lower_lid": (40, 41),
          "eye": (36, 37, 38, 39, 40, 41), "corner": 48, "wing": 31, "jaw": (2, 3)},
    "L": {"brow_outer": (25, 26), "brow_inner": (22, 23), "upper_lid": (43, 44), "lower_lid": (46, 47),
          "eye": (42, 43, 44, 45, 46, 47), "corner": 54, "wing": 35, "jaw": (13, 14)},
}


def _mean(p: np.ndarray, idx) -> np.ndarray:
    return p[list(idx) if isinstance(idx, tuple) else [idx]].mean(axis=0)


def region_ellipses(points68: np.ndarray) -> dict[tuple[str, str | None], tuple[np.ndarray, float, float]]:
    """(region, side) -> (centre, radius x, radius y) in the landmarks' pixel coordinates."""
    p = np.asarray(points68, dtype=np.float64)
    eye_r, eye_l = _mean(p, _SIDE_POINTS["R"]["eye"]), _mean(p, _SIDE_POINTS["L"]["eye"])
    d = max(float(np.linalg.norm(eye_l - eye_r)), 1.0)
    mid_x = (eye_r[0] + eye_l[0]) / 2
    up = np.array([0.0, -1.0])
    out: dict[tuple[str, str | None], tuple[np.ndarray, float, float]] = {}
    for side, ix in _SIDE_POINTS.items():
        outward = np.array([-1.0 if side == "R" else 1.0, 0.0])
        eye = _mean(p, ix["eye"])
        corner = p[ix["corner"]]
        out[("inner_brow", side)] = (_mean(p, ix["brow_inner"]) + up * 0.04 * d, 0.16 * d, 0.11 * d)
        out[("outer_brow", side)] = (_mean(p, ix["brow_outer"]) + up * 0.04 * d, 0.16 * d, 0.11 * d)
        out[("upper_eyelid", side)] = (_mean(p, ix["upper_lid"]) + up * 0.03 * d, 0.17 * d, 0.06 * d)
        out[("lower_eyelid", side)] = (_mean(p, ix["lower_lid"]) - up * 0.06 * d, 0.17 * d, 0.06 * d)
        cheek = 0.55 * eye + 0.45 * corner + outward * 0.22 * d
        out[("cheek", side)] = (cheek, 0.2 * d, 0.17 * d)
        out[("nasolabial", side)] = (0.5 * p[ix["wing"]] + 0.5 * corner + outward * 0.1 * d, 0.09 * d, 0.14 * d)
        out[("mouth_corner", side)] = (corner, 0.11 * d, 0.11 * d)
    out[("glabella", None)] = (np.array([mid_x, _mean(p, (21, 22))[1] + 0.02 * d]), 0.11 * d, 0.12 * d)
    out[("nose", None)] = (_mean(p, (28, 29)), 0.1 * d, 0.16 * d)
    out[("upper_lip", None)] = (_mean(p, (50, 51, 52, 61, 62, 63)), 0.22 * d, 0.07 * d)
    out[("lower_lip", None)] = (_mean(p, (56, 57, 58, 65, 66, 67)), 0.22 * d, 0.07 * d)
    out[("chin", None)] = (0.45 * p[57] + 0.55 * p[8], 0.26 * d, 0.13 * d)
    return out


def region_masks(points68: np.ndarray, shape: tuple[int, int]) -> dict[tuple[str, str | None], np.ndarray]:
    """Boolean masks of every region on an image of `shape` (H, W)."""
    h, w = shape
    masks = {}
    for key, (c, rx, ry) in region_ellipses(points68).items():
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (int(round(c[0])), int(round(c[1]))), (max(1, int(round(rx))), max(1, int(round(ry)))),
                    0, 0, 360, 1, -1)
        masks[key] = m.astype(bool)
    return masks


def direction_word(dx: float, dy: float) -> str:
    """One of the eight legend directions (image coordinates, y down) for a vector."""
    angle = np.degrees(np.arctan2(dy, dx)) % 360.0
    return DIRECTIONS[int(np.round(angle / 45.0)) % 8]


def intensity_words() -> tuple[float, tuple[tuple[str, float], ...]]:
    """SNR_MIN and INTENSITY_THRESHOLDS_PX in force now (read at call time, see `assistant.calibration`)."""
    data = calibration.load("intensity_calibration.json")
    return float(data["snr_min"]), tuple((name, float(v)) for name, v in data["thresholds_px"].items())


def intensity_level(coherent_px: float, snr: float = float("inf"), size: int = REFERENCE_SIZE) -> str:
    snr_min, thresholds = intensity_words()
    if snr < snr_min:
        return "none"
    level = "none"
    for name, threshold in thresholds:
        if coherent_px >= threshold * size / REFERENCE_SIZE:
            level = name
    return level


def face_region_masks(points68: np.ndarray, face: np.ndarray | None,
                      shape: tuple[int, int] | None = None) -> dict[tuple[str, str | None], np.ndarray]:
    """Region masks cut to the face mask (which leaves out the eyes' openings by default, `assistant.motion.gaze`):
    nothing else is ever measured, so nothing else is drawn as a region either. `face` None: the whole ellipses on
    `shape`."""
    if face is None:
        return region_masks(points68, shape)
    return {k: m & face for k, m in region_masks(points68, face.shape).items()}


def region_motion(flow: np.ndarray, points68: np.ndarray,
                  masks: dict[tuple[str, str | None], np.ndarray] | None = None,
                  noise_px: float | None = None) -> list[RegionMotion]:
    """The motion table: one row per region, in `facs.REGION_NAMES` order, right side before left. `noise_px`: the
    analysis' noise floor (None: no SNR, intensity by pixels alone)."""
    from assistant.facs import REGION_NAMES

    masks = masks or region_masks(points68, flow.shape[:2])
    size = flow.shape[0]
    rows = []
    for name in REGION_NAMES:
        for side in ("R", "L", None):
            if (name, side) not in masks:
                continue
            vec = flow[masks[(name, side)]]
            if len(vec) == 0:
                continue
            mag = np.hypot(vec[:, 0], vec[:, 1])
            dx, dy = (float(v) for v in vec.mean(axis=0))
            coherent = float(np.hypot(dx, dy))
            mean_mag = float(mag.mean())
            snr = coherent / noise_px if noise_px else float("inf")
            direction = direction_word(dx, dy)
            rows.append(RegionMotion(
                region=name, side=side, dx=dx, dy=dy, mean_magnitude=mean_mag, max_magnitude=float(mag.max()),
                direction=direction, colour=DIRECTION_COLOURS[direction],
                intensity=intensity_level(coherent, snr, size),
                coherence=coherent / mean_mag if mean_mag > 1e-9 else 0.0, n_pixels=int(len(vec)),
                snr=snr if noise_px else 0.0,
            ))
    return rows
