"""Spotting: where in a sequence the face moves, measured against a *local* baseline so that slow drift never wins.

Short clips (`ApexSpotter`, used by `assistant.motion.clip.load_clip`): the apex is the frame whose face content
differs most from the straight line between frames t-k and t+k. A linear drift of head position or lighting lies
on that line and cancels; an expression (a bump that rises and falls) does not. Per frame:
- the face box (from the onset's landmarks) is cut, turned grey, shrunk to `THUMB` px and blurred (sigma
  `BLUR`), so sub-pixel shifts resample it smoothly;
- the head's translation against the onset thumbnail is measured by phase correlation (`cv2.phaseCorrelate`, blind to
  global lighting) and undone;
- the thumbnail is divided by its mean brightness (blind to a global gain);
- D_t = F_t - (F_t-k + F_t+k) / 2 and the noise probe N_t = (F_t+1 - 2 F_t + F_t-1) / 2 have the same variance for any
  per-frame perturbation (sensor noise, jitter, JPEG: 1.5 sigma^2 each), but N_t does not see a smooth expression.
  Both are reduced to block energies on a `GRID` x `GRID` grid; each block's noise level is the running mean of its
  N energy, and the frame's score is the mean of the `TOP_BLOCKS` largest block SNRs (e_D / e_N - 1), so one moving
  region (an inner brow) stands out of a still face.
- Windows are clipped symmetrically at the ends (k_t = min(k, t - first, last - t)); with k_t = 1, D_t equals -N_t,
  so the first and last frames score like noise and cannot win by drift.
The curve's own noise is estimated from its lag-1 second differences (robust MAD; they do not see the smooth
expression bump) and `found` is False unless the peak stands `FOUND_Z` noise units above the curve's median.
Memory is bounded: the features of the last 2k+1 frames and the RGB frames of the last k+1 are kept, so the
apex frame is returned without a second decode.

How the numbers were chosen (synthetic calibration clips, seeds 100-139 and subjects 2-5, never the test or benchmark
seeds/subjects; see benchmarks/spotting.py for the report split): `THUMB` 128 px and `BLUR` 1.0 keep a 0.3 px AU
at the 256 px crop visible while halving the work of 256 px; `GRID` 8 gives blocks of about one facial region
(28 px at the 256 px crop); `TOP_BLOCKS` 3 because a single AU moves 2-4 such blocks; `HALF_WINDOW_S` 0.15 s
is half of a typical micro-expression's onset..offset (0.2-0.5 s); `FOUND_Z` is set above the largest
peak-over-median of 40 null calibration clips (noise, drift, jitter only; largest 4.6 noise units) and below the
smallest of 40 clips with one 0.2-0.5 px AU (smallest 9.8).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

THUMB = 128
BLUR = 2.0
MARGIN = 22  # thumbnail pixels left out at each border: the crop margin around the landmarks (no face there)
GRID = 6
TOP_BLOCKS = 3
HALF_WINDOW_S = 0.15
MAX_HALF_WINDOW = 60
REGISTER_AFTER = 2.5  # thumbnail px of head shift the linear whole-face removal handles without moving the crop
SMOOTH_DIV = 6  # apex ranking averages the curve over +- k / SMOOTH_DIV frames (the middle of the flat top)
FOUND_Z = 6.0
MAX_NULL_NOISE = 1.5
MIN_CURVE_FOR_NOISE = 5  # fewer scored frames than this: no noise estimate, so nothing counts as found


@dataclass
class ApexSpot:
    apex: int  # frame index chosen (the best candidate even when not found)
    found: bool  # False when no frame stands above the noise: callers say so, they do not pretend
    curve: np.ndarray  # per scored frame: difference from the local baseline (mean top-block SNR)
    frames: np.ndarray  # frame indices of `curve`
    noise: float  # noise level of the curve (same units)
    half_window: int  # k, frames


def half_window(fps: float | None = None, onset: int | None = None, offset: int | None = None,
                n_frames: int | None = None) -> int:
    """k: half the expected duration. From onset..offset when both are known, else 0.15 s of frames, else a quarter
    of the clip (a pre-cut clip holds about one expression), else 10 frames."""
    if onset is not None and offset is not None:
        k = (offset - onset) / 2
    elif fps:
        k = HALF_WINDOW_S * fps
    elif n_frames:
        k = (n_frames - (onset or 0)) / 4
    else:
        k = 10
    return int(min(MAX_HALF_WINDOW, max(1, round(k))))


def _grey_crop(frame: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    h, w = frame.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        pad = max(0, -x0, -y0, x1 - w, y1 - h)
        if pad:
            frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        frame = frame[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    return grey


def thumbnail(frame: np.ndarray, box: tuple[int, int, int, int] | None, size: int = THUMB) -> np.ndarray:
    grey = _grey_crop(frame, box)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), BLUR)


class FaceFeatures:
    """Head-registered, gain-normalised face thumbnails, all aligned to the first one."""

    def __init__(self, box: tuple[int, int, int, int] | None, size: int = THUMB):
        self.box, self.size = box, size
        self._ref: np.ndarray | None = None
        self._window = cv2.createHanningWindow((size, size), cv2.CV_32F)
        self._offset = (0, 0)  # crop shift in frame pixels

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.box is None:
            self.box = (0, 0, frame.shape[1], frame.shape[0])
        thumb = thumbnail(frame, self.box, self.size)
        if self._ref is None:
            self._ref = thumb
            return self._normalise(thumb)
        # The head's shift is undone only when it is large, by moving the crop a whole number of frame pixels, and
        # with hysteresis: resampling by a fraction of a pixel, or a crop that flips between two positions, changes
        # the fine content from frame to frame, which the baseline would read as motion. Shifts up to
        # `REGISTER_AFTER` thumbnail pixels are removed later, linearly, as a whole-face pattern (`remove_global`).
        # copies: OpenCV 5's phaseCorrelate windows its inputs in place
        (dx, dy), _ = cv2.phaseCorrelate(self._ref.copy(), thumb.copy(), self._window)
        scale = (self.box[2] - self.box[0]) / self.size
        ox, oy = self._offset
        if max(abs(dx * scale - ox), abs(dy * scale - oy)) > REGISTER_AFTER * scale:
            self._offset = (int(round(dx * scale)), int(round(dy * scale)))
        if self._offset != (0, 0):
            x0, y0, x1, y1 = self.box
            sx, sy = self._offset
            thumb = thumbnail(frame, (x0 + sx, y0 + sy, x1 + sx, y1 + sy), self.size)
        return self._normalise(thumb)

    @staticmethod
    def _normalise(thumb: np.ndarray) -> np.ndarray:
        inner = thumb[MARGIN:-MARGIN, MARGIN:-MARGIN]
        return inner * np.float32(100.0 / max(float(inner.mean()), 1.0))


def global_basis(feature: np.ndarray) -> np.ndarray:
    """(P, 9) patterns a whole-face change leaves in a feature difference: shift x, shift y, rotation, zoom (gradients
    times position), gain, offset, and the second-order shift terms (for shifts of a pixel or two)."""
    gy, gx = np.gradient(feature.astype(np.float64))
    gxy, gxx = np.gradient(gx)
    gyy, _ = np.gradient(gy)
    h, w = feature.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = (x - w / 2) / w, (y - h / 2) / h
    cols = [gx, gy, x * gy - y * gx, x * gx + y * gy, feature - feature.mean(), np.ones_like(gx), gxx, gyy, gxy]
    return np.stack([c.ravel() / (np.linalg.norm(c) + 1e-9) for c in cols], axis=1)


def remove_global(diff: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """`diff` minus its least-squares fit by the whole-face patterns: what registration left (shift, rotation, zoom,
    gain) is global, while an AU is local and barely projects on them."""
    d = diff.ravel().astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, d, rcond=None)
    return (d - basis @ coef).reshape(diff.shape).astype(np.float32)


def block_energy(diff: np.ndarray, grid: int = GRID) -> np.ndarray:
    return cv2.resize(diff * diff, (grid, grid), interpolation=cv2.INTER_AREA).ravel()


def curve_noise(curve: np.ndarray) -> float:
    """Robust spread of a curve's white part, from lag-1 second differences (a smooth bump barely shows in them)."""
    c = np.asarray(curve, dtype=np.float64)
    if len(c) < 3:
        return float("nan")
    d2 = c[2:] - 2 * c[1:-1] + c[:-2]
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))


class ApexSpotter:
    """Streaming apex spotter: `push` frames first..last in order, then `finish`.

    `box` is the face region (x0, y0, x1, y1) in frame pixels (the whole frame when None); frames outside
    first..last are not scored, and the two end frames never are (their window is empty).
    """

    def __init__(self, box: tuple[int, int, int, int] | None, k: int, first: int):
        self.k, self.first = max(1, int(k)), int(first)
        self._features = FaceFeatures(box)
        self._feats: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * self.k + 1)
        self.smooth = max(1, self.k // SMOOTH_DIV)
        self._rgb: deque[tuple[int, np.ndarray]] = deque(maxlen=self.k + self.smooth + 1)
        self._basis: np.ndarray | None = None
        self._noise_sum: np.ndarray | None = None
        self._noise_n = 0
        self._curve: list[float] = []
        self._frames: list[int] = []
        self._best = (-np.inf, None, None)  # score, index, frame

    def push(self, index: int, frame: np.ndarray) -> None:
        feat = self._features(frame)
        if self._basis is None:
            self._basis = global_basis(feat)
        self._feats.append((index, feat))
        self._rgb.append((index, frame))
        if len(self._feats) >= 3:  # noise probe for the middle one of the last three
            a, b, c = (self._feats[-3][1], self._feats[-2][1], self._feats[-1][1])
            e = block_energy(remove_global((a - 2 * b + c) / 2, self._basis))
            self._noise_sum = e if self._noise_sum is None else self._noise_sum + e
            self._noise_n += 1
        t = index - self.k
        if t > self.first:
            self._score(t, min(self.k, t - self.first))

    def _feat(self, index: int) -> np.ndarray:
        return self._feats[index - self._feats[-1][0] - 1][1]

    def _score(self, t: int, kt: int) -> None:
        if kt < 1 or self._noise_sum is None:
            return
        before, now, after = self._feat(t - kt), self._feat(t), self._feat(t + kt)
        bump = remove_global(now - 0.5 * (before + after), self._basis)
        trend = remove_global(0.5 * (after - before), self._basis)
        noise = np.maximum(self._noise_sum / self._noise_n, 1e-6)
        snr = (block_energy(bump) - block_energy(trend)) / noise - 2.0 / 3.0
        self._curve.append(float(np.mean(np.sort(snr)[-TOP_BLOCKS:])))
        self._frames.append(t)
        self._consider(t - self.smooth)

    def _consider(self, t: int) -> None:
        """Apex candidate `t`, ranked by the curve averaged over t +- smooth (the top of a bump is flat; the mean
        finds its middle better than the noisiest single value)."""
        if not self._frames or t < self._frames[0]:
            return
        i = t - self._frames[0]
        value = float(np.mean(self._curve[max(0, i - self.smooth):i + self.smooth + 1]))
        if value > self._best[0]:
            frame = next((f for j, f in self._rgb if j == t), None)
            self._best = (value, t, frame)

    def finish(self) -> tuple[ApexSpot, np.ndarray | None]:
        """The spot and the RGB frame at its apex (None when no frame was scored)."""
        if self._feats:
            last = self._feats[-1][0]
            for t in range(max(self.first + 1, last - self.k + 1), last):
                self._score(t, min(self.k, t - self.first, last - t))
            for t in range(max(self.first + 1, last - self.smooth), last):
                self._consider(t)
        curve = np.asarray(self._curve, dtype=np.float32)
        frames = np.asarray(self._frames, dtype=np.int32)
        _, apex, frame = self._best
        # a short clip's curve is mostly bump, and its second differences then see the expression: the noise is
        # never taken above what curves of clips without one show
        noise = min(curve_noise(curve), MAX_NULL_NOISE) if len(curve) >= MIN_CURVE_FOR_NOISE else float("nan")
        peak = float(curve.max()) if len(curve) else 0.0
        found = bool(np.isfinite(noise) and peak - float(np.median(curve)) > FOUND_Z * max(noise, 1e-6))
        if apex is None and self._rgb:  # too short to score: the last frame is all there is
            apex, frame = self._rgb[-1]
        elif apex is None:
            apex = self.first
        return ApexSpot(apex=int(apex), found=found, curve=curve, frames=frames, noise=noise,
                        half_window=self.k), frame


# ---- long videos (issue 13): intervals from head-registered region traces ------------------------------------------

@dataclass
class Interval:
    onset: int
    apex: int
    offset: int
    score: float  # peak region SNR against the local baseline
    kind: str  # "micro" (onset..offset <= micro_max_s at the video's fps) | "macro" | "blink" | "speech" | "head"
    regions: list[str]  # region groups that moved, e.g. ["brows", "mouth"]


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
    smooth_s: float = field(default=0.1, metadata={"help": "region traces are averaged over this window"})
    threshold: float = field(default=9.0, metadata={"help": "region SNR an interval must pass"})
    merge_gap_s: float = field(default=0.1, metadata={"help": "runs closer than this are one interval"})
    head_speed_window_s: float = field(default=0.15, metadata={"help": "head motion measured over +- this"})
    head_shift_px: float = field(default=1.5, metadata={"help": "head shift (crop px) that makes an interval 'head'"})
    head_rot_deg: float = field(default=1.0, metadata={"help": "head rotation that makes an interval 'head'"})
    speech_peaks: int = field(default=3, metadata={"help": "mouth-only bumps that make an interval 'speech'"})
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
    from assistant.motion.clip import ClipLimits, open_source
    from assistant.motion.intervals import find_intervals
    from assistant.motion.tracking import track_video

    cfg = config or SpotConfig()
    src = open_source(source, ClipLimits(max_bytes=64 * 2**30, max_frames=cfg.max_frames))
    fps = float(cfg.fps or src.fps or 30.0)
    tracks = track_video((f for _, f in src.frames()), fps, src.n_frames, stride=max(1, int(round(cfg.stride_s * fps))),
                         size=cfg.size, flow=cfg.flow, landmarks=cfg.landmarks, progress=progress)
    if tracks.n_frames < 3:
        from assistant.errors import ClipTooShortError

        raise ClipTooShortError(f"{Path(src.source).name} has {tracks.n_frames} frames; spotting needs a video.")
    found, curve, groups = find_intervals(tracks, cfg)
    expressions = [iv for iv in found if iv.kind in ("micro", "macro")]
    distractors = [iv for iv in found if iv.kind not in ("micro", "macro")]
    log.info("spotted %d expressions and %d distractors in %d frames", len(expressions), len(distractors),
             tracks.n_frames)
    return SpotResult(expressions, distractors, fps, tracks.n_frames, np.arange(tracks.n_frames), curve, groups)
