"""Training adapter for Micro-AU CLIP (`--model microau_clip`) behind the interface documented in finetune/au.py.

One fold: a fresh model built from the CLIP backbone (`clip_backbone`, hub name or folder). Its inputs are the
onset->apex flow images (`--clip-input flow_image`, published) or noise-normalised motion images (`motion`) and the
apex landmarks, computed once per clip and cached under `cache_dir/microau_clip`. Each clip is analysed as `meu eval`
and the app analyse it (`analyze_clip` on its frame folder: the same crop, compensation and noise floor), and its
input comes from `analysis_inputs`, the path serving uses.

Published recipe: SGD with momentum, lr 0.001 for the trainable CLIP layers and 0.01 for the new modules, both
divided by 10 half-way through `epochs`; loss = classification + alpha * contrastive + beta * dependency. Early
stopping on the validation subjects' loss (training subjects only), the best epoch's weights restored.

The Micro-AU CLIP settings (`MicroAUCLIPOptions`) are read from the run config when it has them, else their
defaults apply; `TrainMicroAUCLIPConfig` is the run config with them added (used by `main` here and by tests).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from assistant.au.aullm_input import REGION_KEYS, REGION_VALUES
from assistant.au.microau_clip import MicroAUCLIP, MicroAUCLIPConfig
from assistant.au.microau_clip_io import (
    analysis_inputs,
    analysis_regions,
    build_model,
    mirror_inputs,
    pixel_values,
    save_microau_clip,
)
from assistant.errors import ConfigError
from assistant.motion import gaze
from assistant.motion.analyze import MOTION_CORE, MotionConfig
from finetune.au import TrainAUConfig, train_epochs
from finetune.input_cache import cached_arrays, record_analysis
from finetune.readout import fit_readout, set_readout

log = logging.getLogger(__name__)


@dataclass
class MicroAUCLIPOptions:
    clip_backbone: str = field(default="openai/clip-vit-base-patch32",
                               metadata={"help": "Micro-AU CLIP: CLIP checkpoint name or local folder"})
    clip_lr_encoder: float = field(default=0.001, metadata={"help": "Micro-AU CLIP: SGD lr of the CLIP layers"})
    clip_lr_heads: float = field(default=0.01, metadata={"help": "Micro-AU CLIP: SGD lr of the new modules"})
    clip_momentum: float = field(default=0.9, metadata={"help": "Micro-AU CLIP: SGD momentum"})
    clip_trainable_layers: int = field(default=3, metadata={"help": "Micro-AU CLIP: last layers of each encoder "
                                                                    "that train"})
    clip_alpha: float = field(default=0.5, metadata={"help": "Micro-AU CLIP: weight of the contrastive loss"})
    clip_beta: float = field(default=0.5, metadata={"help": "Micro-AU CLIP: weight of the dependency loss"})
    clip_flow: str = field(default="tvl1", metadata={"help": "Micro-AU CLIP: optical flow method",
                                                     "choices": ["tvl1", "dis"]})
    clip_input: str = field(default="flow_image", metadata={
        "help": "Micro-AU CLIP: flow_image (published: flow on a fixed 2 px scale) or motion (noise-normalised, "
                "face-masked; assistant.au.motion_input)", "choices": ["flow_image", "motion"]})
    clip_direct: bool = field(default=False, metadata={
        "help": "Micro-AU CLIP: add a linear read-out of the motion table (AU-LLM's region token values) to the "
                "logits; ours, not in the paper (assistant.au.microau_clip)"})
    clip_lr_direct: float = field(default=1.0, metadata={"help": "Micro-AU CLIP: SGD lr of the --clip-direct "
                                                                  "read-out"})
    clip_direct_c: float = field(default=0.0, metadata={
        "help": "Micro-AU CLIP: 0 trains the --clip-direct read-out by SGD with the rest; above 0 fits it first as an "
                "L2 logistic regression with this inverse regularisation (scikit-learn) on the training clips, and "
                "holds it fixed while the CLIP path trains"})
    clip_zero_classifier: bool = field(default=False, metadata={
        "help": "Micro-AU CLIP: the CLIP path's per-AU classifiers start at zero instead of random, so before it has "
                "learned anything it adds nothing to the --clip-direct read-out's logits"})
    clip_mirror: bool = field(default=False, metadata={
        "help": "Micro-AU CLIP: train on half the clips mirrored (AU codes carry no side), as AU-LLM does; the "
                "motion input only (the published flow image stores direction as hue)"})

    def __post_init__(self):
        if self.clip_direct_c < 0 or (self.clip_direct_c and not self.clip_direct):
            raise ConfigError(f"--clip-direct-c {self.clip_direct_c} fits the --clip-direct read-out: give a value "
                              "above 0 with --clip-direct, or 0 to train it by SGD.")
        if self.clip_direct_c and self.clip_lr_direct != 1.0:
            raise ConfigError("--clip-lr-direct is the rate of a read-out trained by SGD, and --clip-direct-c fits it "
                              "and holds it instead: give one of them.")
        if self.clip_mirror and self.clip_input != "motion":
            raise ConfigError("--clip-mirror flips the motion input, and --clip-input flow_image stores direction as "
                              "hue, which a mirror cannot flip: add --clip-input motion or leave --clip-mirror off.")


@dataclass
class TrainMicroAUCLIPConfig(TrainAUConfig, MicroAUCLIPOptions):
    model: str = field(default="microau_clip", metadata={"help": "model family (see finetune.au.MODELS)"})

    def __post_init__(self):
        TrainAUConfig.__post_init__(self)
        MicroAUCLIPOptions.__post_init__(self)


def options(config) -> MicroAUCLIPOptions:
    names = [f.name for f in dataclasses.fields(MicroAUCLIPOptions)]
    return MicroAUCLIPOptions(**{n: getattr(config, n) for n in names if hasattr(config, n)})


# 2: inputs from analyze_clip (the serving path) and `input` in the key; 3: frame fingerprints; 4: the motion core
# fits rigid3d with and without the nose bridge; 5: the eyes' openings are masked. Since then the key holds
# MOTION_CORE, so a change of the motion core renews the inputs without a bump here.
CACHE_FORMAT = 5


def record_inputs(records: Sequence, cfg: MicroAUCLIPConfig, motion: MotionConfig, cache: Path | None,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(flow images (N, S, S, 3) uint8, apex landmarks (N, 68, 2), the motion table's values (N, F) with `direct`
    else None) for Records, each computed once into `cache`."""
    def compute(rec) -> dict[str, np.ndarray]:
        analysis = record_analysis(rec, motion)
        image, lm = analysis_inputs(analysis, cfg)
        regions = analysis_regions(analysis, cfg)
        return {"image": image, "landmarks": lm, **({"regions": regions} if regions is not None else {})}

    settings = (CACHE_FORMAT, MOTION_CORE, cfg.image_size, cfg.flow_max_px, cfg.input, motion.landmarks, motion.flow,
                motion.compensation, motion.size, motion.margin, motion.noise, gaze.opening_margin(motion.eyes))
    # the read-out's values are stored beside the image: its runs have files of their own, the others keep theirs
    settings += ("regions",) if cfg.direct else ()
    arrays = cached_arrays(records, cache, settings, compute, "micro-AU CLIP inputs", progress)
    regions = np.stack([a["regions"] for a in arrays]) if cfg.direct else None
    return np.stack([a["image"] for a in arrays]), np.stack([a["landmarks"] for a in arrays]), regions


def fit_direct(regions: np.ndarray, labels: np.ndarray, c: float, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """The read-out fitted on the training clips' region values (finetune.readout), with their mirror images when
    training mirrors."""
    from assistant.au.aullm_input import mirror_regions

    if mirror:
        regions, labels = np.concatenate([regions, mirror_regions(regions)]), np.concatenate([labels, labels])
    return fit_readout(regions, labels, c)


def make_optimizer(model: MicroAUCLIP, opts: MicroAUCLIPOptions, weight_decay: float, epochs: int):
    """SGD with the two learning rates, and the half-way /10 step (the scheduler steps once per epoch)."""
    groups = [{"params": model.encoder_parameters(), "lr": opts.clip_lr_encoder},
              {"params": model.head_parameters(), "lr": opts.clip_lr_heads}]
    if model.direct is not None and model.direct.weight.requires_grad:
        groups.append({"params": model.direct_parameters(), "lr": opts.clip_lr_direct})
    opt = torch.optim.SGD(groups, momentum=opts.clip_momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, epochs // 2)], gamma=0.1)
    return opt, sched


class MicroAUCLIPAdapter:
    def __init__(self, config, aus: list[int]):
        self.cfg = config
        self.opts = options(config)
        self.aus = list(aus)
        self.model: MicroAUCLIP | None = None
        self.model_config = MicroAUCLIPConfig(aus=tuple(self.aus), trainable_layers=self.opts.clip_trainable_layers,
                                              alpha=self.opts.clip_alpha, beta=self.opts.clip_beta,
                                              input=self.opts.clip_input, direct=self.opts.clip_direct,
                                              region_features=len(REGION_KEYS) * REGION_VALUES
                                              if self.opts.clip_direct else 0)
        self.motion = MotionConfig(landmarks=config.landmarks, flow=self.opts.clip_flow, drift="none")
        self.cache = Path(config.cache_dir) / "microau_clip" if config.cache_dir else None

    def _inputs(self, data) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return record_inputs(data.records, self.model_config, self.motion, self.cache, self.cfg.progress)

    def _batches(self, images, points, regions, labels, order, rng=None):
        """Tensors per batch in `order`; with `rng` (training) and `clip_mirror`, half the clips mirrored."""
        for s in range(0, len(order), self.cfg.batch_size):
            idx = order[s:s + self.cfg.batch_size]
            x, lm, r = images[idx], points[idx], regions[idx] if regions is not None else None
            if rng is not None and self.opts.clip_mirror:
                flip = rng.random(len(idx)) < 0.5
                x[flip], lm[flip], flipped = mirror_inputs(x[flip], lm[flip], r[flip] if r is not None else None)
                if r is not None:
                    r[flip] = flipped
            yield (pixel_values(x), torch.from_numpy(lm), torch.from_numpy(r) if r is not None else None,
                   torch.from_numpy(labels[idx].astype(np.float32)))

    def _val_loss(self, images, points, regions, labels) -> float:
        self.model.eval()
        total = 0.0
        with torch.no_grad():
            for x, lm, r, y in self._batches(images, points, regions, labels, np.arange(len(labels))):
                total += float(self.model.loss(self.model(x, lm, r), y)["loss"]) * len(y)
        return total / len(labels)

    def fit(self, train, val) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.model, self.tokenizer = build_model(self.opts.clip_backbone, self.model_config)
        self.model_config = self.model.config
        if self.opts.clip_zero_classifier:
            torch.nn.init.zeros_(self.model.cls_weight)
        images, points, regions = self._inputs(train)
        if self.opts.clip_direct_c:
            set_readout(self.model.direct, *fit_direct(regions, train.labels, self.opts.clip_direct_c,
                                                        self.opts.clip_mirror))
        opt, sched = make_optimizer(self.model, self.opts, cfg.weight_decay, cfg.epochs)
        val_inputs = self._inputs(val) if val is not None and len(val.records) else None

        def run_epoch() -> float:
            self.model.train()
            losses = []
            for x, lm, r, y in self._batches(images, points, regions, train.labels,
                                             rng.permutation(len(train.labels)), rng):
                loss = self.model.loss(self.model(x, lm, r), y)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            sched.step()
            return float(np.mean(losses))

        return train_epochs(
            cfg.epochs, cfg.patience, run_epoch,
            (lambda: self._val_loss(*val_inputs, val.labels)) if val_inputs is not None else None,
            lambda: copy.deepcopy(self.model.state_dict()), self.model.load_state_dict, cfg.progress)

    def predict(self, data) -> np.ndarray:
        self.model.eval()
        images, points, regions = self._inputs(data)
        out = []
        with torch.no_grad():
            for x, lm, r, _ in self._batches(images, points, regions, data.labels, np.arange(len(data.records))):
                out.append(torch.sigmoid(self.model(x, lm, r).logits).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.aus)))

    def save(self, out_dir: Path, thresholds: list[float]) -> None:
        save_microau_clip(self.model, self.opts.clip_backbone, out_dir, thresholds,
                          extra={"motion": {"eyes": self.motion.eyes}})
