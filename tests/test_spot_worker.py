"""Long-video spotting in a child process (issue 24): the same answer as in-process, refusals with their sentence,
and a closed iterator stops the child."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from assistant.errors import ClipTooLargeError
from assistant.long_video import spot_long_video
from assistant.spot_worker import spot_in_process
from instruction_data.long_synth import LongSpec, make_long_video, write_long_video


@pytest.fixture(scope="module")
def short_long_video(tmp_path_factory):
    """Five synthetic seconds with one micro-expression and a blink (labelled synthetic)."""
    video = make_long_video(LongSpec(seconds=5, fps=30, frame_size=(320, 240), face_height_frac=0.7, n_micro=1,
                                     n_macro=0, n_speech=0, n_head_turns=0, blinks_per_min=12, seed=3))
    return write_long_video(video, tmp_path_factory.mktemp("worker") / "five.mp4")


def test_the_worker_gives_the_in_process_answer_with_progress(short_long_video):
    updates = list(spot_in_process(short_long_video, 600.0, poll_s=0.2))
    assert updates[-1].result is not None and all(u.result is None for u in updates[:-1])
    assert [u.done for u in updates] == sorted(u.done for u in updates)
    assert all(u.total == 150 for u in updates)  # from the first update on, while the worker still starts
    here = spot_long_video(short_long_video, 600.0)
    there = updates[-1].result
    assert there.n_frames == here.n_frames == 150
    assert [(i.kind, i.onset, i.apex, i.offset) for i in there.intervals + there.distractors] == \
           [(i.kind, i.onset, i.apex, i.offset) for i in here.intervals + here.distractors]


def test_a_refusal_in_the_worker_is_the_same_error_and_sentence(short_long_video):
    with pytest.raises(ClipTooLargeError, match="five.mp4 has 150 frames, over the long-video budget of 100 frames"):
        list(spot_in_process(short_long_video, 600.0, max_frames=100))


def test_closing_the_iterator_stops_the_worker(short_long_video):
    updates = spot_in_process(short_long_video, 600.0, poll_s=0.05)
    next(updates)
    assert multiprocessing.active_children()
    t = time.monotonic()
    updates.close()
    assert not multiprocessing.active_children() and time.monotonic() - t < 15
