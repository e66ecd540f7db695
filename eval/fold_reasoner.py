"""`meu eval --vlm-run DIR`: each clip answered by the LoRA adapter of the fold that held its subject out.

DIR is the output folder of `meu train vlm --protocol loso|cde`: one adapter per fold in `folds/<subject>/`, with
`fold.json` naming the subject it held out and the subjects its training rows held. Every fold the samples need is
checked before anything runs: finished, of this protocol, holding out its own subject, and trained on `--vlm-base`.
One adapter is loaded at a time (the base with it), so a run sorted by fold loads each adapter once.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

FOLD_FILE = "fold.json"


def fold_dir(run_dir: str | Path, fold: str) -> Path:
    """Where the adapter of `fold` lives (the subject id made safe as one folder name)."""
    return Path(run_dir) / "folds" / re.sub(r"[^A-Za-z0-9._-]+", "_", fold)


def _same_model(a: str, b: str) -> bool:
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


class FoldReasoner:
    def __init__(self, run_dir: str | Path, protocol: str, base: str, folds: list[str], make):
        """`make(adapter_dir)` builds the VLM reasoner of one fold; `folds`: the folds the samples need."""
        self.root = Path(run_dir)
        self.make = make
        self.folds = sorted(set(folds))
        self.current: tuple[str, object] | None = None
        missing = [f for f in self.folds if not (fold_dir(self.root, f) / FOLD_FILE).is_file()
                   or not (fold_dir(self.root, f) / "adapter_config.json").is_file()]
        if missing:
            raise ConfigError(f"{self.root} has no finished adapter for {len(missing)} fold(s) (first: {missing[0]}); "
                              f"train them with `meu train vlm --protocol {protocol} --output-dir {self.root}`.")
        for fold in self.folds:
            record = json.loads((fold_dir(self.root, fold) / FOLD_FILE).read_text())
            if record.get("protocol") != protocol or record.get("held_out") != [fold] \
                    or fold in record.get("trained_on", [fold]):
                raise ConfigError(f"{fold_dir(self.root, fold)} is not the {protocol} fold that holds out {fold}; its "
                                  "answers could come from a model that saw the subject.")
            trained_base = record.get("base", "")
            if not _same_model(trained_base, base):
                raise ConfigError(f"The adapter of fold {fold} was trained on {trained_base}, not on --vlm-base "
                                  f"{base}; give the base it was trained on.")

    def adapter(self, fold: str) -> Path:
        return fold_dir(self.root, fold)

    def for_fold(self, fold: str):
        if self.current is None or self.current[0] != fold:
            self.current = None  # the previous fold's model is released before the next one loads
            log.info("loading the adapter of fold %s", fold)
            self.current = (fold, self.make(str(self.adapter(fold))))
        return self.current[1]

    def generation_record(self) -> dict | None:
        """The generation settings (all folds share them); read from the first fold when none was loaded."""
        reasoner = self.current[1] if self.current else self.make(str(self.adapter(self.folds[0])))
        return reasoner.generation_record()
