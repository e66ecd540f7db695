"""How much MediaPipe's blendshape scores respond to the realistic world's AUs, and whether magnifying the measured
motion makes them useful to `fusion` (synthetic).

Why this exists: `fusion` does not beat `rules` on the realistic benchmark split (benchmarks/au_realistic.py), while
on real clips the blendshapes respond to AUs the flow barely sees (measured on the held-out real clips, which are not
in this repository: browOuterUp fell 0.04-0.11 on every labelled AU4 clip whose inner brows moved 0.05-0.15 px). This
measures the gap, on seed 0 of both splits:

1. Response. The apex - onset change of browOuterUp and browDown (mean of the two sides) on clips coded AU4 without
   AU1 or AU2, in the real clips' band of inner-brow motion (REAL_AU4_BAND_PX) and above it, beside the spread of the
   same changes on null clips.
2. Magnification. The onset crop warped by k times the flow the motion core measured (k in MAGNIFICATIONS; k = 1
   re-renders the measured motion) gives the landmarker a larger geometric change to read. For each k: noise floors
   from the calibration split's null clips; the `blendshapes` detector's macro F1 on the benchmark split; `fusion`
   fitted on the calibration split exactly as `meu calibrate fusion` fits it (eval.calibrate_blend.fit_fusion:
   settings chosen leave-one-person-out on calibration) and scored on the benchmark split beside `rules`. Nothing is
   chosen on the benchmark split. "apex" is the real apex crop (no warp), the input the shipped detector reads.

The crops are padded by PAD_PX replicated pixels on every side before the landmarker, whose face detector misses
faces that fill the whole image. Per-clip scores are cached under --out (JSON lines keyed by split, seed and a hash
of the motion code), so a rerun resumes.

    python benchmarks/blendshape_response.py [--n 160] [--seed 0] [--out outputs/blend_response]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import BenchmarkError, calibration_record, emit, nonnegative_int, positive_int, run_main  # noqa: E402

log = logging.getLogger("blendshape_response")

MAGNIFICATIONS = (1, 4, 8, 16)
PAD_PX = 64
REAL_AU4_BAND_PX = (0.05, 0.15)
REAL_AU4_BROW_OUTER_UP = (-0.11, -0.04)


def _scores(landmarker, crop: np.ndarray) -> dict[str, float] | None:
    import cv2

    faces = landmarker.detect(cv2.copyMakeBorder(crop, PAD_PX, PAD_PX, PAD_PX, PAD_PX, cv2.BORDER_REPLICATE))
    return faces[0].blendshapes if faces else None


def magnify(onset_crop: np.ndarray, flow: np.ndarray, k: float) -> np.ndarray:
    """The onset crop with every pixel moved k times its measured displacement (backward warp: I(x - k u(x)))."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(onset_crop, gx - k * flow[..., 0], gy - k * flow[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)


def clip_row(landmarker, split: str, index: int, seed: int) -> dict:
    from assistant.motion.analyze import analyze_frames
    from instruction_data.realistic import draw_spec, render_realistic

    spec = draw_spec(index, split, seed)
    clip = render_realistic(spec, only=[spec.onset - 1, spec.onset, spec.apex] if spec.onset > 0 else
                            [spec.onset, spec.apex])
    null = clip.frames[clip.onset - 1] if clip.onset > 0 else None
    a = analyze_frames(clip.frames[clip.onset], clip.frames[clip.apex], None, null_frame=null)
    flow = a.field.flow.astype(np.float32)
    return {"split": split, "seed": seed, "index": index, "subject": spec.subject.id,
            "aus": sorted({x.code for x in clip.aus if x.code is not None}),
            "regions": [r.to_dict() for r in a.regions], "crop_size": a.crop.size,
            "onset": _scores(landmarker, a.onset_crop), "apex": _scores(landmarker, a.apex_crop),
            **{f"x{k}": _scores(landmarker, magnify(a.onset_crop, flow, k)) for k in MAGNIFICATIONS}}


def collect(split: str, n: int, seed: int, out: Path) -> list[dict]:
    from tqdm import tqdm

    from assistant.motion.face import get_landmarker
    from eval.calibrate_blend import code_fingerprint

    path = out / f"{split}_seed{seed}_{code_fingerprint()}.jsonl"
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            done[row["index"]] = row
    todo = [i for i in range(n) if i not in done]
    log.info("%s: %d clips cached, %d to measure", split, n - len(todo), len(todo))
    if todo:
        landmarker = get_landmarker("mediapipe")
        out.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            for i in tqdm(todo, desc=f"{split} clips", unit="clip"):
                row = clip_row(landmarker, split, i, seed)
                f.write(json.dumps(row) + "\n")
                f.flush()
                done[i] = row
    return [done[i] for i in range(n)]


def _complete(rows: list[dict], frames: list[str]) -> list[dict]:
    """Rows whose onset and `frames` all had a face found (the landmarker's scores, not None)."""
    return [r for r in rows if all(r[f] for f in ["onset", *frames])]


def _mean_sides(row: dict, frame: str, shape: str) -> float:
    return float(np.mean([row[frame][shape + s] - row["onset"][shape + s] for s in ("Left", "Right")]))


def response(rows: list[dict]) -> dict:
    """browOuterUp / browDown changes at the real apex on AU4 clips (by inner-brow motion band) and on null clips."""
    def inner_brow(r):
        return float(np.mean([g["motion_px"] for g in r["regions"] if g["region"] == "inner_brow"] or [0.0]))

    lo, hi = REAL_AU4_BAND_PX
    rows = _complete(rows, ["apex"])
    au4 = [r for r in rows if 4 in r["aus"] and not {1, 2} & set(r["aus"])]
    groups = {"au4_in_real_band": [r for r in au4 if lo <= inner_brow(r) <= hi],
              "au4_above_real_band": [r for r in au4 if inner_brow(r) > hi],
              "null": [r for r in rows if not r["aus"]]}
    out = {"real_clips_au4": {"inner_brow_px": list(REAL_AU4_BAND_PX),
                              "browOuterUp_change": list(REAL_AU4_BROW_OUTER_UP),
                              "source": "the held-out real clips (every labelled AU4 clip)"}}
    for name, group in groups.items():
        entry = {"clips": len(group)}
        for shape in ("browOuterUp", "browDown"):
            d = np.array([_mean_sides(r, "apex", shape) for r in group])
            if len(d):
                entry[shape] = {"median": round(float(np.median(d)), 4),
                                "range": [round(float(d.min()), 4), round(float(d.max()), 4)],
                                "share_changed_0.04_or_more": round(float(np.mean(np.abs(d) >= 0.04)), 3)}
        out[name] = entry
    return out


def _view(rows: list[dict], frame: str) -> list[dict]:
    """Rows shaped as eval.calibrate_blend's cache, with `frame` standing in for the apex scores."""
    return [{**r, "onset_blendshapes": r["onset"], "apex_blendshapes": r[frame]} for r in rows]


def magnification_rows(cal: list[dict], bench: list[dict]) -> dict:
    from au_realistic import _scores as detector_scores
    from au_realistic import evidence_from_row

    from assistant.au import fusion
    from eval.calibrate_blend import MIN_POSITIVES, fit_fusion, noise_floors

    frames = ["apex"] + [f"x{k}" for k in MAGNIFICATIONS]
    cal, bench = _complete(cal, frames), _complete(bench, frames)
    if not cal or not bench or not any(not r["aus"] for r in cal):
        raise BenchmarkError(f"Of the clips asked, {len(cal)} calibration and {len(bench)} benchmark clips had a face "
                             "found in every crop, with no null calibration clip among them or none at all; use a "
                             "larger --n.")
    table = {}
    for frame in frames:
        c, b = _view(cal, frame), _view(bench, frame)
        floors = noise_floors(c)
        fitted = fit_fusion(c, floors)
        if not fitted["codes"]:  # the landmarker missed faces on clips the drawn specs counted on
            raise BenchmarkError(f"No AU has {MIN_POSITIVES} calibration clips on each side among the "
                                 f"{len(c)} with a face found in every crop, so fusion cannot be fitted; use a "
                                 "larger --n.")
        p, z, y = fitted["p_rules"], fitted["z"], fitted["labels"]
        weights = fusion.fit({code: p[:, j] for j, code in enumerate(fitted["codes"])},
                             {code: z[:, j] for j, code in enumerate(fitted["codes"])},
                             {code: y[:, j] for j, code in enumerate(fitted["codes"])}, C=fitted["C"],
                             balanced=fitted["balanced"], margin=fitted["margin"])
        weights = {int(code): (w["w_rules"], w["w_blend"], w["bias"]) for code, w in weights.items()}
        evidence = [evidence_from_row(r, floors, weights) for r in b]
        scored = {name: detector_scores(b, evidence, name) for name in ("rules", "blendshapes", "fusion")}
        chosen = next(t for t in fitted["selection"] if t.get("C") == fitted["C"]
                      and t.get("balanced") == fitted["balanced"] and t.get("margin") == fitted["margin"])
        table[frame] = {
            "calibration_loso_fusion_macro_f1": chosen["loso_macro_f1"],
            "calibration_rules_macro_f1": fitted["selection"][-1]["rules_macro_f1"],
            "fusion_setting": {"C": fitted["C"], "balanced": fitted["balanced"], "margin": fitted["margin"]},
            "blend_weight_range": [round(min(w[1] for w in weights.values()), 3),
                                   round(max(w[1] for w in weights.values()), 3)],
            **{f"benchmark_{name}": {"macro_f1": s["macro_f1"], "null_clips_with_any_casme2_au":
                                     s["null_clips_with_any_casme2_au"]} for name, s in scored.items()},
        }
    return {"clips": {"calibration": len(cal), "benchmark": len(bench)}, "by_frame": table}


def fewest_clips(seed: int, limit: int = 2000) -> int | None:
    """The smallest n whose calibration clips 0..n-1 (drawn specs, nothing rendered) hold what fitting fusion needs:
    a null clip for the noise floors and an AU the blendshapes read with `MIN_POSITIVES` clips on each side. None
    when even `limit` clips do not."""
    from collections import Counter

    from assistant.au.blendshapes import AU_BLENDSHAPES
    from eval.calibrate_blend import MIN_POSITIVES
    from instruction_data.realistic import draw_spec

    nulls, per_au = 0, Counter()
    for n in range(1, limit + 1):
        codes = {m.au.code for m in draw_spec(n - 1, "calibration", seed).motions}
        nulls += not codes
        per_au.update(codes)
        if nulls and any(MIN_POSITIVES <= per_au[c] <= n - MIN_POSITIVES for c in AU_BLENDSHAPES):
            return n
    return None


def main(argv: list[str] | None = None) -> int:
    from eval.calibrate_blend import MIN_POSITIVES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=positive_int, default=160,
                        help="clips per split (indices 0..n-1); at least what fitting fusion needs (11 for seed 0)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="realistic world seed")
    parser.add_argument("--out", type=Path, default=Path("outputs/blend_response"), help="score cache folder")
    args = parser.parse_args(argv)
    fewest = fewest_clips(args.seed, limit=max(args.n, 200))  # drawn specs only: known before anything is rendered
    if fewest is None or args.n < fewest:
        parser.error(f"--n {args.n} is too few for --seed {args.seed}: fitting fusion needs a null calibration clip "
                     f"and an AU with {MIN_POSITIVES} calibration clips on each side, which the first "
                     + (f"{fewest} clips are the fewest to hold" if fewest else f"{max(args.n, 200)} do not hold"))
    calibration = calibration_record()  # `rules` reads it (fusion is fitted here); a bad folder stops here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cal = collect("calibration", args.n, args.seed, args.out)
    bench = collect("benchmark", args.n, args.seed, args.out)
    emit("blendshape_response", {"label": f"synthetic (realistic world, seed {args.seed})", "calibration": calibration,
                                 "response_apex": response(cal + bench),
                                 "magnification": magnification_rows(cal, bench)})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
