"""Depth in the landmarks and 3-D head-motion compensation, on a real photo turned out of plane.

Turns are rendered through a depth the analysis never sees (the mesh's scaled by 1.15 and bent by a smooth wave,
instruction_data/head_turn.py). Each "no AU" case has a positive twin: the same turn with an AU still gives the AU.
The twins' AUs are 0.5 px (AU9 0.8 px): the shipped `rules` settings, chosen on world v2's calibration split, name
them at p 0.75-0.94; at 0.3 px they sit under the threshold on this noise-free photo even without a turn.
The figures over a grid of turns are in benchmarks/head_turn.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from skimage import data

from assistant.au import AU
from assistant.au.rules import score_regions
from assistant.motion import face as face_mod
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.motion.depth import depth_map
from assistant.motion.register import HeadMotion, describe, residual_head_motion
from instruction_data.head_turn import Turn, render_turn
from instruction_data.synth import AUMotion, au_moves, field_from_moves

EYELID_AUS = {5, 6, 7, 43}


@pytest.fixture(scope="module")
def face():
    image = data.astronaut()
    lm = face_mod.detect_face(image)
    frame_per_crop = 1.0 / face_mod.crop_box(lm).scale
    return image, lm, frame_per_crop, render_turn(image, lm)


def _aus(face, codes, px):
    image, lm, k, _ = face
    h, w = image.shape[:2]
    return field_from_moves(au_moves(lm.points68, [AUMotion(AU(c), px) for c in codes], scale=k), (w, h))


def _read(face, turn: Turn | None = None, codes=(), px=0.3, compensation="register"):
    image, lm, _, onset = face
    apex = render_turn(image, lm, turn or Turn(), _aus(face, codes, px) if codes else None)
    analysis = analyze_frames(onset, apex, MotionConfig(compensation=compensation))
    named = {s.code for s in score_regions(analysis.regions, None, analysis.crop.size).active()}
    return analysis, named


def test_mediapipe_landmarks_carry_depth_and_pose(face):
    _, lm, _, _ = face
    assert lm.depth is not None and lm.depth.shape == (len(lm.points),)
    assert lm.depth[4] > lm.depth[10] > lm.depth[234]  # nose tip in front of the forehead, the contour behind it
    assert lm.pose is not None and lm.pose.shape == (4, 4)
    scaled = lm.scaled(2.0, 2.0, 10.0, 5.0)
    assert np.allclose(scaled.depth, 2.0 * lm.depth)


def test_the_rigid3d_fit_recovers_a_turn_and_ignores_a_local_patch(face):
    _, lm, _, _ = face
    box = face_mod.crop_box(lm)
    crop_lm = face_mod.landmarks_in_crop(lm, box)
    depth = depth_map(crop_lm, (box.size, box.size))
    truth = HeadMotion(np.array([[1.001, -0.002, 0.3], [0.002, 1.001, -0.2], [0, 0, 1]]), np.radians([0.8, -0.6]))
    flow = truth.field(depth.shape, depth)
    mask = np.zeros(depth.shape, bool)
    mask[40:200, 40:216] = True
    flow[100:130, 100:130] += (0.0, -1.0)  # something that moves on its own inside the mask
    fitted = residual_head_motion(flow, mask, depth=depth)
    assert np.degrees(fitted.tilt) == pytest.approx([0.8, -0.6], abs=0.01)
    report = describe(fitted, (128.0, 128.0), depth)
    assert report["pitch"] == pytest.approx(-0.6, abs=0.01) and report["yaw"] == pytest.approx(0.8, abs=0.01)
    assert np.abs(fitted.field(depth.shape, depth) - truth.field(depth.shape, depth)).max() < 0.01


@pytest.mark.parametrize("turn", [Turn(pitch_deg=1.0), Turn(yaw_deg=1.0), Turn(pitch_deg=1.0, yaw_deg=1.0)],
                         ids=["pitch", "yaw", "pitch+yaw"])
def test_a_still_face_turned_out_of_plane_gets_no_au(face, turn):
    analysis, named = _read(face, turn)
    assert named == set()
    worst = max(analysis.regions, key=lambda r: r.motion_px)
    assert worst.motion_px <= 0.12, worst  # the benchmark's target is 0.1; measured 0.05-0.10
    head = analysis.field.head_motion
    assert analysis.field.head_model == "rigid3d"
    # the compensator's depth is the mesh's, 1/1.15 of the rendered relief: it reads the turn as 1.15 times larger
    assert head["pitch"] == pytest.approx(1.15 * turn.pitch_deg, abs=0.2)
    assert head["yaw"] == pytest.approx(1.15 * turn.yaw_deg, abs=0.2)
    # the 2-D similarity cannot remove the parallax: the same pair names AUs (the failure this model fixes)
    _, named_2d = _read(face, turn, compensation="register2d")
    assert named_2d


def test_a_turned_face_with_au4_gives_au4_and_no_eyelid_au(face):
    _, named = _read(face, Turn(yaw_deg=1.0), codes=[4], px=0.5)
    assert 4 in named and not named & EYELID_AUS, named


def test_a_pitched_face_with_au4_and_au7_still_gives_au7(face):
    _, named = _read(face, Turn(pitch_deg=1.0), codes=[4, 7], px=0.5)
    assert 7 in named, named


def test_a_turned_smile_is_still_a_smile(face):
    _, named = _read(face, Turn(pitch_deg=1.0), codes=[12], px=0.5)
    assert 12 in named, named


def test_an_au9_is_not_compensated_away_as_pitch(face):
    """AU9 moves the nose bridge, the lever the rigid3d fits learn pitch from; the stiller model is kept."""
    analysis, named = _read(face, codes=[9], px=0.8)
    assert 9 in named, named
    assert analysis.field.head_model == "similarity" and "pitch" not in analysis.field.head_motion


@pytest.mark.parametrize("turn", [Turn(pitch_deg=1.0), Turn(pitch_deg=-1.0), Turn(pitch_deg=1.0, yaw_deg=1.0)],
                         ids=["pitch", "pitch-down", "pitch+yaw"])
def test_a_turned_face_with_au9_still_gives_au9(face, turn):
    """The positive twin of the turned still face: fitted with the nose bridge, the turn took AU9's bridge motion as
    pitch (0.6-0.7 degrees read for 1.15), the nose came out still and the glabella moving (AU4, AU25, AU26 named).
    Fitted without the bridge too, the stiller fit is kept: AU9, and the pitch read within 0.2 degrees."""
    analysis, named = _read(face, turn, codes=[9], px=0.8)
    assert 9 in named and 4 not in named, named
    assert analysis.field.registration.endswith("+free-bridge")
    assert analysis.field.head_motion["pitch"] == pytest.approx(1.15 * turn.pitch_deg, abs=0.2)


def test_without_depth_the_analysis_says_3d_compensation_was_unavailable(face, monkeypatch):
    image, _, _, onset = face
    detect = face_mod.detect_face
    monkeypatch.setattr(face_mod, "detect_face", lambda *a, **k: dataclasses.replace(detect(*a, **k), depth=None))
    analysis = analyze_frames(onset, onset)
    assert analysis.field.head_model == "similarity"
    assert "pitch" not in analysis.field.head_motion
    assert any("3-D head-motion compensation" in w for w in analysis.warnings)
