"""The MEGC spotting protocol: intervals matched to ground truth by temporal IoU, F1 pooled over a dataset.

An interval covers the frames onset..offset, both included, so [10, 19] is 10 frames long and IoU counts frames:
|A ∩ B| / |A ∪ B|. A spotted interval is a true positive (TP) when its IoU with a ground-truth interval of the same
kind (micro or macro) is at least 0.5; each ground truth is matched at most once and each spotted interval at most
once. Spotted intervals left unmatched are false positives (FP), ground truths left unmatched are false negatives
(FN). Among several valid pairings the one with the most TPs is taken (then the largest total IoU), so the count does
not depend on the order the intervals are listed in.

Micro and macro are scored apart; the overall figure adds their TP, FP and FN (as MEGC 2020 and later report it).
`any_kind` matches intervals whatever their kind, to show how much a spotter loses by labelling a found expression
with the wrong kind. Dataset figures are pooled: TP, FP and FN are summed over all videos, then precision, recall
and F1 are computed once (F1 = 2 TP / (2 TP + FP + FN)); per-subject and per-video figures stand beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

IOU_THRESHOLD = 0.5
KINDS = ("micro", "macro")


@dataclass(frozen=True)
class Span:
    """One interval, spotted or annotated: frame indices, both ends included."""

    onset: int
    offset: int
    kind: str = "micro"  # "micro" | "macro"
    apex: int | None = None

    def __post_init__(self):
        if self.offset < self.onset:
            raise ValueError(f"interval ends before it starts: onset {self.onset}, offset {self.offset}")

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


def iou(a: Span, b: Span) -> float:
    """Temporal IoU over frames (both ends included)."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.length + b.length - inter)


def match(predicted: Sequence[Span], truth: Sequence[Span], threshold: float = IOU_THRESHOLD
          ) -> list[tuple[int, int, float]]:
    """One-to-one (predicted index, truth index, IoU) pairs with IoU >= threshold: the most pairs, then the largest
    total IoU."""
    if not predicted or not truth:
        return []
    ious = np.array([[iou(p, t) for t in truth] for p in predicted])
    valid = ious >= threshold
    if not valid.any():
        return []
    big = max(len(predicted), len(truth)) + 1  # one more pair always outweighs any IoU gain
    weight = np.where(valid, big + ious, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols) if valid[r, c]]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def n_spotted(self) -> int:
        return self.tp + self.fp

    @property
    def n_truth(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return self.tp / self.n_spotted if self.n_spotted else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.n_truth if self.n_truth else None

    @property
    def f1(self) -> float | None:
        """None when there is nothing to score (no ground truth and nothing spotted)."""
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else None

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "n_spotted": self.n_spotted, "n_truth": self.n_truth,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def count(predicted: Sequence[Span], truth: Sequence[Span], threshold: float = IOU_THRESHOLD) -> Counts:
    tp = len(match(predicted, truth, threshold))
    return Counts(tp=tp, fp=len(predicted) - tp, fn=len(truth) - tp)


def video_counts(predicted: Sequence[Span], truth: Sequence[Span], threshold: float = IOU_THRESHOLD
                 ) -> dict[str, Counts]:
    """Counts of one video: per kind, `overall` (the kinds added) and `any_kind` (matched whatever the kind)."""
    for s in (*predicted, *truth):
        if s.kind not in KINDS:
            raise ValueError(f"interval kind {s.kind!r} is not one of {', '.join(KINDS)}")
    out = {k: count([p for p in predicted if p.kind == k], [t for t in truth if t.kind == k], threshold)
           for k in KINDS}
    out["overall"] = sum((out[k] for k in KINDS), Counts())
    out["any_kind"] = count(predicted, truth, threshold)
    return out


@dataclass
class VideoSpots:
    """One video's spotted intervals and ground truth."""

    key: str
    subject: str
    truth: list[Span]
    predicted: list[Span] = field(default_factory=list)


def _table(counts: dict[str, Counts]) -> dict[str, dict]:
    return {k: c.to_dict() for k, c in counts.items()}


def _pool(items: Iterable[dict[str, Counts]]) -> dict[str, Counts]:
    total = {k: Counts() for k in (*KINDS, "overall", "any_kind")}
    for counts in items:
        for k, c in counts.items():
            total[k] = total[k] + c
    return total


def score_videos(videos: Sequence[VideoSpots], threshold: float = IOU_THRESHOLD) -> dict:
    """Pooled figures over all videos, with per-subject and per-video figures beside them."""
    per_video = {v.key: video_counts(v.predicted, v.truth, threshold) for v in videos}
    subjects: dict[str, list[str]] = {}
    for v in videos:
        subjects.setdefault(v.subject, []).append(v.key)
    return {
        "iou_threshold": threshold,
        "n_videos": len(videos),
        "n_subjects": len(subjects),
        "pooled": _table(_pool(per_video.values())),
        "per_subject": {s: _table(_pool(per_video[k] for k in keys)) for s, keys in sorted(subjects.items())},
        "per_video": {k: _table(c) for k, c in per_video.items()},
    }
