"""`meu train au`: train an AU detector and score it with a leakage-free protocol (LOSO, cross-dataset or the
MEGC 2019 composite).

Folds come from eval.protocols only. Each fold trains a fresh model on its training subjects, stops early and
(optionally) picks per-AU thresholds on its validation subjects, which are training subjects too, then predicts the
held-out subject once. Fold outputs are written as they finish, so a rerun with the same --out resumes; the
pooled scores are computed once over all folds' predictions, then a final model is trained on every subject.
A dataset's official test sets (DFME Test A/B) are never trained on: only its training sheet is loaded.

`--protocol cde` pools several datasets (`--dataset casme2,samm,smic --root A,B,C`) and leaves one dataset-qualified
subject out per fold (`casme2__sub01`). The AU list is the union of the datasets' lists; a label a clip's dataset
does not code is -1 and masked out of the loss, the threshold search and the scores. SMIC codes no AU: its clips
are never trained on, but every held-out clip, SMIC's included, is predicted by its fold's model (`unscored.csv`),
so `meu eval --protocol cde --au-run` has held-out evidence for each one.

Model registry. `MODELS` maps `--model` names to "module:factory" strings; a factory is called as
`factory(config: TrainAUConfig, aus: list[int])` once per fold and returns an adapter with three methods:

    fit(train: FoldData, val: FoldData | None) -> dict      # train a fresh model; return a small training log
    predict(data: FoldData) -> np.ndarray                  # (N, len(aus)) probabilities in 0..1
    save(out_dir: Path, thresholds: list[float]) -> None   # checkpoint: safetensors + JSON (assistant.au.checkpoint)

`FoldData` carries the records (instruction_data Records: frame paths, onset/apex, subject) and their (N, K) binary
label matrix. An adapter does its own preprocessing and caching under `config.cache_dir`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from assistant.config import doc_summary, load_yaml, parse_config, resolved_setting, split_list
from assistant.errors import ConfigError
from assistant.facs import FACS
from assistant.files import atomic_write_text
from assistant.motion.analyze import MOTION_CHOICES, MOTION_CORE, refuse_other_motion_core, warn_recorded_motion_core
from assistant.registry import lookup
from eval.metrics import choose_thresholds, folded_multilabel_scores
from eval.protocols import (
    all_subjects_split,
    cde_folds,
    codes_au,
    cross_dataset_fold,
    dataset_aus,
    fold_shard,
    loso_folds,
    qualified_items,
    select_folds,
    shared_aus,
    training_load_options,
)
from instruction_data.loaders import cde_settings
from instruction_data.records import qualified_subject

log = logging.getLogger(__name__)

MODELS: dict[str, str] = {
    "aullm": "finetune.au_aullm:AULLMAdapter",
    "microau_clip": "finetune.au_microau_clip:MicroAUCLIPAdapter",
    "rules": "finetune.au_baselines:RulesAdapter",
    "always_positive": "finetune.au_baselines:AlwaysPositive",
    "prior": "finetune.au_baselines:TrainingPrior",
}

# models whose extra settings extend TrainAUConfig (so `meu train au --model X --help` lists them)
CONFIGS: dict[str, str] = {"microau_clip": "finetune.au_microau_clip:TrainMicroAUCLIPConfig"}

# models whose losses honour the -1 (not coded) labels of pooled datasets
CDE_MODELS = ("aullm", "rules", "always_positive", "prior")

# settings that may change between a run and its resumption without changing any result
_RESUME_FREE = {"progress", "threads", "final_model", "folds", "out", "cache_dir", "fold_shard"}


@dataclass
class TrainAUConfig:
    dataset: str = field(default="casme2", metadata={
        "help": "training dataset (loader name); with --protocol cde a comma-separated list (casme2,samm,smic)"})
    root: str = field(default="", metadata={
        "help": "dataset folder holding the annotation sheet and frames; with --protocol cde one per dataset, "
                "comma-separated in the same order"})
    protocol: str = field(default="loso", metadata={"help": "evaluation protocol", "choices": ["loso", "cross",
                                                                                                "cde"]})
    target_dataset: str | None = field(default=None, metadata={"help": "cross protocol: dataset tested on"})
    target_root: str | None = field(default=None, metadata={"help": "cross protocol: folder of the target dataset"})
    out: str = field(default="outputs/au", metadata={"help": "output folder (a rerun resumes fold by fold)"})
    model: str = field(default="aullm", metadata={
        "help": "model family; Micro-AU CLIP has flags of its own (--clip-input and the other --clip-* ones), which "
                "`meu train au --model microau_clip --help` lists", "choices": list(MODELS)})
    aus: list[int] | None = field(default=None, metadata={"help": "AU codes (default: the dataset's detection list)"})
    backbone: str = field(default="Qwen/Qwen2-1.5B", metadata={"help": "LLM name or local folder"})
    fusion: str = field(default="efp", metadata={"help": "visual token fusion",
                                                 "choices": ["efp", "linear", "high", "mid"]})
    soft_prompt: bool = field(default=False, metadata={"help": "learned prompt embeddings instead of the text"})
    graph: bool = field(default=False, metadata={"help": "AULLM++ instruction token from the AU graph"})
    graph_threshold: float = field(default=0.2, metadata={"help": "sparsity cut of the co-occurrence prior"})
    counterfactual: float = field(default=0.0, metadata={"help": "weight of the counterfactual consistency loss"})
    epochs: int = field(default=30, metadata={"help": "maximum epochs per fold"})
    batch_size: int = field(default=8, metadata={"help": "clips per step"})
    lr: float = field(default=3e-5, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.005, metadata={"help": "Adam weight decay"})
    gamma_neg: float = field(default=4.0, metadata={"help": "asymmetric loss gamma for negatives"})
    gamma_pos: float = field(default=0.0, metadata={"help": "asymmetric loss gamma for positives"})
    clip: float = field(default=0.05, metadata={"help": "asymmetric loss probability margin"})
    patience: int = field(default=5, metadata={"help": "early stopping: epochs without a better validation loss"})
    val_subjects: int = field(default=1, metadata={"help": "training subjects held out for validation per fold"})
    threshold: float = field(default=0.5, metadata={"help": "decision threshold (default for every AU)"})
    threshold_search: bool = field(default=False, metadata={"help": "pick per-AU thresholds on validation subjects"})
    threshold_max_null: float | None = field(default=None, metadata={
        "help": "with threshold_search: raise the per-AU thresholds until at most this share of the validation "
                "subjects' null clips (no AU) gets any AU"})
    final_model: bool = field(default=True, metadata={"help": "train a final model on all subjects afterwards"})
    folds: list[str] | None = field(default=None, metadata={"help": "run only these folds (held-out subjects)"})
    fold_shard: str | None = field(default=None, metadata={
        "help": "I/N: run only every N-th fold starting at the I-th (1-based), so N processes or machines sharing "
                "--out split the folds; each fold is skipped once done"})
    cache_dir: str | None = field(default=None, metadata={"help": "preprocessing cache (default OUT/cache)"})
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend for the face crop",
                                                          "choices": MOTION_CHOICES["landmarks"]})
    input: str = field(default="frames", metadata={
        "help": "aullm input: frames (published: grey crops, onset to apex) or motion (the registered flow from the "
                "onset to each frame in the clip's noise floors; assistant.au.aullm_input)",
        "choices": ["frames", "motion"]})
    regions: bool = field(default=False, metadata={
        "help": "aullm: one more prompt token holding the motion table's measurements (px, SNR, direction per "
                "region and side)"})
    direct: bool = field(default=False, metadata={
        "help": "aullm: add a linear read-out of the region token's values and of the apex motion (averaged over an "
                "8x8 grid) to the LLM head's logits; ours, not in the papers (assistant.au.aullm)"})
    direct_lr: float = field(default=0.1, metadata={
        "help": "aullm: Adam learning rate of the --direct read-out (a linear model of a few hundred measurements "
                "needs far larger steps than the deep path's --lr)"})
    direct_c: float = field(default=0.0, metadata={
        "help": "aullm: 0 trains the --direct read-out by Adam with the rest; above 0 fits it first as an L2 logistic "
                "regression with this inverse regularisation (scikit-learn) on the training clips and their mirror "
                "images, and holds it fixed while the LLM path trains (finetune.readout)"})
    direct_grid: int = field(default=8, metadata={
        "help": "aullm: the --direct read-out averages the apex motion on an NxN grid"})
    direct_magnitude: bool = field(default=False, metadata={
        "help": "aullm: the --direct read-out averages the apex motion's magnitude on its grid too"})
    zero_head: bool = field(default=False, metadata={
        "help": "aullm: the LLM head's classifier starts at zero instead of random, so before it has learned anything "
                "it adds nothing to the --direct read-out's logits"})
    flow: str = field(default="tvl1", metadata={"help": "aullm: optical flow of the motion analysis behind the motion "
                                                        "input and the region token", "choices": ["tvl1", "dis"]})
    max_frames: int = field(default=24, metadata={"help": "onset..apex frames kept per clip in the cache"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (1 is fastest on a busy shared machine)"})
    seed: int = field(default=0, metadata={"help": "random seed (folds, validation subjects, training)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self):
        fold_shard(self.fold_shard)
        aullm_only = [f"--{name}" for name, value, default in (("input", self.input, "frames"),
                                                                ("regions", self.regions, False),
                                                                ("direct", self.direct, False),
                                                                ("direct-lr", self.direct_lr, 0.1),
                                                                ("direct-c", self.direct_c, 0.0),
                                                                ("direct-grid", self.direct_grid, 8),
                                                                ("direct-magnitude", self.direct_magnitude, False),
                                                                ("zero-head", self.zero_head, False),
                                                                ("flow", self.flow, "tvl1")) if value != default]
        if self.model != "aullm" and aullm_only:
            raise ConfigError(f"{', '.join(aullm_only)} set AU-LLM's input or read-out, and --model {self.model} has "
                              "neither; Micro-AU CLIP's are --clip-input, --clip-flow, --clip-direct, --clip-direct-c "
                              "and --clip-zero-classifier.")
        for name in (f.name for f in dataclasses.fields(self) if "lr" in f.name.split("_")):  # subclasses' too
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} is a learning rate and must be above 0 (got "
                                  f"{getattr(self, name)}).")
        for name, low in (("epochs", 1), ("batch_size", 1), ("patience", 1), ("val_subjects", 0), ("seed", 0),
                          ("max_frames", 2), ("threads", 1)):  # --max-frames 0 stopped in an IndexError
            if getattr(self, name) < low:  # a batch of 0 stopped deep in the batching with a ValueError
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least {low}.")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"--threshold {self.threshold} must lie between 0 and 1 (a probability).")
        if self.threshold_max_null is not None and not (self.threshold_search and 0 <= self.threshold_max_null <= 1):
            raise ConfigError(f"--threshold-max-null {self.threshold_max_null} is a share of null clips (0 to 1) that "
                              "bounds --threshold-search: give both, or neither.")
        if self.aus is not None:
            repeated = sorted({a for a in self.aus if self.aus.count(a) > 1})
            outside = [a for a in self.aus if a not in FACS]
            if repeated or outside or not self.aus:
                raise ConfigError(f"--aus {' '.join(map(str, self.aus))}: "
                                  + ("give at least one AU" if not self.aus else
                                     f"{', '.join(map(str, repeated))} repeated" if repeated else
                                     f"{', '.join(map(str, outside))} not in the FACS table")
                                  + "; each AU once, by its FACS code.")
        if not 1 <= self.direct_grid <= 32:
            raise ConfigError(f"--direct-grid {self.direct_grid} must lie between 1 and 32 (cells per side).")
        if (self.direct_grid != 8 or self.direct_magnitude) and not (self.direct and self.input == "motion"):
            raise ConfigError("--direct-grid and --direct-magnitude shape the --direct read-out's apex motion: add "
                              "--direct and --input motion, or leave them out.")
        if self.direct_c and self.direct_lr != 0.1:
            raise ConfigError("--direct-lr is the rate of a read-out trained by Adam, and --direct-c fits it and holds "
                              "it instead: give one of them.")
        if self.direct_c < 0 or (self.direct_c and not self.direct):
            raise ConfigError(f"--direct-c {self.direct_c} fits the --direct read-out: give a value above 0 with "
                              "--direct, or 0 to train it by Adam.")
        if self.direct and self.input != "motion" and not self.regions:
            raise ConfigError("--direct reads the motion input or the region token, and neither is on: add "
                              "--input motion or --regions.")
        if self.protocol != "cde":
            names = split_list(self.dataset, "--dataset")
            if len(names) != 1:
                raise ConfigError(f"--dataset {','.join(names)} names several datasets; pooling them is the "
                                  "composite protocol: add --protocol cde, or give one dataset.")
            self.dataset = names[0]
            return
        if self.model not in CDE_MODELS:
            raise ConfigError(f"--protocol cde masks the AU loss per dataset, which {', '.join(CDE_MODELS)} "
                              f"support; --model {self.model} does not yet.")
        self.dataset, self.root = cde_settings(self.dataset, self.root)

    @property
    def datasets(self) -> list[str]:
        return self.dataset.split(",")

    def reads_motion(self) -> bool:
        """Whether the model's inputs come from the motion core (not only the published frames, or no input)."""
        from assistant.au.checkpoint import reads_motion  # it needs torch

        return reads_motion(vars(self))


@dataclass
class FoldData:
    records: list
    labels: np.ndarray  # (N, K) binary, columns in the run's AU order

    def subset(self, idx) -> FoldData:
        idx = list(idx)
        return FoldData([self.records[i] for i in idx], self.labels[idx])


def label_matrix(records: list, aus: list[int], coded_only: bool = False) -> np.ndarray:
    """(N, K) 0/1 labels; with `coded_only` (pooled datasets), -1 where the record's dataset does not code the AU
    (`eval.protocols.CODED_AUS`)."""
    def cell(r, a: int) -> int:
        if coded_only and (not r.aus_coded or not codes_au(r.dataset, a)):
            return -1
        return int(a in set(r.aus.codes))

    return np.array([[cell(r, a) for a in aus] for r in records], dtype=np.int64).reshape(len(records), len(aus))


def pooled_aus(datasets: list[str]) -> list[int]:
    """The composite's AU list: every AU any of the datasets codes (each clip is trained on its own dataset's)."""
    return sorted(set().union(*(dataset_aus(d) for d in datasets)))


def usable_records(records: list, name: str = "") -> list:
    """Records whose AU cell was fully readable: a `?` leaves the true labels unknown, so the clip can be neither a
    positive nor a negative example; such clips are left out (and counted) rather than scored as AU-free."""
    kept = [r for r in records if not r.aus.unknown and r.aus_coded]
    if len(kept) < len(records):
        log.warning("%s: %d clip(s) with unreadable or no AU codes left out of AU training and scoring",
                    name or "data", len(records) - len(kept))
    return kept


def train_epochs(epochs: int, patience: int, run_epoch: Callable[[], float], val_loss: Callable[[], float] | None,
                 snapshot: Callable[[], dict], restore: Callable[[dict], None], progress: bool = True) -> dict:
    """The adapters' epoch loop: `run_epoch()` trains once and returns the mean training loss; with validation data,
    training stops after `patience` epochs without a better validation loss and the best state is restored."""
    best, best_state, stale, history = float("inf"), None, 0, []
    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        entry = {"epoch": epoch + 1, "train_loss": float(run_epoch())}
        if val_loss is not None:
            entry["val_loss"] = float(val_loss())
            if entry["val_loss"] < best - 1e-6:
                best, best_state, stale = entry["val_loss"], snapshot(), 0
            else:
                stale += 1
        history.append(entry)
        bar.set_postfix({k: round(v, 4) for k, v in entry.items() if k != "epoch"})
        if val_loss is not None and stale >= patience:
            break
    if best_state is not None:
        restore(best_state)
    return {"epochs_run": len(history), "best_val_loss": None if best == float("inf") else best, "history": history}


def make_adapter(config: TrainAUConfig, aus: list[int]):
    return lookup(MODELS, config.model, "model")(config, aus)


def _predictions_csv(fold: str, data: FoldData, probs: np.ndarray, thresholds: list[float], aus: list[int]) -> str:
    rows = [["key", "subject", "fold"] + [f"true_AU{a}" for a in aus] + [f"prob_AU{a}" for a in aus]
            + [f"pred_AU{a}" for a in aus]]
    for r, y, p in zip(data.records, data.labels, probs):
        pred = (p >= np.asarray(thresholds)).astype(int)
        rows.append([r.key, r.subject, fold] + y.tolist() + [f"{v:.6f}" for v in p] + pred.tolist())
    return "".join(",".join(str(c) for c in row) + "\n" for row in rows)


def _unscored_csv(fold: str, records: list, probs: np.ndarray, aus: list[int]) -> str:
    rows = [["key", "subject", "fold"] + [f"prob_AU{a}" for a in aus]]
    rows += [[r.key, r.subject, fold] + [f"{v:.6f}" for v in p] for r, p in zip(records, probs)]
    return "".join(",".join(str(c) for c in row) + "\n" for row in rows)


def read_predictions(path: Path, aus: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(true, prob, pred, fold names) from a predictions.csv."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    true = np.array([[int(r[f"true_AU{a}"]) for a in aus] for r in rows]).reshape(-1, len(aus))
    prob = np.array([[float(r[f"prob_AU{a}"]) for a in aus] for r in rows]).reshape(-1, len(aus))
    pred = np.array([[int(r[f"pred_AU{a}"]) for a in aus] for r in rows]).reshape(-1, len(aus))
    return true, prob, pred, [r["fold"] for r in rows]


def run_fold(config: TrainAUConfig, aus: list[int], name: str, train: FoldData, val: FoldData | None,
             test: FoldData | None, out_dir: Path, unscored: list | None = None) -> dict:
    """Train a fresh model, fix thresholds from validation data only, predict the test part once. `unscored`: the
    test subjects' clips with unreadable AU labels, predicted too (`unscored.csv`, never scored) so that evaluation
    has held-out AU evidence for every clip."""
    adapter = make_adapter(config, aus)
    train_log = adapter.fit(train, val)
    thresholds = [config.threshold] * len(aus)
    if config.threshold_search and val is not None and len(val.records):
        thresholds = choose_thresholds(adapter.predict(val), val.labels, config.threshold,
                                       max_null=config.threshold_max_null)
    parts = [*train.records, *(val.records if val else [])]
    seen = {_subject(r, config) for r in parts}
    result = {"fold": name, "thresholds": thresholds, "train": train_log,
              "n_train": len(train.records), "n_val": len(val.records) if val else 0,
              "trained_on": {"dataset": config.dataset, "subjects": sorted(seen),
                             "clips": clips_fingerprint(train, val)}}
    if test is not None:
        probs = adapter.predict(test)
        if unscored:
            blank = FoldData(unscored, np.zeros((len(unscored), len(aus)), dtype=np.int64))
            atomic_write_text(out_dir / "unscored.csv", _unscored_csv(name, unscored, adapter.predict(blank), aus))
        atomic_write_text(out_dir / "thresholds.json", json.dumps(result, indent=2))
        atomic_write_text(out_dir / "predictions.csv", _predictions_csv(name, test, probs, thresholds, aus))
    else:
        adapter.save(out_dir, thresholds)
        atomic_write_text(out_dir / "thresholds.json", json.dumps(result, indent=2))
    return result


def papers_table(scores: dict, aus: list[int], title: str) -> str:
    """Markdown table in the AU papers' format: F1 (%) per AU and their mean."""
    head = "| " + " | ".join(["Method"] + [f"AU{a}" for a in aus] + ["Mean"]) + " |"
    sep = "|" + "---|" * (len(aus) + 2)
    rows = [head, sep]
    for method, s in scores.items():
        cells = ["-" if np.isnan(s.f1[a]) else f"{100 * s.f1[a]:.1f}" for a in aus]
        rows.append("| " + " | ".join([method] + cells + [f"{100 * s.mean_f1:.1f}"]) + " |")
    return f"{title}\n\n" + "\n".join(rows) + "\n"


def _settings(config: dict) -> dict:
    """The settings that decide the results, with existing paths resolved (`data/` and `./data` are one folder)."""
    out = {k: v for k, v in config.items() if k not in _RESUME_FREE}
    for k in ("root", "target_root", "backbone", "clip_backbone"):
        if out.get(k):
            out[k] = resolved_setting(out[k], pooled=k == "root" and out.get("protocol") == "cde")
    return out


def _check_resume(config: TrainAUConfig, out: Path) -> None:
    path = out / "run_config.yaml"
    current = _settings(dataclasses.asdict(config))
    if path.is_file():
        written = yaml.safe_load(path.read_text()) or {}
        recorded = written.pop("motion_core", None)
        if config.reads_motion():  # the published frames alone never pass through the motion core
            refuse_other_motion_core(recorded, out, "run", "folds")
        # a setting added since the run started is read as its default, which is what the run used
        defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
        before = _settings({**defaults, **written})
        changed = sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))
        if changed:
            raise ConfigError(f"{out} holds a run with different settings ({', '.join(changed)}); "
                              "use a new --out or the same settings to resume.")
    atomic_write_text(path, yaml.safe_dump(dataclasses.asdict(config) | {"motion_core": MOTION_CORE}, sort_keys=True))


def run(config: TrainAUConfig, records: list, target_records: list | None = None) -> dict:
    """The whole job on already-loaded records; returns the metrics written to OUT/metrics.json."""
    import torch

    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.cache_dir is None:
        config = dataclasses.replace(config, cache_dir=str(out / "cache"))
    lookup(MODELS, config.model, "model")  # an unknown name fails here, before the run is stamped
    n_given = len(records) + len(target_records or [])
    tested = target_records if config.protocol == "cross" else records
    unscored = [r for r in tested or [] if r.aus.unknown or not r.aus_coded]
    records = usable_records(records, config.dataset)
    target_records = usable_records(target_records, config.target_dataset) if target_records is not None else None
    if config.protocol == "cross":
        if not config.target_dataset or target_records is None:
            raise ConfigError("The cross protocol needs --target-dataset and --target-root.")
        aus = config.aus or shared_aus(config.dataset, config.target_dataset)
        fold = cross_dataset_fold(records, target_records, config.val_subjects, config.seed,
                                  name=f"{config.dataset}->{config.target_dataset}")
        plan = [(fold, FoldData(records, label_matrix(records, aus)),
                 FoldData(target_records, label_matrix(target_records, aus)))]
    elif config.protocol == "cde":
        aus = config.aus or pooled_aus(config.datasets)
        data = FoldData(records, label_matrix(records, aus, coded_only=True))
        plan = [(f, data, data) for f in cde_folds(records, config.val_subjects, config.seed, test_only=unscored)]
    else:
        aus = config.aus or dataset_aus(config.dataset)
        data = FoldData(records, label_matrix(records, aus))
        plan = [(f, data, data) for f in loso_folds(records, config.val_subjects, config.seed)]
    every = [p[0].name for p in plan if config.protocol == "cross" or not config.folds or p[0].name in config.folds]
    chosen = {f.name for f in select_folds([p[0] for p in plan], config.folds if config.protocol != "cross" else None,
                                           config.fold_shard)}
    _check_resume(config, out)  # stamped once the folds are built: settings refused above leave --out free
    _check_finished_folds(out, plan, aus)
    pooled = [p[0].name for p in plan]
    plan = [p for p in plan if p[0].name in chosen]
    fold_logs = []
    for fold, src, tgt in plan:
        fold_dir = out / "folds" / _fold_folder(fold.name)
        if (fold_dir / "predictions.csv").is_file():
            log.info("fold %s done already; skipping", fold.name)
            continue
        log.info("fold %s: %d train, %d validation, %d test clips", fold.name, len(fold.train), len(fold.val),
                 len(fold.test))
        fold_logs.append(run_fold(config, aus, fold.name, src.subset(fold.train),
                                  src.subset(fold.val) if fold.val else None, tgt.subset(fold.test), fold_dir,
                                  [r for r in unscored if _subject(r, config) in fold.test_subjects]))
    metrics = score_run(out, aus, config, pooled)
    metrics["n_left_out_unknown_au"] = n_given - len(records) - len(target_records or [])
    missing = [name for name in every if not (out / "folds" / _fold_folder(name) / "predictions.csv").is_file()]
    if missing:
        metrics["folds_missing"] = missing
        log.warning("the pooled figures cover %d of %d folds (%s still to run, e.g. by another --fold-shard); rerun "
                    "with the same --out to pool them all once they are done", len(every) - len(missing), len(every),
                    ", ".join(missing[:5]))
    metrics = _write_metrics(out, metrics)
    done = (out / "final" / "thresholds.json").is_file()  # written last, after the checkpoint
    first_share = fold_shard(config.fold_shard)[0] == 1
    if config.final_model and config.protocol in ("loso", "cde") and not config.folds and first_share and not done:
        final = all_subjects_split(qualified_items(records) if config.protocol == "cde" else records,
                                   config.val_subjects, config.seed)
        data = FoldData(records, label_matrix(records, aus, coded_only=config.protocol == "cde"))
        run_fold(config, aus, "final", data.subset(final.train), data.subset(final.val) if final.val else None,
                 None, out / "final")
        metrics["final_model"] = str(out / "final")
        metrics = _write_metrics(out, metrics)
    return metrics


def clips_fingerprint(train: FoldData, val: FoldData | None) -> str:
    """A hash of the clips and labels a model learnt from (its validation clips chose its thresholds and its stop):
    a finished fold is reused only when the data gives it the same ones."""
    rows = sorted((r.key, y.tolist()) for part in (train, val) if part is not None
                  for r, y in zip(part.records, part.labels))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _fold_change(fold_dir: Path, fold, src: FoldData, tgt: FoldData, aus: list[int]) -> str | None:
    """Why a finished fold no longer matches the data (None: it does): other test clips or labels, or other training
    clips or labels (a subject added, removed or relabelled changes every other fold's training)."""
    with open(fold_dir / "predictions.csv", newline="") as fh:
        before = {row["key"]: [int(row[f"true_AU{a}"]) for a in aus] for row in csv.DictReader(fh)}
    test = tgt.subset(fold.test)
    now = {r.key: y.tolist() for r, y in zip(test.records, test.labels)}
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        return f"its test clips or labels ({len(changed)} clip(s), first: {changed[0]})"
    info = fold_dir / "thresholds.json"
    trained = json.loads(info.read_text()).get("trained_on", {}) if info.is_file() else {}
    if "clips" not in trained:  # written before the training clips were recorded: only the test side is checked
        return None
    if trained["clips"] != clips_fingerprint(src.subset(fold.train), src.subset(fold.val) if fold.val else None):
        return "its training or validation clips or labels"
    return None


def _check_finished_folds(out: Path, plan: list, aus: list[int]) -> None:
    """Every finished fold this run would pool, checked against the data before any training: after the data was
    made again or its sheet edited, old folds kept old labels (or a removed subject) in the pooled figures, and
    deleting the fold the error named left the others trained on the old labels."""
    stale = []
    for fold, src, tgt in plan:
        fold_dir = out / "folds" / _fold_folder(fold.name)
        if (fold_dir / "predictions.csv").is_file():
            why = _fold_change(fold_dir, fold, src, tgt, aus)
            if why:
                stale.append(f"{fold_dir} ({why})")
    if stale:
        raise ConfigError(f"{len(stale)} finished fold(s) were trained or scored on other data than the data now "
                          f"gives them: {'; '.join(stale[:5])}{'; ...' if len(stale) > 5 else ''}. The data changed "
                          "since, or this version reads its sheet differently: give a new --out, or delete those "
                          "folds' folders to train them again.")


def _fold_folder(name: str) -> str:
    return name.replace("->", "_to_").replace("/", "_")


def _subject(record, config: TrainAUConfig) -> str:
    """The subject id folds are named by: qualified by dataset when datasets are pooled."""
    return qualified_subject(record.dataset, record.subject) if config.protocol == "cde" else record.subject


def score_run(out: Path, aus: list[int], config: TrainAUConfig, folds: list[str] | None = None) -> dict:
    """Pool the finished folds' predictions and write the tables and metrics.json. `folds`: the data's folds (None:
    every folder); a folder of no such fold (a subject the data no longer holds) is left out, with a warning."""
    files = sorted((out / "folds").glob("*/predictions.csv"))
    if folds is not None:
        names = {_fold_folder(n) for n in folds}
        foreign = [f.parent.name for f in files if f.parent.name not in names]
        if foreign:
            log.warning("left out of the pooled figures: %s in %s, no fold of the data given now (a subject it no "
                        "longer holds); delete them to keep the folder tidy", ", ".join(foreign), out / "folds")
        files = [f for f in files if f.parent.name in names]
    parts = [read_predictions(f, aus) for f in files]
    true = np.concatenate([p[0] for p in parts])
    pred = np.concatenate([p[2] for p in parts])
    folds = sum((p[3] for p in parts), [])
    label = f"{config.model} ({config.dataset}{'->' + config.target_dataset if config.protocol == 'cross' else ''})"
    extra: dict = {}
    if config.protocol == "cde":
        keys = sum((_keys(f) for f in files), [])
        scores, shared, per_dataset = _composite_scores(true, pred, folds, keys, aus, config.datasets)
        extra = {"composite_aus": shared, "per_dataset": {d: s.to_dict() for d, s in per_dataset.items()}}
        tables = [papers_table({label: scores.pooled}, shared,
                               "Pooled composite (CDE) F1 (%), on the AUs every AU-coding dataset codes")]
        tables += [papers_table({label: s}, s.labels, f"{d}: its clips in the pooled predictions, F1 (%)")
                   for d, s in per_dataset.items()]
        atomic_write_text(out / "pooled_table.md", "\n".join(tables))
    else:
        scores = folded_multilabel_scores(true, pred, folds, aus)
        atomic_write_text(out / "pooled_table.md", papers_table({label: scores.pooled}, aus,
                                                            f"Pooled {config.protocol.upper()} F1 (%)"))
    atomic_write_text(out / "per_fold_table.md", papers_table(scores.per_fold, scores.pooled.labels,
                                                              "Per-fold F1 (%); - = undefined"))
    atomic_write_text(out / "predictions.csv", "".join(
        f.read_text() if i == 0 else f.read_text().split("\n", 1)[1] for i, f in enumerate(files)))
    metrics = {"protocol": config.protocol, "dataset": config.dataset, "target_dataset": config.target_dataset,
               "model": config.model, "aus": aus, "n_folds": len(files), "n_clips": int(len(true)),
               "threshold": config.threshold, "threshold_search": config.threshold_search, **scores.to_dict(),
               **extra}
    return _write_metrics(out, metrics)


def _keys(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["key"] for r in csv.DictReader(fh)]


def _composite_scores(true: np.ndarray, pred: np.ndarray, folds: list[str], keys: list[str], aus: list[int],
                      datasets: list[str]):
    """(pooled composite scores, the AUs they cover, each dataset's scores of its clips on its own list): the composite
    is scored on the AUs every AU-coding dataset codes, so no cell a dataset does not code (-1) is ever scored."""
    from eval.cde import cde_aus
    from eval.metrics import multilabel_scores
    from instruction_data.records import key_dataset

    shared = [a for a in cde_aus(datasets) if a in aus]
    cols = [aus.index(a) for a in shared]
    scores = folded_multilabel_scores(true[:, cols], pred[:, cols], folds, shared)
    of = np.array([key_dataset(k) for k in keys])
    per_dataset = {}
    for d in datasets:
        listed = [a for a in dataset_aus(d) if a in aus]
        cols_d = [aus.index(a) for a in listed]
        if listed and (of == d).any():
            per_dataset[d] = multilabel_scores(true[of == d][:, cols_d], pred[of == d][:, cols_d], listed)
    return scores, shared, per_dataset


def _json_safe(value):
    """Plain JSON: NaN (an undefined per-fold F1) becomes null, numpy numbers become Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_metrics(out: Path, metrics: dict) -> dict:
    """Write metrics.json and return what a reader of it gets (AU keys become strings in JSON)."""
    text = json.dumps(_json_safe(metrics), indent=2, allow_nan=False)
    atomic_write_text(out / "metrics.json", text)
    return json.loads(text)


def _load(name: str, root: str | None, training: bool) -> list:
    """A dataset's records; for training, without its official test sets (DFME Test A/B)."""
    from instruction_data.loaders import load_dataset

    if not root:
        raise ConfigError(f"Give the folder of the {name} dataset with --root (or --target-root).")
    result = load_dataset(name, root, **(training_load_options(name) if training else {}))
    log.info("%s: %s", name, result.summary())
    return result.records


def _config_class(argv: list[str] | None) -> type:
    """The settings class of the chosen model: a model with options of its own names a subclass in CONFIGS."""
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument("--config")
    ns, _ = pre.parse_known_args(argv)
    model = ns.model or (load_yaml(ns.config).get("model") if ns.config else None) or TrainAUConfig.model
    if model not in CONFIGS:
        return TrainAUConfig
    return lookup(CONFIGS, model, "model settings")


def main(argv: list[str] | None = None) -> int:
    config, ns = parse_config(_config_class(argv), argv, "meu train au", doc_summary(__doc__),
                              records=("motion_core",))
    warn_recorded_motion_core(ns.recorded)
    config = dataclasses.replace(config, out=str(Path(config.out).expanduser()))  # `--out=~/x` reaches us as typed
    if config.protocol == "cross" and not config.target_dataset:
        raise ConfigError("The cross protocol needs --target-dataset (and --target-root), the dataset tested on.")
    if config.protocol == "cross" and config.folds:
        raise ConfigError("--folds chooses folds of --protocol loso or cde; the cross protocol has one fold (trained "
                          "on --dataset, tested on --target-dataset): leave --folds out.")
    if config.protocol == "cde":
        records = [r for name, root in zip(config.datasets, config.root.split(","), strict=True)
                   for r in _load(name, root, training=True)]
    else:
        records = _load(config.dataset, config.root, training=True)
    target = _load(config.target_dataset, config.target_root, training=False) if config.protocol == "cross" else None
    metrics = run(config, records, target)
    print((Path(config.out) / "pooled_table.md").read_text())
    print(f"pooled mean F1 {100 * metrics['pooled']['mean_f1']:.1f} over {metrics['n_clips']} clips; "
          f"outputs in {config.out}")
    return 0
