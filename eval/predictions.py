"""The predictions file of an evaluation run and the figures computed from it.

`PredictionLog` is an append-only JSONL file, one row per sample, flushed and fsynced per row, so a killed run
loses at most the row being written; reading tolerates a truncated last line (it is dropped and the file rewritten
without it before appending again). `score_rows` turns rows into the metrics of `metrics.json`: everything in the
report is computed from the predictions file alone, so a resumed run and a straight run give the same figures.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from assistant.files import atomic_write_text
from eval.metrics import classification_scores, code_set_scores, folded_multilabel_scores, multilabel_scores

log = logging.getLogger(__name__)

DETECTOR_THRESHOLD = 0.5  # fixed for every AU; never tuned on the test set (README: scientific honesty)


class PredictionLog:
    """Append-only JSONL of per-sample rows keyed by `row["key"]`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self, repair: bool = False) -> list[dict]:
        """Rows in file order; a line that is not a prediction row (a run killed mid-write, a hand edit: JSON that is
        not an object with a key stopped `--resume` with a TypeError) is dropped, and with `repair` the file is
        rewritten without it so appending continues on a clean line."""
        if not self.path.is_file():
            return []
        rows, bad = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
            else:
                bad += 1
        if bad:
            log.warning("%s: dropped %d unreadable line(s) (an interrupted write, or not a prediction row)", self.path,
                        bad)
            if repair:
                atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return rows

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _kind(text: str) -> str:
    return str(text).split(":", 1)[0]


def _au_matrix(rows: list[dict], aus: list[int], field: str) -> np.ndarray:
    return np.array([[int(a in set(r[field])) for a in aus] for r in rows], dtype=int).reshape(len(rows), len(aus))


def named_codes(probabilities: dict) -> set[int]:
    """The AU codes a row's detector probabilities name (keys as written to the predictions file)."""
    return {int(k) for k, p in probabilities.items() if p >= DETECTOR_THRESHOLD}


def _prob_matrix(rows: list[dict], aus: list[int]) -> np.ndarray:
    return np.array([[float(r["probabilities"].get(str(a), 0.0)) for a in aus] for r in rows],
                    dtype=float).reshape(len(rows), len(aus))


def score_rows(rows: list[dict], classes: list[str], aus: list[int], per_fold: bool) -> dict:
    """Emotion and AU metrics over the successful rows (pooled once; per fold beside them when `per_fold`)."""
    ok = [r for r in rows if r["status"] == "ok"]
    emo = [r for r in ok if r["true_emotion"] is not None]
    scores = classification_scores([r["true_emotion"] for r in emo], [r["pred_emotion"] for r in emo], classes)
    statuses = Counter(r["parse_status"] for r in emo)
    emotion = {**scores.to_dict(), "parse_status": dict(statuses),
               "unparsable": int(statuses.get("unparsable", 0)),
               "out_of_scheme": sum(1 for r in emo if r["parse_status"] != "unparsable" and r["pred_emotion"] is None)}
    au_rows = [r for r in ok if r["true_aus"] is not None]
    truth = _au_matrix(au_rows, aus, "true_aus")
    parsed = _au_matrix(au_rows, aus, "parsed_aus")
    detected = (_prob_matrix(au_rows, aus) >= DETECTOR_THRESHOLD).astype(int)
    au: dict = {"aus": aus, "threshold": DETECTOR_THRESHOLD, "n_samples": len(au_rows),
                "detector_covers": sorted({int(k) for r in au_rows for k in r["probabilities"]} & set(aus))}
    for name, pred in (("parsed", parsed), ("detector", detected)):
        if per_fold:
            au[name] = folded_multilabel_scores(truth, pred, [r["fold"] for r in au_rows], aus).to_dict()
        else:
            au[name] = {"pooled": multilabel_scores(truth, pred, aus).to_dict()}
    coded_rows = [r for r in au_rows if r["true_aus"]]  # the clips with an AU, as the held-out real set scores
    coded = [set(r["true_aus"]) for r in coded_rows]
    au["every_code"] = {
        "parsed": code_set_scores(coded, [set(r["parsed_aus"]) for r in coded_rows]).to_dict(),
        "detector": code_set_scores(coded, [named_codes(r["probabilities"]) for r in coded_rows]).to_dict()}
    null_rows = [r for r in au_rows if not r["true_aus"]]  # coded with no AU: outside the precision above
    au["every_code"]["no_au_clips"] = {
        "n_clips": len(null_rows), "parsed_any": sum(bool(r["parsed_aus"]) for r in null_rows),
        "detector_any": sum(bool(named_codes(r["probabilities"])) for r in null_rows)}
    out = {"emotion": emotion, "au": au}
    if per_fold:
        out["emotion_per_fold"] = _emotion_per_fold(emo)
    return out


def _emotion_per_fold(rows: list[dict]) -> dict:
    """Accuracy per held-out subject (UF1/UAR over one subject's few clips mostly measure absent classes)."""
    folds: dict[str, list[dict]] = {}
    for r in rows:
        folds.setdefault(r["fold"], []).append(r)
    return {f: {"n": len(rs), "accuracy": sum(r["pred_emotion"] == r["true_emotion"] for r in rs) / len(rs)}
            for f, rs in sorted(folds.items())}


def count_rows(rows: list[dict], skipped: list[dict], left_out: dict | None = None) -> dict:
    """Usable / unusable counts with reasons; `sheet_rows` = skipped by the loader + left out by the protocol (reason
    -> count: the composite's unmapped labels and exclusion list) + failed at run time + usable."""
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    no_emotion = Counter(r["emotion_raw"] or "empty" for r in ok if r["true_emotion"] is None)
    left_out = dict(left_out or {})
    return {
        "sheet_rows": len(skipped) + sum(left_out.values()) + len(rows),
        "skipped_by_loader": len(skipped),
        "skipped_reasons": dict(Counter(_kind(s["reason"]) for s in skipped)),
        "left_out_by_protocol": left_out,
        "failed": len(failed),
        "failed_reasons": dict(Counter(_kind(r["error"]) for r in failed)),
        "usable": len(ok),
        "emotion_scored": len(ok) - sum(no_emotion.values()),
        "emotion_excluded": dict(no_emotion),
        "au_scored": sum(1 for r in ok if r["true_aus"] is not None),
        "au_excluded_unknown_label": sum(1 for r in ok if r["true_aus"] is None),
    }
