"""From region traces (`assistant.motion.tracking.Tracks`) to intervals: expressions, blinks, speech, head moves. Each
region's trace is compared with a sliding local baseline, its running median over `SpotConfig.baseline_s` (longer
than twice the longest expression, so an expression never pulls its own baseline; slow drift and the chain's small
steps follow it). The residual is divided by the region's noise (robust spread of the residual over the whole video:
expressions fill a small share of it) and the region SNRs give one curve per region group (the max over its regions)
and one overall curve. Intervals are runs where the overall curve passes `SpotConfig.threshold`, merged across gaps
shorter than `SpotConfig.merge_gap_s`, and across gaps up to `micro_max_s` where the curve between them stays above
`SpotConfig.join_ratio` of the threshold (hysteresis: an expression's onset shoulder used to split off as an interval
of its own, and one grey level of noise decided whether it did). The apex is the middle of the frames around the
peak within `APEX_TOP` of its height above the curve's median, and onset and offset are placed at twice the distance
of the half-height crossings (interpolated between frames) from the apex: exact for a raised-cosine time course,
whatever the amplitude. The argmax of a broad top wandered by up to 3 frames under one grey level of noise, and the
edges, placed from it, by up to 5. Chosen on the six calibration videos of `benchmarks/spotting.py` at the default
threshold: the middle of the top left micro F1 0.548 (pooled 0.571) and macro 0.883 as they were; interpolating the
crossings raised them to 0.572 (0.588) and 0.917.

An interval scoring under `SpotConfig.near_ratio` times the threshold is marked `near_threshold`: such an interval may
come and go, move or change kind with the camera's noise. Chosen on five 12 s calibration videos (seeds 12, 13, 14, 16
and 17 of the noise study, i.i.d. {-1, 0, +1} grey levels per pixel, three noise seeds each; not the test's video):
the same intervals' scores moved by up to 21 % (90 % of them by at most 16 %); every interval that appeared, vanished
or changed kind scored at most 1.12 times the threshold, and every one whose edges moved by more than 2 frames at
most 1.36 (the higher of two events that the joining had made one), except head moves (up to 1.6) and one
macro-expression of 50 frames whose offset moved by 3-4 frames (3.8-4 times the threshold). The default 1.4 covers
them all but those.

How `join_ratio` was chosen (synthetic): on the six calibration videos of `benchmarks/spotting.py` (seeds 100-105) at
the default threshold, 0.5 scored micro F1 0.548 (pooled 0.571) and macro 0.883 against 0.540 (0.549) and 0.817
without joining; 0.3, 0.4, 0.6, 0.7 and 0.8 scored lower or the same. Joining at any distance scored the same there;
the `micro_max_s` limit was added after a review showed two events 1.5 s apart on a raised background joined into
one (the lower one lost). Placing every joined run that the placed interval does not reach as an interval of its own
instead scored lower (micro 0.543, pooled 0.560, macro 0.861). These figures predate the placement above.

Each interval is then named:
- "head": the head moved (shift or rotation speed over `SpotConfig.head_speed_window_s`) more than
  `head_shift_px` / `head_rot_deg` around it: the residual region motion is then the registration's, not the face's;
- "blink": only the eyes group stands out (every other group under half the eyes' peak) and the upper lids move down
  more than the lower lids move (a lid tightener, AU7, lifts the lower lid instead); an eyes-only interval within
  `BLINK_CONTEXT_S` of a blink is counted as part of it (the lids settling after it, or between two close blinks);
- "speech": the mouth group leads and, within the interval and `SPEECH_CONTEXT_S` around it, the jaw opens at least
  `speech_peaks` times (`jaw_opening`, `SpeechEvidence`: a syllable opens the mouth; a micro-expression rises and
  falls once);
- otherwise "micro" when onset to offset lasts at most `micro_max_s` seconds, else "macro".

How the speech settings were chosen (synthetic; `benchmarks/speech_margin.py` reports them on other seeds): the
0.2 s smoothing that lifts a micro-expression out of the noise averages a 4-5 Hz syllable away, and the
maximum-over-regions curve adds the noise of every mouth region, so syllables are counted on the signed vertical
motion of the lower lip and chin, smoothed over `SYLLABLE_SMOOTH_S` only. A bump's prominence is measured against the
trace's lowest points within `SYLLABLE_DIP_S` either side of it, on the trace around the interval, not on the
interval's context cut out: cut at its edge, a bump lost its dip there, and moving the interval by one frame changed
a talking video's second jaw bump from 6.2 to 2.7. On the calibration videos (the six of `benchmarks/spotting.py`,
seeds 100-105, and ten 16 s talking videos of subject 1, seeds 200-209; both baselines), the second-largest jaw bump
around the 36 intervals that are not speech rose at most 3.8 (jaw noise units) above its dips, and around the 86
mouth-led intervals on speech at least 6.2 (then 7.6, then 20.5 and more); `SYLLABLE_PROMINENCE` 4.8 is about the
geometric middle of that gap (4.83). `SYLLABLE_DIP_S` 0.25: 0.15-0.3 gave that same gap, 0.35 a narrower one (4.4), and
dips sought over the whole trace none. The rule this replaces also asked every other group to stay under half the
mouth's peak: for syllables near the threshold that put the other groups' noise (SNR 5-7 while the jaw moves) against
a limit of 4.5-5, and one grey level flipped it (issue 24). The price of the rule: a mouth-led expression within
`SPEECH_CONTEXT_S` of talking is listed as speech.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d
from scipy.signal import find_peaks

from assistant.motion.tracking import REGION_GROUPS, Tracks, group_of

SPEECH_CONTEXT_S = 0.5  # jaw bumps within this long before and after a mouth interval count as its syllables
BLINK_CONTEXT_S = 0.5  # an eyes-only interval this close to a blink is part of it (the lids settling after one)
SYLLABLE_SMOOTH_S = 0.067  # the jaw trace is averaged over this long (2 frames at 30 fps): syllables come at 3-6 Hz
SYLLABLE_GAP_S = 0.12  # jaw bumps closer than this are one syllable
SYLLABLE_PROMINENCE = 4.8  # a jaw bump counts as a syllable when it rises this far (jaw noise units) above its dips
SYLLABLE_DIP_S = 0.25  # a jaw bump's dips are sought this far either side of it (a syllable's own, at 3-6 Hz)
APEX_TOP = 0.9  # the apex is the middle of the frames around the peak at or above this share of its height

log = logging.getLogger(__name__)


@dataclass
class Interval:
    onset: int
    apex: int
    offset: int
    score: float  # peak region SNR against the local baseline
    kind: str  # "micro" (onset..offset <= micro_max_s at the video's fps) | "macro" | "blink" | "speech" | "head"
    regions: list[str]  # region groups that moved, e.g. ["brows", "mouth"]
    near_threshold: bool = False  # score under SpotConfig.near_ratio x threshold: camera noise may move it in or out


def _robust_sigma(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) + 1e-6


def region_snr(tracks: Tracks, baseline_frames: int, smooth: int = 1) -> np.ndarray:
    """(n, R) SNR of each region's displacement (averaged over `smooth` frames: the flow's frame-to-frame noise
    falls, an expression lasting several times longer keeps its peak) against its sliding median baseline."""
    d = uniform_filter1d(tracks.disp.astype(np.float64), max(1, smooth), axis=0, mode="nearest")
    size = max(3, baseline_frames | 1)
    base = median_filter(d, size=(size, 1, 1), mode="nearest")
    resid = d - base
    seen = resid[tracks.tracked] if tracks.tracked.any() else resid  # frames without the face hold still: no noise
    sigma = np.array([[_robust_sigma(seen[:, r, c]) for c in range(2)] for r in range(d.shape[1])])
    sigma = np.maximum(sigma.mean(axis=1), 1e-3)
    return np.hypot(resid[..., 0], resid[..., 1]) / sigma[None, :]


def group_curves(tracks: Tracks, snr: np.ndarray, smooth: int) -> dict[str, np.ndarray]:
    out = {}
    for g in REGION_GROUPS:
        cols = [i for i, (name, _) in enumerate(tracks.regions) if group_of(name) == g]
        out[g] = uniform_filter1d(snr[:, cols].max(axis=1), max(1, smooth), mode="nearest")
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def jaw_opening(tracks: Tracks, baseline_frames: int) -> np.ndarray:
    """(n,) how far the lower lip and chin have moved down against their sliding median, in noise units: one bump per
    syllable (signed, so opening and closing do not fold into one curve as the regions' magnitudes do)."""
    cols = [i for i, (name, _) in enumerate(tracks.regions) if name in ("lower_lip", "chin")]
    y = tracks.disp[:, cols, 1].astype(np.float64).mean(axis=1)
    y = uniform_filter1d(y, max(1, int(round(SYLLABLE_SMOOTH_S * tracks.fps))), mode="nearest")
    resid = y - median_filter(y, size=max(3, baseline_frames | 1), mode="nearest")
    return resid / _robust_sigma(resid[tracks.tracked] if tracks.tracked.any() else resid)


@dataclass(frozen=True)
class SpeechEvidence:
    """What decides whether an interval is speech; `benchmarks/speech_margin.py` reports how far from their limits
    these values sit."""

    mouth: float  # the mouth group's peak in the interval
    others: float  # the largest peak of any other group (speech needs the mouth to lead)
    jaw_bump: float  # the `speech_peaks`-th largest jaw-opening prominence in the context (0 when fewer)

    @property
    def is_speech(self) -> bool:
        return self.mouth > self.others and self.jaw_bump >= SYLLABLE_PROMINENCE


def speech_evidence(jaw: np.ndarray, peaks: dict[str, float], on: int, off: int, fps: float,
                    speech_peaks: int) -> SpeechEvidence:
    """Syllables are counted around the interval too: talking splits into several short mouth runs, each with too few
    syllables of its own, while a mouth micro-expression rises and falls once."""
    context = int(round(SPEECH_CONTEXT_S * fps))
    gap, dip = max(1, int(round(SYLLABLE_GAP_S * fps))), max(1, int(round(SYLLABLE_DIP_S * fps)))
    # bumps found and measured on the whole trace, then those in the context kept: cut out, a bump lost its dip or
    # the neighbour it yields to at the cut
    with warnings.catch_warnings():  # a flat stretch (frames without the face hold still) has bumps of 0: fine here
        warnings.filterwarnings("ignore", message="some peaks have a prominence of 0")
        where, bumps = find_peaks(jaw, distance=gap, prominence=0.0, wlen=2 * dip + 1)
    inside = (where >= on - context) & (where <= off + context)
    prominence = np.sort(bumps["prominences"][inside])[::-1]
    k = speech_peaks - 1
    return SpeechEvidence(mouth=peaks["mouth"], others=max(v for g, v in peaks.items() if g != "mouth"),
                          jaw_bump=float(prominence[k]) if len(prominence) > k else 0.0)


def find_intervals(tracks: Tracks, cfg) -> tuple[list[Interval], np.ndarray, dict[str, np.ndarray]]:
    """All intervals (expressions and distractors, each with its kind), the overall curve and the group curves.

    Two baselines: a short one (`micro_baseline_s`) removes the slow wander of the traces (reference changes,
    drift) and finds short events at their best SNR; the long one (`baseline_s`) keeps macro-expressions whole.
    Long-baseline intervals longer than `micro_max_s` are kept as macro-expressions (or distractors); short-baseline
    intervals are kept where they do not overlap one of those."""
    fps = tracks.fps
    smooth = int(round(cfg.smooth_s * fps))
    head_speed = _head_speed(tracks, int(round(cfg.head_speed_window_s * fps)))
    jaw = jaw_opening(tracks, int(round(cfg.micro_baseline_s * fps)))
    scales = []
    for window_s in (cfg.micro_baseline_s, cfg.baseline_s):
        groups = group_curves(tracks, region_snr(tracks, int(round(window_s * fps)), smooth), 1)
        curve = np.max(np.stack(list(groups.values())), axis=0)
        curve[~tracks.tracked] = 0.0
        scales.append((_intervals(tracks, curve, groups, head_speed, jaw, cfg), curve, groups))
    (short, short_curve, short_groups), (long, long_curve, long_groups) = scales
    kept = [iv for iv in long if (iv.offset - iv.onset) / fps > cfg.micro_max_s]
    for iv in short:
        if not any(iv.onset <= k.offset and k.onset <= iv.offset for k in kept):
            kept.append(iv)
    kept = _blink_neighbours(sorted(kept, key=lambda iv: iv.onset), int(round(BLINK_CONTEXT_S * fps)))
    curve = np.maximum(short_curve, long_curve)
    groups = {g: np.maximum(short_groups[g], long_groups[g]) for g in short_groups}
    return kept, curve, groups


def _intervals(tracks: Tracks, curve: np.ndarray, groups: dict[str, np.ndarray], head_speed: np.ndarray,
               jaw: np.ndarray, cfg) -> list[Interval]:
    background = float(np.median(curve))
    out: list[Interval] = []

    def place(joined: list[tuple[int, int]]) -> None:
        """One joined stretch, placed around its highest peak. Where that peak is a blink, the runs the blink does
        not reach are placed as events of their own: a blink joined to an expression beside it (a blink 3 frames
        before a macro-expression) took the stretch, and the expression was lost without a word. (Doing this for
        every event scored lower on the calibration videos; for blinks it changed nothing there, nor on the
        benchmark videos.)"""
        on, apex, off, peak = _placed(curve, joined[0][0], joined[-1][1], background)
        peaks = {g: float(c[on:off + 1].max()) for g, c in groups.items()}
        kind = _kind(tracks, groups, peaks, on, off, head_speed, jaw, cfg)
        before, after = [], []
        if kind == "blink":  # split around the blink's own run: its placed edges reach further than the run
            own = min(joined, key=lambda r: 0 if r[0] <= apex <= r[1] else min(abs(r[0] - apex), abs(r[1] - apex)))
            before, after = [r for r in joined if r[1] < own[0]], [r for r in joined if r[0] > own[1]]
        if before:
            place(before)
        if out and on <= out[-1].offset:  # trimmed to start after the event before it, and named on what is left
            on = out[-1].offset + 1
            if on <= apex:
                peaks = {g: float(c[on:off + 1].max()) for g, c in groups.items()}
                kind = _kind(tracks, groups, peaks, on, off, head_speed, jaw, cfg)
        if on <= apex:
            score = round(peak, 2)
            moved = [g for g, v in peaks.items() if v >= max(cfg.threshold * 0.75, 0.5 * peak)]
            out.append(Interval(int(on), int(apex), int(off), score, kind, moved,
                                near_threshold=score < cfg.near_ratio * cfg.threshold))
        if after:
            place(after)

    for joined in _joined_runs(curve, cfg, tracks.fps):
        place(joined)
    return out


def _joined_runs(curve: np.ndarray, cfg, fps: float) -> list[list[tuple[int, int]]]:
    """Runs over the threshold, grouped into one event each: runs at most `merge_gap_s` apart, and runs at most
    `micro_max_s` apart with the curve between them staying above `join_ratio` of the threshold (strictly, so 1 joins
    nothing by level). The joined stretch is placed around its highest peak, so the distance limit keeps two events
    on a raised background (during talking, beside a macro-expression) apart: joined, the lower one was lost."""
    gap, far = int(round(cfg.merge_gap_s * fps)), int(round(cfg.micro_max_s * fps))
    joined: list[list[tuple[int, int]]] = []
    for a, b in _runs(curve > cfg.threshold):
        last = joined[-1][-1][1] if joined else None
        if last is not None and (a - last <= gap or (
                a - last <= far and curve[last + 1:a].min() > cfg.join_ratio * cfg.threshold)):
            joined[-1].append((a, b))
        else:
            joined.append([(a, b)])
    return joined


def _placed(curve: np.ndarray, a: int, b: int, background: float) -> tuple[int, int, int, float]:
    """Onset, apex, offset and peak of the event whose curve passes the threshold over frames a..b."""
    at = a + int(np.argmax(curve[a:b + 1]))
    height = float(curve[at]) - background
    if height <= 0:
        # the curve's median is above this peak (a face that talks or moves the whole video long): it has no
        # half-height crossings to place edges by, so the frames over the threshold are the event
        return a, at, b, float(curve[at])
    top, half = background + APEX_TOP * height, background + 0.5 * height
    lo, hi = at, at
    while lo > a and curve[lo - 1] >= top:
        lo -= 1
    while hi < b and curve[hi + 1] >= top:
        hi += 1
    centre = (lo + hi) / 2  # a half frame when the top is an even number of frames wide
    left, right = lo, hi
    while left > 0 and curve[left - 1] > half:
        left -= 1
    while right < len(curve) - 1 and curve[right + 1] > half:
        right += 1
    # a raised-cosine rise crosses half height halfway from onset to apex (likewise the fall), so the edges sit twice
    # as far from the apex as the half-height crossings: unlike a threshold crossing, this does not shrink the
    # interval of a weak expression. Onsets round halves down, apexes and offsets up, wherever the event lies: an
    # event one frame later is placed one frame later.
    lf = left - (curve[left] - half) / (curve[left] - curve[left - 1]) if left > 0 else left - 0.5
    rf = right + (curve[right] - half) / (curve[right] - curve[right + 1]) if right < len(curve) - 1 else right + 0.5
    onset, offset = math.ceil(2 * lf - centre - 0.5), math.floor(2 * rf - centre + 0.5)
    return max(0, onset), math.floor(centre + 0.5), min(len(curve) - 1, offset), float(curve[at])


def _blink_neighbours(intervals: list[Interval], context: int) -> list[Interval]:
    """Eyes-only expressions within `context` frames of a blink become part of it. The lids' traces settle for a while
    after a blink, and two blinks close together leave them off their baseline between them; either reads as an
    eyes-only bump whose lids do not close. The price: an eyes-only expression (AU5, AU7) that close to a blink is
    listed with the blinks, not as an expression."""
    blinks = [iv for iv in intervals if iv.kind == "blink"]
    for iv in intervals:
        if iv.kind in ("micro", "macro") and iv.regions == ["eyes"] and any(
                b.onset - context <= iv.offset and iv.onset <= b.offset + context for b in blinks):
            iv.kind = "blink"
    return intervals


def _head_speed(tracks: Tracks, window: int) -> np.ndarray:
    """(n, 2): how far the head shifted (crop px) and turned (degrees) within +-window frames."""
    h = tracks.head.astype(np.float64)
    w = max(1, min(window, len(h)))  # a window past both ends holds the whole video: the same change, less padding
    pad = np.pad(h, ((w, w), (0, 0)), mode="edge")
    change = np.abs(pad[2 * w:] - pad[:-2 * w])
    return np.stack([np.hypot(change[:, 0], change[:, 1]), change[:, 2]], axis=1)


def _kind(tracks: Tracks, groups, peaks, on, off, head_speed, jaw, cfg) -> str:
    fps = tracks.fps
    pad = int(round(0.2 * fps))
    lo, hi = max(0, on - pad), min(len(head_speed), off + pad + 1)
    if head_speed[lo:hi, 0].max() > cfg.head_shift_px or head_speed[lo:hi, 1].max() > cfg.head_rot_deg:
        return "head"
    top = max(peaks, key=peaks.get)
    others = max(v for g, v in peaks.items() if g != top)
    if top == "eyes" and others < 0.5 * peaks["eyes"] and _lids_close(tracks, on, off):
        return "blink"
    if top == "mouth":
        evidence = speech_evidence(jaw, peaks, on, off, fps, cfg.speech_peaks)
        log.debug("mouth interval %d-%d: %s", on, off, evidence)
        if evidence.is_speech:
            return "speech"
    return "micro" if (off - on) / fps <= cfg.micro_max_s else "macro"


def _lids_close(tracks: Tracks, on: int, off: int) -> bool:
    """Upper lids move down (image +y) more than the lower lids move at all."""
    def dy(name: str) -> float:
        cols = [i for i, (n, _) in enumerate(tracks.regions) if n == name]
        seg = tracks.disp[on:off + 1, cols, 1].astype(np.float64) - tracks.disp[on, cols, 1]
        return float(seg.mean(axis=1).max()) if name == "upper_eyelid" else float(np.abs(seg.mean(axis=1)).max())
    return dy("upper_eyelid") > dy("lower_eyelid")
