"""A face photo turned rigidly out of plane by a fraction of a degree, through a depth the analysis never sees.

Under weak perspective a small pitch or yaw moves each face point in proportion to its depth. The depth rendered
here is the landmark mesh's own, scaled (`depth_scale`: people's relief differs from the mesh's, 0.8-1.25) and
bent by a smooth perturbation (`wobble`, in inter-ocular distances), so a compensator that reads the mesh depth is
not scored on the depth it assumes. The background stays still, as it does behind a turning head, and optional AU
motion (a displacement field in frame pixels) is added on the face. Moves are rendered at `UP` times the size and
averaged down, like a sensor integrating the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from assistant.motion.depth import mesh_depth
from assistant.types import FaceLandmarks

UP = 4


@dataclass(frozen=True)
class Turn:
    pitch_deg: float = 0.0  # > 0: the head nods down (the nose tip moves down in the image)
    yaw_deg: float = 0.0  # > 0: the nose tip moves towards the image's right
    depth_scale: float = 1.15
    wobble: float = 0.05
    wobble_phase: float = 0.7


NO_TURN = Turn()


def true_depth(landmarks: FaceLandmarks, shape: tuple[int, int], turn: Turn) -> np.ndarray:
    """(H, W) rendered depth toward the camera (frame px), zero off the face and at the face's median."""
    found = mesh_depth(landmarks, shape)
    if found is None:
        raise ValueError("turning a face needs landmarks with depth (the mediapipe backend)")
    z, inside = found
    z = z * turn.depth_scale
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x0, y0, x1, y1 = landmarks.box
    iod = float(np.linalg.norm(landmarks.points68[42:48].mean(axis=0) - landmarks.points68[36:42].mean(axis=0)))
    z += turn.wobble * iod * (np.sin(2 * np.pi * (xs - x0) / (x1 - x0) + turn.wobble_phase)
                              * np.cos(np.pi * (ys - y0) / (y1 - y0)))
    return np.where(inside, z, 0.0)


def render_turn(image: np.ndarray, landmarks: FaceLandmarks, turn: Turn = NO_TURN,
                motion: np.ndarray | None = None) -> np.ndarray:
    """`image` with the face turned by `turn` and moved by `motion` ((H, W, 2) frame px, forward), same size."""
    h, w = image.shape[:2]
    z = true_depth(landmarks, (h, w), turn)
    field = np.stack([math.radians(turn.yaw_deg) * z, math.radians(turn.pitch_deg) * z], axis=-1)
    if motion is not None:
        field = field + motion
    big = cv2.resize(image, None, fx=UP, fy=UP, interpolation=cv2.INTER_CUBIC)
    H, W = big.shape[:2]
    up = cv2.resize(field.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) * UP
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    big = cv2.remap(big, xx - up[..., 0], yy - up[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
