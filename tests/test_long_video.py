"""Long-video helpers of the app: what counts as a long video, the long-video limit, and exact frames by seeking."""

from __future__ import annotations

import re

import numpy as np
import pytest

from assistant.errors import ClipTooLargeError, FrameIndexError
from assistant.long_video import check_long_video, frames_at, is_long, probe_video
from assistant.motion.clip import write_video


def _level(k: int) -> int:
    return 20 + (k * 37) % 211  # neighbouring frames differ by far more than H.264's error on a flat frame


@pytest.fixture(scope="module")
def counted_video(tmp_path_factory):
    """300 flat frames at 30 fps (10 s), frame k filled with `_level(k)`: a decoded frame tells its own index."""
    path = tmp_path_factory.mktemp("long") / "counted.mp4"
    write_video((np.full((64, 96, 3), _level(k), np.uint8) for k in range(300)), path, fps=30)
    return path


def test_probe_and_the_short_clip_boundary(counted_video):
    info = probe_video(counted_video)
    assert (info.n_frames, info.fps) == (300, 30.0) and info.duration_s == pytest.approx(10.0)
    assert is_long(info, short_clip_frames=60) and not is_long(info, short_clip_frames=3000)
    check_long_video(info, max_seconds=10.0)
    with pytest.raises(ClipTooLargeError, match=r"lasts 0.2 min, over the long-video limit of 0.1 min"):
        check_long_video(info, max_seconds=6.0)


def test_frames_at_seeks_to_the_exact_frames(counted_video):
    wanted = [250, 10, 251, 299]  # 250 is past the seek margin (2 s = 60 frames): decoded after a seek
    frames = frames_at(counted_video, wanted)
    assert [f.shape for f in frames] == [(64, 96, 3)] * 4
    for k, f in zip(wanted, frames):
        assert abs(float(f.mean()) - _level(k)) < 4, (k, float(f.mean()), _level(k))
    with pytest.raises(FrameIndexError, match="Frame 300 is past the end"):
        frames_at(counted_video, [300])


def test_frames_at_reads_a_frame_folder(tmp_path):
    from assistant.files import save_png

    for k in (1, 2, 10):  # natural order: img2 before img10
        save_png(tmp_path / f"img{k}.png", np.full((8, 8, 3), k * 10, np.uint8))
    a, b = frames_at(tmp_path, [2, 1])
    assert a.mean() == 100 and b.mean() == 20
    assert probe_video(tmp_path).n_frames == 3


def test_the_long_video_limit_is_its_own_setting():
    from assistant.errors import ConfigError
    from assistant.pipeline import AssistantConfig, parse_assistant_config

    assert AssistantConfig().max_long_video_s == 600.0  # ten minutes of video by default
    config, _ = parse_assistant_config(["--max-long-video-s", "90", "--max-frames", "60"], environ={})
    assert (config.max_long_video_s, config.max_frames) == (90.0, 60)
    for seconds in (0, 1e300):  # 1e300 labelled the upload box "up to 1.66667e+298 min"
        with pytest.raises(ConfigError, match=re.escape(f"max_long_video_s (--max-long-video-s) = {seconds:g} must "
                                                        "lie in (0, 86400] seconds.")):
            AssistantConfig(max_long_video_s=seconds)


def test_a_frame_budget_beside_the_seconds_limit(counted_video):
    """A short video at a high frame rate costs as many frames as minutes at 30 fps: --max-long-frames refuses it
    with a sentence before any frame is spotted."""
    from assistant.errors import ConfigError
    from assistant.long_video import spot_long_video
    from assistant.pipeline import AssistantConfig, parse_assistant_config

    info = probe_video(counted_video)
    check_long_video(info, max_seconds=600.0, max_frames=300)
    says = (r"counted.mp4 has 300 frames, over the long-video budget of 299 frames \(spotting time grows with frames, "
            r"not seconds\); cut it into parts, lower its frame rate, or raise the budget \(--max-long-frames\)\.")
    with pytest.raises(ClipTooLargeError, match=says):
        check_long_video(info, max_seconds=600.0, max_frames=299)
    with pytest.raises(ClipTooLargeError, match="over the long-video budget of 299 frames"):
        spot_long_video(counted_video, 600.0, max_frames=299)
    assert AssistantConfig().max_long_frames == 18000
    config, _ = parse_assistant_config(["--max-long-frames", "5000"], environ={})
    assert config.max_long_frames == 5000
    with pytest.raises(ConfigError, match=r"max_long_frames \(--max-long-frames\) = 2 must be at least 3"):
        AssistantConfig(max_long_frames=2)


def test_a_frame_of_a_container_hiding_its_varying_rate_is_the_index_th_decoded(tmp_path):
    """An MKV whose header gives one rate (30) over stretches at 50 and 20 fps: by index over the average rate the
    app fetched another frame. By the spotter's timestamps it finds the right one, and where a timestamp is not met
    again it counts the decoded frames instead of computing from the rate (which returned a wrong frame silently)."""
    import fractions

    import av

    from assistant.motion.clip import open_source

    path = tmp_path / "hidden.mkv"
    base = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = base
        t = 0
        for k in range(300):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), k % 250, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, base
            out.mux(stream.encode(frame))
            t += 20 if (k // 50) % 2 == 0 else 50  # 50 fps, then 20 fps, ...
        out.mux(stream.encode())
    source = open_source(path)
    times = np.array([f.time for _, f in source.decoded()])
    (truth,) = open_source(path).read([260])
    assert np.array_equal(frames_at(path, [260], times)[0], truth)
    assert np.array_equal(frames_at(path, [260], times + 0.0123)[0], truth)
