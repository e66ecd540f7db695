"""The noise-normalised motion input of the learned AU heads (`input: motion`, issue 22).

The motion core's registered onset->apex flow (the same face crop, head compensation and noise floor as
`meu analyze`) is smoothed lightly, divided by the clip's noise floor and clipped, so one unit is what a region's mean
moves under no expression, whatever the clip's resolution, noise or JPEG. At the mouth corners a 0.2 px AU12 stands
at a median SNR of 2.3 in this image against 1.1 in the published flow image on its fixed 2 px scale
(`benchmarks/learned_inputs.py`, synthetic).

Micro-AU CLIP's image: red = horizontal and green = vertical motion (128 = still, 0 / 255 = `CLIP_SNR` noise floors
left / right or up / down), blue = magnitude (0 = still, 255 = `CLIP_SNR` floors); outside the face mask the image is
still (128, 128, 0), so the background, hair and collar carry nothing the head could learn a person from.
"""

from __future__ import annotations

import cv2
import numpy as np

from assistant.types import MotionField

# px at the 256 working crop. Chosen on world v2's calibration split (16 AU12-0.2 px / null twins,
# `benchmarks/learned_inputs.py`): median mouth-corner SNR 2.28 at 3 px, 2.20 at 6, 2.0 at 10, 1.4 at 16.
SMOOTH_SIGMA = 3.0
CLIP_SNR = 8.0  # noise floors drawn at full scale
MIN_NOISE_PX = 0.01  # a floor below this (a perfect null pair) is not trusted to scale by
STILL = (128, 128, 0)


def normalised_flow(field: MotionField, sigma: float | None = None, noise_px: float | None = None) -> np.ndarray:
    """(H, W, 2) float32 flow in noise floors, region-scale averaged (`SMOOTH_SIGMA`), zero outside the face.
    `noise_px`: the floor to divide by (default the field's own; a sequence divides every frame by the apex's)."""
    sigma = SMOOTH_SIGMA if sigma is None else sigma
    noise_px = field.noise_px if noise_px is None else noise_px
    flow = field.flow.astype(np.float32)
    mask = field.face_mask if field.face_mask is not None else np.ones(flow.shape[:2], bool)
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    smooth = cv2.GaussianBlur(flow * mask[..., None], (0, 0), sigma) / np.maximum(weight, 1e-3)[..., None]
    return np.where(mask[..., None], smooth / max(noise_px, MIN_NOISE_PX), 0.0).astype(np.float32)


def motion_image(field: MotionField, size: int, clip_snr: float = CLIP_SNR) -> np.ndarray:
    """(size, size, 3) uint8 RGB: u, v and magnitude in noise floors (module docstring), resized to `size`."""
    z = normalised_flow(field)
    mag = np.hypot(z[..., 0], z[..., 1])
    image = np.empty(z.shape[:2] + (3,), np.float32)
    image[..., 0] = 128.0 + 127.0 * np.clip(z[..., 0] / clip_snr, -1.0, 1.0)
    image[..., 1] = 128.0 + 127.0 * np.clip(z[..., 1] / clip_snr, -1.0, 1.0)
    image[..., 2] = 255.0 * np.clip(mag / clip_snr, 0.0, 1.0)
    if field.face_mask is not None:
        image[~field.face_mask] = STILL
    return cv2.resize(np.round(image).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
