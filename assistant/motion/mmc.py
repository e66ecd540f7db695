"""The MMC map (motion-enhanced colour map): flow drawn as colour over the grey onset face.

Two modes:
- `mellm`: the published recipe, exactly: hue = flow angle (image coordinates, y down) quantised to 30 degree
  steps (nearest step; OpenCV hue = degrees / 2), full saturation, value = magnitude min-max normalised to 0..255
  per image, the colour image added (saturating) onto the grey onset frame in 3 channels.
- `default`: the same hue coding, but brightness on a fixed physical scale: `full_scale_px` of motion (at the
  256 px working size) is full brightness, motion below `floor_px` is not drawn. A still face therefore stays grey
  instead of being stretched to full brightness, and two maps are comparable. The colour is alpha-blended over a
  slightly darkened grey face (alpha = strength) so hues stay readable on bright skin.

Both modes draw colour only inside the face mask when one is given (the min-max of `mellm` is taken there too):
outside the face the flow is background, crop border or hair, and nothing is drawn.
"""

from __future__ import annotations

import cv2
import numpy as np

from assistant.prompts import DIRECTION_COLOURS, DIRECTIONS

MMC_MODES = ("default", "mellm")
FULL_SCALE_PX = 2.0
FLOOR_PX = 0.15
REFERENCE_SIZE = 256
LEGEND_MIN_HEIGHT = 256  # px the legend's wheel, names, scale bar and its text need one above the other


def _grey3(image: np.ndarray) -> np.ndarray:
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def quantised_hue(flow: np.ndarray) -> np.ndarray:
    """OpenCV hue (0..179) of the flow angle, quantised to 30 degree steps."""
    _, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    steps = np.round(ang / 30.0).astype(np.int32) % 12
    return (steps * 15).astype(np.uint8)


def mmc_map(onset: np.ndarray, flow: np.ndarray, mode: str = "default", full_scale_px: float = FULL_SCALE_PX,
            floor_px: float = FLOOR_PX, mask: np.ndarray | None = None) -> np.ndarray:
    """RGB map of the same size as the flow. Scales are in pixels at the 256 px working size; `mask`: the face."""
    if mode not in MMC_MODES:
        raise ValueError(f"unknown MMC mode {mode!r}; use one of {', '.join(MMC_MODES)}")
    grey = _grey3(onset)
    mag, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    if mask is not None:
        mag = np.where(mask, mag, 0).astype(np.float32)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = quantised_hue(flow)
    hsv[..., 1] = 255
    if mode == "mellm":
        inside = None if mask is None else mask.astype(np.uint8)
        hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX, mask=inside).astype(np.uint8)
        if mask is not None:
            hsv[..., 2][~mask] = 0
        return cv2.add(grey, cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    k = flow.shape[0] / REFERENCE_SIZE
    strength = np.clip((mag - floor_px * k) / ((full_scale_px - floor_px) * k), 0.0, 1.0)
    hsv[..., 2] = 255
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    alpha = strength[..., None]
    out = grey.astype(np.float32) * 0.75 * (1 - alpha) + colour * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def direction_rgb(direction: str) -> tuple[int, int, int]:
    """Legend colour of one of the eight direction words, as the map draws it."""
    angle = DIRECTIONS.index(direction) * 45.0
    hsv = np.array([[[np.uint8((np.round(angle / 30) % 12) * 15), 255, 255]]], np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def legend_image(height: int = 256, full_scale_px: float = FULL_SCALE_PX, mode: str = "default") -> np.ndarray:
    """Colour wheel with the eight direction names, and the brightness scale, drawn for the side of the map. Under
    `LEGEND_MIN_HEIGHT` the scale's two lines of text overlap or fall off the bottom, and under 130 px the bar did
    (`--size 128` stopped with a numpy error): the legend is drawn at that height and scaled down to the map's."""
    if height < LEGEND_MIN_HEIGHT:
        full = legend_image(LEGEND_MIN_HEIGHT, full_scale_px, mode)
        width = max(1, round(full.shape[1] * height / LEGEND_MIN_HEIGHT))
        return cv2.resize(full, (width, height), interpolation=cv2.INTER_AREA)
    width = max(200, height * 3 // 4)
    img = np.full((height, width, 3), 255, np.uint8)
    r = int(min(width, height) * 0.26)
    cx, cy = width // 2, int(r + 26)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = xs - cx, ys - cy
    inside = fx ** 2 + fy ** 2 <= r ** 2
    wheel = np.zeros((height, width, 2), np.float32)
    wheel[..., 0], wheel[..., 1] = fx, fy
    hsv = np.zeros((height, width, 3), np.uint8)
    hsv[..., 0] = quantised_hue(wheel)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(np.sqrt(fx ** 2 + fy ** 2) / r * 255, 0, 255).astype(np.uint8)
    img[inside] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[inside]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, height / 700)
    for i, name in enumerate(DIRECTIONS):
        a = np.radians(i * 45.0)
        tx, ty = cx + (r + 6) * np.cos(a), cy + (r + 6) * np.sin(a)
        text = name
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        x = int(tx - tw / 2 + np.cos(a) * tw / 2)
        y = int(ty + th / 2 + np.sin(a) * th / 2)
        cv2.putText(img, text, (max(0, min(width - tw, x)), max(th, y)), font, scale, (40, 40, 40), 1, cv2.LINE_AA)
    top = cy + r + 28
    bar_h = max(10, height // 18)
    x0, x1 = 12, width - 12
    ramp = np.linspace(0, 255, x1 - x0).astype(np.uint8)
    img[top: top + bar_h, x0:x1] = np.repeat(np.repeat(ramp[None, :, None], bar_h, 0), 3, 2)
    label = "brightness = motion strength" if mode == "mellm" else f"brightness: 0 .. {full_scale_px:g} px motion"
    cv2.putText(img, label, (x0, top + bar_h + 14), font, scale, (40, 40, 40), 1, cv2.LINE_AA)
    note = "relative (per image)" if mode == "mellm" else "(at 256 px face width)"
    cv2.putText(img, note, (x0, min(height - 4, top + bar_h + 30)), font, scale, (90, 90, 90), 1, cv2.LINE_AA)
    return img


def with_legend(map_rgb: np.ndarray, full_scale_px: float = FULL_SCALE_PX, mode: str = "default") -> np.ndarray:
    legend = legend_image(map_rgb.shape[0], full_scale_px, mode)
    return np.concatenate([map_rgb, legend], axis=1)


def draw_landmarks(image: np.ndarray, points68: np.ndarray, regions: dict | None = None) -> np.ndarray:
    """Landmarks (and region outlines when given as masks) over a copy of the image."""
    out = image.copy()
    if regions:
        for mask in regions.values():
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, (80, 200, 255), 1, cv2.LINE_AA)
    radius = max(1, image.shape[0] // 200)
    for x, y in points68:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, (255, 60, 60), -1, cv2.LINE_AA)
    return out


__all__ = ["MMC_MODES", "mmc_map", "legend_image", "with_legend", "draw_landmarks", "direction_rgb",
           "quantised_hue", "DIRECTION_COLOURS"]
