"""Which clips an evaluation run scores, with their truth and fold: one `Sample` per usable sheet row.

Every protocol's samples come from here (`cde`, which pools three datasets, from `eval.cde`), so the truth a run
scores against is read one way: the emotion in the run's scheme, and the AU set only where the sheet's AU cell was
readable and the dataset codes AUs at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import ConfigError
from eval.protocols import dataset_aus, shared_aus, training_load_options
from instruction_data.records import Record

if TYPE_CHECKING:
    from eval.run import EvalConfig

log = logging.getLogger(__name__)


@dataclass
class Sample:
    key: str
    subject: str
    clip_id: str
    split: str
    fold: str
    source: str  # the clip's frame folder
    onset: int
    apex: int | None  # None: spotted between onset and offset at run time
    true_emotion: str | None  # in the run's scheme; None = the scheme excludes the sheet's word
    emotion_raw: str
    true_aus: list[int] | None  # None when the sheet's AU cell is unreadable (`?`) or the dataset codes no AUs
    offset: int | None = None  # bounds the apex spotting, and the motion core cancels slow drift with its frame


def au_truth(record: Record) -> list[int] | None:
    """A record's AU codes, or None when unknown: an unreadable code (`?`, `4+?`) or a dataset that codes no AUs
    (as `meu train au` treats them)."""
    if not record.aus_coded or record.aus.unknown:
        return None
    return list(record.aus.codes)


def sample(record: Record, fold: str, true_emotion: str | None, subject: str | None = None,
           spot_apex: bool = False) -> Sample:
    """The sample of one record; `spot_apex` leaves the apex to the spotter when the sheet gave none."""
    spot = spot_apex and not record.apex_known
    return Sample(key=record.key, subject=subject or record.subject, clip_id=record.clip_id, split=record.split,
                  fold=fold, source=str(Path(record.frame_paths[0]).parent), onset=record.onset,
                  apex=None if spot else record.apex, true_emotion=true_emotion, emotion_raw=record.emotion_raw,
                  true_aus=au_truth(record), offset=record.offset)


def scored_aus(config: EvalConfig, source: str | None) -> list[int]:
    if config.protocol == "cross":
        return shared_aus(source, config.dataset)
    if config.protocol == "cde":
        from eval.cde import cde_aus

        return cde_aus(config.datasets)
    return dataset_aus(config.dataset)


def is_synthetic(config: EvalConfig) -> bool:
    if config.synthetic is not None:
        return bool(config.synthetic)
    roots = [Path(r) for r in config.roots]
    return bool(roots) and all(any((p / "synth_truth.json").is_file() for p in (root, root.parent) if p.is_dir())
                               for root in roots)


def select_samples(config: EvalConfig, source: str | None) -> tuple[list[Sample], list[dict], dict]:
    """The split's samples, the loader's skipped rows (with reasons) and the loader's audit report."""
    from instruction_data.loaders import load_dataset

    if not config.root:
        raise ConfigError("Give the dataset folder with --root.")
    if config.protocol == "cde":
        from eval.cde import cde_samples

        return cde_samples(config)
    options = {}
    if config.protocol.startswith("dfme-test"):
        if config.dataset != "dfme":
            raise ConfigError(f"The {config.protocol} protocol is for --dataset dfme, not {config.dataset}.")
        options["splits"] = ("test_" + config.protocol[-1],)
    elif config.protocol == "loso":  # LOSO over the training subjects; official test sets have their own protocols
        options = training_load_options(config.dataset)
    loaded = load_dataset(config.dataset, config.root, **options)
    log.info("%s: %s", config.dataset, loaded.summary())
    scheme = config.scheme
    samples = []
    for r in loaded.records:
        if config.protocol == "loso":
            fold = r.subject
        elif config.protocol == "cross":
            fold = f"{source}->{config.dataset}"
        else:
            fold = "all"
        samples.append(sample(r, fold, r.emotion(scheme), spot_apex=config.apex_unknown == "spot"))
    skipped = [{"sheet": s.sheet, "row": s.row, "clip_id": s.clip_id, "reason": s.reason} for s in loaded.skipped]
    return samples, skipped, loaded.report()
