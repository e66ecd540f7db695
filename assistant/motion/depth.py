"""Depth of the face at every crop pixel, from the landmark mesh, for the 3-D head model of `register`.

A head that turns out of plane by a fraction of a degree moves each point in proportion to its depth (weak
perspective): on the astronaut photo at the 256 px crop the mesh puts the nose tip about 25 px in front of the
forehead and 120 px in front of the face contour, so 0.6 degrees of yaw moves the nose about 1.3 px against the
contour. A 2-D similarity cannot remove that
parallax, and what it leaves reads as AUs at the nose, brows and mouth. MediaPipe's mesh carries a depth per
landmark; linear interpolation over a Delaunay triangulation of its points (which also spans the eye and mouth
openings) gives one per pixel.

Landmark depth is a model's guess (one person's nose stands further out than the mesh says), good for the shape of
the face, not for its exact relief: the fits in `register` estimate the turn from the image and use the depth only as
the shape the turn is proportional to, and they weigh pixels on steep slopes (the sides of the nose, the cheeks
turning away at the contour) down, where a depth error of a few pixels is largest.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import LinearNDInterpolator

from assistant.types import FaceLandmarks

MESH_POINTS = 468  # the 478-point mesh's face points (the last 10 are the irises)
SLOPE_SCALE = 0.6  # px of depth per px across: weight 1/2 at this slope (the cheeks at the contour reach 1.5-3)


def mesh_depth(landmarks: FaceLandmarks, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(H, W) float64 depth toward the camera, linear over a Delaunay triangulation of the mesh points and zero at
    the face's median, and the (H, W) mask of the pixels inside the mesh (the depth is zero outside). None without
    depth (dlib) or when no pixel lies inside."""
    if landmarks.depth is None or len(landmarks.points) < MESH_POINTS:
        return None
    pts = np.asarray(landmarks.points[:MESH_POINTS], dtype=np.float64)
    z = np.asarray(landmarks.depth[:MESH_POINTS], dtype=np.float64)
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    depth = LinearNDInterpolator(pts, z)(xs, ys)
    inside = ~np.isnan(depth)
    if not inside.any():
        return None
    depth -= np.median(depth[inside])
    depth[~inside] = 0.0
    return depth, inside


def depth_map(landmarks: FaceLandmarks, shape: tuple[int, int]) -> np.ndarray | None:
    """(H, W) float32 depth toward the camera at each pixel of the image `landmarks` are in, zero at the face's median
    and outside the mesh. None when the landmarks carry no depth (dlib).

    Zero outside: a head model warps the background with its similarity part only, as the 2-D model does, instead of
    dragging it with the contour's depth (the background does not turn with the head). Extending the contour's depth
    outwards instead moved the background by a pixel against the face and doubled the median motion rigid3d left on
    a still pair (0.012 -> 0.020 px)."""
    found = mesh_depth(landmarks, shape)
    return None if found is None else found[0].astype(np.float32)


def slope_weights(depth: np.ndarray) -> np.ndarray:
    """(H, W) weights in (0, 1]: 1 where the face faces the camera, falling where its depth changes steeply."""
    gy, gx = np.gradient(depth.astype(np.float64))
    return (1.0 / (1.0 + (np.hypot(gx, gy) / SLOPE_SCALE) ** 2)).astype(np.float32)
