"""The shading change of a face that turns under a fixed light: what warping a photo leaves out.

A photo warped by a turn (instruction_data/head_turn.py, world v2) carries its shading along with the skin; a real
head that turns under a lamp does not: each surface patch's angle to the light changes, so its brightness changes
by a smooth, normal-dependent factor. Flow reads that as motion wherever the skin has a brightness gradient, and a
3-D head model cannot remove it, because nothing moved. Lambertian shading with an ambient share:
S = ambient + (1 - ambient) * max(n . l, 0), with the normals n from the depth the turn is rendered through and a
key light l in front of the face; the turned frame is multiplied by S(turned) / S(still) on the face. World v3
(`instruction_data.world_v3`) draws the light per person; `benchmarks/head_turn.py --ambient` uses `KEY_LIGHT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from assistant.motion.depth import mesh_depth
from assistant.types import FaceLandmarks
from instruction_data.head_turn import Turn, true_depth

KEY_LIGHT = (-0.3, -0.5, 1.0)  # image x (right), image y (down), toward the camera: upper left, in front
NORMAL_SMOOTH = 2.0  # px (frame): the mesh's depth is piecewise linear; its normals are smoothed over this much


@dataclass(frozen=True)
class Light:
    ambient: float  # share of the light that comes from everywhere, in [0, 1)
    direction: tuple[float, float, float] = KEY_LIGHT  # towards the key light (need not be unit length)

    def __post_init__(self) -> None:
        if not 0 <= self.ambient < 1:
            raise ValueError(f"ambient={self.ambient} must lie in [0, 1): the share of the light that comes from "
                             "everywhere")


def face_normals(depth: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals (image x, image y, toward the camera) of the rendered depth; (0, 0, 1) off the face."""
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), NORMAL_SMOOTH)
    z = cv2.GaussianBlur(np.where(inside, depth, 0.0).astype(np.float32), (0, 0), NORMAL_SMOOTH)
    z = z / np.maximum(weight, 1e-6)  # blurred within the face only: the outline's step to zero would flip its normals
    gy, gx = np.gradient(z.astype(np.float64))
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal[~inside] = (0.0, 0.0, 1.0)
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


def light_ratio(normals: np.ndarray, inside: np.ndarray, pitch_deg: float, yaw_deg: float,
                light: Light) -> np.ndarray:
    """(H, W) brightness factor a turn by (pitch, yaw) gives each face pixel under `light` (1 off the face)."""
    if not (pitch_deg or yaw_deg):
        return np.ones(normals.shape[:2])
    pitch, yaw = math.radians(pitch_deg), math.radians(yaw_deg)
    # small rotation: a pitch > 0 tilts the normals down (+y), a yaw > 0 to the right (+x), as the nose tip moves
    turned = normals.copy()
    turned[..., 0] += yaw * normals[..., 2]
    turned[..., 1] += pitch * normals[..., 2]
    turned[..., 2] -= yaw * normals[..., 0] + pitch * normals[..., 1]
    towards = np.asarray(light.direction, dtype=np.float64)
    towards /= np.linalg.norm(towards)

    def shade_of(n: np.ndarray) -> np.ndarray:
        return light.ambient + (1 - light.ambient) * np.clip(n @ towards, 0.0, None)

    before = shade_of(normals)
    lit = inside & (before > 1e-3)  # with no ambient light, a patch in its own shadow stays dark
    return np.where(lit, shade_of(turned) / np.where(lit, before, 1.0), 1.0)


def shading_ratio(landmarks: FaceLandmarks, shape: tuple[int, int], turn: Turn, ambient: float) -> np.ndarray:
    """(H, W) brightness factor `turn` gives each face pixel under the key light `KEY_LIGHT` (1 off the face)."""
    light = Light(ambient)
    found = mesh_depth(landmarks, shape)
    if found is None:
        raise ValueError("shading a turned face needs landmarks with depth (the mediapipe backend)")
    inside = found[1]
    normals = face_normals(true_depth(landmarks, shape, turn), inside)
    return light_ratio(normals, inside, turn.pitch_deg, turn.yaw_deg, light)


def shade(image: np.ndarray, ratio: np.ndarray, inverse_map: np.ndarray | None = None) -> np.ndarray:
    """`image` (H x W x 3, uint8 or float) with each pixel's brightness multiplied by `ratio`, of the same type.
    `inverse_map` (2 x 3, image -> the pose `ratio` was computed in): the face has moved in the image since, and the
    ratio moves with it."""
    if inverse_map is not None:
        h, w = image.shape[:2]
        ratio = cv2.warpAffine(ratio.astype(np.float32), inverse_map, (w, h),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=1.0)
    shaded = image.astype(np.float64) * ratio[..., None]
    return (np.clip(np.rint(shaded), 0, 255) if image.dtype == np.uint8 else shaded).astype(image.dtype)
