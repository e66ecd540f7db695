"""The `aullm` detector backend: a trained AU-LLM checkpoint applied to one clip.

Frames: onset..apex read again from the clip's source (video or frame folder) in one pass; for an onset+apex
image pair the intermediate frames are linear blends of the two (the network sees the same end points and a
smooth ramp). The face box is the motion analysis' crop box when one is given, else found on the onset frame.
Per-AU thresholds stored in the checkpoint (chosen on training subjects) are folded into the probabilities with
the monotone map t -> 0.5, so the evidence keeps the single threshold 0.5 everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.au.base import make_evidence
from assistant.au.preprocess import face_crop_grey, span_indices
from assistant.types import AUEvidence, Clip, CropBox, MotionAnalysis


def calibrate(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Piecewise-linear monotone map sending each AU's threshold to 0.5 (0 -> 0, 1 -> 1)."""
    t = np.clip(thresholds, 1e-6, 1 - 1e-6)
    return np.where(p < t, 0.5 * p / t, 0.5 + 0.5 * (p - t) / (1 - t))


def clip_frames(clip: Clip, max_frames: int = 24) -> list[np.ndarray]:
    """RGB frames from onset to apex (see the module docstring for image pairs)."""
    src = Path(clip.source) if clip.source and not clip.source.startswith("<") else None
    if src is not None and src.exists() and clip.n_frames > 2:  # a video or a frame folder
        from assistant.motion.clip import open_source

        return open_source(str(src)).read(span_indices(clip.onset, clip.apex, max_frames))
    a, b = clip.onset_frame.astype(np.float32), clip.apex_frame.astype(np.float32)
    return [np.clip(a + (b - a) * w, 0, 255).astype(np.uint8) for w in np.linspace(0, 1, 6)]


class AULLMDetector:
    name = "aullm"

    def __init__(self, checkpoint: str | Path, landmarks: str = "mediapipe"):
        import torch

        from assistant.au.checkpoint import load_aullm

        self._torch = torch
        self.model, self.tokenizer, self.meta = load_aullm(checkpoint)
        self.aus = list(self.model.config.aus)
        self.thresholds = np.asarray(self.meta.get("thresholds", [0.5] * len(self.aus)), dtype=np.float64)
        self.landmarks = landmarks

    def predict_tensor(self, x: np.ndarray) -> np.ndarray:
        """(B, T, 64, 64) float frames in 0..1 -> (B, n_aus) raw probabilities."""
        with self._torch.no_grad():
            return self._torch.sigmoid(self.model(self._torch.from_numpy(x))).numpy()

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        import cv2

        from assistant.au.preprocess import clip_tensor
        from assistant.motion.face import apply_crop

        cfg = self.model.config
        frames = clip_frames(clip)
        if analysis is not None:
            c = analysis.crop
            box = CropBox(c.x0, c.y0, c.x1, c.y1, cfg.size)
            crops = np.stack([cv2.cvtColor(apply_crop(f, box), cv2.COLOR_RGB2GRAY) for f in frames])
        else:
            crops, _ = face_crop_grey(frames, cfg.size, landmarks=self.landmarks)
        p = self.predict_tensor(clip_tensor(crops, cfg.n_frames)[None])[0]
        return make_evidence(self.aus, calibrate(p, self.thresholds), "aullm")
