"""World v2 of the realistic synthetic world: heads that turn in 3-D, skin that moves as one sheet, lids and light
that move with no AU.

World v1 (`instruction_data.realistic`) moves the head in the image plane only and each AU only where the FACS table
says; real faces did neither, and a detector tuned there named about four uncoded AUs per real clip. v2 adds, drawn
from its own random stream so that v1's draws and frames stay as they were:

- **out-of-plane head motion**: pitch and yaw drift reached at the last frame, uniform in +-1 degree, plus per-frame
  jitter, rendered (weak perspective) through a depth the analysis never sees: the person's mesh depth scaled by
  0.8-1.25 and bent by a smooth wave (`instruction_data.head_turn.true_depth`); the background stays still;
- **coupled tissue motion from geometry**: each AU's displacement is imposed on the face mesh's vertices where the AU
  acts (the handles), the vertices on bone stay put (the face outline over skull and jaw, the eye corners, the nasion
  and the upper nose bridge),
  and the rest of the mesh follows by minimising the mesh Laplacian's energy (harmonic deformation; Laplacian
  editing, Sorkine et al. 2004). The share of that spread the skin shows is the person's `coupling` (soft to stiff
  tissue). This is where a lowered brow pushes the upper lids down: no table lists it, the geometry does. The truth
  records it per AU and region (`coupled`);
- **distractors**: both upper lids shift by 0.05-0.3 px with no AU (gaze), and the light flickers per frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import LinearNDInterpolator

from assistant.motion.depth import MESH_POINTS
from assistant.types import FaceLandmarks

WORLDS = ("v1", "v2")
TURN_DRIFT_DEG = 1.0  # pitch and yaw reached at the last frame: uniform in +-this
TURN_JITTER_DEG = (0.01, 0.04)  # per-frame std range
DEPTH_SCALE = (0.8, 1.25)  # the person's relief against the mesh's
WOBBLE_IOD = 0.05  # amplitude of the smooth depth perturbation, inter-ocular distances
COUPLING = (0.3, 0.9)  # share of the harmonic spread the person's skin shows
GAZE_PX = (0.05, 0.3)  # upper-lid shift with no AU, crop px
FLICKER = (0.001, 0.006)  # per-frame relative brightness std
HANDLE_SHARE = 0.5  # mesh vertices where an AU's own displacement reaches this share of its peak are its handles
MIN_COUPLED_PX = 0.02  # coupled motion under this (crop px) at a region centre is not recorded
# Vertices on bone: MediaPipe's face outline (skull and jaw), the eye corners, the nasion and the upper bridge
FACE_OUTLINE = (10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251, 284, 288,
                297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454)
BONE = FACE_OUTLINE + (33, 133, 362, 263, 168, 6, 197)


@dataclass(frozen=True)
class V2Draw:
    """What world v2 adds to one clip."""

    pitch_deg: float  # reached at the last frame (> 0: the head nods down)
    yaw_deg: float  # reached at the last frame (> 0: the nose turns towards the image's right)
    turn_jitter_deg: float
    depth_scale: float
    wobble_phase: float
    coupling: float
    gaze_px: float  # signed: > 0 the upper lids go down
    gaze_frame: int  # the lids shift around this frame
    flicker: float


def draw_v2(rng_key: list[int], person: int, n_frames: int) -> V2Draw:
    """The clip's v2 draw from its own stream (`rng_key`), with the person's relief and tissue fixed per `person`."""
    rng = np.random.default_rng(rng_key)
    body = np.random.default_rng([7, person])
    return V2Draw(
        pitch_deg=float(rng.uniform(-TURN_DRIFT_DEG, TURN_DRIFT_DEG)),
        yaw_deg=float(rng.uniform(-TURN_DRIFT_DEG, TURN_DRIFT_DEG)),
        turn_jitter_deg=float(rng.uniform(*TURN_JITTER_DEG)),
        depth_scale=float(body.uniform(*DEPTH_SCALE)),
        wobble_phase=float(body.uniform(0, 2 * math.pi)),
        coupling=float(body.uniform(*COUPLING)),
        gaze_px=float(rng.uniform(*GAZE_PX) * rng.choice([-1.0, 1.0])),
        gaze_frame=int(rng.integers(0, n_frames)),
        flicker=float(rng.uniform(*FLICKER)),
    )


def turn_course(draw: V2Draw, n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pitch and yaw (degrees, frame 0 the reference): a linear drift plus jitter."""
    rng = np.random.default_rng([seed, 2])
    ramp = np.arange(n_frames) / max(n_frames - 1, 1)
    pitch = draw.pitch_deg * ramp + rng.normal(0, draw.turn_jitter_deg, n_frames)
    yaw = draw.yaw_deg * ramp + rng.normal(0, draw.turn_jitter_deg, n_frames)
    return pitch - pitch[0], yaw - yaw[0]


def gaze_course(draw: V2Draw, n_frames: int) -> np.ndarray:
    """Per-frame share (0..1) of the gaze lid shift: a smooth step over about 10 frames around `gaze_frame`."""
    i = np.arange(n_frames, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(i - draw.gaze_frame) / 2.0))


def flicker_gains(draw: V2Draw, n_frames: int, seed: int) -> np.ndarray:
    gains = 1.0 + np.random.default_rng([seed, 3]).normal(0, draw.flicker, n_frames)
    return gains / gains[0]


@functools.lru_cache(maxsize=1)
def _mesh_edges() -> np.ndarray:
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as connections

    edges = {(min(c.start, c.end), max(c.start, c.end)) for c in connections.FACE_LANDMARKS_TESSELATION}
    return np.array(sorted(e for e in edges if max(e) < MESH_POINTS))


def harmonic_spread(points: np.ndarray, handles: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 2) vertex displacements: `targets` at the `handles` (indices), zero on bone, and elsewhere the minimiser of
    the mesh's (uniform) Laplacian energy, i.e. each free vertex at the mean of its neighbours."""
    n = len(points)
    edges = _mesh_edges()
    lap = np.zeros((n, n))
    np.add.at(lap, (edges[:, 0], edges[:, 1]), -1.0)
    np.add.at(lap, (edges[:, 1], edges[:, 0]), -1.0)
    lap[np.arange(n), np.arange(n)] = -lap.sum(axis=1)
    fixed = np.zeros(n, bool)
    fixed[list(BONE)] = True
    fixed[handles] = True
    values = np.zeros((n, 2))
    values[handles] = targets
    free = ~fixed
    out = values.copy()
    if free.any():
        a = lap[np.ix_(free, free)] + 1e-9 * np.eye(int(free.sum()))
        out[free] = np.linalg.solve(a, -lap[np.ix_(free, fixed)] @ values[fixed])
    return out


def coupled_field(landmarks: FaceLandmarks, direct: np.ndarray, coupling: float) -> np.ndarray:
    """(H, W, 2) skin motion that one AU's own displacement `direct` ((H, W, 2), frame px) drags along: the harmonic
    spread from the AU's handles minus what the AU moves there itself, times `coupling`; zero off the mesh."""
    h, w = direct.shape[:2]
    pts = np.asarray(landmarks.points[:MESH_POINTS], dtype=np.float64)
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    at_vertex = direct[yi, xi].astype(np.float64)
    size = np.hypot(at_vertex[:, 0], at_vertex[:, 1])
    if size.max() <= 0:
        return np.zeros_like(direct)
    handles = np.nonzero(size >= HANDLE_SHARE * size.max())[0]
    spread = harmonic_spread(pts, handles, at_vertex[handles])
    drag = coupling * (spread - at_vertex)
    drag[handles] = 0.0
    drag[list(BONE)] = 0.0
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    out = np.zeros_like(direct)
    for k in range(2):
        out[y0:y1, x0:x1, k] = np.nan_to_num(LinearNDInterpolator(pts, drag[:, k])(xs, ys))
    return out
