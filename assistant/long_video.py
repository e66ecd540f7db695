"""Long videos for people: decide whether an upload is a long video, spot its expressions within the long-video
limit, draw the timeline, list the intervals, and analyse one interval with the `Assistant`.

The app's "Long video" view is a thin layer over these functions. Spotting is `assistant.motion.spotting.spot_video`
(streamed, bounded memory); an interval is analysed from its onset and apex frames alone, read by seeking in the
video, so an interval at minute 9 costs no more than one at second 9.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from assistant.errors import ClipTooLargeError, FrameIndexError, UnreadableClipError
from assistant.motion.clip import _upright, frame_files, read_image, variable_rate

log = logging.getLogger(__name__)

INTERVAL_COLUMNS = ["#", "type", "start (s)", "duration (s)", "onset", "apex", "offset", "score", "near threshold",
                    "regions"]
KIND_COLOURS = {"micro": "#d62728", "macro": "#1f77b4"}
SEEK_BACK_S = 2.0  # seek this far before the wanted frame, then decode forward (keyframes are seldom further apart)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    n_frames: int | None  # None when the container does not say and the duration is unknown too
    fps: float | None

    @property
    def duration_s(self) -> float | None:
        return self.n_frames / self.fps if self.n_frames and self.fps else None


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and rate from the container, without decoding (a frame folder counts its images)."""
    p = Path(path)
    if p.is_dir():
        n = len(frame_files(p))
        return VideoInfo(str(p), n, None)
    if p.is_file() and p.stat().st_size == 0:
        raise UnreadableClipError(f"{p.name} is an empty file; upload the video again.")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise UnreadableClipError(f"{p.name} has no video track (sound only?); give the video of the face.")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            n = int(stream.frames or 0) or None
            if n is None and fps and container.duration:
                n = int(round(container.duration / av.time_base * fps))
    except (av.error.FFmpegError, IndexError, OSError, UnicodeDecodeError) as err:
        raise UnreadableClipError(f"{p.name} could not be decoded as a video ({type(err).__name__}); use an MP4, AVI, "
                                  "WebM or MOV file with a video track.") from None
    return VideoInfo(str(p), n, fps)


def is_long(info: VideoInfo, short_clip_frames: int) -> bool:
    """Longer than the short-clip limit: the upload is a long video to spot, not one expression to analyse."""
    return info.n_frames is not None and info.n_frames > short_clip_frames


def check_long_video(info: VideoInfo, max_seconds: float, max_frames: int | None = None) -> None:
    duration = info.duration_s
    if duration is not None and duration > max_seconds:
        raise ClipTooLargeError(f"{Path(info.path).name} lasts {duration / 60:.1f} min, over the long-video limit of "
                                f"{max_seconds / 60:g} min; cut it into parts or raise the limit "
                                "(--max-long-video-s).")
    if max_frames is not None and info.n_frames is not None and info.n_frames > max_frames:
        raise ClipTooLargeError(_too_many_frames(info.path, f"has {info.n_frames} frames", max_frames))


def _too_many_frames(path: str | Path, how_many: str, max_frames: int) -> str:
    return (f"{Path(path).name} {how_many}, over the long-video budget of {max_frames} frames (spotting time grows "
            "with frames, not seconds); cut it into parts, lower its frame rate, or raise the budget "
            "(--max-long-frames).")


def spot_long_video(path: str | Path, max_seconds: float, spot_config=None,
                    progress: Callable[[int, int | None], None] | None = None, max_frames: int | None = None):
    """`spot_video` on an upload, refused (before or, when the length is unknown, during spotting) past the limits:
    `max_seconds` of video and `max_frames` frames."""
    from assistant.motion.spotting import spot_video

    info = probe_video(path)
    check_long_video(info, max_seconds, max_frames)
    limit = int(max_seconds * (info.fps or 30.0))

    def guarded(done: int, total: int | None) -> None:
        if done > limit:
            raise ClipTooLargeError(f"{Path(path).name} has more than {limit} frames ({max_seconds / 60:g} min), over "
                                    "the long-video limit; cut it into parts or raise the limit (--max-long-video-s).")
        if max_frames is not None and done > max_frames:
            raise ClipTooLargeError(_too_many_frames(path, f"has more than {max_frames} frames", max_frames))
        if progress is not None:
            progress(done, total or info.n_frames)

    return spot_video(str(path), spot_config, progress=guarded)


def interval_rows(result) -> list[list]:
    """The table of spotted expressions (numbered as on the timeline); the duration is onset to offset, the span the
    micro/macro split reads (`assistant.motion.intervals`), so a micro-expression never shows over 0.5 s."""
    fps = result.fps or 30.0
    return [[k, i.kind, round(i.onset / fps, 2), round((i.offset - i.onset) / fps, 2), int(i.onset), int(i.apex),
             int(i.offset), round(float(i.score), 2), "yes" if i.near_threshold else "", ", ".join(i.regions)]
            for k, i in enumerate(result.intervals, start=1)]


def timeline_figure(result, title: str = ""):
    """The motion curve over time with the spotted expressions shaded (numbered as in the table) and blinks, speech and
    head movements hatched grey; one thin curve per region group beneath the overall one."""
    from matplotlib.figure import Figure  # not pyplot: a figure per request must not pile up in pyplot's registry
    from matplotlib.patches import Rectangle

    fps = result.fps or 30.0
    t = np.asarray(result.frames, dtype=float) / fps
    fig = Figure(figsize=(11, 3.2))
    ax = fig.subplots()
    for name, curve in sorted(result.group_curves.items()):
        ax.plot(t, curve, linewidth=0.6, alpha=0.45, label=name)
    ax.plot(t, result.curve, color="black", linewidth=1.0, label="overall")
    top = float(np.nanmax(result.curve)) if len(result.curve) else 1.0
    for k, i in enumerate(result.intervals, start=1):
        ax.axvspan(i.onset / fps, (i.offset + 1) / fps, color=KIND_COLOURS[i.kind], alpha=0.3)
        ax.annotate(str(k), (i.apex / fps, top), ha="center", va="bottom", fontsize=8)
    for i in result.distractors:
        ax.axvspan(i.onset / fps, (i.offset + 1) / fps, facecolor="none", edgecolor="#7f7f7f", hatch="//",
                   linewidth=0)
    handles = [Rectangle((0, 0), 1, 1, color=KIND_COLOURS[k], alpha=0.3) for k in ("micro", "macro")]
    handles.append(Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="#7f7f7f", hatch="//"))
    first = ax.legend(loc="upper right", fontsize=7, ncol=4)
    ax.add_artist(first)
    ax.legend(handles, ["micro", "macro", "blink / speech / head"], loc="upper left", fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("motion")
    ax.set_xlim(0, max(result.n_frames / fps, 1e-3))
    ax.set_title(title or f"{len(result.intervals)} expression(s) spotted in {result.n_frames / fps:.1f} s")
    fig.tight_layout()
    return fig


def frames_at(source: str | Path, indices: list[int], times: np.ndarray | None = None) -> list[np.ndarray]:
    """RGB frames at `indices` (frame numbers from 0, in decode order) of a video or a frame folder. A video is read by
    seeking to a keyframe shortly before the first one and decoding forward, so only a few seconds are decoded: by
    each frame's timestamp where the spotter recorded them (`times`: `SpotResult.frame_times`), else by index over the
    average rate, which only a constant-rate video allows (a varying-rate one is then decoded from the start)."""
    p = Path(source)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted or wanted[0] < 0:
        raise FrameIndexError(f"Frame indices must be 0 or more; got {indices}.")
    if p.is_dir():
        files = frame_files(p)
        if wanted[-1] >= len(files):
            raise FrameIndexError(f"Frame {wanted[-1]} is past the end of {p.name} ({len(files)} frames).")
        return [read_image(files[i]) for i in indices]
    if times is not None and wanted[-1] < len(times):
        try:
            return _frames_at_times(p, [int(i) for i in indices], [float(times[int(i)]) for i in indices])
        except FrameIndexError as err:  # a timestamp not met again after the seek: count from the start instead (a
            log.info("%s", err)  # container whose header hides a varying rate makes index / average rate wrong)
    count = times is not None  # the spotter recorded timestamps: the frame is the index-th decoded, nothing else
    got: dict[int, np.ndarray] = {}
    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        # frames are numbered in decoding order, as the spotter counted them: by timestamp only where the rate is
        # constant (a variable-rate video's timestamps name other frames)
        seekable = fps is not None and stream.time_base is not None and variable_rate(stream) is None and not count
        if not seekable:  # decoded from the start: on both cores
            stream.thread_type = "AUTO"
        if seekable and wanted[0] / fps > SEEK_BACK_S:
            target = int((start + wanted[0] / fps - SEEK_BACK_S) / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        for k, frame in enumerate(container.decode(stream)):
            if seekable and frame.pts is not None:
                index = int(round((float(frame.pts * stream.time_base) - start) * fps))
            elif seekable:  # no timestamps: only a decode from the start can count frames
                raise UnreadableClipError(f"{p.name} has frames without timestamps; re-encode it (MP4, H.264).")
            else:
                index = k
            if index in wanted:
                got[index] = _upright(frame)
            if index >= wanted[-1]:
                break
    missing = [i for i in wanted if i not in got]
    if missing:
        raise FrameIndexError(f"Frame {missing[0]} is past the end of {p.name} or could not be decoded.")
    return [got[int(i)] for i in indices]


def _frames_at_times(path: Path, indices: list[int], times: list[float]) -> list[np.ndarray]:
    """The frames whose timestamps are `times`: a seek shortly before the first, then a decode forward."""
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if min(times) > SEEK_BACK_S:
            container.seek(int((min(times) - SEEK_BACK_S) / stream.time_base), stream=stream, backward=True,
                           any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * (frame.time_base or stream.time_base))
            for i, target in zip(indices, times):
                if i not in got and abs(t - target) < 1e-6:
                    got[i] = _upright(frame)
            if t >= max(times):
                break
    missing = [i for i in indices if i not in got]
    if missing:
        raise FrameIndexError(f"Frame {missing[0]} of {path.name} was not met again at its timestamp after a seek.")
    return [got[i] for i in indices]


def analyse_interval(assistant, source: str | Path, interval, language: str | None = None,
                     times: np.ndarray | None = None) -> Iterator:
    """`Assistant.stream` on the interval's onset and apex frames (the steps a UI shows as they come); `times`: the
    frames' timestamps where the video's rate varies (`SpotResult.frame_times`)."""
    onset, apex = frames_at(source, [int(interval.onset), int(interval.apex)], times)
    yield from assistant.stream(onset, apex, language=language,
                                expression="macro" if interval.kind == "macro" else "micro")
