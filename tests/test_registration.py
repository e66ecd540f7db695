"""Registration before flow, the face mask and the noise floor, on a real photo moved the way a camera sees it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from assistant.motion import analyze
from assistant.motion import face as face_mod
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.motion.gaze import eye_openings
from assistant.motion.register import face_mask, inter_ocular

UP = 4  # moves are rendered at 4x and averaged down, like a sensor integrating a scene


@pytest.fixture(scope="module")
def scene():
    image = data.astronaut()
    lm = face_mod.detect_face(image)
    box = face_mod.crop_box(lm)
    return image, lm, 1.0 / box.scale  # frame px per crop px


def _camera(image: np.ndarray, matrix_up: np.ndarray | None = None, map_up=None) -> np.ndarray:
    big = cv2.resize(image, None, fx=UP, fy=UP, interpolation=cv2.INTER_CUBIC)
    if matrix_up is not None:
        big = cv2.warpAffine(big, matrix_up, big.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    if map_up is not None:
        big = cv2.remap(big, *map_up, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(big, image.shape[1::-1], interpolation=cv2.INTER_AREA)


def _noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _head_move(image, nose, k, shift_crop_px=(1.0, 0.0), degrees=0.5, zoom=1.01):
    c = ((nose[0] + 0.5) * UP - 0.5, (nose[1] + 0.5) * UP - 0.5)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), degrees, zoom)
    m[:, 2] += np.array(shift_crop_px) * k * UP
    return _camera(image, m)


def _local_move(image, k, weight_fn, vec_crop_px):
    """Content moves by `vec_crop_px` (crop px) times weight_fn(x, y) (frame coordinates)."""
    h, w = image.shape[0] * UP, image.shape[1] * UP
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    g = weight_fn((xs + 0.5) / UP - 0.5, (ys + 0.5) / UP - 0.5).astype(np.float32)
    return _camera(image, map_up=(xs - vec_crop_px[0] * k * UP * g, ys - vec_crop_px[1] * k * UP * g))


def test_pure_head_motion_leaves_under_005_px_in_every_region(scene):
    image, lm, k = scene
    onset = _noisy(_camera(image), 0.5, 1)
    apex = _noisy(_head_move(image, lm.points68[30], k), 0.5, 2)
    analysis = analyze_frames(onset, apex, MotionConfig())
    worst = max(analysis.regions, key=lambda r: r.motion_px)
    assert worst.motion_px <= 0.05, worst
    head = analysis.field.head_motion
    assert head["tx"] == pytest.approx(1.0, abs=0.1) and abs(head["ty"]) < 0.1
    assert abs(head["rotation"]) == pytest.approx(0.5, abs=0.05)
    assert head["scale"] == pytest.approx(1.01, abs=0.001)
    assert analysis.field.registration.startswith("landmarks")
    # the published nose-window recipe cannot remove rotation and zoom: the same pair moves its brows and chin
    nose = analyze_frames(onset, apex, MotionConfig(compensation="nose"))
    assert max(r.motion_px for r in nose.regions) > 0.15


def _eye_band(p, d):
    centre = p[36:48].mean(axis=0)
    return lambda x, y: np.exp(-((y - centre[1]) ** 2) / (2 * (0.12 * d) ** 2)
                               - np.clip(np.abs(x - centre[0]) - 0.75 * d, 0, None) ** 2 / (2 * (0.08 * d) ** 2))


def _blob(centre, sigma):
    return lambda x, y: np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma ** 2))


@pytest.mark.parametrize("where", ["eye band", "nose base", "mouth"])
def test_local_motion_does_not_move_the_head_estimate(scene, where):
    image, lm, k = scene
    p = lm.points68
    d = inter_ocular(p)
    weight = {"eye band": _eye_band(p, d), "nose base": _blob(p[31:36].mean(axis=0), 0.2 * d),
              "mouth": _blob(p[48:68].mean(axis=0), 0.35 * d)}[where]
    onset = _camera(image)
    still = analyze_frames(onset, onset).field.head_motion
    moved = analyze_frames(onset, _local_move(image, k, weight, (0.0, -1.5)))
    head = moved.field.head_motion
    assert math.hypot(head["tx"] - still["tx"], head["ty"] - still["ty"]) <= 0.05, head
    assert abs(head["scale"] - still["scale"]) <= 0.001, head
    assert max(r.motion_px for r in moved.regions) > 0.5  # the local motion itself is measured


def test_large_head_shift_is_registered_before_the_flow(scene):
    image, lm, k = scene
    onset = _camera(image)
    apex = _head_move(image, lm.points68[30], k, shift_crop_px=(8.0, -5.0), degrees=1.0, zoom=1.0)
    analysis = analyze_frames(onset, apex)
    assert analysis.field.head_motion["tx"] == pytest.approx(8.0, abs=0.2)
    assert analysis.field.head_motion["ty"] == pytest.approx(-5.0, abs=0.2)
    assert max(r.motion_px for r in analysis.regions) <= 0.08


def test_nothing_is_drawn_outside_the_face(scene):
    image, lm, k = scene
    # the face pushed against the frame's edge, so the crop leaves the frame, and the head moves over a still scene
    shifted = np.zeros_like(image)
    dx = int(lm.box[0] - 5)
    shifted[:, : image.shape[1] - dx] = image[:, dx:]
    apex = _head_move(shifted, lm.points68[30] - [dx, 0], k, shift_crop_px=(2.0, 1.0), degrees=0.0, zoom=1.0)
    apex[:, 300:] = shifted[:, 300:]  # the background (and part of the hair) does not move with the head
    for mode in ("default", "mellm"):
        analysis = analyze_frames(shifted, apex, MotionConfig(mode=mode))
        inside = analysis.field.face_mask
        crop_lm = analysis.crop_landmarks
        assert np.array_equal(inside, face_mask(crop_lm.points68, inside.shape, crop_lm.points)
                              & ~eye_openings(crop_lm.points68, inside.shape))
        colour = analysis.mmc_map.astype(int)
        saturation = colour.max(axis=2) - colour.min(axis=2)
        assert saturation[~inside].max() <= 2, mode  # grey outside the face: no motion colour, no border streaks
        assert np.abs(analysis.field.flow[~inside]).max() == 0.0
        assert inside.mean() < 0.7  # the mask is the face, not the crop


def test_the_noise_floor_follows_the_camera_noise(scene):
    image, lm, k = scene
    p = lm.points68
    d = inter_ocular(p)
    apex_clean = _local_move(image, k, _blob(p[48:68].mean(axis=0), 0.35 * d), (0.0, -0.3))
    onset_clean = _camera(image)
    floors, snrs = [], []
    for sigma in (0.5, 3.0):
        a = analyze_frames(_noisy(onset_clean, sigma, 3), _noisy(apex_clean, sigma, 4),
                           null_frame=_noisy(onset_clean, sigma, 5))
        assert a.field.noise_source in ("null pair", "stable area")
        floors.append(a.field.noise_px)
        snrs.append(max(r.snr for r in a.regions if r.region in ("upper_lip", "lower_lip")))
    assert floors[1] > 1.5 * floors[0]
    assert snrs[0] > snrs[1]


def test_a_change_of_exposure_is_not_read_as_motion(scene, monkeypatch):
    """Auto-exposure brightens the face by 6 % between onset and apex: registration matches the exposure on the
    stable content, so no region moves; the same registration without the matching reads the light as motion."""
    image, _, _ = scene
    onset = _noisy(_camera(image), 0.5, 1)
    apex = _noisy(np.clip(_camera(image).astype(np.float64) * 1.06 + 2, 0, 255), 0.5, 2)
    matched = analyze_frames(onset, apex, MotionConfig())
    assert max(r.motion_px for r in matched.regions) < 0.05, [(r.region, round(r.motion_px, 3))
                                                             for r in matched.regions]
    monkeypatch.setattr(analyze, "match_exposure", lambda onset_grey, apex_grey, stable: apex_grey)
    unmatched = analyze_frames(onset, apex, MotionConfig())
    assert max(r.motion_px for r in unmatched.regions) > 1.0
