"""AU detection on the realistic synthetic benchmark split: `rules`, `blendshapes` and `fusion` rows (synthetic).

`blend_rows` computes these rows (for any script that sets them beside its own); run alone, this script prints them
with the machine and the calibration read (`MEU_CALIBRATION` or the shipped files). Per detector: per-AU F1 /
precision / recall and macro F1 over CASME II's eight AUs (1, 2, 4, 7, 12, 14, 15, 17) at the fixed threshold 0.5,
and the share of null clips given any AU (any AU the detector scores, and any of the eight). The fusion weights and
the blendshape noise floors were fitted on the calibration split (`meu calibrate fusion`), whose people are disjoint
from this split's; nothing here is tuned on the benchmark clips. The spread of fusion's margin over rules is a
bootstrap over clips (1000 resamples, seed 0).
`landmark_cost` measures what asking the landmarker for blendshapes costs (the same call with and without them).

    python benchmarks/au_realistic.py [--n 120] [--seed 0] [--out outputs/calib_blend] [--regions-cache DIR]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import calibration_record, emit, nonnegative_int, positive_int, run_main  # noqa: E402

CASME2_AUS = [1, 2, 4, 7, 12, 14, 15, 17]
DETECTORS = ["rules", "blendshapes", "fusion"]
LEARNED = {name: "trained and scored LOSO over the realistic benchmark split's people by `benchmarks/au.py --world "
                "realistic` (its own run: the training folds), not in this table"
           for name in ("aullm", "microau_clip")}


def evidence_from_row(row: dict, floors: dict | None = None, weights: dict | None = None) -> dict:
    """The three detectors' evidence for one cached clip, computed from its features alone."""
    from assistant.au import blendshapes, fusion
    from eval.calibrate_blend import rules_evidence

    rules = rules_evidence(row)
    codes = [s.code for s in rules.scores]
    floors = blendshapes.load_floors() if floors is None else floors
    blend = blendshapes.score_blendshapes(row["onset_blendshapes"], row["apex_blendshapes"], codes, floors)
    z = {s.code: s.z for s in blendshapes.signals(row["onset_blendshapes"], row["apex_blendshapes"], codes, floors)}
    fused = fusion.combine(rules, blend, z, fusion.load_weights() if weights is None else weights)
    return {"rules": rules, "blendshapes": blend, "fusion": fused}


def _scores(rows: list[dict], evidence: list[dict], name: str) -> dict:
    from eval.metrics import multilabel_scores

    truth = np.array([[c in r["aus"] for c in CASME2_AUS] for r in rows])
    pred = np.array([[e[name].probability(c) >= e[name].threshold for c in CASME2_AUS] for e in evidence])
    s = multilabel_scores(truth, pred, CASME2_AUS)
    null = [e[name] for r, e in zip(rows, evidence) if not r["aus"]]
    return {
        "macro_f1": round(s.mean_f1, 4),
        "per_au_f1": {f"AU{c}": round(s.f1[c], 4) for c in CASME2_AUS},
        "per_au_precision": {f"AU{c}": round(s.precision[c], 4) for c in CASME2_AUS},
        "per_au_recall": {f"AU{c}": round(s.recall[c], 4) for c in CASME2_AUS},
        "null_clips_with_any_au": round(float(np.mean([bool(ev.active()) for ev in null])), 4) if null else None,
        "null_clips_with_any_casme2_au": round(float(np.mean(
            [any(ev.probability(c) >= ev.threshold for c in CASME2_AUS) for ev in null])), 4) if null else None,
        "_pred": pred, "_truth": truth,
    }


def _bootstrap_margin(a: dict, b: dict, n: int = 1000, seed: int = 0) -> dict:
    """Spread of macro F1 (a) - macro F1 (b) over clip resamples."""
    from eval.metrics import multilabel_scores

    rng = np.random.default_rng(seed)
    k = len(a["_truth"])
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, k, k)
        fa = multilabel_scores(a["_truth"][idx], a["_pred"][idx], CASME2_AUS).mean_f1
        fb = multilabel_scores(b["_truth"][idx], b["_pred"][idx], CASME2_AUS).mean_f1
        diffs.append(fa - fb)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"mean": round(float(np.mean(diffs)), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def blend_rows(n: int = 120, seed: int = 0, out: Path = Path("outputs/calib_blend"),
               regions_cache: Path | None = None) -> dict:
    """Rows for the realistic benchmark split: {detector: figures}, plus the fusion margin and what was not run. The
    features are cached under `out`, the motion measurements they come from under `regions_cache` (default
    `out`/realism)."""
    from eval.calibrate_blend import cache_file, collect

    rows = collect("benchmark", n, seed, cache_file(out, "benchmark", seed),
                   regions_cache=Path(out) / "realism" if regions_cache is None else Path(regions_cache))
    evidence = [evidence_from_row(r) for r in rows]
    table = {name: _scores(rows, evidence, name) for name in DETECTORS}
    margin = _bootstrap_margin(table["fusion"], table["rules"])
    for v in table.values():
        v.pop("_pred"), v.pop("_truth")
    return {
        "label": "synthetic (realistic world, benchmark split)",
        "clips": n, "null_clips": sum(1 for r in rows if not r["aus"]), "seed": seed,
        "support": {f"AU{c}": sum(1 for r in rows if c in r["aus"]) for c in CASME2_AUS},
        "threshold": 0.5, "rows": table,
        "fusion_minus_rules_macro_f1": round(table["fusion"]["macro_f1"] - table["rules"]["macro_f1"], 4),
        "fusion_minus_rules_bootstrap": margin, "learned_detectors": LEARNED,
    }


def landmark_cost(repeat: int = 20) -> dict:
    """Median ms of one landmarker call on the astronaut (512 x 512) without and with blendshapes, interleaved so
    that the machine's load hits both alike."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from skimage import data

    from assistant.motion.face import face_landmarker_model

    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(data.astronaut()))
    graphs = {flag: vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_landmarker_model())), running_mode=vision.RunningMode.IMAGE,
        num_faces=4, min_face_detection_confidence=0.3, min_face_presence_confidence=0.3,
        output_face_blendshapes=flag)) for flag in (False, True)}
    times = {False: [], True: []}
    for g in graphs.values():
        g.detect(image)
    for _ in range(repeat):
        for flag, g in graphs.items():
            t = time.perf_counter()
            g.detect(image)
            times[flag].append(time.perf_counter() - t)
    for g in graphs.values():
        g.close()
    without, with_ = (round(1000 * statistics.median(times[f]), 1) for f in (False, True))
    return {"landmarks_ms_without_blendshapes": without, "landmarks_ms_with_blendshapes": with_,
            "ratio": round(with_ / without, 3), "image": "skimage astronaut 512x512", "repeat": repeat}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=positive_int, default=120, help="benchmark clips (indices 0..n-1)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="realistic world seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("outputs/calib_blend"), help="feature cache folder")
    parser.add_argument("--regions-cache", type=Path, default=None,
                        help="cache of the motion measurements the features come from (default OUT/realism; "
                             "benchmarks/realism.py's outputs/cache/realism holds the same measurements)")
    args = parser.parse_args(argv)
    calibration = calibration_record(fusion=True)  # rules, blendshapes and fusion read it; a bad folder stops here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emit("au_realistic", {"calibration": calibration,
                          "au": blend_rows(args.n, args.seed, args.out, args.regions_cache),
                          "landmark_cost": landmark_cost()})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
