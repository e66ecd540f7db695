"""The eyes' openings are not skin: the eyes moving under still lids name no AU, and the lids' own actions beside
such a gaze shift still do (`assistant.motion.gaze`)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from assistant.au import AU
from assistant.au.rules import score_analysis
from assistant.motion import face as face_mod
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.motion.gaze import eye_openings
from assistant.motion.regions import region_masks
from assistant.motion.register import inter_ocular
from instruction_data.head_turn import render_turn
from instruction_data.long_synth import LongSpec, make_long_video
from instruction_data.synth import AUMotion, au_moves, field_from_moves, gaze_field

LID_AUS = {5, 6, 7, 43}


@pytest.fixture(scope="module")
def face(still_astronaut):
    return still_astronaut


def _eyes_move(face, vector_px: tuple[float, float]) -> np.ndarray:
    """Both eyes' contents slid by `vector_px` (px at the 256 px crop) under still lids: a gaze shift."""
    image, lm, k, _ = face
    return gaze_field(lm.points68, image.shape[1::-1], (vector_px[0] * k, vector_px[1] * k))


def _analysis(face, motion: np.ndarray):
    image, lm, _, onset = face
    return analyze_frames(onset, render_turn(image, lm, motion=motion))


def test_the_openings_cover_the_eyes_and_leave_the_lid_skin_to_the_lid_regions():
    lm = face_mod.detect_face(data.astronaut())
    p, shape = face_mod.landmarks_in_crop(lm, face_mod.crop_box(lm)).points68, (256, 256)  # as the analysis sees it
    tight, wide = eye_openings(p, shape, margin=0.0), eye_openings(p, shape, margin=0.05)
    centre = np.round(p[36:42].mean(axis=0)).astype(int)
    assert tight[centre[1], centre[0]] and tight.sum() < wide.sum()
    grown = np.sqrt(wide.sum() / np.pi) - np.sqrt(tight.sum() / np.pi)  # how far the margin widened, roughly
    assert 0.5 * 0.05 * inter_ocular(p) < grown < 2 * 0.05 * inter_ocular(p)
    masks = region_masks(p, shape)
    for side in ("R", "L"):
        for lid in ("upper_eyelid", "lower_eyelid"):
            region = masks[(lid, side)]
            assert (region & ~eye_openings(p, shape)).sum() > 0.4 * region.sum()


@pytest.mark.parametrize("vector", [(0.0, -2.0), (0.0, 2.0), (2.0, 0.0)], ids=["up", "down", "aside"])
def test_the_eyes_moving_2px_under_still_lids_name_no_au(face, vector):
    """Looking up named AU5 and AU7 before the openings were masked (the lids read 0.3-0.4 px upward), and every look
    moved the lids by 0.7 px or more. Along the lids a little is left (0.3 px aside: lashes are a horizontal edge,
    so the flow's smoothing carries motion along them), never across."""
    analysis = _analysis(face, _eyes_move(face, vector))
    assert not score_analysis(analysis).active()
    lids = [r for r in analysis.regions if "eyelid" in r.region]
    assert max(abs(r.dy) for r in lids) < 0.15 and max(r.motion_px for r in lids) < 0.45


def test_the_eyes_read_as_skin_bring_the_leak_back(face):
    """`--eyes read` (the motion core before the mask, which older AU heads are served with) is the analysis whose
    leak the mask removes: the same 2 px look up moves the upper lids upward."""
    image, lm, _, onset = face
    analysis = analyze_frames(onset, render_turn(image, lm, motion=_eyes_move(face, (0.0, -2.0))),
                              MotionConfig(eyes="read"))
    assert analysis.backends["eyes"] == "read"
    assert max(-r.dy for r in analysis.regions if r.region == "upper_eyelid") > 0.25


@pytest.mark.parametrize("code", [5, 7])
def test_a_lid_action_while_the_eyes_move_is_still_named(face, code):
    """The positive twin: the lid skin left to the lid regions still carries AU5 and AU7 (a margin of 0.1 inter-ocular
    distances lost AU5 here, 0.2 both)."""
    image, lm, k, _ = face
    au = field_from_moves(au_moves(lm.points68, [AUMotion(AU(code), 0.8)], scale=k), image.shape[1::-1])
    named = {s.code for s in score_analysis(_analysis(face, au + _eyes_move(face, (1.0, 0.0)))).active()}
    assert code in named and not (named - {code}) & LID_AUS


def test_saccades_in_a_long_video_move_the_eyes_and_nothing_else():
    """The long-video world's gaze (`saccades_per_min`) slides only the eyes' contents; 0 keeps the video as it was."""
    base = dict(seconds=1.0, fps=30.0, frame_size=(320, 240), n_micro=0, n_macro=0, n_speech=0, n_head_turns=0,
                blinks_per_min=0.0, seed=3)
    still, looking = make_long_video(LongSpec(**base)), make_long_video(LongSpec(**base, saccades_per_min=240.0))
    assert still.gaze is None
    jumps = np.flatnonzero(np.abs(np.diff(looking.gaze, axis=0)).sum(axis=1))
    assert len(jumps) >= 1 and np.hypot(*looking.gaze.T).max() <= 2.0 + 1e-9
    near_eyes = eye_openings(still._points68, (240, 320), margin=0.1)
    moved = []
    for a, b in zip(still.frames(), looking.frames()):
        changed = np.abs(a.astype(int) - b).max(axis=2) > 0
        assert not (changed & ~near_eyes).any()
        moved.append(changed.any())
    assert any(moved[j + 1] for j in jumps)


def test_a_lid_region_the_opening_covers_whole_is_held_still_not_lost(monkeypatch, caplog):
    """A face whose eye openings swallow a lid region (here: a margin three times the shipped one) leaves that region
    with no pixel; the tracker holds it still and says so, where it used to turn every trace into NaN and spot
    nothing. The other regions' traces are the ones the shipped margin gives."""
    from assistant.motion import gaze
    from assistant.motion.tracking import track_video

    video = make_long_video(LongSpec(seconds=2.0, fps=30.0, frame_size=(480, 360), n_micro=0, n_macro=0,
                                     n_speech=0, n_head_turns=1, blinks_per_min=0.0, seed=100))
    frames = list(video.frames())
    shipped = track_video(iter(frames), video.fps, len(frames), stride=30)
    monkeypatch.setattr(gaze, "OPENING_MARGIN", 3 * gaze.OPENING_MARGIN)
    with caplog.at_level("WARNING", logger="assistant.motion.tracking"):
        wide = track_video(iter(frames), video.fps, len(frames), stride=30)
    assert np.isfinite(wide.disp).all()
    lost = {wide.regions[k] for k in range(len(wide.regions)) if not wide.disp[:, k].any()}
    assert lost >= {("upper_eyelid", "L"), ("upper_eyelid", "R")}
    assert "upper_eyelid" in caplog.text and "held still" in caplog.text
    assert np.abs(shipped.head - wide.head).max() < 1e-6
    assert shipped.disp[:, [k for k, (name, _) in enumerate(shipped.regions) if "eyelid" not in name]].any()
    others = [k for k, (name, _) in enumerate(wide.regions) if "eyelid" not in name]
    assert np.abs(shipped.disp[:, others] - wide.disp[:, others]).max() < 1e-6
