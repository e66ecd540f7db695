"""Slow drift cancelled with the offset frame (assistant.motion.drift), on a real photo whose lower face settles.

The drift is non-rigid (the lower face sagging, more at the chin), so no head model removes it: read onset -> apex
alone it names AUs nobody made. The offset frame holds the whole sag and no expression. Each "no AU" case has a
positive twin: the same drift under a 0.5 px AU12 still gives AU12. The benchmark split's figures are in
benchmarks/drift.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from assistant.au import AU
from assistant.au.rules import score_regions
from assistant.motion import face as face_mod
from assistant.motion.analyze import MotionConfig, analyze_clip, analyze_frames
from assistant.motion.clip import load_clip, write_video
from assistant.motion.drift import cancel_drift, drift_share
from assistant.pipeline import Assistant
from assistant.types import Clip
from instruction_data.head_turn import render_turn
from instruction_data.synth import AUMotion, au_moves, field_from_moves

ONSET, APEX, OFFSET = 0, 10, 20  # the apex halfway: half the sag is in the apex frame
SAG = 0.45  # px at the chin in the apex frame: read alone, AU26 at p 0.94; cancelled, no AU above p 0.2


@pytest.fixture(scope="module")
def face():
    image = data.astronaut()
    lm = face_mod.detect_face(image)
    return image, lm, 1.0 / face_mod.crop_box(lm).scale, render_turn(image, lm)


def _sag(face, px: float) -> np.ndarray:
    """The lower face settling down by `px` (crop px at 256) at the chin, smoothly from nothing at the nose tip."""
    image, lm, k, _ = face
    h, w = image.shape[:2]
    nose, chin = lm.points68[33, 1], lm.points68[8, 1]
    t = np.clip((np.mgrid[0:h, 0:w][0] - nose) / (chin - nose), 0, 1)
    field = np.zeros((h, w, 2), np.float32)
    field[..., 1] = px * k * t * t * (3 - 2 * t)
    return field


def _au12(face, px: float) -> np.ndarray:
    image, lm, k, _ = face
    h, w = image.shape[:2]
    return field_from_moves(au_moves(lm.points68, [AUMotion(AU(12), px)], scale=k), (w, h))


def _read(face, apex_motion, offset_motion, drift: str = "offset"):
    image, lm, _, onset = face
    apex, offset = render_turn(image, lm, motion=apex_motion), render_turn(image, lm, motion=offset_motion)
    clip = Clip(source="<frames>", onset_frame=onset, apex_frame=apex, onset=ONSET, apex=APEX, offset=OFFSET,
                n_frames=OFFSET + 1)
    analysis = analyze_frames(onset, apex, MotionConfig(drift=drift), clip, offset_frame=offset)
    named = {s.code for s in score_regions(analysis.regions, None, analysis.crop.size).active()}
    return analysis, named


def _px(analysis, region: str) -> float:
    return max(float(np.hypot(r.dx, r.dy)) for r in analysis.regions if r.region == region)


def test_a_settling_lower_face_names_no_au_once_the_offset_frame_cancels_it(face):
    left, named_left = _read(face, _sag(face, SAG), _sag(face, 2 * SAG), drift="none")
    assert named_left and _px(left, "chin") > 0.25  # read alone, the sag is an AU (AU26 here)
    assert left.field.drift == {}
    cancelled, named = _read(face, _sag(face, SAG), _sag(face, 2 * SAG))
    assert cancelled.field.drift["cancelled"] == 1.0 and cancelled.field.drift["share"] == pytest.approx(0.5)
    assert named == set()
    assert _px(cancelled, "chin") < 0.3 * _px(left, "chin")


def test_an_au_under_the_same_drift_is_still_named(face):
    left, named_left = _read(face, _sag(face, SAG) + _au12(face, 0.5), _sag(face, 2 * SAG), drift="none")
    analysis, named = _read(face, _sag(face, SAG) + _au12(face, 0.5), _sag(face, 2 * SAG))
    assert 12 in named_left and len(named_left) > 1
    assert named == {12} and analysis.field.drift["cancelled"] == 1.0
    assert _px(analysis, "mouth_corner") == pytest.approx(_px(left, "mouth_corner"), rel=0.25)


def test_drift_share_and_the_cancelled_field():
    assert drift_share(0, 10, 20) == pytest.approx(0.5)
    assert drift_share(5, 8, 17) == pytest.approx(0.25)
    for offset in (None, 10, 9):  # no offset, or one that still holds the apex
        assert drift_share(0, 10, offset) is None
    flow = np.ones((4, 4, 2), np.float32)
    assert np.allclose(cancel_drift(flow, 2 * flow, 0.25), 0.5) and cancel_drift(flow, flow, 0.5).dtype == np.float32


def test_clips_keep_their_offset_frame_from_every_source(face, tmp_path):
    image, lm, _, onset = face
    frames = [render_turn(image, lm, motion=_sag(face, 0.06 * i)) for i in range(OFFSET + 1)]
    small = [f[::2, ::2] for f in frames]
    assert np.array_equal(load_clip(frames, onset=ONSET, apex=APEX, offset=OFFSET).offset_frame, frames[OFFSET])
    for source in (frames, write_video(small, tmp_path / "clip.mp4", fps=30)):
        given = load_clip(source, onset=ONSET, apex=APEX, offset=OFFSET)
        spotted = load_clip(source, onset=ONSET, offset=OFFSET)
        at_apex = load_clip(source, onset=ONSET, apex=OFFSET, offset=OFFSET)
        assert given.offset_frame is not None and at_apex.offset_frame is None
        assert spotted.offset_frame is not None or spotted.apex == OFFSET
        assert load_clip(source, onset=ONSET, apex=APEX).offset_frame is None
    assert given.offset_frame.shape == small[OFFSET].shape
    ramp = write_video([np.full((64, 64, 3), 8 * i, np.uint8) for i in range(OFFSET + 1)], tmp_path / "ramp.mp4",
                       fps=30)  # each frame its own grey, so the streamed frame kept is the offset's and no other
    assert abs(float(load_clip(ramp, onset=ONSET, apex=APEX, offset=OFFSET).offset_frame.mean()) - 8 * OFFSET) < 3
    analysis = analyze_clip(frames, onset=ONSET, apex=APEX, offset=OFFSET)
    assert analysis.field.drift["share"] == pytest.approx(0.5) and "drift" in analysis.timings
    result = Assistant().analyze(frames, onset=ONSET, apex=APEX, offset=OFFSET).to_dict()
    assert result["drift"]["share"] == 0.5 and result["drift"]["cancelled"] == 1.0  # the face sags steadily
    assert analyze_clip(frames, onset=ONSET, apex=APEX, offset=OFFSET,
                        config=MotionConfig(drift="none")).field.drift == {}
