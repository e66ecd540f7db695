"""`meu train vlm --protocol loso|cde`: one LoRA adapter per fold, in OUTPUT_DIR/folds/<held-out subject>/.

The folds come from `eval.protocols` (the validator owns them), over the subjects of the training rows. A composite
export (`meu data build --dataset casme2,samm,smic`) has dataset-qualified subjects (`casme2__sub01`), so its folds are
the MEGC 2019 ones. Each fold trains on its training subjects and evaluates on validation subjects drawn from them.
It never sees its held-out subject, and `fold.json` records who was held out.

A fold killed mid-training resumes from its last checkpoint; a finished fold is skipped. `--folds` and
`--fold-shard I/N` choose the folds one process trains, so several processes or machines can share OUTPUT_DIR.
`meu eval --protocol loso|cde --vlm-run OUTPUT_DIR` answers each clip with the adapter of the fold that held its
subject out. The cost is one fine-tune per subject: the composite's 68 folds are 68 LoRA fine-tunes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from types import SimpleNamespace

from assistant.config import resolved_setting
from assistant.errors import ConfigError
from assistant.files import write_json
from eval.fold_reasoner import FOLD_FILE, fold_dir
from eval.protocols import loso_folds, select_folds
from finetune.vlm import VLMTrainConfig, read_jsonl, train

log = logging.getLogger(__name__)


def _comparable(record: dict) -> dict:
    """A fold record with its base and training file spelled one way: `./qwen` then and `/abs/qwen` now (runs from
    before bases were recorded absolute) are the same training."""
    return {**record, **{k: resolved_setting(record[k]) for k in ("base", "train_file") if record.get(k)}}


def train_folds(cfg: VLMTrainConfig, rows: list[dict] | None = None) -> dict:
    """Train (or resume, or skip when done) the chosen folds; returns what each one did."""
    if rows is None:
        if not cfg.train_file:
            raise ConfigError("Give --train-file (a TRL JSONL export from `meu data build`) or use --tiny.")
        rows = read_jsonl(cfg.train_file)
    if cfg.eval_file:
        raise ConfigError("--protocol trains each fold on its training subjects and validates on some of them; "
                          "drop --eval-file.")
    missing = sum(1 for r in rows if not r.get("subject"))
    if missing:
        raise ConfigError(f"{missing} row(s) have no `subject`; folds hold out whole subjects. Re-export the data "
                          "with `meu data build`.")
    if cfg.protocol == "cde" and not all("__" in str(r["subject"]) for r in rows):
        raise ConfigError("--protocol cde needs a composite export (subjects like casme2__sub01): build it with "
                          "`meu data build --dataset casme2,samm,smic --root A,B,C`.")
    folds = loso_folds([SimpleNamespace(subject=str(r["subject"])) for r in rows], cfg.val_subjects, cfg.seed)
    chosen = select_folds(folds, cfg.folds, cfg.fold_shard)
    done = {}
    for fold in chosen:
        out = fold_dir(cfg.output_dir, fold.name)
        train_rows, val_rows = [rows[i] for i in fold.train], [rows[i] for i in fold.val]
        # read from the rows themselves, so `meu eval --vlm-run` checks what the adapter really saw
        record = {"protocol": cfg.protocol, "fold": fold.name, "held_out": list(fold.test_subjects),
                  "trained_on": sorted({str(r["subject"]) for r in train_rows}),
                  "validation": sorted({str(r["subject"]) for r in val_rows}), "base": cfg.model_name_or_path,
                  "train_file": cfg.train_file, "seed": cfg.seed}
        before = out / FOLD_FILE
        if before.is_file() and _comparable(json.loads(before.read_text())) != _comparable(record):
            raise ConfigError(f"{out} holds fold {fold.name} of another training (other rows, base or seed); use a "
                              "new --output-dir.")
        log.info("fold %s: %d training rows, %d validation rows", fold.name, len(train_rows), len(val_rows))
        fold_cfg = dataclasses.replace(cfg, output_dir=str(out), protocol="", folds=None, fold_shard=None,
                                       scheme="3" if cfg.protocol == "cde" else cfg.scheme)
        result = train(fold_cfg, rows=train_rows, eval_rows=val_rows)
        write_json(before, record)  # last: a fold.json means this adapter finished with these rows
        done[fold.name] = {"output_dir": str(out), "global_step": result.global_step}
    left = [f.name for f in folds if not (fold_dir(cfg.output_dir, f.name) / "adapter_config.json").is_file()]
    if left:
        log.info("%d of %d folds still to train (e.g. by another --fold-shard): %s", len(left), len(folds),
                 ", ".join(left[:5]))
    return {"protocol": cfg.protocol, "folds": done, "folds_missing": left}
