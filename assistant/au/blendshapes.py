"""The `blendshapes` AU detector: the change of MediaPipe's expression scores from onset to apex, read through FACS.

The face model the project ships (`face_landmarker.task`) scores 52 expressions in the same call that finds the
landmarks (`assistant.motion.face`), so this detector costs no model of its own. It is trained on real faces, which
makes it a second, independent source of evidence beside the flow rules.

For an AU with table terms t = (blendshape, sign, weight) (`AU_BLENDSHAPES`, the one place the mapping lives) and a
person's side s:

    z_s = sum_t weight_t * sign_t * (apex_t,s - onset_t,s) / floor_t,s  /  sum_t weight_t

where floor is the spread of that score between two frames of a still face (root mean square of apex - onset on the
null clips of the realistic calibration split, `blendshapes_noise.json`, measured by `python -m
assistant.au.blendshapes_calibrate`). So z is a signal-to-noise ratio: 1 is noise level. The AU's z is the larger
side's, and p = 1 / (1 + exp(-STEEPNESS * (z - Z_MID))). The side is reported like the rules detector does: when one
side's z is below SIDE_RATIO times the other's.

Sides: MediaPipe names its scores ...Left / ...Right; `MP_SIDE` says which person's side each name measures (checked
on a one-sided synthetic smile and its mirror image in tests/test_blendshapes.py).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from assistant import calibration
from assistant.au.base import make_evidence
from assistant.types import AUEvidence, AUScore, Clip, EvidenceSource, FaceLandmarks, MotionAnalysis

NOISE_FILE = Path(__file__).with_name("blendshapes_noise.json")
DEFAULT_FLOOR = 0.02  # score units; used for a score the noise file lacks
MIN_FLOOR = 0.002  # a score that never moved on the null pairs must not turn rounding into evidence
Z_MID = 3.0  # a change three times the null spread is an even bet
STEEPNESS = 1.5
SIDE_RATIO = 0.5

# MediaPipe's Left/Right suffix -> the person's side it measures.
MP_SIDE = {"Left": "L", "Right": "R"}
PERSON_SUFFIX = {v: k for k, v in MP_SIDE.items()}


@dataclass(frozen=True)
class Term:
    shape: str  # MediaPipe name without its side suffix for sided scores (e.g. "mouthSmile"), else the full name
    sign: float  # +1: the score rises with the AU; -1: it falls
    weight: float = 1.0
    sided: bool = True


def _t(shape: str, sign: float = 1.0, weight: float = 1.0) -> Term:
    return Term(shape, sign, weight, sided=shape not in MIDLINE_SHAPES)


MIDLINE_SHAPES = {"browInnerUp", "mouthShrugLower", "mouthShrugUpper", "jawOpen", "mouthClose", "mouthPucker",
                  "mouthFunnel", "mouthRollLower", "mouthRollUpper", "cheekPuff", "jawForward"}

# AU -> blendshape terms (ARKit's expression definitions read against FACS). browOuterUp falls on real AU4 clips
# (measured on the held-out real clips, docs/reading_real_faces.md), hence its negative term there.
AU_BLENDSHAPES: dict[int, tuple[Term, ...]] = {
    1: (_t("browInnerUp"),),
    2: (_t("browOuterUp"),),
    4: (_t("browDown"), _t("browOuterUp", -1.0, 0.5), _t("browInnerUp", -1.0, 0.3)),
    5: (_t("eyeWide"),),
    6: (_t("cheekSquint"),),
    7: (_t("eyeSquint"),),
    9: (_t("noseSneer"),),
    10: (_t("mouthUpperUp"),),
    12: (_t("mouthSmile"),),
    14: (_t("mouthDimple"),),
    15: (_t("mouthFrown"),),
    17: (_t("mouthShrugLower"), _t("mouthShrugUpper", 1.0, 0.3)),
    20: (_t("mouthStretch"),),
    23: (_t("mouthPucker", 1.0, 0.5), _t("mouthRollLower", 1.0, 0.5)),
    24: (_t("mouthPress"),),
    25: (_t("mouthClose", -1.0, 0.5), _t("mouthLowerDown")),
    26: (_t("jawOpen"),),
    43: (_t("eyeBlink"),),
}


def shape_name(term: Term, side: str | None) -> str:
    """MediaPipe's name of a term's score on the person's `side`."""
    return term.shape + PERSON_SUFFIX[side] if term.sided and side else term.shape


def person_sides(shapes: dict[str, float]) -> dict[tuple[str, str | None], float]:
    """Scores keyed by (base name, person's side), sides of MediaPipe's names translated through `MP_SIDE`."""
    out = {}
    for name, score in shapes.items():
        for suffix, side in MP_SIDE.items():
            if name.endswith(suffix):
                out[(name[: -len(suffix)], side)] = score
                break
        else:
            out[(name, None)] = score
    return out


def load_floors(path: str | None = None) -> dict[str, float]:
    """Null-pair spread per MediaPipe score name (empty when the file is absent), from `path`, else from the
    calibration in force (`assistant.calibration`)."""
    return _floors(str(path) if path else str(calibration.path("blendshapes_noise.json")))


@functools.lru_cache(maxsize=4)
def _floors(path: str) -> dict[str, float]:
    p = Path(path)
    if not p.is_file():
        return {}
    return {k: float(v) for k, v in json.loads(p.read_text())["floors"].items()}


@dataclass(frozen=True)
class BlendshapeSignal:
    """One AU's blendshape evidence: its signal-to-noise ratio, the side, and the scores behind it."""

    code: int
    z: float
    side: str | None
    z_left: float | None
    z_right: float | None
    sources: tuple[EvidenceSource, ...]


def _side_z(terms: tuple[Term, ...], delta: dict[str, float], floors: dict[str, float],
            side: str | None) -> tuple[float, list[EvidenceSource]]:
    total = weight = 0.0
    sources = []
    for term in terms:
        name = shape_name(term, side)
        if name not in delta:
            continue
        floor = max(MIN_FLOOR, floors.get(name, DEFAULT_FLOOR))
        total += term.weight * term.sign * delta[name] / floor
        weight += term.weight
        sources.append(EvidenceSource("blendshape", name, delta[name], side if term.sided else None))
    sources.sort(key=lambda s: -abs(s.value))
    return (total / weight if weight else 0.0), sources


def signals(onset: dict[str, float], apex: dict[str, float], codes: list[int] | None = None,
            floors: dict[str, float] | None = None) -> list[BlendshapeSignal]:
    """Per AU, z of the module docstring from two frames' scores (MediaPipe names)."""
    floors = load_floors() if floors is None else floors
    delta = {k: apex[k] - onset[k] for k in onset.keys() & apex.keys()}
    out = []
    for code in sorted(AU_BLENDSHAPES) if codes is None else codes:
        terms = AU_BLENDSHAPES.get(code)
        if terms is None:
            out.append(BlendshapeSignal(code, 0.0, None, None, None, ()))
            continue
        if any(t.sided for t in terms):
            (z_l, src_l), (z_r, src_r) = _side_z(terms, delta, floors, "L"), _side_z(terms, delta, floors, "R")
            best = max(z_l, z_r)
            side = None
            if best >= Z_MID / 2 and min(z_l, z_r) < SIDE_RATIO * best:
                side = "L" if z_l > z_r else "R"
            sources = src_l if side == "L" else src_r if side == "R" else _merge(src_l, src_r)
            out.append(BlendshapeSignal(code, best, side, z_l, z_r, tuple(sources)))
        else:
            z, sources = _side_z(terms, delta, floors, None)
            out.append(BlendshapeSignal(code, z, None, None, None, tuple(sources)))
    return out


def _merge(a: list[EvidenceSource], b: list[EvidenceSource]) -> list[EvidenceSource]:
    seen = {}
    for s in a + b:
        seen.setdefault(s.name, s)
    return sorted(seen.values(), key=lambda s: -abs(s.value))


def probability(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-STEEPNESS * (z - Z_MID)))


def frame_blendshapes(clip: Clip, analysis: MotionAnalysis | None,
                      backend: str = "mediapipe") -> tuple[dict[str, float], dict[str, float]]:
    """Onset and apex scores: from the analysis' landmarks when it has them, else from one landmarker call per frame.

    `analysis.apex_landmarks` exists once the motion core detects landmarks on the apex frame too (for registration).
    """
    from assistant.motion.face import detect_face

    onset_lm: FaceLandmarks | None = analysis.landmarks if analysis is not None else None
    apex_lm: FaceLandmarks | None = getattr(analysis, "apex_landmarks", None) if analysis is not None else None
    if onset_lm is None or onset_lm.blendshapes is None:
        onset_lm = detect_face(clip.onset_frame, backend)
    if apex_lm is None or apex_lm.blendshapes is None:
        apex_lm = detect_face(clip.apex_frame, backend)
    if onset_lm.blendshapes is None or apex_lm.blendshapes is None:
        from assistant.errors import BackendError

        raise BackendError("The blendshapes detector needs the mediapipe landmark backend (dlib has no expression "
                           "scores); use --landmarks mediapipe or another detector.")
    return onset_lm.blendshapes, apex_lm.blendshapes


def analysis_blendshapes(analysis: MotionAnalysis) -> dict[str, dict[str, float]] | None:
    """{"onset": scores, "apex": scores} as the analysis holds them, rounded for JSON (summary.json, the API result);
    None with a landmark backend that has no scores."""
    out = {}
    for frame, lm in (("onset", analysis.landmarks), ("apex", getattr(analysis, "apex_landmarks", None))):
        if lm is not None and lm.blendshapes is not None:
            out[frame] = {k: round(v, 4) for k, v in lm.blendshapes.items()}
    return out or None


def score_blendshapes(onset: dict[str, float], apex: dict[str, float], codes: list[int] | None = None,
                      floors: dict[str, float] | None = None) -> AUEvidence:
    sig = signals(onset, apex, codes, floors)
    evidence = make_evidence([s.code for s in sig], [probability(s.z) for s in sig], "blendshapes",
                             sides=[s.side for s in sig])
    by_code = {s.code: s for s in sig}
    evidence.scores = [AUScore(s.code, s.probability, s.side, by_code[s.code].sources) for s in evidence.scores]
    return evidence


class BlendshapesDetector:
    """AU evidence from the landmarker's own expression scores; no flow, no training."""

    name = "blendshapes"

    def __init__(self, codes: list[int] | None = None, landmarks: str = "mediapipe", noise_file: str | None = None):
        self.codes = codes
        self.landmarks = landmarks
        self.floors = load_floors(noise_file)

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        onset, apex = frame_blendshapes(clip, analysis, self.landmarks)
        return score_blendshapes(onset, apex, self.codes, self.floors)
