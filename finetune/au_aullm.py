"""Training adapter for AU-LLM (`--model aullm`) behind the interface documented in finetune/au.py.

One fold: a fresh AU-LLM over the backbone, Adam on the trainable parameters only (LoRA, LED + 3D-CNN, fusion,
head, and the AULLM++ graph / soft prompt when on), asymmetric loss, six jittered frames per clip per step, early
stopping on the validation subjects' loss (uniform frames), the best epoch's weights restored.

Counterfactual consistency (AULLM++, weight `counterfactual`): for every training clip a counterfactual clip is
built by repeating its onset frame six times, the clip with the expression removed and the face kept. Its
prediction must say "no AU": the loss adds weight * ASL(logits(static clip), all-zero targets), which stops the
head from answering from appearance (who the subject is) instead of from motion.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from assistant.au.aullm import AULLMConfig, asymmetric_loss
from assistant.au.checkpoint import build_aullm, save_aullm
from assistant.au.graph import cooccurrence_prior
from assistant.au.preprocess import ClipCache, clip_tensor
from finetune.au import train_epochs

log = logging.getLogger(__name__)


class AULLMAdapter:
    def __init__(self, config, aus: list[int]):
        self.cfg = config
        self.aus = list(aus)
        self.model = None
        self.cache = ClipCache(Path(config.cache_dir) / config.dataset, max_frames=config.max_frames,
                               landmarks=config.landmarks)
        self.model_config = AULLMConfig(aus=self.aus, fusion=config.fusion, soft_prompt=config.soft_prompt,
                                        graph=config.graph)

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

    def _batches(self, crops, labels, rng, jitter):
        order = rng.permutation(len(crops)) if jitter else np.arange(len(crops))
        bs = self.cfg.batch_size
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            x = np.stack([clip_tensor(crops[i], self.model_config.n_frames, jitter, rng) for i in idx])
            if jitter:  # mirror half the clips: AU codes carry no side, so the labels stay valid
                flip = rng.random(len(idx)) < 0.5
                x[flip] = x[flip][..., ::-1]
            yield torch.from_numpy(x), torch.from_numpy(labels[idx].astype(np.float32))

    def _val_loss(self, crops, labels) -> float:
        self.model.eval()
        total = 0.0
        with torch.no_grad():
            for x, y in self._batches(crops, labels, None, False):
                total += float(self._loss(self.model(x), y)) * len(x)
        return total / len(crops)

    def fit(self, train, val) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        prior = torch.from_numpy(cooccurrence_prior(train.labels, cfg.graph_threshold)) if cfg.graph else None
        self.model, _ = build_aullm(cfg.backbone, self.model_config, prior)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        train_crops = self._crops(train.records)
        val_crops = self._crops(val.records) if val is not None and len(val.records) else None

        def run_epoch() -> float:
            self.model.train()
            losses = []
            for x, y in self._batches(train_crops, train.labels, rng, True):
                loss = self._loss(self.model(x), y)
                if cfg.counterfactual > 0:
                    static = x[:, :1].expand_as(x).contiguous()
                    loss = loss + cfg.counterfactual * self._loss(self.model(static), torch.zeros_like(y))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return float(np.mean(losses))

        return train_epochs(
            cfg.epochs, cfg.patience, run_epoch,
            (lambda: self._val_loss(val_crops, val.labels)) if val_crops is not None else None,
            lambda: copy.deepcopy(self.model.trainable_state_dict()),
            lambda state: self.model.load_state_dict(state, strict=False), cfg.progress)

    def predict(self, data) -> np.ndarray:
        self.model.eval()
        crops = self._crops(data.records)
        out = []
        with torch.no_grad():
            for x, _ in self._batches(crops, data.labels, None, False):
                out.append(torch.sigmoid(self.model(x)).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.aus)))

    def save(self, out_dir: Path, thresholds: list[float]) -> None:
        save_aullm(self.model, self.cfg.backbone, out_dir, thresholds)
