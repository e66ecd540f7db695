"""Long-video spotting: intervals (onset, apex, offset, micro or macro) from head-registered region traces
(`assistant.motion.tracking`), named by `assistant.motion.intervals`, with blinks, speech and head moves listed apart.
The apex of a short clip is spotted by `assistant.motion.apex`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import ClipTooShortError
from assistant.motion.clip import ClipLimits, open_source
from assistant.motion.intervals import Interval, find_intervals
from assistant.motion.tracking import track_video

__all__ = ["Interval", "SpotConfig", "SpotResult", "spot_video"]

log = logging.getLogger(__name__)


@dataclass
class SpotConfig:
    """Long-video spotting settings; see assistant/motion/tracking.py and intervals.py for what each one does."""

    stride_s: float = field(default=1.0, metadata={"help": "seconds between landmark keyframes (reference crops)"})
    size: int = field(default=256, metadata={"help": "working crop size in px"})
    flow: str = field(default="dis", metadata={"help": "optical flow: dis (fast) or tvl1"})
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend"})
    fps: float | None = field(default=None, metadata={"help": "override the video's frame rate"})
    micro_max_s: float = field(default=0.5, metadata={"help": "longest micro-expression, onset to offset"})
    micro_baseline_s: float = field(default=1.2, metadata={"help": "short sliding-median baseline (> 2x a micro)"})
    baseline_s: float = field(default=8.0, metadata={"help": "sliding-median baseline (> 2x longest expression)"})
    smooth_s: float = field(default=0.2, metadata={
        "help": "region traces are averaged over this window (about half a micro-expression: noise falls, the "
                "expression's peak stays)"})
    threshold: float = field(default=9.0, metadata={"help": "region SNR an interval must pass"})
    merge_gap_s: float = field(default=0.1, metadata={"help": "runs closer than this are one interval"})
    head_speed_window_s: float = field(default=0.15, metadata={"help": "head motion measured over +- this"})
    head_shift_px: float = field(default=1.5, metadata={"help": "head shift (crop px) that makes an interval 'head'"})
    head_rot_deg: float = field(default=1.0, metadata={"help": "head rotation that makes an interval 'head'"})
    speech_peaks: int = field(default=2, metadata={
        "help": "mouth-only bumps over the threshold, within the interval and 0.5 s around it, that make it "
                "'speech' (a micro-expression rises and falls once)"})
    max_frames: int = field(default=10 * 60 * 200, metadata={"help": "refuse videos longer than this many frames"})


@dataclass
class SpotResult:
    intervals: list[Interval]  # expressions (micro and macro)
    distractors: list[Interval]  # blinks, speech and head moves, listed separately
    fps: float
    n_frames: int
    frames: np.ndarray  # frame indices of the curves
    curve: np.ndarray  # overall motion curve (region SNR against the local baseline)
    group_curves: dict[str, np.ndarray]  # per region group


def spot_video(source, config: SpotConfig | None = None,
               progress: Callable[[int, int | None], None] | None = None) -> SpotResult:
    """Spot expressions in a video of any length (a path, a frame folder or a list of RGB frames), streaming."""
    cfg = config or SpotConfig()
    src = open_source(source, ClipLimits(max_bytes=64 * 2**30, max_frames=cfg.max_frames))
    fps = float(cfg.fps or src.fps or 30.0)
    tracks = track_video((f for _, f in src.frames()), fps, src.n_frames, stride=max(1, int(round(cfg.stride_s * fps))),
                         size=cfg.size, flow=cfg.flow, landmarks=cfg.landmarks, progress=progress)
    if tracks.n_frames < 3:
        raise ClipTooShortError(f"{Path(src.source).name} has {tracks.n_frames} frames; spotting needs a video.")
    found, curve, groups = find_intervals(tracks, cfg)
    expressions = [iv for iv in found if iv.kind in ("micro", "macro")]
    distractors = [iv for iv in found if iv.kind not in ("micro", "macro")]
    log.info("spotted %d expressions and %d distractors in %d frames", len(expressions), len(distractors),
             tracks.n_frames)
    return SpotResult(expressions, distractors, fps, tracks.n_frames, np.arange(tracks.n_frames), curve, groups)
