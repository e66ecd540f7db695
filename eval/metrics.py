"""The field's scores, computed one way for every detector and every reasoner.

Multi-label AU detection: F1 per AU and their unweighted mean ("mean F1" of the AU papers), pooled over all LOSO
folds (computed once on the concatenated predictions) and per fold. Emotion classification: UF1 (mean per-class F1),
UAR (mean per-class recall), accuracy, per-class precision/recall/F1 and the confusion matrix. Every AU code named
against every code coded (`code_set_scores`): precision and recall over all codes, whatever AU list is scored.

Conventions (the same as scikit-learn with `zero_division=0`): a score whose denominator is zero is 0.0; per-fold
tables use NaN instead when an AU has neither positives nor predicted positives in that fold (F1 is undefined
there, and averaging a 0 would punish a fold for a missing AU). A prediction outside `classes` (an unparsable
answer) is wrong: it is a miss for its true class and a false positive for no class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


def _ratio(num: float, den: float, empty: float = 0.0) -> float:
    return float(num) / float(den) if den else empty


def _f1(tp: int, fp: int, fn: int, empty: float = 0.0) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn, empty)


@dataclass
class MultiLabelScores:
    labels: list  # AU codes (or any names), one per column
    f1: dict  # label -> F1
    precision: dict
    recall: dict
    support: dict  # label -> number of positive samples
    mean_f1: float  # unweighted mean over labels (NaN entries skipped)
    n_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Hashable] | None = None,
                      undefined: float = 0.0) -> MultiLabelScores:
    """Per-label F1/P/R for binary (N, K) arrays; `undefined` is the F1 of a label with tp + fp + fn = 0. Truth is 0
    or 1: a -1 ("not coded", as training writes it) read as bool would count as an AU present, so it is refused."""
    t = np.asarray(y_true)
    if t.size and (t.min() < 0 or t.max() > 1):
        raise ValueError("y_true must hold 0 and 1 only; leave clips whose AU is not coded (-1) out of the scores")
    t = t.astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal (N, K) arrays")
    labels = list(range(t.shape[1])) if labels is None else list(labels)
    if len(labels) != t.shape[1]:
        raise ValueError(f"{len(labels)} labels for {t.shape[1]} columns")
    f1, prec, rec, sup = {}, {}, {}, {}
    for k, lab in enumerate(labels):
        tp = int(np.sum(t[:, k] & p[:, k]))
        fp = int(np.sum(~t[:, k] & p[:, k]))
        fn = int(np.sum(t[:, k] & ~p[:, k]))
        f1[lab] = _f1(tp, fp, fn, undefined)
        prec[lab] = _ratio(tp, tp + fp)
        rec[lab] = _ratio(tp, tp + fn)
        sup[lab] = int(t[:, k].sum())
    values = np.array(list(f1.values()), dtype=float)
    mean = float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
    return MultiLabelScores(labels, f1, prec, rec, sup, mean, int(t.shape[0]))


@dataclass
class FoldedScores:
    pooled: MultiLabelScores  # computed once over all folds' predictions: the figure the papers report
    per_fold: dict  # fold name -> MultiLabelScores (undefined F1 = NaN)
    fold_mean_f1: float  # mean over folds of each fold's mean F1, beside the pooled figure

    def to_dict(self) -> dict:
        return {"pooled": self.pooled.to_dict(), "per_fold": {k: v.to_dict() for k, v in self.per_fold.items()},
                "fold_mean_f1": self.fold_mean_f1}


def folded_multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray, folds: Sequence[Hashable],
                             labels: Sequence[Hashable] | None = None) -> FoldedScores:
    """Pooled and per-fold multi-label scores; `folds[i]` names the fold of sample i."""
    t, p, f = np.asarray(y_true), np.asarray(y_pred), np.asarray(folds)
    per_fold = {}
    for name in dict.fromkeys(f.tolist()):
        m = f == name
        per_fold[name] = multilabel_scores(t[m], p[m], labels, undefined=float("nan"))
    means = np.array([s.mean_f1 for s in per_fold.values()], dtype=float)
    fold_mean = float(np.nanmean(means)) if np.any(~np.isnan(means)) else float("nan")
    return FoldedScores(multilabel_scores(t, p, labels), per_fold, fold_mean)


@dataclass
class ClassificationScores:
    classes: list
    uf1: float
    uar: float
    accuracy: float
    per_class: dict  # class -> {"precision", "recall", "f1", "support"}
    confusion: list  # rows = true class, columns = predicted class, in `classes` order; last column = "other"
    n_samples: int
    n_other: int  # predictions outside `classes` (unparsable answers)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def classification_scores(y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                          classes: Sequence[Hashable] | None = None) -> ClassificationScores:
    """UF1, UAR, accuracy, per-class scores and confusion matrix over `classes` (default: classes seen in y_true)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    classes = list(dict.fromkeys(y_true)) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    confusion = np.zeros((k, k + 1), dtype=int)
    for t, p in zip(y_true, y_pred):
        if t not in index:
            raise ValueError(f"true label {t!r} is not one of the classes {classes}")
        confusion[index[t], index.get(p, k)] += 1
    per_class = {}
    for c, i in index.items():
        tp = int(confusion[i, i])
        fp = int(confusion[:, i].sum() - tp)
        fn = int(confusion[i].sum() - tp)
        per_class[c] = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
                        "f1": _f1(tp, fp, fn), "support": int(confusion[i].sum())}
    n = len(y_true)
    return ClassificationScores(
        classes=classes,
        uf1=float(np.mean([v["f1"] for v in per_class.values()])) if k else 0.0,
        uar=float(np.mean([v["recall"] for v in per_class.values()])) if k else 0.0,
        accuracy=_ratio(int(np.trace(confusion[:, :k])), n),
        per_class=per_class, confusion=confusion.tolist(), n_samples=n, n_other=int(confusion[:, k].sum()),
    )


def most_first(counts: dict) -> dict:
    """Counts ordered largest first, ties by key."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class CodeSetScores:
    """Every AU code named against every code coded, per clip (sides and intensity ignored), pooled over clips."""

    n_clips: int
    named_per_clip: float
    coded_per_clip: float
    precision: float  # named codes that were coded / named codes
    recall: float  # coded codes that were named / coded codes
    named_not_coded: dict  # code -> clips naming it without it coded, most first
    coded_not_named: dict  # code -> clips coding it where it was not named, most first

    def to_dict(self) -> dict:
        return asdict(self)


def code_set_scores(coded: Sequence[set[int]], named: Sequence[set[int]]) -> CodeSetScores:
    """What a reader of the answers sees: each AU it names is right or wrong whether or not a benchmark's AU list
    scores that AU (the per-AU F1 above leaves out codes outside the list, and with them most false alarms)."""
    if len(coded) != len(named):
        raise ValueError(f"{len(coded)} coded sets but {len(named)} named sets")
    tp = sum(len(c & n) for c, n in zip(coded, named))
    n_named, n_coded = sum(map(len, named)), sum(map(len, coded))
    wrong = Counter(code for c, n in zip(coded, named) for code in n - c)
    missed = Counter(code for c, n in zip(coded, named) for code in c - n)
    k = len(coded)
    return CodeSetScores(k, _ratio(n_named, k), _ratio(n_coded, k), _ratio(tp, n_named), _ratio(tp, n_coded),
                         most_first(wrong), most_first(missed))


def choose_thresholds(probs: np.ndarray, labels: np.ndarray, default: float = 0.5,
                      grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2)),
                      max_null: float | None = None) -> list[float]:
    """Per-column threshold maximising F1 on *validation* data (callers must never pass test predictions).

    A column without positives in `labels` keeps `default`; ties go to the threshold closest to `default`. A label
    of -1 is unknown (an AU the clip's dataset does not code) and that clip is left out of that column.

    `max_null`: the share of null rows (every label known and 0) that may get any column over its threshold. F1 alone
    picks low thresholds on a few dozen validation clips, and every AU's false alarms add up on a still clip; while
    the share is over the limit, the column that fires on the most null rows moves up one grid step (at most to the
    grid's top)."""
    p, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    out = []
    for k in range(p.shape[1]):
        known = labels[:, k] >= 0
        pk, tk = p[known, k], labels[known, k].astype(bool)
        if not tk.any():
            out.append(float(default))
            continue
        scored = []
        for th in grid:
            pred = pk >= th
            tp, fp, fn = int(np.sum(pred & tk)), int(np.sum(pred & ~tk)), int(np.sum(~pred & tk))
            scored.append((_f1(tp, fp, fn), -abs(th - default), float(th)))
        out.append(max(scored)[2])
    null = p[(labels == 0).all(axis=1)]
    if max_null is None or not len(null):
        return out
    top = max(grid)
    while True:
        fires = null >= np.asarray(out)
        if fires.any(axis=1).mean() <= max_null:
            return out
        raisable = [k for k in range(len(out)) if out[k] < top and fires[:, k].any()]
        if not raisable:
            return out
        k = max(raisable, key=lambda j: (int(fires[:, j].sum()), -j))
        out[k] = float(min(g for g in grid if g > out[k]))
