"""The shading change of a head that turns under a fixed light (instruction_data/shading.py), on a real photo.

A warped photo keeps its shading; a real head turning under a lamp does not, and the flow reads the change as motion
that no head model removes. The figures over the benchmark's grid of turns are in benchmarks/head_turn.py
(`--ambient`).
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from assistant.motion import face as face_mod
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.motion.depth import mesh_depth
from instruction_data.head_turn import Turn, render_turn
from instruction_data.shading import shade, shading_ratio


@pytest.fixture(scope="module")
def face():
    image = data.astronaut()
    lm = face_mod.detect_face(image)
    inside = mesh_depth(lm, image.shape[:2])[1]
    return image, lm, inside


def test_no_turn_leaves_the_light_as_it_was(face):
    image, lm, _ = face
    for ambient in (0.0, 0.5):
        assert np.array_equal(shading_ratio(lm, image.shape[:2], Turn(0.0, 0.0), ambient), np.ones(image.shape[:2]))


def test_turning_away_from_the_key_light_darkens_the_face_and_ambient_light_softens_it(face):
    image, lm, inside = face
    shape = image.shape[:2]
    away, towards = (shading_ratio(lm, shape, Turn(0.0, yaw), 0.5) for yaw in (1.0, -1.0))  # the light is on the left
    assert away[inside].mean() < 1 < towards[inside].mean()
    assert towards[inside].mean() - away[inside].mean() > 0.003  # 0.0045 on this photo
    assert np.all(away[~inside] == 1.0) and np.all(towards[~inside] == 1.0)
    soft = shading_ratio(lm, shape, Turn(0.0, 1.0), 0.9)
    assert np.abs(soft[inside] - 1).mean() < 0.3 * np.abs(away[inside] - 1).mean()
    assert shade(image, away)[~inside].tolist() == image[~inside].tolist()


def test_ambient_share_outside_zero_to_one_is_refused(face):
    image, lm, _ = face
    for ambient in (-0.1, 1.0):
        with pytest.raises(ValueError, match="ambient"):
            shading_ratio(lm, image.shape[:2], Turn(0.0, 1.0), ambient)


def test_the_shading_of_a_turn_moves_a_still_face_where_the_turn_alone_does_not(face):
    image, lm, _ = face
    onset = render_turn(image, lm, Turn(0.0, 0.0, 1.0, 0.0))
    turn = Turn(0.0, 1.0, 1.0, 0.0)
    apex = render_turn(image, lm, turn)
    plain = analyze_frames(onset, apex, MotionConfig())
    shaded = analyze_frames(onset, shade(apex, shading_ratio(lm, image.shape[:2], turn, 0.5)), MotionConfig())
    worst = [max(r.motion_px for r in a.regions) for a in (plain, shaded)]
    print("worst region px, turn alone / with its shading:", worst)
    assert worst[0] < 0.1 and worst[1] > 3 * worst[0]
