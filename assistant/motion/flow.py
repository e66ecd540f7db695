"""Optical flow between the onset and apex crops, and head-motion compensation.

Backends by name: `tvl1` (OpenCV contrib DualTVL1 with default parameters, the published recipe) and `dis`
(OpenCV DIS, medium preset: about 100x faster, a little noisier). Compensation removes what the whole head did so
that only facial muscle motion remains:
- `nose`: subtract the mean flow in an 11x11 window at the nose tip (68-point landmark 30), the published recipe;
  it removes translation only.
- `similarity`: fit one similarity transform (translation, rotation, scale) to the flow at rigid points (inner eye
  corners, nose bridge and the nose base) with a robust (LMedS) fit, then subtract the flow that transform
  explains everywhere: it removes small head rotation and scaling too.
- `none`.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from assistant.errors import BackendError

FLOW_METHODS = ("tvl1", "dis")
COMPENSATIONS = ("nose", "similarity", "none")
NOSE_WINDOW = 11
# iBUG indices that muscles barely move: nose bridge 27-30, nose base 31-35, eye corners 36, 39, 42, 45.
RIGID_POINTS_68 = (27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45)

_local = threading.local()


def _engine(method: str):
    """One OpenCV flow object per thread and method (they are not thread safe, and costly to rebuild)."""
    cache = getattr(_local, "engines", None)
    if cache is None:
        cache = _local.engines = {}
    if method not in cache:
        if method == "tvl1":
            cache[method] = cv2.optflow.DualTVL1OpticalFlow_create()
        elif method == "dis":
            cache[method] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        else:
            raise BackendError(f"Unknown flow method {method!r}; use one of {', '.join(FLOW_METHODS)}.")
    return cache[method]


def to_grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def compute_flow(onset: np.ndarray, apex: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Dense flow onset -> apex as (H, W, 2) float32 (dx, dy) in pixels."""
    engine = _engine(method)
    flow = engine.calc(to_grey(onset), to_grey(apex), None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _window_mean(flow: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    h, w = flow.shape[:2]
    r = size // 2
    xi, yi = int(round(x)), int(round(y))
    patch = flow[max(0, yi - r): min(h, yi + r + 1), max(0, xi - r): min(w, xi + r + 1)]
    if patch.size == 0:
        return np.zeros(2, np.float32)
    return patch.reshape(-1, 2).mean(axis=0)


def similarity_field(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Displacement T(p) - p of a 2x3 transform at every pixel."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    a, b, tx = matrix[0]
    c, d, ty = matrix[1]
    return np.stack([(a - 1) * xs + b * ys + tx, c * xs + (d - 1) * ys + ty], axis=-1).astype(np.float32)


def compensate(flow: np.ndarray, landmarks68: np.ndarray, method: str = "similarity") -> tuple[np.ndarray, dict]:
    """Remove head motion; returns the compensated flow and what was removed.

    The report gives the head's shift at the nose tip (tx, ty in px), its rotation (degrees) and scale.
    """
    if method == "none":
        return flow, {"tx": 0.0, "ty": 0.0, "rotation": 0.0, "scale": 1.0}
    if method == "nose":
        x, y = landmarks68[30]
        t = _window_mean(flow, x, y, NOSE_WINDOW)
        return flow - t[None, None, :], {"tx": float(t[0]), "ty": float(t[1]), "rotation": 0.0, "scale": 1.0}
    if method == "similarity":
        src = landmarks68[list(RIGID_POINTS_68)].astype(np.float32)
        disp = np.array([_window_mean(flow, x, y, 5) for x, y in src], dtype=np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(src, src + disp, method=cv2.LMEDS)
        if matrix is None:
            matrix, _ = cv2.estimateAffinePartial2D(src, src + disp, method=0)
        if matrix is None:
            return compensate(flow, landmarks68, "nose")
        scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
        rotation = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
        head = similarity_field(matrix, flow.shape[:2])
        nx, ny = landmarks68[30]
        at_nose = matrix @ np.array([nx, ny, 1.0]) - np.array([nx, ny])
        return flow - head, {"tx": float(at_nose[0]), "ty": float(at_nose[1]), "rotation": rotation, "scale": scale}
    raise BackendError(f"Unknown compensation {method!r}; use one of {', '.join(COMPENSATIONS)}.")
