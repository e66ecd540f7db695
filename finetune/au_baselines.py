"""Reference adapters for `meu train au` (same interface as finetune/au.py documents), scored by the same code.

- `always_positive`: every AU predicted present (probability 1): the F1 floor a detector must beat.
- `prior`: each AU drawn present at random with its frequency in the fold's *training* labels (seeded).
- `rules`: the training-free motion-rules detector (assistant.au.rules) on the onset/apex frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class _NoCheckpoint:
    def save(self, out_dir: Path, thresholds: list[float]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps({"model": type(self).__name__, "aus": self.aus,
                                                         "thresholds": thresholds}, indent=2))


class AlwaysPositive(_NoCheckpoint):
    def __init__(self, config, aus: list[int]):
        self.aus = list(aus)

    def fit(self, train, val) -> dict:
        return {}

    def predict(self, data) -> np.ndarray:
        return np.ones((len(data.records), len(self.aus)))


class TrainingPrior(_NoCheckpoint):
    def __init__(self, config, aus: list[int]):
        self.aus = list(aus)
        self.rng = np.random.default_rng(config.seed)
        self.prior = np.zeros(len(aus))

    def fit(self, train, val) -> dict:
        if len(train.labels):  # over the clips whose dataset codes the AU (-1: not coded)
            known = train.labels >= 0
            self.prior = np.where(known, train.labels, 0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
        return {"prior": self.prior.tolist()}

    def predict(self, data) -> np.ndarray:
        return (self.rng.random((len(data.records), len(self.aus))) < self.prior).astype(float)


class RulesAdapter(_NoCheckpoint):
    def __init__(self, config, aus: list[int]):
        from assistant.motion.analyze import MotionConfig

        self.aus = list(aus)
        self.motion = MotionConfig(landmarks=config.landmarks)

    def fit(self, train, val) -> dict:
        return {}

    def predict(self, data) -> np.ndarray:
        from assistant.au.rules import score_regions
        from assistant.motion.analyze import analyze_frames
        from assistant.motion.clip import read_image

        out = []
        for r in data.records:
            analysis = analyze_frames(read_image(r.frame_paths[r.onset]), read_image(r.frame_paths[r.apex]),
                                      self.motion)
            ev = score_regions(analysis.regions, self.aus, size=analysis.crop.size)
            out.append([ev.probability(a) for a in self.aus])
        return np.array(out).reshape(-1, len(self.aus))
