"""Long-video spotting: intervals (onset, apex, offset, micro or macro) from head-registered region traces
(`assistant.motion.tracking`), named by `assistant.motion.intervals`, with blinks, speech and head moves listed apart.
The apex of a short clip is spotted by `assistant.motion.apex`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import ClipTooShortError, ConfigError, NoFaceError
from assistant.motion.clip import ClipLimits, open_source
from assistant.motion.face import LANDMARKERS, MAX_CROP, MIN_CROP, tilt_note
from assistant.motion.flow import FLOW_METHODS
from assistant.motion.intervals import Interval, find_intervals
from assistant.motion.tracking import track_video

__all__ = ["Interval", "SpotConfig", "SpotResult", "spot_video"]

log = logging.getLogger(__name__)

MAX_FPS = 10_000.0
DEFAULT_FPS = 30.0  # for a source with no rate (a frame folder) and no --fps: said in SpotResult.notes
# the longest time setting: ten minutes outlast every expression, blink and head move (a median window of 1e9 s
# allocated 28 GB, one of 1e6 s used 17 GB before it was stopped)
MAX_WINDOW_S = 600.0


@dataclass
class SpotConfig:
    """Long-video spotting settings; see assistant/motion/tracking.py and intervals.py for what each one does."""

    stride_s: float = field(default=1.0, metadata={
        "help": "seconds between landmark keyframes (reference crops); the other settings were chosen at 1 s, and a "
                "much shorter spacing renews the reference so often that its steps add false alarms"})
    size: int = field(default=256, metadata={"help": "working crop size in px"})
    flow: str = field(default="dis", metadata={"help": "optical flow: dis (fast) or tvl1",
                                                "choices": list(FLOW_METHODS)})
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend", "choices": list(LANDMARKERS)})
    fps: float | None = field(default=None, metadata={"help": "override the video's frame rate"})
    micro_max_s: float = field(default=0.5, metadata={"help": "longest micro-expression, onset to offset"})
    micro_baseline_s: float = field(default=1.2, metadata={"help": "short sliding-median baseline (> 2x a micro)"})
    baseline_s: float = field(default=8.0, metadata={"help": "sliding-median baseline (> 2x longest expression)"})
    smooth_s: float = field(default=0.2, metadata={
        "help": "region traces are averaged over this window (about half a micro-expression: noise falls, the "
                "expression's peak stays)"})
    threshold: float = field(default=9.0, metadata={"help": "region SNR an interval must pass"})
    merge_gap_s: float = field(default=0.1, metadata={"help": "runs closer than this are one interval"})
    join_ratio: float = field(default=0.5, metadata={
        "help": "runs at most micro_max_s apart are one interval when the curve between them stays above this share "
                "of the threshold (hysteresis: a dip or an onset shoulder does not split one expression; 1 = off)"})
    near_ratio: float = field(default=1.4, metadata={
        "help": "intervals scoring under this multiple of the threshold are marked near_threshold (one grey level of "
                "camera noise moved scores by up to a fifth: they may come and go); 1 marks none"})
    head_speed_window_s: float = field(default=0.15, metadata={"help": "head motion measured over +- this"})
    head_shift_px: float = field(default=1.5, metadata={"help": "head shift (crop px) that makes an interval 'head'"})
    head_rot_deg: float = field(default=1.0, metadata={"help": "head rotation that makes an interval 'head'"})
    speech_peaks: int = field(default=2, metadata={
        "help": "mouth-only bumps over the threshold, within the interval and 0.5 s around it, that make it "
                "'speech' (a micro-expression rises and falls once)"})
    max_frames: int = field(default=10 * 60 * 200, metadata={"help": "refuse videos longer than this many frames"})

    def __post_init__(self) -> None:
        """Every range in one place: flags and YAML reach here unchecked, and an impossible value otherwise surfaces
        as a traceback (a negative frame rate), a 30 GB allocation (a huge crop) or a silently different result
        (a zero threshold or stride)."""
        for name in ("flow", "landmarks"):
            choices = SpotConfig.__dataclass_fields__[name].metadata["choices"]
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not valid; choose one of: {', '.join(choices)}.")
        if not MIN_CROP <= self.size <= MAX_CROP:
            raise ConfigError(f"size={self.size} must lie between {MIN_CROP} and {MAX_CROP} px (the working crop; "
                              "default 256).")
        if self.fps is not None and not 0 < self.fps <= MAX_FPS:
            raise ConfigError(f"fps={self.fps:g} must lie in (0, {MAX_FPS:g}] frames per second, or be left out to use "
                              "the video's own rate.")
        positive = ("stride_s", "micro_max_s", "micro_baseline_s", "baseline_s", "threshold", "head_speed_window_s",
                    "head_shift_px", "head_rot_deg")
        for name in positive:
            if not getattr(self, name) > 0:
                meaning = SpotConfig.__dataclass_fields__[name].metadata["help"]
                raise ConfigError(f"{name}={getattr(self, name):g} must be above 0 ({meaning}).")
        for name in ("smooth_s", "merge_gap_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name):g} must be 0 or more (seconds).")
        for name in ("stride_s", "micro_max_s", "micro_baseline_s", "baseline_s", "head_speed_window_s", "smooth_s",
                     "merge_gap_s"):
            if getattr(self, name) > MAX_WINDOW_S:
                raise ConfigError(f"{name}={getattr(self, name):g} must be at most {MAX_WINDOW_S:g} s (ten minutes).")
        if not 1 <= self.near_ratio <= 10:
            raise ConfigError(f"near_ratio={self.near_ratio:g} must lie in [1, 10] (a multiple of the threshold; 1 "
                              "marks no interval as near the threshold).")
        if not 0 < self.join_ratio <= 1:
            raise ConfigError(f"join_ratio={self.join_ratio:g} must lie in (0, 1] (a share of the threshold; 1 turns "
                              "the joining off).")
        if self.baseline_s < self.micro_baseline_s:
            raise ConfigError(f"baseline_s={self.baseline_s:g} must be at least micro_baseline_s="
                              f"{self.micro_baseline_s:g} (the long baseline keeps macro-expressions whole).")
        if self.speech_peaks < 1:
            raise ConfigError(f"speech_peaks={self.speech_peaks} must be 1 or more.")
        if self.max_frames < 3:
            raise ConfigError(f"max_frames={self.max_frames} must be at least 3 (spotting needs a video).")


@dataclass
class SpotResult:
    intervals: list[Interval]  # expressions (micro and macro)
    distractors: list[Interval]  # blinks, speech and head moves, listed separately
    fps: float
    n_frames: int
    frames: np.ndarray  # frame indices of the curves
    curve: np.ndarray  # overall motion curve (region SNR against the local baseline)
    group_curves: dict[str, np.ndarray]  # per region group
    tracked: np.ndarray | None = None  # (n_frames,) bool: the face was followed there (nothing is read elsewhere)
    fps_assumed: bool = False  # no rate given and none in the source (a frame folder): 30 fps was assumed
    roll_deg: float = 0.0  # the face's mean roll in the picture over the keyframes (`face.roll_deg`)
    peak_fps: float | None = None  # a video whose frame rate varies: its highest rate (`clip.variable_rate`)
    declared_frames: int | None = None  # the frame count the video's header gives (None: it gives none)
    frame_times: np.ndarray | None = None  # each frame's timestamp (s) in a video (`_frame_times`), else None

    def notes(self) -> list[str]:
        """What a reader of the intervals must know: frames the face was not followed on, a frame rate assumed."""
        out = []
        if self.fps_assumed:
            out.append(f"{self.fps:g} fps was assumed (no frame rate was given, and the source has none: a frame "
                       "folder carries none): give --fps with the camera's rate, or the seconds and the micro/macro "
                       "split are wrong.")
        if self.declared_frames and self.n_frames < 0.99 * self.declared_frames:
            out.append(f"The video stopped after {self.n_frames} of the {self.declared_frames} frames its header "
                       "lists (cut off or damaged): the rest was not read.")
        if self.peak_fps:
            out.append(f"The video's frame rate varies ({self.fps:.3g} fps on average, up to {self.peak_fps:.3g}): "
                       "frames are counted in order and seconds are frame / the average rate, so times (and the "
                       "micro/macro split) are off where the rate changed; re-encode it at a constant rate.")
        tilted = tilt_note(self.roll_deg)
        if tilted:
            out.append(tilted.replace("motion is read", "motion, blinks and speech are read"))
        if self.tracked is not None and not self.tracked.all():
            lost = np.flatnonzero(~self.tracked)
            out.append(f"The face was not found on {len(lost)} of {self.n_frames} frames (the first at frame "
                       f"{lost[0]}); nothing was spotted there.")
        return out


def _frame_times(times: list[float | None]) -> np.ndarray | None:
    """The frames' timestamps where they name each frame once (every one given, strictly increasing; a frame folder
    or a file with repeated or missing timestamps has none: its frames are then counted from the start)."""
    if not times or None in times:
        return None
    out = np.array(times, dtype=np.float64)
    return out if len(out) < 2 or bool(np.all(np.diff(out) > 0)) else None


def _mean_angle(degrees: np.ndarray) -> float:
    """The circular mean: a face upside down reads +179 on some keyframes and -179 on others, not 0."""
    r = np.radians(degrees)
    return float(np.degrees(np.arctan2(np.sin(r).mean(), np.cos(r).mean())))


def spot_video(source, config: SpotConfig | None = None,
               progress: Callable[[int, int | None], None] | None = None) -> SpotResult:
    """Spot expressions in a video of any length (a path, a frame folder or a list of RGB frames), streaming."""
    cfg = config or SpotConfig()
    src = open_source(source, ClipLimits(max_bytes=64 * 2**30, max_frames=cfg.max_frames))
    fps = float(cfg.fps or src.fps or DEFAULT_FPS)
    times: list[float | None] = []  # each frame's timestamp: a video's frame is found again by it (8 bytes a frame)

    def rgb_frames():
        for _, frame in src.decoded():
            times.append(frame.time)
            yield frame.rgb()

    tracks = track_video(rgb_frames(), fps, src.n_frames, stride=max(1, int(round(cfg.stride_s * fps))),
                         size=cfg.size, flow=cfg.flow, landmarks=cfg.landmarks, progress=progress)
    if tracks.n_frames < 3:
        raise ClipTooShortError(f"{Path(src.source).name} has {tracks.n_frames} frame(s); spotting needs a video of "
                                "at least 3.")
    if not tracks.tracked.any():
        raise NoFaceError(f"No face was found in {Path(src.source).name} (looked every {cfg.stride_s:g} s over "
                          f"{tracks.n_frames} frames); spotting needs a face turned to the camera, lit and at least "
                          "about 80 px wide.")
    found, curve, groups = find_intervals(tracks, cfg)
    expressions = [iv for iv in found if iv.kind in ("micro", "macro")]
    distractors = [iv for iv in found if iv.kind not in ("micro", "macro")]
    log.info("spotted %d expressions and %d distractors in %d frames", len(expressions), len(distractors),
             tracks.n_frames)
    result = SpotResult(expressions, distractors, fps, tracks.n_frames, np.arange(tracks.n_frames), curve, groups,
                        tracks.tracked, fps_assumed=not (cfg.fps or src.fps),
                        roll_deg=_mean_angle(tracks.roll) if tracks.roll is not None and len(tracks.roll) else 0.0,
                        peak_fps=None if cfg.fps else src.peak_fps, declared_frames=src.n_frames,
                        frame_times=_frame_times(times))
    for note in result.notes():
        log.warning(note)
    return result
