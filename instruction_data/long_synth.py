"""Synthetic long videos for spotting: minutes of one face with micro- and macro-expressions at random times, among
blinks, talking-like mouth motion, head turns, slow head drift, lighting drift and sensor noise.

Frames are rendered lazily (`LongVideo.frames()`), one at a time: memory holds the canvas and the displacement fields of
the events active at that frame, never the video. `write_long_video` streams them into an H.264 file with
`assistant.motion.clip.write_video`.

Units as in `instruction_data.synth`: amplitudes are pixels at the 256 px working crop. Amplitudes (drawn per event,
log-uniform): micro-expressions 0.15-1.5 px (issue 11's realistic range is 0.08-3 px with most real clips at
0.1-0.6 px; below about 0.15 px a 30 fps region trace is under its own noise), macro-expressions 1-4 px, blinks 3-6 px
(the lid travels most of the eye's height), talking 0.6-2 px at 3-5 syllables per second. Durations: micro 0.2-0.45 s
onset to offset, macro 0.8-3 s, blinks 0.15-0.3 s, head turns 0.4-1 s (in-plane rotation 2-6 degrees and a 4-12 px
shift, held or returned). Only the face region is re-rendered per frame (the background is static), which keeps a
10-minute 720p video at tens of milliseconds a frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from assistant.au import AU
from assistant.motion.gaze import eye_openings
from instruction_data.synth import CROP_MARGIN, WORK_CROP, SynthSpec, _place, displacement_field, make_subjects

MICRO_S = (0.2, 0.45)  # a micro-expression's length, onset to offset
EVENT_GAP_S = 0.5  # stillness around expressions, speech and head turns (and at the video's ends)
MIN_EXPRESSION_S = 1.5  # the shortest video that always has room for one micro-expression: 0.45 s + 2 x 0.5 s
EXPRESSION_AUS = (("1", "2"), ("4",), ("4", "7"), ("6", "12"), ("12",), ("R12",), ("L12",), ("14",), ("15",),
                  ("15", "17"), ("9",), ("10",), ("1", "4"), ("R14",), ("17",), ("2",), ("7",), ("20",))


@dataclass
class Event:
    kind: str  # "micro" | "macro" | "blink" | "speech" | "head"
    onset: int
    apex: int
    offset: int
    aus: tuple[str, ...] = ()
    amplitude_px: float = 0.0
    head: tuple[float, float, float] = (0.0, 0.0, 0.0)  # head turns: (dx, dy) crop px and degrees at the apex
    hold: bool = False  # head turns: the new pose is kept after the apex
    syllable_hz: float = 0.0  # speech


@dataclass
class LongSpec:
    seconds: float = 60.0
    fps: float = 30.0
    frame_size: tuple[int, int] = (640, 480)
    subject: int = 0
    n_micro: int = 4
    n_macro: int = 2
    blinks_per_min: float = 15.0
    n_speech: int = 1
    n_head_turns: int = 1
    micro_amplitude_px: tuple[float, float] = (0.15, 1.5)
    macro_amplitude_px: tuple[float, float] = (1.0, 4.0)
    noise_sigma: tuple[float, float] = (1.0, 3.0)
    drift_px: float = 1.5  # slow head wander (crop px)
    drift_deg: float = 0.5
    jitter_px: float = 0.05
    illumination_drift: float = 0.05
    face_height_frac: float = 0.5
    seed: int = 0
    # gaze: the eyes jump this often under still lids (saccades) and hold between jumps; 0 keeps every earlier video
    saccades_per_min: float = 0.0
    saccade_px: tuple[float, float] = (0.5, 2.0)  # each jump's length; the eyes stay within the larger of the two


@dataclass
class LongVideo:
    spec: LongSpec
    n_frames: int
    events: list[Event]
    subject_id: str
    frame_px_per_crop_px: float
    _canvas: np.ndarray = field(repr=False, default=None)
    _points68: np.ndarray = field(repr=False, default=None)
    _roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    _centre: tuple[float, float] = (0.0, 0.0)
    gaze: np.ndarray | None = field(repr=False, default=None)  # (n, 2) crop px: the eyes' offset at each frame

    @property
    def fps(self) -> float:
        return self.spec.fps

    def truth(self, kinds: tuple[str, ...] = ("micro", "macro")) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def frames(self) -> Iterator[np.ndarray]:
        """RGB uint8 frames, rendered one at a time."""
        spec = self.spec
        rng = np.random.default_rng([spec.seed, 1])
        w, h = spec.frame_size
        px = self.frame_px_per_crop_px
        x0, y0, x1, y1 = self._roi
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cx, cy = self._centre
        base = np.clip(self._canvas + 0.5, 0, 255).astype(np.uint8)
        sigma = float(rng.uniform(*spec.noise_sigma))
        phase = rng.uniform(0, 2 * math.pi, 6)
        fields: dict[int, np.ndarray] = {}
        eyes = None if self.gaze is None else eye_openings(self._points68, (h, w), margin=0.0)[y0:y1, x0:x1]
        for i in range(self.n_frames):
            t = i / spec.fps
            slow = [math.sin(2 * math.pi * t / p + ph) for p, ph in zip((41.0, 29.0, 53.0, 37.0), phase)]
            tx = spec.drift_px * px * slow[0] + rng.normal(0, spec.jitter_px * px)
            ty = spec.drift_px * px * slow[1] + rng.normal(0, spec.jitter_px * px)
            rot = spec.drift_deg * slow[2]
            gain = 1.0 + spec.illumination_drift * slow[3]
            disp = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
            for k, e in enumerate(self.events):
                if not e.onset <= i <= (self.n_frames if e.hold else e.offset):
                    fields.pop(k, None)
                    continue
                s = _strength(e, i, spec.fps)
                if e.kind == "head":
                    tx, ty, rot = tx + s * e.head[0] * px, ty + s * e.head[1] * px, rot + s * e.head[2]
                elif s != 0.0:
                    if k not in fields:
                        full = displacement_field(self._points68, [AU.parse(a) for a in e.aus],
                                                  e.amplitude_px * px, (w, h))
                        fields[k] = np.ascontiguousarray(full[y0:y1, x0:x1])
                    disp += s * fields[k]
            if eyes is not None and self.gaze[i].any():
                disp[eyes] += self.gaze[i] * px
            a = math.radians(rot)
            ca, sa = math.cos(a), math.sin(a)
            qx, qy = gx - cx - tx, gy - cy - ty
            zx = (ca * qx - sa * qy + cx).astype(np.float32)
            zy = (sa * qx + ca * qy + cy).astype(np.float32)
            if np.any(disp):
                u = _remap_roi(disp, zx - x0, zy - y0)
                for _ in range(2):  # fixed-point steps towards the inverse field
                    u = _remap_roi(disp, zx - x0 - u[..., 0], zy - y0 - u[..., 1])
                zx, zy = zx - u[..., 0], zy - u[..., 1]
            roi = cv2.remap(self._canvas, zx, zy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            roi = roi * gain + rng.standard_normal(roi.shape, dtype=np.float32) * sigma
            frame = base.copy()
            frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
            yield frame


def _remap_roi(d: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    return cv2.remap(d, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _strength(e: Event, i: int, fps: float) -> float:
    if i <= e.onset:
        return 0.0
    if e.kind == "head" and e.hold and i >= e.apex:
        return 1.0
    if i <= e.apex:
        rise = 0.5 - 0.5 * math.cos(math.pi * (i - e.onset) / max(e.apex - e.onset, 1))
        if e.kind == "speech":
            return rise * (0.5 - 0.5 * math.cos(2 * math.pi * e.syllable_hz * (i - e.onset) / fps))
        return rise
    if i >= e.offset:
        return 0.0
    fall = 0.5 + 0.5 * math.cos(math.pi * (i - e.apex) / max(e.offset - e.apex, 1))
    if e.kind == "speech":
        return fall * (0.5 - 0.5 * math.cos(2 * math.pi * e.syllable_hz * (i - e.onset) / fps))
    return fall


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def _place_events(spec: LongSpec, n: int, rng: np.random.Generator) -> list[Event]:
    """Non-overlapping events (expressions, speech and head turns keep 0.5 s apart; blinks only avoid expressions)."""
    fps = spec.fps
    busy = np.zeros(n, bool)
    events: list[Event] = []

    def slot(duration: int, gap: int) -> int | None:
        if duration + 2 * gap > n:  # no room in so short a video: the truth would list an event past its end
            return None
        for _ in range(200):
            start = int(rng.integers(gap, max(gap + 1, n - duration - gap)))
            if not busy[max(0, start - gap):start + duration + gap].any():
                busy[start:start + duration] = True
                return start
        return None

    def add(kind: str, dur_s: tuple[float, float], **kw) -> None:
        duration = max(3, int(round(rng.uniform(*dur_s) * fps)))
        start = slot(duration, int(EVENT_GAP_S * fps))
        if start is None:
            return
        apex = start + int(round(rng.uniform(0.35, 0.6) * duration))
        events.append(Event(kind, start, apex, start + duration, **kw))

    for _ in range(spec.n_micro):
        add("micro", MICRO_S, aus=EXPRESSION_AUS[rng.integers(len(EXPRESSION_AUS))],
            amplitude_px=_log_uniform(rng, spec.micro_amplitude_px))
    for _ in range(spec.n_macro):
        add("macro", (0.8, 3.0), aus=EXPRESSION_AUS[rng.integers(len(EXPRESSION_AUS))],
            amplitude_px=_log_uniform(rng, spec.macro_amplitude_px))
    for _ in range(spec.n_speech):
        add("speech", (1.0, 3.0), aus=("25", "26"), amplitude_px=float(rng.uniform(0.6, 2.0)),
            syllable_hz=float(rng.uniform(3.0, 5.0)))
    for _ in range(spec.n_head_turns):
        angle = float(rng.uniform(2, 6)) * rng.choice([-1, 1])
        shift = rng.uniform(4, 12) * rng.choice([-1, 1], size=2)
        add("head", (0.4, 1.0), head=(float(shift[0]), float(shift[1]) * 0.3, angle), hold=bool(rng.random() < 0.5))
    n_blinks = int(round(spec.blinks_per_min * spec.seconds / 60))
    free = ~busy
    for _ in range(n_blinks):
        duration = max(3, int(round(rng.uniform(0.15, 0.3) * fps)))
        for _ in range(50 if duration < n else 0):
            start = int(rng.integers(0, max(1, n - duration)))
            if free[max(0, start - 3):start + duration + 3].all():
                free[start:start + duration] = False
                events.append(Event("blink", start, start + duration // 2, start + duration, aus=("43",),
                                    amplitude_px=float(rng.uniform(3.0, 6.0))))
                break
    return sorted(events, key=lambda e: e.onset)


def make_long_video(spec: LongSpec | None = None) -> LongVideo:
    """The events and the canvas of one synthetic long video (nothing is rendered until `frames()` is iterated)."""
    spec = spec or LongSpec()
    rng = np.random.default_rng(spec.seed)
    n = int(round(spec.seconds * spec.fps))
    subject = make_subjects(spec.subject + 1)[spec.subject]
    canvas, _, lm = _place(subject, SynthSpec(frame_size=spec.frame_size, face_height_frac=spec.face_height_frac))
    x0, y0, x1, y1 = lm.box
    side = max(x1 - x0, y1 - y0)
    px = side * (1 + 2 * CROP_MARGIN) / WORK_CROP
    w, h = spec.frame_size
    pad = 0.45 * side
    roi = (max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(w, int(x1 + pad)), min(h, int(y1 + pad)))
    video = LongVideo(spec=spec, n_frames=n, events=_place_events(spec, n, rng), subject_id=subject.id,
                      frame_px_per_crop_px=px)
    video._canvas, video._points68, video._roi = canvas, lm.points68, roi
    video._centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    if spec.saccades_per_min > 0:
        video.gaze = gaze_course(spec, n)
    return video


def gaze_course(spec: LongSpec, n: int) -> np.ndarray:
    """(n, 2) crop px: fixations of exponential length (mean 60 / `saccades_per_min` s, at least 0.1 s and a frame),
    each reached by a jump of `saccade_px` in a random direction, kept within the larger length of the straight-ahead
    gaze. Its own random stream, so the rest of the video is the one drawn without saccades."""
    rng = np.random.default_rng([spec.seed, 2])
    out, pos, i = np.zeros((n, 2)), np.zeros(2), 0
    while i < n:
        frames = max(1, int(round(max(0.1, rng.exponential(60.0 / spec.saccades_per_min)) * spec.fps)))
        out[i:i + frames] = pos
        i += frames
        angle = rng.uniform(0, 2 * math.pi)
        pos = pos + rng.uniform(*spec.saccade_px) * np.array([math.cos(angle), math.sin(angle)])
        reach = float(np.hypot(*pos))
        if reach > spec.saccade_px[1]:
            pos *= spec.saccade_px[1] / reach
    return out


def write_long_video(video: LongVideo, path: str | Path) -> Path:
    from assistant.motion.clip import write_video

    return write_video(video.frames(), path, fps=video.fps)
