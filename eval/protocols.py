"""The only place evaluation folds are built, so no experiment can leak a subject.

Items are anything with a `.subject` attribute (instruction_data Records). A `Fold` holds *indices* into the
item list: `train` and `val` come from training subjects only (the validation subjects are drawn from the training
subjects, never from the test subject), `test` from the held-out subject(s) or the target dataset. Every fold is
checked on construction: a subject in two of the three parts raises.

- `loso_folds`: one fold per subject (leave one subject out), in sorted subject order.
- `cross_dataset_fold`: train (and validate) on one dataset, test on all of another, over their shared AUs.
- `cde_folds`: LOSO over several datasets pooled, subjects qualified by dataset (the MEGC 2019 composite).
- `all_subjects_split`: the split for the final model trained on every subject (validation still subject-disjoint).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.errors import ConfigError, MEUError
from instruction_data.records import qualified_subject

# AU lists scored per dataset: CASME II and SAMM as in the AU papers; DFME and CAS(ME)^3 have no standard list in
# the AU literature, so they are scored on CASME II's eight (a documented choice, the same in training and eval).
DATASET_AUS: dict[str, list[int]] = {
    "casme2": [1, 2, 4, 7, 12, 14, 15, 17],
    "samm": [2, 4, 7, 12],
    "dfme": [1, 2, 4, 7, 12, 14, 15, 17],
    "casme3": [1, 2, 4, 7, 12, 14, 15, 17],
    "smic": [],  # SMIC codes no AUs: nothing to score, nothing to train on
}


# AUs each dataset's coders coded (None: every FACS AU, as CASME II, SAMM, DFME and CAS(ME)^3 are FACS-coded);
# a label outside it is unknown (-1) in pooled training, never a negative. The scored lists above are a subset.
CODED_AUS: dict[str, list[int] | None] = {"casme2": None, "samm": None, "dfme": None, "casme3": None, "smic": []}


def codes_au(dataset: str, au: int) -> bool:
    coded = CODED_AUS.get(dataset)
    return coded is None or au in coded


# Datasets with official held-out test sheets: training and LOSO use only these splits (DFME Test A/B stay unseen).
TRAINING_SPLITS: dict[str, tuple[str, ...]] = {"dfme": ("train",)}


def training_load_options(dataset: str) -> dict:
    """Loader options that keep a dataset's official test sets out of training and LOSO."""
    return {"splits": TRAINING_SPLITS[dataset]} if dataset in TRAINING_SPLITS else {}


class ProtocolError(MEUError):
    """A protocol cannot be built from the given data (too few subjects, overlapping subjects)."""


@dataclass(frozen=True)
class Fold:
    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    train_subjects: tuple[str, ...]
    val_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]


def dataset_aus(name: str) -> list[int]:
    try:
        return list(DATASET_AUS[name])
    except KeyError:
        raise ProtocolError(f"No AU list for dataset {name!r}; known: {', '.join(DATASET_AUS)}.") from None


def shared_aus(source: str, target: str) -> list[int]:
    """AUs scored in cross-dataset mode: those both datasets' detection lists contain."""
    return sorted(set(dataset_aus(source)) & set(dataset_aus(target)))


def check_fold(fold: Fold, train_items: Sequence, test_items: Sequence | None = None) -> None:
    """Raise `ProtocolError` if a subject appears in two parts of `fold` (indices checked against the items)."""
    test_items = train_items if test_items is None else test_items
    tr = {str(train_items[i].subject) for i in fold.train}
    va = {str(train_items[i].subject) for i in fold.val}
    te = {str(test_items[i].subject) for i in fold.test}
    if test_items is not train_items:  # different datasets: subject ids are namespaced by dataset
        te = {f"{getattr(test_items[i], 'dataset', 'target')}/{test_items[i].subject}" for i in fold.test}
        tr = {f"{getattr(train_items[i], 'dataset', 'source')}/{train_items[i].subject}" for i in fold.train}
        va = {f"{getattr(train_items[i], 'dataset', 'source')}/{train_items[i].subject}" for i in fold.val}
    for a, b, what in ((tr, te, "train and test"), (va, te, "validation and test"), (tr, va, "train and validation")):
        if a & b:
            raise ProtocolError(f"Fold {fold.name}: subject(s) {sorted(a & b)} in both {what}.")


def _subjects(items: Sequence) -> list[str]:
    return sorted({str(it.subject) for it in items})


def _draw_val(subjects: list[str], val_subjects: int, seed: int, salt: str) -> list[str]:
    if val_subjects <= 0:
        return []
    if len(subjects) <= val_subjects:
        raise ProtocolError(f"Need more than {val_subjects} training subject(s) to hold some out for validation; "
                            f"have {len(subjects)}. Lower --val-subjects or add subjects.")
    return sorted(random.Random(f"{seed}/{salt}").sample(subjects, val_subjects))


def _split(items: Sequence, train_subj: list[str], val_subj: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    val_set = set(val_subj)
    train_set = set(train_subj) - val_set
    train = tuple(i for i, it in enumerate(items) if str(it.subject) in train_set)
    val = tuple(i for i, it in enumerate(items) if str(it.subject) in val_set)
    return train, val


def loso_folds(items: Sequence, val_subjects: int = 1, seed: int = 0) -> list[Fold]:
    """Leave-one-subject-out folds; `val_subjects` validation subjects drawn from each fold's training subjects."""
    subjects = _subjects(items)
    if len(subjects) < 2:
        raise ProtocolError(f"LOSO needs at least 2 subjects; the data has {len(subjects)}.")
    folds = []
    for held in subjects:
        rest = [s for s in subjects if s != held]
        val = _draw_val(rest, val_subjects, seed, held)
        train, val_idx = _split(items, rest, val)
        test = tuple(i for i, it in enumerate(items) if str(it.subject) == held)
        fold = Fold(held, train, val_idx, test, tuple(s for s in rest if s not in val), tuple(val), (held,))
        check_fold(fold, items)
        folds.append(fold)
    return folds


def fold_shard(spec: str | None) -> tuple[int, int]:
    """(I, N) of `--fold-shard I/N` (1-based); (1, 1) when not sharded."""
    if spec is None:
        return 1, 1
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise ConfigError(f"--fold-shard {spec}: write I/N with 1 <= I <= N, e.g. 2/4 for the second of four "
                          "shares.")
    return i, n


def select_folds(folds: list, names: Sequence[str] | None, shard: str | None) -> list:
    """The folds a run trains: those named (`--folds`, every one must exist), then every N-th from the I-th
    (`--fold-shard I/N`), so N processes or machines sharing one output folder split them."""
    if names:
        known = [f.name for f in folds]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(f"--folds {', '.join(unknown)}: no such subject; the folds are {', '.join(known)}.")
        folds = [f for f in folds if f.name in set(names)]
    index, count = fold_shard(shard)
    chosen = folds[index - 1::count]
    if not chosen:
        raise ConfigError(f"--fold-shard {shard} gets no fold: there are {len(folds)}.")
    return chosen


def cde_folds(records: Sequence, val_subjects: int = 1, seed: int = 0, test_only: Sequence = ()) -> list[Fold]:
    """The MEGC 2019 composite folds: leave one subject out over every dataset's subjects, ids dataset-qualified.
    Fold names are the qualified ids; indices index `records` (items with `.dataset` and `.subject`).

    `test_only`: clips never trained on (SMIC codes no AU). A subject with only such clips still gets a fold, with
    an empty `test` (its clips are not in `records`) and every trained subject in `train` and `val`, so each of its
    clips is predicted by a model that never saw it."""
    items = qualified_items(records)
    subjects = _subjects(items)
    if len(subjects) < 2:
        raise ProtocolError(f"The composite protocol needs at least 2 subjects to train and test on; the data has "
                            f"{len(subjects)}{' with AU labels' if test_only else ''}.")
    folds = loso_folds(items, val_subjects, seed)
    for held in sorted({it.subject for it in qualified_items(test_only)} - set(subjects)):
        val = _draw_val(subjects, val_subjects, seed, held)
        train, val_idx = _split(items, subjects, val)
        fold = Fold(held, train, val_idx, (), tuple(s for s in subjects if s not in val), tuple(val), (held,))
        check_fold(fold, items)
        folds.append(fold)
    return sorted(folds, key=lambda f: f.name)


def qualified_items(records: Sequence) -> list:
    """Items whose `.subject` is dataset-qualified, for the splits of pooled datasets (the final model's)."""
    from types import SimpleNamespace

    return [SimpleNamespace(subject=qualified_subject(r.dataset, str(r.subject))) for r in records]


def all_subjects_split(items: Sequence, val_subjects: int = 1, seed: int = 0) -> Fold:
    """Train/validation split over every subject, for the final model (no test part)."""
    subjects = _subjects(items)
    val = _draw_val(subjects, val_subjects, seed, "final")
    train, val_idx = _split(items, subjects, val)
    fold = Fold("final", train, val_idx, (), tuple(s for s in subjects if s not in val), tuple(val), ())
    check_fold(fold, items)
    return fold


def cross_dataset_fold(source: Sequence, target: Sequence, val_subjects: int = 1, seed: int = 0,
                       name: str = "cross") -> Fold:
    """Train/validate on `source` subjects, test on every item of `target` (indices of `test` index `target`)."""
    if not target:
        raise ProtocolError("The target dataset has no clips to test on.")
    subjects = _subjects(source)
    val = _draw_val(subjects, val_subjects, seed, name)
    train, val_idx = _split(source, subjects, val)
    fold = Fold(name, train, val_idx, tuple(range(len(target))), tuple(s for s in subjects if s not in val),
                tuple(val), tuple(_subjects(target)))
    check_fold(fold, source, target)
    return fold
