"""`meu calibrate fusion`: measure the blendshape noise floors and fit the fusion weights on the realistic
calibration split (instruction_data.realistic), never on the benchmark split.

Steps, all deterministic in (--n, --seed):
1. per calibration clip: the motion analysis of onset -> apex (the default motion config; its region table, from
   which the `rules` probabilities are computed when fitting) and the 52 blendshape scores of the onset and apex
   frames (cached, one JSON line per clip under --cache, so an interrupted run resumes);
2. noise floor of each blendshape score = root mean square of its apex - onset change over the null clips
   -> blendshapes_noise.json;
3. blendshape z per AU with those floors, then the per-AU logistic weights (assistant.au.fusion.fit)
   -> fusion_weights.json, and the features they were fitted on -> fusion_calibration.json
   (`assistant.au.fusion.refit_from_file` reproduces the weights from it).

The three files go into the calibration folder `--out` (by default the user's data folder; never the source tree),
which must already hold the `rules` calibration the fusion is fitted on (`meu calibrate rules --out DIR` first): the
rules probabilities and the region SNRs of step 1 are that folder's.

    meu calibrate rules --out DIR && meu calibrate fusion --n 160 --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from assistant import calibration
from assistant.errors import ConfigError
from assistant.files import atomic_write_text, output_folder
from instruction_data.world_v3 import WORLDS

log = logging.getLogger(__name__)

MIN_POSITIVES = 5  # an AU needs this many positive calibration clips to get fusion weights
MIN_CLIPS = 50  # calibration clips at the least: about one in five is a null clip, and the floors need MIN_NULL
MIN_NULL = 10
CASME2_AUS = (1, 2, 4, 7, 12, 14, 15, 17)
REGIONS_CACHE = Path("outputs/cache/realism")  # eval.realism's cache of motion measurements, shared with realism.py


FINGERPRINTED = ("assistant/motion", "assistant/facs.py", "instruction_data/realistic.py", "instruction_data/synth.py",
                 "instruction_data/world_v2.py", "instruction_data/head_turn.py", "instruction_data/world_v3.py",
                 "instruction_data/shading.py")


def code_fingerprint() -> str:
    """Short hash of the code that features depend on (motion core, generator): a cache made by other code is not
    reused. The rules detector is not in it: its probabilities are computed from the cached region tables when used."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for name in FINGERPRINTED:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()[:10]


def cache_file(out: Path, split: str, seed: int, world: str = "v1") -> Path:
    return out / f"features_{split}_{world}_seed{seed}_{code_fingerprint()}.jsonl"


def clip_features(measure, motion_config=None) -> dict:
    """Everything the blend detectors need from one realistic clip, JSON-ready. `measure`: the clip's motion
    measurement (eval.realism.ClipMeasure: region table of the motion core, as benchmarks/realism.py scores `rules`);
    the blendshapes come from the onset and apex frames rendered again (the same frames)."""
    from assistant.au.blendshapes import frame_blendshapes
    from assistant.types import Clip
    from instruction_data.realistic import draw_spec, render_realistic

    spec = draw_spec(measure.index, measure.split, measure.seed, world=measure.world)
    synth = render_realistic(spec, only=[spec.onset, spec.apex])  # the same two frames a full render makes
    clip = Clip(f"{measure.split}-{measure.seed}-{measure.index}", synth.frames[synth.onset],
                synth.frames[synth.apex], synth.onset, synth.apex, n_frames=len(synth.frames), fps=synth.fps)
    t = time.perf_counter()
    onset, apex = frame_blendshapes(clip, None)
    return {
        "index": measure.index, "split": measure.split, "seed": measure.seed, "subject": spec.subject.id,
        "aus": list(measure.codes), "regions": measure.regions, "crop_size": measure.size,
        "noise_estimates": measure.noise_estimates, "noise_px": measure.noise_px,
        "onset_blendshapes": {k: round(v, 6) for k, v in onset.items()},
        "apex_blendshapes": {k: round(v, 6) for k, v in apex.items()},
        "seconds": round(time.perf_counter() - t, 3),
    }


def rules_evidence(row: dict):
    """The `rules` detector's evidence (every FACS AU) on a cached clip, from its region table and today's rules."""
    from assistant.au.rules import score_regions
    from assistant.facs import FACS
    from assistant.types import RegionMotion

    keys = {f.name for f in dataclasses.fields(RegionMotion)}
    regions = [RegionMotion(**{k: v for k, v in r.items() if k in keys}) for r in row["regions"]]
    return score_regions(regions, sorted(FACS), row["crop_size"])


def collect(split: str, n: int, seed: int, cache: Path, regions_cache: Path = REGIONS_CACHE,
            world: str = "v1") -> list[dict]:
    """Features of clips 0..n-1, read from `cache` (JSON lines) where present, computed and appended otherwise; the
    motion measurements come from eval.realism.measure_split (its cache under `regions_cache`). The region SNRs
    follow the noise weight in force (the calibration folder's), whatever it was when a clip was cached: rows cached
    with one folder's SNRs fed another folder's fusion fit. Rows from before that (no noise estimates) are measured
    again."""
    from assistant.motion import noise
    from eval.realism import measure_split, regions_at_weight

    done, broken, stale = {}, 0, 0
    if cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                row = json.loads(line) if line.strip() else None
                if row is not None and "noise_estimates" in row:
                    done[(row["split"], row["seed"], row["index"])] = row
                elif row is not None:
                    stale += 1
            except (ValueError, KeyError, TypeError):  # a line a killed run left half written
                broken += 1
    if broken or stale:  # rewritten without them, so the rows appended next start on a line of their own
        atomic_write_text(cache, "".join(json.dumps(r) + "\n" for r in done.values()))
        log.warning("%s: %d half-written line(s) and %d from an older cache format dropped; those clips are measured "
                    "again", cache, broken, stale)
    measures = None
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as f:
        for i in range(n):
            if (split, seed, i) in done:
                continue
            measures = measures or measure_split(split, n, seed, regions_cache, world=world)
            row = clip_features(measures[i])
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[(split, seed, i)] = row
            log.info("%s clip %d/%d: AUs %s, %.1f s", split, i + 1, n, row["aus"] or "none", row["seconds"])
    weight = noise.stable_weight_now()
    out = []
    for i in range(n):
        row = done[(split, seed, i)]
        regions, _ = regions_at_weight(row["regions"], row["noise_estimates"], row["noise_px"], row["crop_size"],
                                       weight)
        out.append({**row, "regions": regions})
    return out


def noise_floors(rows: list[dict]) -> dict[str, float]:
    """Root mean square of each score's apex - onset change over the null clips."""
    nulls = [r for r in rows if not r["aus"]]
    names = sorted(nulls[0]["onset_blendshapes"]) if nulls else []
    return {k: round(math.sqrt(float(np.mean([(r["apex_blendshapes"][k] - r["onset_blendshapes"][k]) ** 2
                                              for r in nulls]))), 6) for k in names}


def z_matrix(rows: list[dict], codes: list[int], floors: dict[str, float]) -> np.ndarray:
    from assistant.au.blendshapes import signals

    out = np.zeros((len(rows), len(codes)))
    for i, r in enumerate(rows):
        sig = {s.code: s.z for s in signals(r["onset_blendshapes"], r["apex_blendshapes"], codes, floors)}
        out[i] = [sig[c] for c in codes]
    return out


def choose_setting(p_rules: np.ndarray, z: np.ndarray, labels: np.ndarray, codes: list[int], subjects: list[str],
                   null: np.ndarray) -> tuple[tuple[float, bool, float], list[dict]]:
    """(C, balanced, margin) from `fusion.SETTINGS` x `fusion.MARGINS` with the best leave-one-subject-out macro F1
    over CASME II's eight AUs on the calibration clips, among those giving no more null clips (`null`: clips with no
    AU at all) an AU than the rules detector does over the same AUs; ties go to the earlier (simpler) setting."""
    from assistant.au import fusion
    from eval.metrics import multilabel_scores

    subj = np.array(subjects)
    eight = [j for j, c in enumerate(codes) if c in CASME2_AUS]
    rules_fa = float(np.mean((p_rules[null] >= 0.5).any(1))) if null.any() else 0.0
    table = []
    for C, balanced in fusion.SETTINGS:
        logit = np.where(p_rules >= 0.5, np.inf, -np.inf)  # AUs a fold cannot fit keep the rules decision
        for s in np.unique(subj):
            train, test = subj != s, subj == s
            w = fusion.fit({c: p_rules[train, j] for j, c in enumerate(codes)},
                           {c: z[train, j] for j, c in enumerate(codes)},
                           {c: labels[train, j] for j, c in enumerate(codes)}, C=C, balanced=balanced)
            for j, c in enumerate(codes):
                if str(c) in w:
                    a = w[str(c)]
                    logit[test, j] = fusion.features(p_rules[test, j], z[test, j]) @ [a["w_rules"], a["w_blend"]] \
                        + a["bias"]
        for margin in fusion.MARGINS:
            pred = logit >= margin
            f1 = multilabel_scores(labels[:, eight], pred[:, eight], [codes[j] for j in eight]).mean_f1
            fa = float(np.mean(pred[null].any(1))) if null.any() else 0.0
            table.append({"C": C, "balanced": balanced, "margin": margin, "loso_macro_f1": round(f1, 4),
                          "null_clips_with_any_au": round(fa, 4)})
    ok = [t for t in table if t["null_clips_with_any_au"] <= rules_fa] or \
        [min(table, key=lambda t: t["null_clips_with_any_au"])]
    best = max(ok, key=lambda t: (t["loso_macro_f1"], -table.index(t)))
    return (best["C"], best["balanced"], best["margin"]), table + [{"rules_null_clips_with_any_au": round(rules_fa, 4),
                                                                   "rules_macro_f1": round(multilabel_scores(
                                                                       labels[:, eight], p_rules[:, eight] >= 0.5,
                                                                       [codes[j] for j in eight]).mean_f1, 4)}]


def fit_fusion(rows: list[dict], floors: dict[str, float]) -> dict:
    """Fusion inputs of calibration rows (rules probabilities, blendshape z, labels, for the AUs with at least
    MIN_POSITIVES clips on each side) and the setting chosen for them by `choose_setting`."""
    from assistant.au.blendshapes import AU_BLENDSHAPES

    rules = [rules_evidence(r) for r in rows]
    codes = sorted(c for c in AU_BLENDSHAPES if c in {s.code for s in rules[0].scores})
    p_rules = np.array([[ev.probability(c) for c in codes] for ev in rules])
    z = z_matrix(rows, codes, floors)
    labels = np.array([[int(c in r["aus"]) for c in codes] for r in rows])
    fit_codes = [c for j, c in enumerate(codes) if MIN_POSITIVES <= labels[:, j].sum() <= len(rows) - MIN_POSITIVES]
    cols = [codes.index(c) for c in fit_codes]
    p_rules, z, labels = np.round(p_rules[:, cols], 6), np.round(z[:, cols], 6), labels[:, cols]
    null = np.array([not r["aus"] for r in rows])
    (C, balanced, margin), selection = choose_setting(p_rules, z, labels, fit_codes, [r["subject"] for r in rows],
                                                      null)
    return {"codes": fit_codes, "p_rules": p_rules, "z": z, "labels": labels, "C": C, "balanced": balanced,
            "margin": margin, "selection": selection}


def main(argv: list[str] | None = None) -> int:
    from assistant.au import fusion
    from eval.realism import split_labels

    parser = argparse.ArgumentParser(prog="meu calibrate fusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=160, help="calibration clips (clip indices 0..n-1)")
    parser.add_argument("--seed", type=int, default=0, help="realistic world seed")
    parser.add_argument("--world", default="v2", choices=list(WORLDS),
                        help="the realistic world's version (v2, the default and the shipped files' world: 3-D head "
                             "turns, coupled skin, gaze, flicker; v3: v2 under a light that stays while the head "
                             "turns)")
    parser.add_argument("--cache", type=Path, default=Path("outputs/calib_blend"), help="feature cache folder")
    parser.add_argument("--regions-cache", type=Path, default=REGIONS_CACHE,
                        help="the motion measurements' cache, shared with benchmarks/realism.py and `meu calibrate "
                             f"rules` (default: {REGIONS_CACHE})")
    parser.add_argument("--out", default=None, help="calibration folder holding the rules calibration, where the "
                        f"fusion files are written (default: {calibration.default_out()})")
    args = parser.parse_args(argv)
    if args.seed < 0:  # numpy's generators take no negative seed
        raise ConfigError(f"--seed {args.seed} must be 0 or more.")
    if args.n < MIN_CLIPS:  # measured first and refused after, for want of null clips
        raise ConfigError(f"--n {args.n} is too few: the fusion weights need at least {MIN_CLIPS} calibration clips "
                          "(about one in five is a null clip, and 10 are needed).")
    out = calibration.check_folder(args.out or calibration.default_out(), "--out")
    args.cache = output_folder(args.cache, "--cache")
    args.regions_cache = output_folder(args.regions_cache, "--regions-cache")
    n_null, _ = split_labels("calibration", args.n, args.seed, args.world)
    if n_null < MIN_NULL:  # known from the drawn clips: refused before minutes of measuring
        raise ConfigError(f"Only {n_null} null clips among the {args.n} of --seed {args.seed}; the noise floors need "
                          f"{MIN_NULL}: use a larger --n (about 5 clips per null clip).")
    calibration.use(out)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = f"meu calibrate fusion --world {args.world} --n {args.n} --seed {args.seed} --out DIR"

    rows = collect("calibration", args.n, args.seed, cache_file(args.cache, "calibration", args.seed, args.world),
                   args.regions_cache, world=args.world)
    floors = noise_floors(rows)
    atomic_write_text(out / "blendshapes_noise.json", json.dumps({
        "floors": floors, "n_null_pairs": n_null, "split": "calibration", "seed": args.seed,
        "command": command,
        "definition": "root mean square of apex - onset score over the null clips of the realistic calibration "
                      "split (synthetic)"}, indent=1) + "\n")

    fitted = fit_fusion(rows, floors)
    fit_codes, p_rules, z, labels = fitted["codes"], fitted["p_rules"], fitted["z"], fitted["labels"]
    C, balanced, margin, selection = fitted["C"], fitted["balanced"], fitted["margin"], fitted["selection"]
    atomic_write_text(out / "fusion_calibration.json", json.dumps({
        "codes": fit_codes, "C": C, "balanced": balanced, "margin": margin, "selection": selection,
        "p_rules": p_rules.tolist(), "z": z.tolist(), "labels": labels.tolist(), "clips": [r["index"] for r in rows],
        "subjects": [r["subject"] for r in rows], "split": "calibration", "seed": args.seed,
        "command": command}) + "\n")
    weights = fusion.refit_from_file(out / "fusion_calibration.json")
    atomic_write_text(out / "fusion_weights.json", json.dumps({
        "weights": weights, "fitted_on": {"split": "calibration", "seed": args.seed, "clips": args.n,
                                          "subjects": sorted({r["subject"] for r in rows})},
        "model": "p = sigmoid(w_rules * logit(p_rules) + w_blend * clip(z, -10, 10) + bias), sklearn "
                 f"LogisticRegression(C={C}, class_weight={'balanced' if balanced else None}, lbfgs), bias lowered by "
                 f"{margin}",
        "selection": selection, "command": command}, indent=1) + "\n")
    print(json.dumps({"clips": args.n, "null_clips": n_null, "fitted_aus": fit_codes, "C": C, "balanced": balanced,
                      "margin": margin, "weights": weights}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
