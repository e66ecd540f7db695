"""Face tracking for long videos: per frame, the head-registered displacement of every facial region.

Streaming with bounded memory: one reference crop at a time. Landmarks are found on a stride (`SpotConfig.stride_s`);
each such keyframe becomes the reference crop (256 px working size) and the regions of
`assistant.motion.regions` are laid out on it. Every frame is cut with the reference's box, and the dense flow
reference -> frame (DIS by default) gives:
- the head's in-plane motion: a similarity (shift, rotation, scale) fitted by least squares, reweighted once, to the
  flow on face pixels outside every expressive region (forehead, temples, jaw sides, nose bridge);
- each region's mean flow minus what that similarity explains at the region: the muscle motion.
At a keyframe the chain continues: the new reference starts from the displacement the old one measured there, so
the traces have no jumps. A reference is also renewed early when the head has moved more than `REF_MAX_SHIFT_PX` or
`REF_MAX_ROT_DEG`, where a fixed box and a similarity stop describing the face. What is kept grows by about 160 bytes a
frame (the traces), never with the frame size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from assistant.errors import NoFaceError
from assistant.motion.face import apply_crop, crop_box, detect_face, landmarks_in_crop, roll_deg
from assistant.motion.flow import compute_flow
from assistant.motion.gaze import eye_openings
from assistant.motion.regions import region_ellipses, region_masks

REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "brows": ("inner_brow", "outer_brow", "glabella"),
    "eyes": ("upper_eyelid", "lower_eyelid"),
    "cheeks": ("cheek", "nasolabial"),
    "nose": ("nose",),
    "mouth": ("mouth_corner", "upper_lip", "lower_lip", "chin"),
}
REF_MAX_SHIFT_PX = 8.0
PRE_BLUR = 1.5
REF_MAX_ROT_DEG = 4.0
LOST_LIKENESS = 0.3  # a crop correlating less than this with its reference holds no longer that face
MAX_KEYFRAME_MISSES = 2  # keyframes in a row without landmarks after which the face counts as lost (a profile turn)
STABLE_STEP = 3  # sample every 3rd pixel of the stable area for the head fit
STABLE_DILATE = 0.12  # regions grown by this share of the inter-ocular distance before they are left out

log = logging.getLogger(__name__)


@dataclass
class Tracks:
    fps: float
    n_frames: int
    regions: list[tuple[str, str | None]]
    disp: np.ndarray  # (n, R, 2) float32: head-registered displacement of each region since frame 0 (crop px)
    head: np.ndarray  # (n, 4) float32: head shift x, y (crop px), rotation (degrees), scale - 1, since frame 0
    tracked: np.ndarray  # (n,) bool: a face was followed at that frame
    roll: np.ndarray | None = None  # the face's roll in the picture at each keyframe, degrees (`face.roll_deg`)


class _Reference:
    def __init__(self, frame: np.ndarray, landmarks, size: int, margin: float, keys):
        self.box = crop_box(landmarks, size, margin)
        self.grey = working_grey(frame, self.box)
        pts = landmarks_in_crop(landmarks, self.box).points68
        masks = region_masks(pts, (size, size))
        eyes = eye_openings(pts, (size, size))  # a gaze shift is not a lid action (assistant.motion.gaze)
        self.index = [np.flatnonzero(masks[k] & ~eyes) for k in keys]
        # a region with no pixel left (off the crop, or a lid the opening covers whole) is not measured: it holds still
        self.empty = np.array([len(i) == 0 for i in self.index])
        ell = region_ellipses(pts)
        # where the head's motion is taken out: the ellipse's centre, or, for a lid cut by the opening, the centre of
        # the pixels kept (2 px off it: at a 4-degree turn 0.14 px, a micro-expression's size)
        self.centres = np.array([ell[k][0] if (masks[k] & eyes).sum() == 0 or len(i) == 0 else
                                 np.array([i % size, i // size], np.float64).mean(axis=1)
                                 for k, i in zip(keys, self.index)], dtype=np.float64)
        d = float(np.linalg.norm(pts[42:48].mean(0) - pts[36:42].mean(0)))
        face = np.zeros((size, size), np.uint8)
        hull = np.vstack([pts, pts[17:27] - [0, 0.45 * d]])  # forehead above the brows
        cv2.fillConvexPoly(face, cv2.convexHull(hull.astype(np.int32)), 1)
        moving = np.zeros((size, size), np.uint8)
        for c, rx, ry in ell.values():
            grow = STABLE_DILATE * d
            cv2.ellipse(moving, (int(c[0]), int(c[1])), (int(rx + grow), int(ry + grow)), 0, 0, 360, 1, -1)
        stable = (face > 0) & (moving == 0)
        ys, xs = np.nonzero(stable[::STABLE_STEP, ::STABLE_STEP])
        self.sx, self.sy = xs * STABLE_STEP, ys * STABLE_STEP
        self.centre = np.array([size / 2, size / 2])
        self.offset_disp = np.zeros((len(keys), 2))
        self.offset_head = np.zeros(4)


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two crops (0 where either is flat): the face against its reference."""
    a, b = a.astype(np.float32) - a.mean(), b.astype(np.float32) - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def working_grey(frame: np.ndarray, box) -> np.ndarray:
    """The crop at the working size, grey and lightly blurred: sensor noise otherwise moves DIS's small patches by
    tenths of a pixel, as much as a micro-expression."""
    grey = cv2.cvtColor(apply_crop(frame, box), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(grey, (0, 0), PRE_BLUR)


def fit_similarity(flow: np.ndarray, xs: np.ndarray, ys: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(a, b, r, s): flow ~ (a - r y' + s x', b + r x' + s y') with x', y' relative to `centre`; least squares, then
    once more with Cauchy weights so that a few wrong flow vectors do not pull the head."""
    u = flow[ys, xs]
    x, y = xs - centre[0], ys - centre[1]
    one, zero = np.ones_like(x, dtype=np.float64), np.zeros_like(x, dtype=np.float64)
    a = np.concatenate([np.stack([one, zero, -y, x], 1), np.stack([zero, one, x, y], 1)])
    b = np.concatenate([u[:, 0], u[:, 1]]).astype(np.float64)
    p, *_ = np.linalg.lstsq(a, b, rcond=None)
    r = b - a @ p
    scale = 1.4826 * np.median(np.abs(r)) + 1e-3
    w = 1.0 / (1.0 + (r / (2.0 * scale)) ** 2)
    p, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
    return p


def similarity_at(p: np.ndarray, pts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    x, y = pts[:, 0] - centre[0], pts[:, 1] - centre[1]
    return np.stack([p[0] - p[2] * y + p[3] * x, p[1] + p[2] * x + p[3] * y], 1)


def track_video(frames, fps: float, n_frames: int | None, *, stride: int, size: int = 256, margin: float = 0.15,
                flow: str = "dis", landmarks: str = "mediapipe",
                progress: Callable[[int, int | None], None] | None = None, progress_every: int = 25) -> Tracks:
    """Follow the face through `frames` (an iterator of RGB frames) and return the region traces."""
    keys = [(name, side) for (name, side) in _region_keys()]
    disp_rows: list[np.ndarray] = []
    head_rows: list[np.ndarray] = []
    tracked: list[bool] = []
    rolls: list[float] = []
    ref: _Reference | None = None
    ref_at, misses = -stride, 0
    unmeasured: set[tuple[str, str | None]] = set()
    last_disp, last_head = np.zeros((len(keys), 2)), np.zeros(4)
    n = 0
    for i, frame in enumerate(frames):
        n = i + 1
        ok = False  # not followed (no face yet, or lost): the traces hold still until a keyframe finds one
        kept_disp, kept_head = last_disp, last_head
        grey = working_grey(frame, ref.box) if ref is not None else None
        if grey is not None and likeness(ref.grey, grey) < LOST_LIKENESS:
            ref = None  # the face has gone from the box (left the picture, covered, a cut): look for it again on
            moved = True  # every frame
        elif ref is not None:
            f = compute_flow(ref.grey, grey, flow)
            p = fit_similarity(f, ref.sx, ref.sy, ref.centre)
            flat = f.reshape(-1, 2)
            means = np.array([flat[ix].mean(0) if len(ix) else (0.0, 0.0) for ix in ref.index])
            last_disp = np.where(ref.empty[:, None], ref.offset_disp,
                                 ref.offset_disp + means - similarity_at(p, ref.centres, ref.centre))
            last_head = ref.offset_head + np.array([p[0], p[1], np.degrees(p[2]), p[3]])
            ok = True
            moved = np.hypot(p[0], p[1]) > REF_MAX_SHIFT_PX or abs(np.degrees(p[2])) > REF_MAX_ROT_DEG
        else:
            moved = True
        if moved or i - ref_at >= stride:
            try:
                lm = detect_face(frame, landmarks)
            except NoFaceError:
                lm = None
            if lm is not None:
                rolls.append(roll_deg(lm.points68))
                ref = _Reference(frame, lm, size, margin, keys)
                unmeasured.update(k for k, e in zip(keys, ref.empty) if e)
                ref.offset_disp, ref.offset_head = last_disp.copy(), last_head.copy()
                ref_at, ok, misses = i, True, 0
            elif ref is not None:  # the landmarker missed a face whose crop still looks like the reference (a blink,
                misses += 1  # blur): kept, and asked again a keyframe later; a second miss in a row is a face lost
                if misses >= MAX_KEYFRAME_MISSES:
                    ref, ok, misses = None, False, 0
                    last_disp, last_head = kept_disp, kept_head
                else:
                    ref_at = i
        disp_rows.append(last_disp.astype(np.float32))
        head_rows.append(last_head.astype(np.float32))
        tracked.append(ok)
        if progress is not None and n % progress_every == 0:
            progress(n, n_frames)
    if progress is not None:
        progress(n, n)
    if unmeasured:
        log.warning("No pixel of %s was left to measure at some keyframes (off the crop, or inside an eye's opening); "
                    "there they were held still.", ", ".join(f"{name} {side or ''}".strip()
                                                            for name, side in sorted(unmeasured, key=str)))
    if n == 0:
        return Tracks(fps, 0, keys, np.zeros((0, len(keys), 2), np.float32), np.zeros((0, 4), np.float32),
                      np.zeros(0, bool))
    return Tracks(fps, n, keys, np.stack(disp_rows), np.stack(head_rows), np.asarray(tracked), np.asarray(rolls))


def _region_keys() -> list[tuple[str, str | None]]:
    pts = np.zeros((68, 2))
    pts[36:42] = [0, 0]
    pts[42:48] = [1, 0]
    return list(region_ellipses(pts).keys())


def group_of(region: str) -> str:
    return next(g for g, names in REGION_GROUPS.items() if region in names)
