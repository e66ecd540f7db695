"""The realistic synthetic world: micro-expressions as small, varied and disturbed as real footage.

The easy world (`instruction_data.synth` with its defaults) moves the FACS table's regions by 1.5 px on a still,
clean face; real CASME II / SAMM clips move 0.05-0.6 px under head drift, lighting drift, sensor noise, JPEG and
blinks. Here every clip is drawn from (split, seed, index):

- AUs: 1-3 per clip from `COMBOS`, a table of combinations shaped like CASME II / SAMM codings over CASME II's
  eight AUs (1, 2, 4, 7, 12, 14, 15, 17) plus a few rarer ones; 20 % of clips are null (no AU).
- Each AU its own amplitude, log-uniform in 0.08-3 px at the 256 px working crop, its own side (both, L or R) and
  the FACS intensity letter `intensity_letter` gives for that amplitude.
- Each region action of each AU bent away from the FACS table: centre moved up to 0.1 inter-ocular distance,
  direction turned up to 25 degrees, falloff size +-30 %; no detector is scored on its own table.
- Head drift over the clip (translation up to 1.5 px, rotation up to 0.5 degrees, zoom up to 1 %) plus per-frame
  jitter; illumination drift up to 5 %; sensor noise 1-3 grey levels; every frame JPEG-coded at quality 70-95.
- Blinks (0.10-0.15 s) as distractors, only outside onset..offset.
- Timing: 200 fps; onset -> offset 0.2-0.5 s with the apex 30-60 % of the way; 0.04-0.1 s still before and after.

Faces come from `instruction_data.photos`; calibration and benchmark people are disjoint (`split_subjects`).
Figures measured on these clips are synthetic.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.au import AU
from assistant.facs import FACS, MIDLINE_REGIONS
from instruction_data.photos import SPLITS, load_photo, split_photos
from instruction_data.shading import Light
from instruction_data.synth import (
    AUMotion,
    SubjectFace,
    SynthClip,
    SynthSpec,
    TemplateJitter,
    _make_subject,
    render_clip,
)
from instruction_data.world_v2 import V2Draw, draw_v2
from instruction_data.world_v3 import WORLDS, draw_light

AMPLITUDE_RANGE_PX = (0.08, 3.0)
# FACS intensity letter of an AU by its amplitude at the working crop: A below 0.15 px, B below 0.3, C below 0.6,
# D below 1.2, E from 1.2 px (a convention of this generator, doubling per letter).
INTENSITY_EDGES_PX = (0.15, 0.3, 0.6, 1.2)
NULL_SHARE = 0.2
CENTRE_OFFSET_IOD = 0.1
ANGLE_JITTER_DEG = 25.0
SIZE_JITTER = 0.3
HEAD_TRANSLATION_PX = 1.5
HEAD_ROTATION_DEG = 0.5
HEAD_ZOOM = 0.01
HEAD_JITTER_PX = (0.01, 0.05)  # per-frame translation std range, crop px
HEAD_JITTER_DEG = 0.02  # per-frame rotation std up to this
HEAD_JITTER_ZOOM = 0.0005  # per-frame zoom std up to this
NOISE_SIGMA = (1.0, 3.0)
JPEG_QUALITY = (70, 95)
ILLUMINATION_DRIFT = 0.05
BLINK_SHARE = 0.35  # clips with one blink
BLINK_S = (0.10, 0.15)
BLINK_GAP_S = (0.02, 0.05)  # still time between a blink and the expression window
DURATION_S = (0.2, 0.5)  # onset -> offset
APEX_FRACTION = (0.3, 0.6)
PAD_S = (0.04, 0.1)  # still time before onset and after offset
FPS = 200.0
FRAME_SIZE = (640, 480)
SUBJECT_VARIANTS = 2  # subjects per photo: as shot and mirrored, each with its own colour, gamma and face width
_SPLIT_KEY = {"calibration": 1, "benchmark": 2}

# AU combinations with relative weights, shaped like CASME II / SAMM codings: AU4 alone or with 7, brow raises,
# smiles, dimplers (often one-sided), lip corner depressors and chin raisers; rarer 6, 9, 10, 20, 24, 25.
COMBOS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((4,), 14), ((4, 7), 8), ((1, 2), 8), ((12,), 8), ((14,), 7), ((17,), 4), ((1,), 3), ((2,), 2), ((7,), 3),
    ((15,), 3), ((15, 17), 4), ((6, 12), 4), ((1, 4), 2), ((4, 15), 2), ((4, 7, 17), 2), ((14, 17), 2),
    ((1, 2, 4), 1), ((12, 14), 1), ((4, 17), 2), ((9,), 1.5), ((4, 9), 1), ((10,), 1), ((4, 10), 1), ((20,), 1),
    ((24,), 1), ((17, 24), 1), ((12, 25), 1), ((6,), 1), ((1, 2, 25), 0.5), ((4, 7, 20), 0.5),
)
SIDE_SHARES = (("", 0.6), ("L", 0.2), ("R", 0.2))  # for AUs that act on sided regions


@dataclass(frozen=True, eq=False)
class RealisticSpec:
    """Everything one realistic clip will show, drawn from (split, seed, index) without rendering anything."""

    index: int
    split: str
    seed: int
    subject: SubjectFace
    motions: tuple[AUMotion, ...]  # empty for a null clip
    n_frames: int
    onset: int
    apex: int
    offset: int
    blinks: tuple[tuple[int, int], ...]
    head_translation_px: tuple[float, float]
    head_rotation_deg: float
    head_zoom: float
    head_jitter_px: float
    head_jitter_deg: float
    head_jitter_zoom: float
    noise_sigma: float
    jpeg_quality: int
    illumination_drift: float
    fps: float = FPS
    frame_size: tuple[int, int] = FRAME_SIZE
    world: str = "v1"  # "v2": with world v2's additions (`v2`, instruction_data.world_v2); "v3": v2 and `light`
    v2: V2Draw | None = None
    light: Light | None = None  # world v3's light (instruction_data.world_v3)

    @property
    def is_null(self) -> bool:
        return not self.motions

    @property
    def aus(self) -> list[AU]:
        return [m.au for m in self.motions]

    def synth_spec(self) -> SynthSpec:
        return SynthSpec(subject=self.subject, motions=self.motions, n_frames=self.n_frames, onset=self.onset,
                         apex=self.apex, offset=self.offset, head_translation_px=self.head_translation_px,
                         head_rotation_deg=self.head_rotation_deg, head_jitter_px=self.head_jitter_px,
                         head_jitter_deg=self.head_jitter_deg, head_zoom=self.head_zoom,
                         head_jitter_zoom=self.head_jitter_zoom, noise_sigma=self.noise_sigma,
                         illumination_drift=self.illumination_drift, frame_size=self.frame_size, fps=self.fps,
                         seed=int(np.random.default_rng([_SPLIT_KEY[self.split], self.seed, self.index, 1])
                                  .integers(0, 2**31)),
                         blinks=self.blinks, jpeg_quality=self.jpeg_quality, noise_table=True,
                         static_background=True, world_v2=self.v2, light=self.light)


def intensity_letter(amplitude_px: float) -> str:
    """FACS intensity A..E for an AU of this peak amplitude (crop px); see `INTENSITY_EDGES_PX`."""
    return "ABCDE"[int(np.searchsorted(INTENSITY_EDGES_PX, amplitude_px, side="right"))]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


@functools.lru_cache(maxsize=4)
def _split_subjects(split: str) -> tuple[SubjectFace, ...]:
    photos = split_photos(split)
    out = []
    for k in range(SUBJECT_VARIANTS * len(photos)):
        photo = photos[k % len(photos)]
        s = _make_subject(k, photo.person, load_photo(photo), len(photos), seed=_SPLIT_KEY[split])
        out.append(dataclasses.replace(s, id=f"{split[:3]}{k + 1:02d}-{photo.person}{'-m' if '-m' in s.id else ''}"))
    return tuple(out)


def split_subjects(split: str) -> list[SubjectFace]:
    """The synthetic people of a split: each of its photos as shot and mirrored; no person is in both splits."""
    _check_split(split)
    return list(_split_subjects(split))


def _sided(code: int) -> bool:
    return any(a.region not in MIDLINE_REGIONS for a in FACS[code].actions)


def _jitter(rng: np.random.Generator, code: int, side: str) -> dict[tuple[str, str | None], TemplateJitter]:
    out = {}
    for action in FACS[code].actions:
        sides = [None] if action.region in MIDLINE_REGIONS else ([side] if side else ["L", "R"])
        for s in sides:
            r, theta = CENTRE_OFFSET_IOD * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            out[(action.region, s)] = TemplateJitter(
                offset_iod=(r * math.cos(theta), r * math.sin(theta)),
                angle_deg=float(rng.uniform(-ANGLE_JITTER_DEG, ANGLE_JITTER_DEG)),
                size=float(rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER)))
    return out


def _draw_motions(rng: np.random.Generator) -> tuple[AUMotion, ...]:
    weights = np.array([w for _, w in COMBOS])
    codes = COMBOS[int(rng.choice(len(COMBOS), p=weights / weights.sum()))][0]
    lo, hi = AMPLITUDE_RANGE_PX
    motions = []
    for code in codes:
        amplitude = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        side = ""
        if _sided(code):
            side = SIDE_SHARES[int(rng.choice(len(SIDE_SHARES), p=[p for _, p in SIDE_SHARES]))][0]
        letter = intensity_letter(amplitude)
        au = AU(code=code, side=side or None, intensity=letter, raw=f"{side}{code}{letter}")
        motions.append(AUMotion(au, amplitude, _jitter(rng, code, side)))
    return tuple(motions)


def _frames(rng: np.random.Generator, lo_hi: tuple[float, float], fps: float) -> int:
    return max(1, int(round(rng.uniform(*lo_hi) * fps)))


def draw_spec(index: int, split: str = "benchmark", seed: int = 0, fps: float = FPS,
              frame_size: tuple[int, int] = FRAME_SIZE, world: str = "v1", **overrides) -> RealisticSpec:
    """Clip `index` of the split's stream for `seed`; `overrides` replace any drawn `RealisticSpec` field. World v2
    draws its additions from a stream of their own: the v1 fields of a clip are the same in both worlds; world v3 is
    v2 with the person's light."""
    _check_split(split)
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; use one of {', '.join(WORLDS)}")
    if index < 0:
        raise ValueError(f"clip index must be >= 0, not {index}")
    rng = np.random.default_rng([_SPLIT_KEY[split], seed, index])
    subjects = split_subjects(split)
    subject = subjects[int(rng.integers(len(subjects)))]
    null = rng.random() < NULL_SHARE
    motions = () if null else _draw_motions(rng)

    duration = max(_frames(rng, DURATION_S, fps), 4)
    apex_at = min(max(int(round(rng.uniform(*APEX_FRACTION) * duration)), 1), duration - 1)
    pre, post = _frames(rng, PAD_S, fps), _frames(rng, PAD_S, fps)
    blinks: tuple[tuple[int, int], ...] = ()
    blink_len = gap = 0
    blink_before = False
    if rng.random() < BLINK_SHARE:
        blink_len, gap = _frames(rng, BLINK_S, fps), _frames(rng, BLINK_GAP_S, fps)
        blink_before = bool(rng.random() < 0.5)
        lead = int(rng.integers(0, pre + 1))  # still frames before a leading blink / after a trailing one
        if blink_before:
            pre = lead + blink_len + gap
        else:
            post = gap + blink_len + lead
    onset = pre
    offset = onset + duration
    n_frames = offset + post + 1
    if blink_len:
        first = (pre - gap - blink_len) if blink_before else (offset + gap + 1)
        blinks = ((first, first + blink_len - 1),)

    angle = rng.uniform(0, 2 * math.pi)
    shift = rng.uniform(0, HEAD_TRANSLATION_PX)
    spec = RealisticSpec(
        index=index, split=split, seed=seed, subject=subject, motions=motions, n_frames=n_frames, onset=onset,
        apex=onset + apex_at, offset=offset, blinks=blinks,
        head_translation_px=(float(shift * math.cos(angle)), float(shift * math.sin(angle))),
        head_rotation_deg=float(rng.uniform(-HEAD_ROTATION_DEG, HEAD_ROTATION_DEG)),
        head_zoom=float(rng.uniform(-HEAD_ZOOM, HEAD_ZOOM)),
        head_jitter_px=float(rng.uniform(*HEAD_JITTER_PX)),
        head_jitter_deg=float(rng.uniform(0, HEAD_JITTER_DEG)),
        head_jitter_zoom=float(rng.uniform(0, HEAD_JITTER_ZOOM)),
        noise_sigma=float(rng.uniform(*NOISE_SIGMA)),
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
        illumination_drift=float(rng.uniform(-ILLUMINATION_DRIFT, ILLUMINATION_DRIFT)),
        fps=fps, frame_size=tuple(frame_size))
    if overrides:
        known = {f.name for f in dataclasses.fields(RealisticSpec)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown realistic clip setting(s) {', '.join(unknown)}; use any of {', '.join(known)}")
        spec = dataclasses.replace(spec, **overrides)
    # after the overrides: a person's relief, tissue and light follow the subject
    ids = [s.id for s in subjects]
    person = 100 * _SPLIT_KEY[split] + (ids.index(spec.subject.id) if spec.subject.id in ids
                                        else zlib.crc32(spec.subject.id.encode()))
    if world in ("v2", "v3") and "v2" not in overrides:
        spec = dataclasses.replace(spec, v2=draw_v2([_SPLIT_KEY[split], seed, index, 2], person, n_frames))
    if world == "v3" and "light" not in overrides:
        spec = dataclasses.replace(spec, light=draw_light(person))
    if spec.light is not None and (world != "v3" or spec.v2 is None):
        raise ValueError("a light that stays while the head turns belongs to world v3 (world='v3', with its v2 draw)")
    return dataclasses.replace(spec, world="v3" if spec.light is not None else "v2" if spec.v2 is not None else "v1")


def render_realistic(spec: RealisticSpec, only: Sequence[int] | None = None) -> SynthClip:
    clip = render_clip(spec.synth_spec(), only)
    clip.split = spec.split
    return clip


def realistic_clip(index: int, split: str = "benchmark", seed: int = 0, world: str = "v1",
                   **overrides) -> SynthClip:
    """Render clip `index` of `split` for `seed` (deterministic in the four); see `draw_spec` for `overrides`."""
    return render_realistic(draw_spec(index, split, seed, world=world, **overrides))


def realistic_clips(split: str, n: int, seed: int = 0, world: str = "v1") -> Iterator[SynthClip]:
    """The first `n` clips of the split's stream for `seed`, rendered one at a time."""
    for i in range(n):
        yield realistic_clip(i, split, seed, world)
