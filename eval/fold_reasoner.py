"""`meu eval --vlm-run DIR`: each clip answered by the LoRA adapter of the fold that held its subject out.

DIR is the output folder of `meu train vlm --protocol loso|cde`: one adapter per fold in `folds/<subject>/`, with
`fold.json` naming the subject it held out. Every fold the samples need is checked before anything runs, and a fold
that did not hold out its own subject is refused. One adapter is loaded at a time (the base with it), so a run sorted
by fold loads each adapter once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.errors import ConfigError

log = logging.getLogger(__name__)


class FoldReasoner:
    name = "vlm"

    def __init__(self, run_dir: str | Path, protocol: str, folds: list[str], make):
        """`make(adapter_dir)` builds the VLM reasoner of one fold; `folds`: the folds the samples need."""
        self.root = Path(run_dir)
        self.make = make
        self.current: tuple[str, object] | None = None
        missing, wrong = [], []
        for fold in sorted(set(folds)):
            info = self.root / "folds" / fold / "fold.json"
            if not (self.root / "folds" / fold / "adapter_config.json").is_file() or not info.is_file():
                missing.append(fold)
                continue
            record = json.loads(info.read_text())
            if record.get("protocol") != protocol or record.get("held_out") != [fold]:
                wrong.append(fold)
        if missing:
            raise ConfigError(f"{self.root} has no finished adapter for {len(missing)} fold(s) (first: {missing[0]}); "
                              f"train them with `meu train vlm --protocol {protocol} --output-dir {self.root}`.")
        if wrong:
            raise ConfigError(f"{self.root}/folds/{wrong[0]} is not the {protocol} fold that holds out {wrong[0]}; "
                              "its answers could come from a model that saw the subject.")

    def for_fold(self, fold: str):
        if self.current is None or self.current[0] != fold:
            self.current = None  # the previous fold's model is released before the next one loads
            log.info("loading the adapter of fold %s", fold)
            self.current = (fold, self.make(str(self.root / "folds" / fold)))
        return self.current[1]

    def generation_record(self) -> dict | None:
        return self.current[1].generation_record() if self.current else None
