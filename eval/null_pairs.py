"""Null pairs (`meu eval --null-pairs`): each AU-coded clip's onset frame read against the next one.

The expression starts after its onset frame, so whatever AU the detector names on that pair answers noise or head
motion: the null side of the held-out real set that scores this project (docs/reading_real_faces.md). A clip takes
part when its apex lies `NOISE_MIN_GAP` frames or more after the onset, so the pair is far from the expression. Each
pair is its own predictions row (key `<clip key>|null-pair`), left out of the clip metrics; a detector whose
evidence comes from a training run's held-out predictions (`--au-run`) has none for these pairs.
"""

from __future__ import annotations

from collections import Counter

from assistant.errors import MEUError
from assistant.motion.analyze import NOISE_MIN_GAP
from eval.metrics import most_first
from eval.predictions import named_codes
from eval.samples import Sample

NULL_PAIR = "|null-pair"  # ends the predictions key of a clip's null pair


def null_pair_tasks(samples: list[Sample], done: set[str]) -> list[tuple[str, str, int, int, None]]:
    """Motion tasks (key, source, onset, apex, offset) for the null pairs not done yet."""
    return [(s.key + NULL_PAIR, s.source, s.onset, s.onset + 1, None) for s in samples
            if s.true_aus is not None and s.apex is not None and s.apex - s.onset >= NOISE_MIN_GAP
            and s.key + NULL_PAIR not in done]


def null_pair_row(sample: Sample, analysis, error: str | None, motion_s: float, evidence_source) -> dict:
    """The predictions row of one clip's null pair: the detector's probabilities, as a clip's row holds them."""
    row = {"key": sample.key + NULL_PAIR, "null_pair": True, "clip": sample.key, "fold": sample.fold,
           "timings": {"motion": round(motion_s, 4)}}
    if error is None:
        try:
            evidence = evidence_source.evidence(sample.key, analysis)
        except MEUError as err:
            error = str(err)
    if error is not None:
        return {**row, "status": "error", "error": error}
    return {**row, "status": "ok", "probabilities": {str(s.code): round(s.probability, 6) for s in evidence.scores}}


def null_pair_scores(rows: list[dict]) -> dict:
    """Null pairs given any AU by the detector, and which AUs (pairs naming each)."""
    ok = [r for r in rows if r["status"] == "ok"]
    named = [named_codes(r["probabilities"]) for r in ok]
    given = sum(bool(codes) for codes in named)
    return {"pairs": len(ok), "failed": len(rows) - len(ok), "given_any_au": given,
            "share_given_any_au": given / len(ok) if ok else None,
            "named": most_first(Counter(code for codes in named for code in codes)),
            "min_gap_frames": NOISE_MIN_GAP}
