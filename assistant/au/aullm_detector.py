"""The `aullm` detector backend: a trained AU-LLM checkpoint applied to one clip.

The input comes from `assistant.au.aullm_input`, the path training took. A checkpoint with the motion input or the
region token stores the motion settings it was trained with (`motion` in its config); a clip whose analysis was run
with other settings (another flow, compensation, landmarks, crop size or eye mask) is analysed again with the stored
ones, so the network never sees an input it was not trained on. (The noise method is not recorded in an analysis;
the app and `meu eval` always run `auto`, as training does.) The published input (`frames`, no region token) needs
no analysis: with one, its face box is used; without, the box is drawn around the onset landmarks the same way.
Per-AU thresholds stored in the checkpoint (chosen on training subjects) are folded into the probabilities with
the monotone map t -> 0.5, so the evidence keeps the single threshold 0.5 everywhere.
"""

from __future__ import annotations

import logging

import numpy as np

from assistant.au.aullm_input import AULLMInput, analysis_input, frame_crops, model_tensor, readable_source
from assistant.au.base import make_evidence
from assistant.types import AUEvidence, Clip, MotionAnalysis

log = logging.getLogger(__name__)


def calibrate(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Piecewise-linear monotone map sending each AU's threshold to 0.5 (0 -> 0, 1 -> 1)."""
    t = np.clip(thresholds, 1e-6, 1 - 1e-6)
    return np.where(p < t, 0.5 * p / t, 0.5 + 0.5 * (p - t) / (1 - t))


def matches(analysis: MotionAnalysis, motion) -> bool:
    """Whether `analysis` was run with the settings the input needs (its crop box is the one `motion`'s size and
    margin draw around its landmarks, no drift was cancelled where training cancelled none, and the eyes' openings
    were masked or read as in training)."""
    from assistant.motion.face import crop_box

    b = analysis.backends
    return (b.get("landmarks"), b.get("flow"), b.get("compensation")) == (
        motion.landmarks, motion.flow, motion.compensation) and analysis.crop == crop_box(
        analysis.landmarks, motion.size, motion.margin) and (
        motion.drift != "none" or not analysis.field.drift.get("cancelled")) and b.get("eyes") == motion.eyes


def analyse(clip: Clip, motion) -> MotionAnalysis:
    """The clip's analysis as training ran it: from its video or frame folder when it has one (the null pair's noise
    floor included), else from its two frames."""
    from assistant.motion.analyze import analyze_clip, analyze_frames

    src = readable_source(clip)
    if src is None:
        return analyze_frames(clip.onset_frame, clip.apex_frame, motion, clip)
    return analyze_clip(src, onset=clip.onset, apex=clip.apex, offset=clip.offset, config=motion)


class AULLMDetector:
    name = "aullm"

    def __init__(self, checkpoint, landmarks: str = "mediapipe"):
        import torch

        from assistant.au.checkpoint import load_aullm, warn_motion_core
        from assistant.motion.analyze import MotionConfig

        self._torch = torch
        self.model, self.tokenizer, self.meta = load_aullm(checkpoint)
        if self.model.config.input == "motion" or self.model.config.regions:
            warn_motion_core(checkpoint, self.meta)
        self.aus = list(self.model.config.aus)
        self.thresholds = np.asarray(self.meta.get("thresholds", [0.5] * len(self.aus)), dtype=np.float64)
        self.landmarks = landmarks
        # a checkpoint from before drift cancellation was trained without it (its meta has no "drift"), and one from
        # before the eyes' openings were masked on them read as skin (no "eyes")
        self.motion = MotionConfig(**{"drift": "none", "eyes": "read",
                                      **self.meta.get("motion", {"landmarks": landmarks})})

    def predict_tensor(self, x: np.ndarray, regions: np.ndarray | None = None) -> np.ndarray:
        """(B, ...) model tensors -> (B, n_aus) raw probabilities."""
        with self._torch.no_grad():
            r = self._torch.from_numpy(regions) if regions is not None else None
            return self._torch.sigmoid(self.model(self._torch.from_numpy(x), r)).numpy()

    def clip_input(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AULLMInput:
        cfg = self.model.config
        if cfg.input == "frames" and not cfg.regions:
            if analysis is not None:
                box = analysis.crop
            else:
                from assistant.au.preprocess import onset_box

                box = onset_box(clip.onset_frame, self.landmarks)
            return AULLMInput(frame_crops(clip, box, cfg.size), None)
        if analysis is None or not matches(analysis, self.motion):
            if analysis is not None:
                log.info("AU-LLM analyses the clip again with its training settings (%s)", self.motion)
            analysis = analyse(clip, self.motion)
        return analysis_input(analysis, cfg, self.motion)

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        inp = self.clip_input(clip, analysis)
        regions = inp.regions[None] if inp.regions is not None else None
        p = self.predict_tensor(model_tensor(inp, self.model.config)[None], regions)[0]
        return make_evidence(self.aus, calibrate(p, self.thresholds), "aullm")
