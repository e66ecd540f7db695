"""Folds are built only by eval.protocols and never leak a subject; thresholds never come from test data."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from eval.metrics import choose_thresholds
from eval.protocols import (
    Fold,
    ProtocolError,
    all_subjects_split,
    check_fold,
    cross_dataset_fold,
    loso_folds,
    shared_aus,
)
from finetune import au as train_au


@dataclass
class Item:
    subject: str
    dataset: str = "casme2"
    clip_id: str = ""
    score: float = 0.0  # used by the fixed-probability adapter below

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.clip_id}"


def _items(n_subjects=6, per=3, dataset="casme2"):
    return [Item(f"s{s}", dataset, f"c{c}") for s in range(n_subjects) for c in range(per + s % 2)]


def test_loso_one_fold_per_subject_and_disjoint():
    items = _items()
    folds = loso_folds(items, val_subjects=2, seed=3)
    assert [f.name for f in folds] == sorted({i.subject for i in items})
    tested = []
    for f in folds:
        tr = {items[i].subject for i in f.train}
        va = {items[i].subject for i in f.val}
        te = {items[i].subject for i in f.test}
        assert te == {f.name} and not (tr & te) and not (va & te) and not (tr & va)
        assert len(va) == 2 and tr | va == {i.subject for i in items} - te  # validation from training subjects
        assert set(f.train) | set(f.val) | set(f.test) == set(range(len(items)))
        tested += list(f.test)
    assert sorted(tested) == list(range(len(items)))  # every clip tested exactly once
    assert [f.val for f in loso_folds(items, 2, seed=3)] == [f.val for f in folds]  # deterministic


def test_check_fold_rejects_overlap_and_small_data():
    items = _items(3, 2)
    bad = Fold("s0", train=(0, 1, 2), val=(), test=(0,), train_subjects=("s0",), val_subjects=(), test_subjects=("s0",))
    with pytest.raises(ProtocolError, match="both train and test"):
        check_fold(bad, items)
    with pytest.raises(ProtocolError, match="at least 2 subjects"):
        loso_folds(_items(1, 3))
    with pytest.raises(ProtocolError, match="validation"):
        loso_folds(_items(2, 2), val_subjects=1)


def test_cross_dataset_and_final_split():
    src, tgt = _items(4, 2, "casme2"), _items(3, 2, "samm")
    fold = cross_dataset_fold(src, tgt, val_subjects=1)
    assert fold.test == tuple(range(len(tgt)))
    assert not {src[i].subject for i in fold.train} & {src[i].subject for i in fold.val}
    assert shared_aus("casme2", "samm") == [2, 4, 7, 12]
    final = all_subjects_split(src, val_subjects=1)
    assert final.test == () and len(final.val_subjects) == 1
    assert set(final.train) | set(final.val) == set(range(len(src)))


class FixedScores:
    """A model whose probability for every AU is the item's `score` (no training): isolates threshold policy."""

    def __init__(self, config, aus):
        self.aus = aus

    def fit(self, train, val):
        return {}

    def predict(self, data):
        return np.repeat(np.array([[r.score] for r in data.records]), len(self.aus), axis=1)

    def save(self, out_dir, thresholds):
        raise AssertionError("not called for test folds")


def test_thresholds_come_from_validation_only(tmp_path, monkeypatch):
    monkeypatch.setitem(train_au.MODELS, "fixed", "tests_fixed:FixedScores")
    import sys
    import types

    module = types.ModuleType("tests_fixed")
    module.FixedScores = FixedScores
    monkeypatch.setitem(sys.modules, "tests_fixed", module)
    rng = np.random.default_rng(0)
    items = [Item(f"s{s}", clip_id=f"c{c}", score=float(rng.random())) for s in range(4) for c in range(6)]
    folds = loso_folds(items, val_subjects=2, seed=0)
    fold = folds[0]
    labels = (np.array([[it.score] for it in items]) > 0.62).astype(int)
    data = train_au.FoldData(items, labels)
    cfg = train_au.TrainAUConfig(model="fixed", threshold_search=True, out=str(tmp_path))
    out1, out2 = tmp_path / "a", tmp_path / "b"
    res = train_au.run_fold(cfg, [12], fold.name, data.subset(fold.train), data.subset(fold.val),
                            data.subset(fold.test), out1)
    val_probs = np.array([[items[i].score] for i in fold.val])
    assert res["thresholds"] == choose_thresholds(val_probs, labels[list(fold.val)], 0.5)
    # flipping every *test* label changes nothing the model decided: thresholds and predictions stay the same
    flipped = train_au.FoldData(items, labels.copy())
    flipped.labels[list(fold.test)] ^= 1
    train_au.run_fold(cfg, [12], fold.name, data.subset(fold.train), data.subset(fold.val),
                      flipped.subset(fold.test), out2)
    assert json.loads((out1 / "thresholds.json").read_text())["thresholds"] == \
        json.loads((out2 / "thresholds.json").read_text())["thresholds"]
    _, _, pred1, _ = train_au.read_predictions(out1 / "predictions.csv", [12])
    true2, _, pred2, _ = train_au.read_predictions(out2 / "predictions.csv", [12])
    assert (pred1 == pred2).all() and (true2 != labels[list(fold.test)]).all()
    assert Path(out1 / "predictions.csv").read_text().count("\n") == len(fold.test) + 1


def _records(dataset, n_subjects, per, seed):
    from assistant.au import parse_aus
    from instruction_data.records import Record

    rng = np.random.default_rng(seed)
    cells = ["1+2", "4+7", "R12", "14", "15+17", "2+12", "?", "4"]
    return [Record(dataset, f"{dataset[0]}{s}", f"c{c}", [], 0, 0, None, parse_aus(cells[int(rng.integers(8))]), "x")
            for s in range(n_subjects) for c in range(per)]


def test_loso_run_scores_always_positive_exactly(tmp_path):
    records = _records("casme2", 5, 4, seed=1)
    cfg = train_au.TrainAUConfig(model="always_positive", out=str(tmp_path / "ap"), final_model=False)
    metrics = train_au.run(cfg, records)
    known = [r for r in records if not r.aus.unknown]  # "?" rows have no true labels: left out, counted
    assert metrics["n_clips"] == len(known) and metrics["n_left_out_unknown_au"] == len(records) - len(known)
    for au in [1, 2, 4, 7, 12, 14, 15, 17]:
        p = sum(au in r.aus.codes for r in known)
        assert metrics["pooled"]["f1"][str(au)] == pytest.approx(2 * p / (p + len(known)))  # F1 at recall 1


def test_cross_dataset_run_tests_on_the_target_over_shared_aus(tmp_path):
    source, target = _records("casme2", 4, 3, seed=2), _records("samm", 3, 3, seed=3)
    cfg = train_au.TrainAUConfig(model="prior", protocol="cross", target_dataset="samm", out=str(tmp_path / "x"))
    metrics = train_au.run(cfg, source, target)
    assert metrics["aus"] == [2, 4, 7, 12]
    _, _, _, folds = train_au.read_predictions(tmp_path / "x" / "predictions.csv", [2, 4, 7, 12])
    assert set(folds) == {"casme2->samm"}
    with open(tmp_path / "x" / "predictions.csv") as fh:
        keys = [line.split(",")[0] for line in fh.readlines()[1:]]
    assert sorted(keys) == sorted(r.key for r in target if not r.aus.unknown)
    with pytest.raises(train_au.ConfigError, match="target"):
        train_au.run(dataclasses.replace(cfg, target_dataset=None, out=str(tmp_path / "y")), source, target)
