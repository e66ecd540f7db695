"""Training adapter for AU-LLM (`--model aullm`) behind the interface documented in finetune/au.py.

One fold: a fresh AU-LLM over the backbone, Adam on the trainable parameters only (LoRA, LED + 3D-CNN, fusion,
head, and the AULLM++ graph / soft prompt / region token / direct read-out when on; the read-out at its own
`direct_lr`), asymmetric loss, six jittered frames per clip per step (`input: frames`) or the clip's motion sequence
(`input: motion`), half the clips mirrored, early stopping on the validation subjects' loss, the best epoch's
weights restored.

Inputs: `input: frames` without the region token reads the published crops from `ClipCache` (no flow needed).
Otherwise each clip is analysed as `meu eval` and the app analyse it and its input comes from
`assistant.au.aullm_input.analysis_input`, the path serving takes, cached once per clip (`finetune.input_cache`). The
motion settings are stored in the checkpoint, and serving analyses with them.

Counterfactual consistency (AULLM++, weight `counterfactual`): for every training clip a counterfactual clip is
built with the expression removed and the face kept (its onset frame six times; with the motion input and the
region token, no motion at all). Its prediction must say "no AU": the loss adds
weight * ASL(logits(static clip), all-zero targets), which stops the head from answering from appearance (who the
subject is) instead of from motion.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from assistant.au.aullm import AULLMConfig, asymmetric_loss
from assistant.au.aullm_input import REGION_KEYS, REGION_VALUES, AULLMInput, analysis_input, mirror, model_tensor
from assistant.au.checkpoint import build_aullm, save_aullm
from assistant.au.graph import cooccurrence_prior
from assistant.au.preprocess import ClipCache
from assistant.motion import gaze
from assistant.motion.analyze import MOTION_CORE, MotionConfig
from finetune.au import train_epochs
from finetune.input_cache import cached_arrays, record_analysis
from finetune.readout import fit_readout, set_readout

log = logging.getLogger(__name__)

# 2: the motion core fits rigid3d with and without the nose bridge; 3: the eyes' openings are masked. Since then the
# key holds MOTION_CORE, so a change of the motion core renews the inputs without a bump here.
CACHE_FORMAT = 3


def optimizer(model, cfg) -> torch.optim.Adam:
    """Adam over the trainable parameters at `lr`; the direct read-out, when there is one, at `direct_lr`."""
    direct = [p for n, p in model.named_parameters() if n.startswith("direct.") and p.requires_grad]
    deep = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("direct.")]
    groups = [{"params": deep}] + ([{"params": direct, "lr": cfg.direct_lr}] if direct else [])
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


class AULLMAdapter:
    def __init__(self, config, aus: list[int]):
        self.cfg = config
        self.aus = list(aus)
        self.model = None
        self.cache = ClipCache(Path(config.cache_dir) / config.dataset, max_frames=config.max_frames,
                               landmarks=config.landmarks)
        self.model_config = AULLMConfig(aus=self.aus, fusion=config.fusion, soft_prompt=config.soft_prompt,
                                        graph=config.graph, input=config.input, regions=config.regions,
                                        direct=config.direct, direct_grid=config.direct_grid,
                                        direct_magnitude=config.direct_magnitude,
                                        region_features=len(REGION_KEYS) * REGION_VALUES if config.regions else 0)
        # the inputs read onset -> apex as `record_analysis` runs it, with no offset frame: no drift is cancelled
        self.motion = MotionConfig(landmarks=config.landmarks, flow=config.flow, drift="none")

    def inputs(self, records) -> list[AULLMInput]:
        """Each record's model input, from the cache when an earlier pass stored it (benchmarks read it too)."""
        mc = self.model_config
        if mc.input == "frames" and not mc.regions:
            return [AULLMInput(crops, None) for crops in self._crops(records)]
        # the region token is cheap beside the flows: always stored, so runs with and without it share the cache
        with_regions = dataclasses.replace(mc, regions=True)

        def compute(rec) -> dict[str, np.ndarray]:
            inp = analysis_input(record_analysis(rec, self.motion), with_regions, self.motion)
            return {"x": inp.x, "regions": inp.regions}

        m = self.motion
        settings = (CACHE_FORMAT, MOTION_CORE, mc.input, mc.n_frames, mc.size, m.landmarks, m.flow, m.compensation,
                    m.size, m.margin, m.noise, gaze.opening_margin(m.eyes))
        cache = Path(self.cfg.cache_dir) / "aullm_inputs" if self.cfg.cache_dir else None
        arrays = cached_arrays(records, cache, settings, compute, "AU-LLM inputs", self.cfg.progress)
        return [AULLMInput(a["x"], a["regions"] if mc.regions else None) for a in arrays]

    def _crops(self, records) -> list[np.ndarray]:
        # a record of another dataset (cross protocol) has its own cache folder
        out = []
        for r in records:
            cache = self.cache if r.dataset == self.cfg.dataset else ClipCache(
                self.cache.root.parent / r.dataset, max_frames=self.cfg.max_frames, landmarks=self.cfg.landmarks)
            out.append(cache.get(r))
        return out

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(logits, y, self.cfg.gamma_neg, self.cfg.gamma_pos, self.cfg.clip)

    def _batches(self, inputs: list[AULLMInput], labels, rng, jitter):
        """(x, region features or None, labels) per batch; at training time (`jitter`) shuffled, frames jittered
        and half the clips mirrored (AU codes carry no side, so the labels stay valid)."""
        mc = self.model_config
        order = rng.permutation(len(inputs)) if jitter else np.arange(len(inputs))
        bs = self.cfg.batch_size
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            x = np.stack([model_tensor(inputs[i], mc, jitter, rng) for i in idx])
            regions = np.stack([inputs[i].regions for i in idx]) if mc.regions else None
            if jitter:
                flip = rng.random(len(idx)) < 0.5
                x[flip], flipped = mirror(x[flip], regions[flip] if regions is not None else None,
                                          mc.input == "motion")
                if regions is not None:
                    regions[flip] = flipped
            yield (torch.from_numpy(x), torch.from_numpy(regions) if regions is not None else None,
                   torch.from_numpy(labels[idx].astype(np.float32)))

    def _direct_table(self, inputs: list[AULLMInput], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the read-out reads for each training clip and its mirror image (training mirrors), and the labels."""
        mc = self.model_config
        x = np.stack([model_tensor(i, mc) for i in inputs])
        regions = np.stack([i.regions for i in inputs]) if mc.regions else None
        mirrored, mirrored_regions = mirror(x, regions, mc.input == "motion")
        with torch.no_grad():
            table = [self.model.direct_inputs(torch.from_numpy(a), torch.from_numpy(r) if r is not None else None)
                     for a, r in ((x, regions), (mirrored, mirrored_regions))]
        return torch.cat(table).numpy(), np.concatenate([labels, labels])

    def _val_loss(self, inputs, labels) -> float:
        self.model.eval()
        total = 0.0
        with torch.no_grad():
            for x, regions, y in self._batches(inputs, labels, None, False):
                total += float(self._loss(self.model(x, regions), y)) * len(x)
        return total / len(inputs)

    def fit(self, train, val) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        prior = torch.from_numpy(cooccurrence_prior(train.labels, cfg.graph_threshold)) if cfg.graph else None
        self.model, _ = build_aullm(cfg.backbone, self.model_config, prior)
        if cfg.zero_head:
            torch.nn.init.zeros_(self.model.head.weight)
            torch.nn.init.zeros_(self.model.head.bias)
        train_inputs = self.inputs(train.records)
        if cfg.direct_c:
            set_readout(self.model.direct, *fit_readout(*self._direct_table(train_inputs, train.labels),
                                                        cfg.direct_c))
        opt = optimizer(self.model, cfg)
        val_inputs = self.inputs(val.records) if val is not None and len(val.records) else None

        def run_epoch() -> float:
            self.model.train()
            losses = []
            for x, regions, y in self._batches(train_inputs, train.labels, rng, True):
                loss = self._loss(self.model(x, regions), y)
                if cfg.counterfactual > 0:
                    static = x[:, :1].expand_as(x).contiguous()
                    still = torch.zeros_like(regions) if regions is not None else None
                    loss = loss + cfg.counterfactual * self._loss(self.model(static, still), torch.zeros_like(y))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return float(np.mean(losses))

        return train_epochs(
            cfg.epochs, cfg.patience, run_epoch,
            (lambda: self._val_loss(val_inputs, val.labels)) if val_inputs is not None else None,
            lambda: copy.deepcopy(self.model.trainable_state_dict()),
            lambda state: self.model.load_state_dict(state, strict=False), cfg.progress)

    def predict(self, data) -> np.ndarray:
        self.model.eval()
        inputs = self.inputs(data.records)
        out = []
        with torch.no_grad():
            for x, regions, _ in self._batches(inputs, data.labels, None, False):
                out.append(torch.sigmoid(self.model(x, regions)).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.aus)))

    def save(self, out_dir: Path, thresholds: list[float]) -> None:
        save_aullm(self.model, self.cfg.backbone, out_dir, thresholds,
                   extra={"motion": dataclasses.asdict(self.motion)})
