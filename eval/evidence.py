"""Where a sample's AU evidence comes from during evaluation, per protocol, without leakage.

- `rules` (no training): the motion rules detector on the sample's own motion analysis; zero-shot, LOSO and
  cross-dataset are the same computation.
- `aullm` with one checkpoint (`--aullm-checkpoint`): valid for zero-shot, cross-dataset and the DFME test sets,
  where the checkpoint was trained on other subjects. Not for LOSO: one checkpoint has seen all but at most one
  subject, so it would be tested on its own training clips.
- `aullm` with a training run (`--au-run`, the output folder of `meu train au`): that job writes, per fold, the
  held-out predictions of the model trained without the fold's subject (`folds/<subject>/predictions.csv`,
  probabilities and the thresholds chosen on training subjects; `unscored.csv` for the subject's clips with unreadable
  AU labels) and keeps no per-fold weights. Those held-out probabilities are the LOSO evidence: each sample gets the
  output of the model that never saw its subject. A checkpoint is refused for clips of the subjects it was trained on
  (`check_unseen`, from the `trained_on` record `meu train au` writes beside it).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from assistant.au import get_detector
from assistant.au.base import make_evidence
from assistant.errors import BackendError, ConfigError
from assistant.types import AUEvidence, MotionAnalysis

log = logging.getLogger(__name__)


def calibrate(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The aullm detector's monotone map sending each AU's threshold to 0.5 (imported lazily: it needs torch)."""
    from assistant.au.aullm_detector import calibrate as _calibrate

    return _calibrate(p, thresholds)


def check_unseen(checkpoint: str | Path, dataset: str, subjects: list[str]) -> None:
    """Refuse a checkpoint whose training subjects (`trained_on` in the thresholds.json `meu train au` writes beside
    it) include subjects of this dataset under test: its scores there would be measured on training clips."""
    info = Path(checkpoint) / "thresholds.json"
    trained = json.loads(info.read_text()).get("trained_on") if info.is_file() else None
    if not trained or dataset not in str(trained.get("dataset", "")).split(","):
        return
    # a pooled (cde) run records dataset-qualified ids (`casme2__sub01`)
    prefix = f"{dataset}__"
    ids = {s[len(prefix):] if s.startswith(prefix) else s for s in map(str, trained.get("subjects", []))
           if "__" not in s or s.startswith(prefix)}
    seen = sorted(ids & set(map(str, subjects)))
    if seen:
        raise ConfigError(f"{checkpoint} was trained on {dataset} subject(s) {', '.join(seen[:5])}, which this run "
                          "tests on; score it on another dataset, or use --protocol loso with --au-run.")


class FoldPredictions:
    """Held-out probabilities of every fold of a `meu train au` run, by record key."""

    def __init__(self, run_dir: str | Path):
        root = Path(run_dir)
        files = sorted((root / "folds").glob("*/predictions.csv"))
        if not files:
            raise ConfigError(f"{root} holds no folds/*/predictions.csv; pass the --out folder of a finished "
                              "`meu train au` run.")
        settings = root / "run_config.yaml"
        self.protocol = "loso"
        self.dataset = None
        self.model = "aullm"
        if settings.is_file():
            import yaml

            from assistant.au.checkpoint import reads_motion
            from assistant.motion.analyze import motion_core_change

            cfg = yaml.safe_load(settings.read_text()) or {}
            self.protocol, self.dataset = cfg.get("protocol", "loso"), cfg.get("dataset")
            self.model = cfg.get("model", "aullm")
            change = motion_core_change(cfg.get("motion_core"))
            if change and reads_motion(cfg):
                log.warning("%s: the training run that made these held-out predictions %s; they are used as they "
                            "were made, so this evaluation's clips and its AU evidence come from two measurements.",
                            root, change)
        self.by_key: dict[str, tuple[str, dict[int, float]]] = {}
        self.truth: dict[str, dict[int, int]] = {}  # the labels each clip was trained and scored with (-1: not coded)
        # a fold's scored clips, plus its clips with unreadable AU labels (predicted, never scored) when present
        for f in [*files, *(f.parent / "unscored.csv" for f in files if (f.parent / "unscored.csv").is_file())]:
            meta = json.loads((f.parent / "thresholds.json").read_text()) if (f.parent / "thresholds.json").is_file() \
                else {}
            with open(f, newline="") as fh:
                reader = csv.DictReader(fh)
                aus = [int(c[len("prob_AU"):]) for c in reader.fieldnames or [] if c.startswith("prob_AU")]
                thresholds = np.asarray(meta.get("thresholds", [0.5] * len(aus)), dtype=float)
                for row in reader:
                    p = np.array([float(row[f"prob_AU{a}"]) for a in aus])
                    self.by_key[row["key"]] = (row["fold"], dict(zip(aus, calibrate(p, thresholds).tolist())))
                    if all(f"true_AU{a}" in row for a in aus):
                        self.truth[row["key"]] = {a: int(float(row[f"true_AU{a}"])) for a in aus}

    def missing(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in self.by_key]

    def evidence(self, key: str) -> AUEvidence:
        if key not in self.by_key:
            raise BackendError(f"no held-out prediction: the training run left {key} out (it trains and scores only "
                               "clips with readable AU labels)")
        fold, probs = self.by_key[key]
        return make_evidence(list(probs), list(probs.values()), f"{self.model} (fold {fold}, held out)")


UNTRAINED = ("rules", "blendshapes", "fusion")  # nothing is fitted per fold: one detector serves every protocol
TRAINED = ("aullm", "microau_clip")  # a checkpoint trained elsewhere, or the folds of a `meu train au` run


class EvidenceSource:
    """`evidence(key, analysis)` for every sample of one run."""

    def __init__(self, detector: str, protocol: str, motion_config, aullm_checkpoint: str | None = None,
                 au_run: str | None = None, microau_clip_checkpoint: str | None = None):
        self.fold_predictions = None
        self.detector = None
        checkpoint = {"aullm": aullm_checkpoint, "microau_clip": microau_clip_checkpoint}.get(detector)
        if detector in UNTRAINED:
            kwargs = {} if detector == "blendshapes" else {"motion_config": motion_config}
            self.detector = get_detector(detector, **kwargs)
            self.description = f"{detector} (no training: identical under every protocol)"
        elif detector in TRAINED and au_run:
            if protocol not in ("loso", "cross", "cde"):
                raise ConfigError(f"--au-run holds held-out predictions of models trained on this dataset's other "
                                  f"subjects: use it with --protocol loso (or cross, cde), not {protocol}; for "
                                  f"{protocol} "
                                  f"give --{detector.replace('_', '-')}-checkpoint of a model trained on another "
                                  "dataset.")
            self.fold_predictions = FoldPredictions(au_run)
            if self.fold_predictions.model in TRAINED and self.fold_predictions.model != detector:
                raise ConfigError(f"{au_run} holds the held-out predictions of {self.fold_predictions.model}; give "
                                  f"--detector {self.fold_predictions.model} with it (not {detector}), so the report "
                                  "names the model that made them.")
            wanted = protocol
            if self.fold_predictions.protocol != wanted:
                raise ConfigError(f"{au_run} is a {self.fold_predictions.protocol} training run; the {protocol} "
                                  f"protocol needs a {wanted} run.")
            self.description = f"{self.fold_predictions.model}, held-out predictions of each fold of {au_run}"
        elif detector in TRAINED and checkpoint:
            if protocol in ("loso", "cde"):
                raise ConfigError(
                    f"{protocol} with --detector {detector} needs --au-run (the --out folder of `meu train au "
                    f"--protocol {protocol}`): one checkpoint was trained on the test subjects too. Use --au-run, or "
                    "the zero-shot protocol with a checkpoint trained on another dataset.")
            self.detector = get_detector(detector, checkpoint=checkpoint)
            self.description = f"{detector} checkpoint {checkpoint}"
        elif detector in TRAINED:
            flag = f"--{detector.replace('_', '-')}-checkpoint"
            raise ConfigError(f"--detector {detector} needs {flag} (a trained model folder) or --au-run (a "
                              "`meu train au` output folder).")
        else:
            raise ConfigError(f"Unknown detector {detector!r}; use one of {', '.join(UNTRAINED + TRAINED)}.")

    def check_keys(self, keys: list[str], datasets: list[str] | None = None,
                   truth: dict[str, list[int]] | None = None) -> None:
        """Fail early when clips that `meu train au` predicts (those with readable AU labels; under cde every clip)
        have no prediction, when a pooled run was trained on other datasets, or when the run was trained on another
        copy of the data whose clips carry the same keys and other labels (`truth`: this evaluation's AUs by key)."""
        if self.fold_predictions is None:
            return
        trained = self.fold_predictions.dataset
        if datasets and trained and sorted(str(trained).split(",")) != sorted(datasets):
            raise ConfigError(f"The training run pooled {trained}; this evaluation pools {','.join(datasets)}. Train "
                              "on the same datasets (`meu train au --protocol cde --dataset ...`).")
        missing = self.fold_predictions.missing(keys)
        if missing:
            raise ConfigError(f"The training run has no held-out prediction for {len(missing)} of {len(keys)} "
                              f"clips (first: {missing[0]}); it was trained on another copy or subset of the data.")
        known = self.fold_predictions.truth
        differ = [k for k in keys if truth and truth.get(k) is not None and k in known and any(
            label in (0, 1) and label != (a in truth[k]) for a, label in known[k].items())]
        if differ:
            first = differ[0]
            ran = "+".join(str(a) for a, label in sorted(known[first].items()) if label == 1) or "none"
            here = "+".join(str(a) for a in sorted(truth[first]) if a in known[first]) or "none"
            raise ConfigError(f"The training run was trained on other labels for {len(differ)} of {len(keys)} clips "
                              f"(first: {first}, AUs {ran} there, {here} here): it comes from another copy of the "
                              "data or an older sheet; train again on this one.")

    def fold_of(self, key: str) -> str | None:
        """The training fold whose model gave this clip's evidence (None: no per-fold evidence)."""
        if self.fold_predictions is None or key not in self.fold_predictions.by_key:
            return None
        return self.fold_predictions.by_key[key][0]

    def evidence(self, key: str, analysis: MotionAnalysis) -> AUEvidence:
        if self.fold_predictions is not None:
            return self.fold_predictions.evidence(key)
        return self.detector.detect(analysis.clip, analysis)
