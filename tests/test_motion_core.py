"""The motion core reads synthetic micro-expressions the way the FACS table says they move."""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np
import pytest

from assistant.facs import FACS
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.motion.mmc import mmc_map
from instruction_data.synth import SynthSpec, render_clip

SIZE = (320, 240)


def _pair(aus, **kw):
    spec = SynthSpec(subject=kw.pop("subject", 0), aus=aus, n_frames=9, onset=0, apex=4, offset=8,
                     frame_size=SIZE, noise_sigma=0.5, seed=kw.pop("seed", 1), **kw)
    clip = render_clip(spec)
    return clip.frames[clip.onset], clip.frames[clip.apex]


def _rows(analysis):
    return {(r.region, r.side): r for r in analysis.regions}


def _static_regions(aus):
    moved = {a.region for code in aus for a in FACS[int(code)].actions}
    return [r for r in ("chin", "nose", "outer_brow", "inner_brow", "cheek") if r not in moved]


def test_brow_raise_reads_up_and_purple_on_both_brows():
    rows = _rows(analyze_frames(*_pair(["1", "2"], amplitude_px=2.0)))
    for region in ("inner_brow", "outer_brow"):
        for side in ("L", "R"):
            r = rows[(region, side)]
            assert r.direction == "up" and r.colour == "purple", r
            assert r.intensity in ("moderate", "strong"), r
    assert rows[("chin", None)].intensity == "none"


def test_lip_corner_puller_moves_each_corner_up_and_outward_on_the_persons_side():
    rows = _rows(analyze_frames(*_pair(["12"], amplitude_px=2.0)))
    right, left = rows[("mouth_corner", "R")], rows[("mouth_corner", "L")]
    # The person's right corner is on the image's left: outward there is -x.
    assert right.dx < -0.3 and right.dy < -0.2 and right.direction == "up-left"
    assert left.dx > 0.3 and left.dy < -0.2 and left.direction == "up-right"


def test_one_sided_au_moves_only_that_side():
    rows = _rows(analyze_frames(*_pair(["L12"], amplitude_px=2.0)))
    assert rows[("mouth_corner", "L")].intensity in ("moderate", "strong")
    assert rows[("mouth_corner", "R")].intensity == "none"


@pytest.mark.parametrize("compensation", ["nose", "similarity"])
def test_head_translation_is_removed(compensation):
    onset, apex = _pair(["12"], amplitude_px=2.0, head_translation_px=(3.0, -2.0))
    head_moved = analyze_frames(onset, apex, MotionConfig(compensation="none"))
    fixed = analyze_frames(onset, apex, MotionConfig(compensation=compensation))
    rows_raw, rows = _rows(head_moved), _rows(fixed)
    for region in ("chin", "nose", "inner_brow"):
        side = None if region in ("chin", "nose") else "L"
        assert rows_raw[(region, side)].intensity != "none"  # the head really moved
        assert rows[(region, side)].intensity == "none", rows[(region, side)]
    assert rows[("mouth_corner", "L")].intensity in ("moderate", "strong")
    assert fixed.field.head_motion["tx"] == pytest.approx(3.0 * 4 / 8, abs=0.3)  # drift is linear over 8 frames


def test_small_head_rotation_is_removed_by_similarity_not_by_nose():
    onset, apex = _pair(["12"], amplitude_px=2.0, head_rotation_deg=3.0)
    sim = _rows(analyze_frames(onset, apex, MotionConfig(compensation="similarity")))
    nose = _rows(analyze_frames(onset, apex, MotionConfig(compensation="nose")))
    static = [("outer_brow", "L"), ("outer_brow", "R"), ("chin", None)]
    assert all(sim[k].intensity == "none" for k in static), [sim[k] for k in static]
    assert any(nose[k].intensity != "none" for k in static)


def _independent_mellm(onset_rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The published recipe written from its description, pixel by pixel, with no OpenCV."""
    grey = np.round(onset_rgb @ np.array([0.299, 0.587, 0.114])).astype(np.int32)
    mag = np.hypot(flow[..., 0], flow[..., 1]).astype(np.float64)
    value = (mag - mag.min()) / (mag.max() - mag.min()) * 255
    out = np.zeros(onset_rgb.shape, np.int32)
    for y in range(flow.shape[0]):
        for x in range(flow.shape[1]):
            angle = math.degrees(math.atan2(flow[y, x, 1], flow[y, x, 0])) % 360
            hue = (round(angle / 30) % 12) * 30
            rgb = colorsys.hsv_to_rgb(hue / 360, 1.0, value[y, x] / 255)
            out[y, x] = [min(255, grey[y, x] + round(c * 255)) for c in rgb]
    return out


def test_mellm_mode_equals_the_published_recipe_computed_independently():
    rng = np.random.default_rng(0)
    h, w = 24, 32
    angles = np.radians(rng.integers(0, 12, (h, w)) * 30 + rng.uniform(-10, 10, (h, w)))  # clear of step edges
    mags = rng.uniform(0, 3, (h, w))
    flow = np.stack([mags * np.cos(angles), mags * np.sin(angles)], axis=-1).astype(np.float32)
    onset = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = mmc_map(onset, flow, mode="mellm").astype(np.int32)
    theirs = _independent_mellm(onset, flow)
    assert np.abs(ours - theirs).max() <= 2  # rounding of V and of the grey level only


def test_default_mode_keeps_a_still_face_dark_where_mellm_stretches_noise():
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 0.03, (256, 256, 2)).astype(np.float32)  # sensor-noise-sized flow at the working size
    onset = np.full((256, 256, 3), 128, np.uint8)
    default = mmc_map(onset, flow, mode="default")
    mellm = mmc_map(onset, flow, mode="mellm")
    saturation = lambda img: (img.max(axis=2).astype(int) - img.min(axis=2)).mean()  # noqa: E731
    assert saturation(default) < 1.0
    assert saturation(mellm) > 40.0


def test_several_faces_use_the_largest_and_say_so():
    onset, apex = _pair(["1", "2"], amplitude_px=2.0)
    small = cv2.resize(onset, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)

    def two_faces(img):
        canvas = np.full((img.shape[0], img.shape[1] + small.shape[1], 3), 90, np.uint8)
        canvas[:, : img.shape[1]] = img
        canvas[: small.shape[0], img.shape[1]:] = small
        return canvas

    analysis = analyze_frames(two_faces(onset), two_faces(apex))
    assert analysis.landmarks.n_faces == 2
    assert analysis.landmarks.box[2] < onset.shape[1]  # the big face on the left was chosen
    assert any("2 faces" in w for w in analysis.warnings)
