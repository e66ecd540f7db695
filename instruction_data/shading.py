"""The shading change of a face that turns under a fixed light: what warping a photo leaves out.

A photo warped by a turn (instruction_data/head_turn.py, world v2) carries its shading along with the skin; a real
head that turns under a lamp does not: each surface patch's angle to the light changes with it, so its brightness
changes by a smooth, normal-dependent factor. Flow reads that as motion wherever the skin has a brightness gradient,
and a 3-D head model cannot remove it, because nothing moved. Lambertian shading with an ambient share:
S = ambient + (1 - ambient) * max(n . l, 0), with the normals n from the depth the turn is rendered through and the
key light `KEY_LIGHT` (upper left, in front); the apex frame is multiplied by S(turned) / S(still) on the face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from assistant.motion.depth import mesh_depth
from assistant.types import FaceLandmarks
from instruction_data.head_turn import Turn, true_depth

KEY_LIGHT = (-0.3, -0.5, 1.0)  # image x (right), image y (down), toward the camera
NORMAL_SMOOTH = 2.0  # px (frame): the mesh's depth is piecewise linear; its normals are smoothed over this much


def shading_ratio(landmarks: FaceLandmarks, shape: tuple[int, int], turn: Turn, ambient: float) -> np.ndarray:
    """(H, W) brightness factor the turn gives each face pixel under the key light (1 off the face)."""
    if not 0 <= ambient < 1:
        raise ValueError(f"ambient={ambient} must lie in [0, 1): the share of the light that comes from everywhere")
    found = mesh_depth(landmarks, shape)
    if found is None:
        raise ValueError("shading a turned face needs landmarks with depth (the mediapipe backend)")
    inside = found[1]
    z = cv2.GaussianBlur(true_depth(landmarks, shape, turn).astype(np.float32), (0, 0), NORMAL_SMOOTH)
    gy, gx = np.gradient(z.astype(np.float64))
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    pitch, yaw = math.radians(turn.pitch_deg), math.radians(turn.yaw_deg)
    # small rotation: a pitch > 0 tilts the normals down (+y), a yaw > 0 to the right (+x), as the nose tip moves
    turned = normal.copy()
    turned[..., 0] += yaw * normal[..., 2]
    turned[..., 1] += pitch * normal[..., 2]
    turned[..., 2] -= yaw * normal[..., 0] + pitch * normal[..., 1]
    light = np.asarray(KEY_LIGHT, dtype=np.float64)
    light /= np.linalg.norm(light)

    def shade(n: np.ndarray) -> np.ndarray:
        return ambient + (1 - ambient) * np.clip(n @ light, 0.0, None)

    before = shade(normal)
    lit = inside & (before > 1e-3)  # with no ambient light, a patch in its own shadow stays dark
    return np.where(lit, shade(turned) / np.where(lit, before, 1.0), 1.0)


def shade(image: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """`image` (uint8, H x W x 3) with each pixel's brightness multiplied by `ratio`."""
    return np.clip(image.astype(np.float64) * ratio[..., None], 0, 255).round().astype(np.uint8)
