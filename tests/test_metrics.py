"""eval.metrics against scikit-learn on random data, plus the conventions sklearn does not cover."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from eval.metrics import choose_thresholds, classification_scores, folded_multilabel_scores, multilabel_scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    t = (rng.random((40, 5)) < 0.3).astype(int)
    p = (rng.random((40, 5)) < 0.4).astype(int)
    t[:, 4] = 0  # a label with no positives: sklearn's zero_division=0 convention
    s = multilabel_scores(t, p, labels=[1, 2, 4, 7, 12])
    ref = f1_score(t, p, average=None, zero_division=0)
    assert [s.f1[a] for a in [1, 2, 4, 7, 12]] == pytest.approx(ref.tolist())
    assert s.mean_f1 == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert [s.precision[a] for a in [1, 2, 4, 7, 12]] == pytest.approx(
        precision_score(t, p, average=None, zero_division=0).tolist())
    assert [s.recall[a] for a in [1, 2, 4, 7, 12]] == pytest.approx(
        recall_score(t, p, average=None, zero_division=0).tolist())
    assert s.support[1] == int(t[:, 0].sum())


def test_folded_scores_pool_once_and_mark_undefined_per_fold():
    rng = np.random.default_rng(3)
    t = (rng.random((30, 3)) < 0.4).astype(int)
    p = (rng.random((30, 3)) < 0.4).astype(int)
    folds = np.repeat(["a", "b", "c"], 10)
    t[folds == "c", 2] = 0
    p[folds == "c", 2] = 0
    s = folded_multilabel_scores(t, p, folds, labels=["x", "y", "z"])
    assert s.pooled.mean_f1 == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    for name in "ab":
        m = folds == name
        assert s.per_fold[name].f1["x"] == pytest.approx(f1_score(t[m, 0], p[m, 0], zero_division=0))
    assert np.isnan(s.per_fold["c"].f1["z"])  # neither positives nor predicted positives: undefined
    assert s.per_fold["c"].mean_f1 == pytest.approx(np.mean([s.per_fold["c"].f1["x"], s.per_fold["c"].f1["y"]]))
    assert s.fold_mean_f1 == pytest.approx(np.mean([s.per_fold[k].mean_f1 for k in "abc"]))


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    classes = ["negative", "positive", "surprise"]
    t = rng.choice(classes, 50).tolist()
    p = rng.choice(classes + [None], 50, p=[0.3, 0.3, 0.3, 0.1]).tolist()
    s = classification_scores(t, p, classes)
    p_str = ["<none>" if x is None else x for x in p]
    assert s.uf1 == pytest.approx(f1_score(t, p_str, labels=classes, average="macro", zero_division=0))
    assert s.uar == pytest.approx(recall_score(t, p_str, labels=classes, average="macro", zero_division=0))
    assert s.accuracy == pytest.approx(accuracy_score(t, p_str))
    cm = confusion_matrix(t, p_str, labels=classes)
    assert np.array(s.confusion)[:, :3].tolist() == cm.tolist()
    assert s.n_other == sum(x is None for x in p) == int(np.array(s.confusion)[:, 3].sum())
    for c in classes:
        assert s.per_class[c]["precision"] == pytest.approx(
            precision_score(t, p_str, labels=[c], average="macro", zero_division=0))


def test_unknown_true_label_is_an_error():
    with pytest.raises(ValueError, match="not one of the classes"):
        classification_scores(["a", "b"], ["a", "a"], classes=["a"])


def test_choose_thresholds_can_keep_null_rows_quiet():
    """F1 alone puts AU1's threshold at 0.2 (positives at 0.30, 0.22, 0.21), which fires on two of the three null rows
    (0.28, 0.23); with at most a third of them allowed, that column moves up one step at a time until one fires. A
    row with an unknown label (-1) is not a null row."""
    probs = np.array([[0.30, 0.1], [0.05, 0.9], [0.28, 0.1], [0.23, 0.62], [0.10, 0.1], [0.22, 0.5], [0.21, 0.1]])
    labels = np.array([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [1, -1], [1, 0]])
    assert choose_thresholds(probs, labels) == [0.2, 0.65]
    assert choose_thresholds(probs, labels, max_null=1 / 3) == [0.25, 0.65]
    assert choose_thresholds(probs, labels, max_null=0.0) == [0.3, 0.65]
    assert choose_thresholds(probs, labels, max_null=1.0) == [0.2, 0.65]


def test_choose_thresholds_maximises_validation_f1():
    probs = np.array([[0.9, 0.2], [0.7, 0.1], [0.3, 0.3], [0.2, 0.4]])
    labels = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    th = choose_thresholds(probs, labels, default=0.5)
    assert 0.3 < th[0] <= 0.7  # separates 0.7 (positive) from 0.3 (negative); the tie closest to 0.5 wins
    assert th[0] == 0.5
    assert th[1] == 0.5  # no positives: default kept
    probs[:, 0] = [0.35, 0.32, 0.3, 0.2]
    # no grid value separates 0.32 from 0.30: 0.30 (F1 0.8) beats 0.35 (F1 0.67) and ties 0.25, nearer 0.5
    assert choose_thresholds(probs, labels)[0] == 0.3
