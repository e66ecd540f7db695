"""The `fusion` AU detector: flow rules and blendshape scores combined per AU by a three-weight logistic model.

For AU c, with p_rules the `rules` detector's probability and z the `blendshapes` detector's signal-to-noise ratio
(`assistant.au.blendshapes`):

    x_rules = logit(clip(p_rules, EPS, 1 - EPS))        x_blend = clip(z, -Z_CLIP, Z_CLIP)
    p       = 1 / (1 + exp(-(w_rules * x_rules + w_blend * x_blend + bias)))

The weights (`fusion_weights.json` beside this file) are fitted with scikit-learn's `LogisticRegression` (L2, lbfgs:
deterministic) on the realistic synthetic calibration split only, never on the benchmark split. Its settings (the
regularisation C, whether classes are weighted to balance rare AUs, and a margin subtracted from every bias, which
trades recall for fewer false alarms) are chosen by leave-one-subject-out over the calibration people (`SETTINGS`,
`MARGINS`): the best macro F1 among settings that give no more null clips an AU than `rules` does. Refit with
`meu calibrate fusion` (eval/calibrate_blend.py), which also writes the calibration features and settings it fitted on
(`fusion_calibration.json`), so `refit_from_file` reproduces the weights without rendering a clip. An AU the file
has no weights for keeps the rules probability.

The side is the one the stronger source reports (its term's contribution to the sum); the sources of both are kept,
the stronger first.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from pathlib import Path

import numpy as np

from assistant import calibration
from assistant.au.base import make_evidence
from assistant.au.blendshapes import BlendshapesDetector, signals
from assistant.au.sources import flow_sources
from assistant.types import AUEvidence, Clip, MotionAnalysis

log = logging.getLogger(__name__)

WEIGHTS_FILE = Path(__file__).with_name("fusion_weights.json")
CALIBRATION_FILE = Path(__file__).with_name("fusion_calibration.json")
EPS = 1e-3
Z_CLIP = 10.0
SETTINGS = ((0.1, False), (1.0, False), (0.1, True), (1.0, True))  # (C, balanced class weights) tried
MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # logit margins tried: the bias is lowered by this much


def features(p_rules: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(n, 2) model inputs from rules probabilities and blendshape z."""
    p = np.clip(np.asarray(p_rules, dtype=np.float64), EPS, 1 - EPS)
    return np.stack([np.log(p / (1 - p)), np.clip(np.asarray(z, dtype=np.float64), -Z_CLIP, Z_CLIP)], axis=1)


def fit(p_rules: dict[int, np.ndarray], z: dict[int, np.ndarray], labels: dict[int, np.ndarray], C: float = 1.0,
        balanced: bool = False, margin: float = 0.0) -> dict:
    """Per-AU weights from calibration arrays (one entry per clip), `margin` taken off each bias; AUs with a single
    class get no model."""
    from sklearn.linear_model import LogisticRegression

    weights = {}
    for code in sorted(labels):
        y = np.asarray(labels[code], dtype=int)
        if y.min() == y.max():
            continue
        model = LogisticRegression(C=C, class_weight="balanced" if balanced else None, solver="lbfgs",
                                   max_iter=1000).fit(features(p_rules[code], z[code]), y)
        w_rules, w_blend = (round(float(v), 6) for v in model.coef_[0])
        weights[str(code)] = {"w_rules": w_rules, "w_blend": w_blend,
                              "bias": round(float(model.intercept_[0]) - margin, 6),
                              "n": int(len(y)), "positives": int(y.sum())}
    return weights


def refit_from_file(path: str | Path = CALIBRATION_FILE) -> dict:
    """Weights refitted from a saved calibration feature file (what `meu calibrate fusion` wrote)."""
    data = json.loads(Path(path).read_text())
    codes = [int(c) for c in data["codes"]]
    p = np.asarray(data["p_rules"], dtype=np.float64)
    z = np.asarray(data["z"], dtype=np.float64)
    y = np.asarray(data["labels"], dtype=int)
    return fit({c: p[:, i] for i, c in enumerate(codes)}, {c: z[:, i] for i, c in enumerate(codes)},
               {c: y[:, i] for i, c in enumerate(codes)}, C=float(data["C"]), balanced=bool(data["balanced"]),
               margin=float(data["margin"]))


def load_weights(path: str | None = None) -> dict[int, tuple[float, float, float]]:
    """Per-AU fusion weights from `path`, else from the calibration in force (`assistant.calibration`). A calibration
    folder without its own weights falls back to the shipped ones, which were fitted over the shipped rules: said."""
    chosen = calibration.folder()
    if path is None and chosen is not None and not (chosen / "fusion_weights.json").is_file():
        _warn_shipped_weights(str(chosen))
    return _weights(str(path) if path else str(calibration.path("fusion_weights.json")))


@functools.lru_cache(maxsize=8)
def _warn_shipped_weights(folder: str) -> None:
    log.warning("the calibration folder %s has no fusion_weights.json: fusion uses the shipped weights, fitted over "
                "the shipped rules settings rather than this folder's; run `meu calibrate fusion --out %s` to fit its "
                "own", folder, folder)


@functools.lru_cache(maxsize=4)
def _weights(path: str) -> dict[int, tuple[float, float, float]]:
    p = Path(path)
    if not p.is_file():
        return {}
    data = json.loads(p.read_text())["weights"]
    return {int(c): (float(w["w_rules"]), float(w["w_blend"]), float(w["bias"])) for c, w in data.items()}


def combine(rules: AUEvidence, blend: AUEvidence, z: dict[int, float],
            weights: dict[int, tuple[float, float, float]], regions=None) -> AUEvidence:
    """Fusion evidence from the two detectors' outputs on one clip (`z`: blendshape z per AU)."""
    blend_by = {s.code: s for s in blend.scores}
    codes, probs, sides, sources = [], [], [], []
    for r in rules.scores:
        b = blend_by.get(r.code)
        flow = r.sources or (flow_sources(r.code, regions, r.side) if regions is not None else ())
        if r.code not in weights or b is None:
            codes.append(r.code), probs.append(r.probability), sides.append(r.side), sources.append(flow)
            continue
        w_r, w_b, bias = weights[r.code]
        x_r, x_b = features([r.probability], [z.get(r.code, 0.0)])[0]
        logit = w_r * x_r + w_b * x_b + bias
        flow_first = w_r * x_r >= w_b * x_b
        first, second = (r, b) if flow_first else (b, r)
        codes.append(r.code)
        probs.append(1.0 / (1.0 + math.exp(-logit)))
        sides.append(first.side or second.side)
        sources.append((flow + b.sources) if flow_first else (b.sources + flow))
    evidence = make_evidence(codes, probs, "fusion", sides=sides)
    by_code = dict(zip(codes, sources))
    evidence.scores = [dataclasses.replace(s, sources=tuple(by_code[s.code])) for s in evidence.scores]
    evidence.explained = dict(rules.explained)  # what the flow part attributed to one AU stays attributed
    return evidence


class FusionDetector:
    """`rules` and `blendshapes` evidence combined per AU (weights fitted on the realistic calibration split)."""

    name = "fusion"

    def __init__(self, codes: list[int] | None = None, motion_config=None, landmarks: str = "mediapipe",
                 weights_file: str | None = None):
        from assistant.au.rules import RulesDetector

        self.rules = RulesDetector(codes, motion_config)
        self.blend = BlendshapesDetector(codes, landmarks)
        self.motion_config = motion_config
        self.weights = load_weights(weights_file)

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        if analysis is None:
            from assistant.motion.analyze import analyze_frames

            analysis = analyze_frames(clip.onset_frame, clip.apex_frame, self.motion_config, clip=clip)
        rules = self.rules.detect(clip, analysis)
        from assistant.au.blendshapes import frame_blendshapes, score_blendshapes

        onset, apex = frame_blendshapes(clip, analysis, self.blend.landmarks)
        codes = [s.code for s in rules.scores]
        blend = score_blendshapes(onset, apex, codes, self.blend.floors)
        z = {s.code: s.z for s in signals(onset, apex, codes, self.blend.floors)}
        return combine(rules, blend, z, self.weights, analysis.regions)
