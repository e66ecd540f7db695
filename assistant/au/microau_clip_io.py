"""Micro-AU CLIP at the edges: its input transform, building it from a CLIP checkpoint, saving/loading, the backend.

Input transform: the head-compensated onset->apex flow of the working crop is drawn as an HSV image (hue = flow
angle, full saturation, value = magnitude / `flow_max_px`, a fixed scale so a still face stays dark) and resized to
the CLIP image size; the 68 landmarks are the onset crop landmarks moved by the flow under them (= the apex
landmarks, without a second face detection), scaled to the same image.

Checkpoints use `assistant.au.checkpoint`'s folder format (`model.safetensors` + `config.json`): the tensors
training changed (new modules, unfrozen CLIP layers) and a config naming the CLIP backbone, which is rebuilt with
`from_pretrained` (hub name or folder) on load, as AU-LLM does with its LLM.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from assistant.au.au_sentences import au_sentence_table, emotion_sentences
from assistant.au.aullm_detector import calibrate
from assistant.au.base import make_evidence
from assistant.au.checkpoint import (
    check_thresholds,
    head_config,
    read_checkpoint,
    save_checkpoint,
    warn_motion_core,
)
from assistant.au.microau_clip import MicroAUCLIP, MicroAUCLIPConfig
from assistant.au.motion_input import motion_image
from assistant.config import resolved_setting
from assistant.emotions import SCHEME_CLASSES
from assistant.errors import BackendError
from assistant.types import AUEvidence, Clip, MotionAnalysis, MotionField

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def flow_image(flow: np.ndarray, flow_max_px: float, size: int) -> np.ndarray:
    """(H, W, 2) flow -> (size, size, 3) RGB uint8: hue = direction, brightness = magnitude on a fixed scale."""
    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32), angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang / 2.0).astype(np.uint8) % 180
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / flow_max_px * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def apex_landmarks(points68: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Onset landmarks (crop pixels) moved by the flow at their (clamped) pixel."""
    h, w = flow.shape[:2]
    xi = np.clip(np.round(points68[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(points68[:, 1]).astype(int), 0, h - 1)
    return points68 + flow[yi, xi]


INPUTS = ("flow_image", "motion")


def model_inputs(field: MotionField, points68: np.ndarray, config: MicroAUCLIPConfig) -> tuple[np.ndarray, np.ndarray]:
    """(input image (S, S, 3) uint8, apex landmarks (68, 2) float32 in that image's pixels): the published flow image
    or the noise-normalised motion image, as `config.input` says."""
    if config.input not in INPUTS:
        raise BackendError(f"Unknown Micro-AU CLIP input {config.input!r}; use one of {', '.join(INPUTS)}.")
    flow = field.flow
    scale = config.image_size / flow.shape[1]
    if config.input == "motion":
        image = motion_image(field, config.image_size)
    else:
        image = flow_image(flow, config.flow_max_px, config.image_size)
    return image, (apex_landmarks(points68, flow) * scale).astype(np.float32)


def analysis_inputs(analysis: MotionAnalysis, config: MicroAUCLIPConfig) -> tuple[np.ndarray, np.ndarray]:
    """The one input path of training, `meu eval` and the app: the clip's motion analysis -> the model's input."""
    return model_inputs(analysis.field, analysis.crop_landmarks.points68, config)


def analysis_regions(analysis: MotionAnalysis, config: MicroAUCLIPConfig) -> np.ndarray | None:
    """The motion table's values the direct read-out takes (AU-LLM's region token, the same function), else None."""
    if not config.direct:
        return None
    from assistant.au.aullm_input import region_features

    return region_features(analysis.regions, analysis.field.noise_px, analysis.onset_crop.shape[0])


def _mirror68() -> list[int]:
    """The 68-point scheme's index of each point's mirror partner (the person's right and left swap)."""
    pairs = [*zip(range(0, 8), range(16, 8, -1)), *zip(range(17, 22), range(26, 21, -1)), (31, 35), (32, 34),
             (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59),
             (56, 58), (60, 64), (61, 63), (65, 67)]
    index = list(range(68))
    for a, b in pairs:
        index[a], index[b] = b, a
    return index


MIRROR68 = _mirror68()


def mirror_inputs(images: np.ndarray, points: np.ndarray,
                  regions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Motion images (B, S, S, 3) uint8, their landmarks and region values seen in a mirror (training augmentation;
    AU codes carry no side): the image flips left-right and its u channel changes sign about the still level 128,
    the landmarks' x flips and each takes its partner's index (the mirrored right lid is the left lid), the regions
    swap sides. The published flow image stores direction as hue and has no such flip."""
    from assistant.au.aullm_input import mirror_regions

    images = images[:, :, ::-1].copy()
    images[..., 0] = 256 - images[..., 0].astype(np.int16)  # 128 + 127 c -> 128 - 127 c, still within 1..255
    points = points[..., MIRROR68, :].copy()
    points[..., 0] = images.shape[2] - 1 - points[..., 0]
    return images, points, mirror_regions(regions) if regions is not None else None


def pixel_values(images: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float normalised with CLIP's mean and std."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0).permute(0, 3, 1, 2)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def tokenize(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _load_clip(path: str | Path):
    from transformers import AutoTokenizer, CLIPModel

    try:
        return CLIPModel.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise BackendError(f"Cannot load a CLIP model and tokenizer from {path}: {err}") from None


def build_model(clip_path: str | Path, config: MicroAUCLIPConfig | None = None):
    """Micro-AU CLIP around the CLIP at `clip_path` (hub name or folder). Returns (model, tokenizer)."""
    config = config or MicroAUCLIPConfig()
    clip, tokenizer = _load_clip(clip_path)
    grid = clip.config.vision_config.image_size // clip.config.vision_config.patch_size
    config = dataclasses.replace(config, image_size=clip.config.vision_config.image_size,
                                 patch_size=clip.config.vision_config.patch_size)
    log.info("Micro-AU CLIP on %s: %dx%d patch grid, AUs %s", clip_path, grid, grid, list(config.aus))
    pairs = au_sentence_table(config.aus)
    ids, mask = tokenize(tokenizer, [s for pos, neg in pairs for s in (neg, pos)])
    return MicroAUCLIP(clip, config, ids, mask), tokenizer


def trainable_state(model: MicroAUCLIP) -> dict[str, torch.Tensor]:
    """The tensors training changes: the new modules and the unfrozen CLIP layers (the rest is the backbone's)."""
    return {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()
            if not k.startswith("clip.") or v.requires_grad}


def save_microau_clip(model: MicroAUCLIP, backbone: str | Path, out_dir: str | Path,
                      thresholds: list[float] | None = None, extra: dict | None = None) -> Path:
    """Checkpoint folder (helper format of `assistant.au.checkpoint`): trained tensors + JSON naming the backbone."""
    config = {"model": "microau_clip", "backbone": resolved_setting(str(backbone)),
              "microau_clip": dataclasses.asdict(model.config),
              "thresholds": thresholds or [0.5] * len(model.config.aus), **(extra or {})}
    return save_checkpoint(trainable_state(model), config, out_dir)


def load_microau_clip(path: str | Path):
    """(model in eval mode, tokenizer, config dict) from a folder written by `save_microau_clip`.

    The backbone is rebuilt with `from_pretrained` from the name or folder stored in the config.
    """
    state, config = read_checkpoint(path, "microau_clip")
    if config.get("model") != "microau_clip":
        raise BackendError(f"{path} holds a {config.get('model')!r} checkpoint, not a Micro-AU CLIP one.")
    head = head_config(path, lambda d: MicroAUCLIPConfig(**dict(d, aus=tuple(d["aus"]))), config["microau_clip"])
    check_thresholds(path, config, head.aus)
    model, tokenizer = build_model(config["backbone"], head)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k in trainable_state(model)]
    if missing or unexpected:
        raise BackendError(f"Checkpoint {path} does not match its config: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}.")
    return model.eval(), tokenizer, config


@torch.no_grad()
def recognise_emotions(model: MicroAUCLIP, tokenizer, au_features: torch.Tensor, classes: tuple[str, ...]) -> list[str]:
    """Emotion-label-free recognition: per sample, the class whose label sentence is closest, summed over AUs."""
    ids, mask = tokenize(tokenizer, emotion_sentences(classes))
    scores = model.emotion_scores(au_features, model.encode_text(ids, mask))
    return [classes[i] for i in scores.argmax(dim=1).tolist()]


class MicroAUCLIPDetector:
    """AU detector backend `microau_clip`: a trained checkpoint applied to the clip's motion analysis.

    The per-AU thresholds stored in the checkpoint (chosen on training subjects) are folded into the probabilities
    as the `aullm` backend does (`calibrate`), so an AU is active when its raw probability reaches its own threshold.
    """

    name = "microau_clip"

    def __init__(self, checkpoint: str | Path, threshold: float = 0.5, motion=None):
        from assistant.motion.analyze import MotionConfig

        self.model, self.tokenizer, config = load_microau_clip(checkpoint)
        warn_motion_core(checkpoint, config)  # its input is always the motion core's flow
        self.thresholds = np.asarray(config.get("thresholds") or [0.5] * len(self.model.config.aus), np.float64)
        self.threshold = threshold
        # a checkpoint from before the eyes' openings were masked was trained on them read as skin
        self.eyes = config.get("motion", {}).get("eyes", "read")
        # used when no analysis is passed in
        self.motion = dataclasses.replace(motion or MotionConfig(), eyes=self.eyes)

    def _forward(self, clip: Clip, analysis: MotionAnalysis | None):
        if analysis is None:
            from assistant.motion.analyze import analyze_frames

            analysis = analyze_frames(clip.onset_frame, clip.apex_frame, self.motion, clip)
        elif analysis.field.drift.get("cancelled") or analysis.backends.get("eyes") != self.eyes:
            # trained on onset -> apex fields with no drift cancelled, and the eyes as its checkpoint says
            from assistant.au.aullm_detector import analyse
            from assistant.motion.analyze import MotionConfig

            b = analysis.backends
            analysis = analyse(clip, MotionConfig(landmarks=b["landmarks"], flow=b["flow"],
                                                  compensation=b["compensation"], drift="none", eyes=self.eyes))
        image, landmarks = analysis_inputs(analysis, self.model.config)
        regions = analysis_regions(analysis, self.model.config)
        with torch.no_grad():
            return self.model(pixel_values(image[None]), torch.from_numpy(landmarks[None]),
                              torch.from_numpy(regions[None]) if regions is not None else None)

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        out = self._forward(clip, analysis)
        probs = calibrate(torch.sigmoid(out.logits[0]).double().numpy(), self.thresholds)
        return make_evidence(self.model.config.aus, probs, self.name, threshold=self.threshold)

    def recognise_emotion(self, clip: Clip, analysis: MotionAnalysis | None = None, scheme: str = "5") -> str:
        """One of `SCHEME_CLASSES[scheme]`, chosen without any emotion-label training."""
        out = self._forward(clip, analysis)
        return recognise_emotions(self.model, self.tokenizer, out.au_features, SCHEME_CLASSES[scheme])[0]
