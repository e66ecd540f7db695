"""The MEGC 2019 composite protocol end to end on synthetic CASME II + SAMM + SMIC sets of the realistic world: the
table's figures (mechanics only: the three synthetic datasets share faces, and their emotions follow from the
AU-to-emotion table the template reasoner argues with), the clips per class, and the wall time.

    .venv/bin/python benchmarks/cde.py [--subjects 3] [--clips 10] [--world v2] [--seeds 0 1 2] [--workers 2]

Each seed writes its own three datasets (the realistic world's benchmark split) and runs `meu eval --protocol cde`
with the offline default (template reasoner, rules detector, TV-L1). Every figure is reported per seed and over the
seeds as mean and sample standard deviation (`common.spread`; null from one seed). The default three seeds take
roughly 15-25 minutes on the 2-core build machine (writing the datasets is most of it: 127-252 s per seed at
`--clips 6`, docs/benchmarks.md); `--seeds 0 --clips 3` is a quick check of the plumbing. Figures are synthetic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, nonnegative_int, positive_int, refuse_repeats, run_child, run_main, spread  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATASETS = ("casme2", "samm", "smic")
BENCHMARK_PEOPLE = 4  # people of the realistic world's benchmark split (instruction_data.realistic)


def one_seed(tmp: Path, seed: int, args) -> dict:
    from instruction_data.layouts import write_realistic_dataset

    t = time.perf_counter()
    roots = [str(write_realistic_dataset(d, tmp / f"{d}_s{seed}", "benchmark", args.subjects, args.clips, seed=seed,
                                         world=args.world)) for d in DATASETS]
    synth_s = time.perf_counter() - t
    out = tmp / f"eval_s{seed}"
    cmd = [sys.executable, "-m", "assistant.cli", "eval", "--protocol", "cde", "--dataset", ",".join(DATASETS),
           "--root", ",".join(roots), "--out", str(out), "--workers", str(args.workers), "--progress", "false"]
    t = time.perf_counter()
    run_child(cmd, f"`meu eval --protocol cde` of seed {seed}", stdout=subprocess.DEVNULL,
              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    eval_s = time.perf_counter() - t
    metrics = json.loads((out / "metrics.json").read_text())
    cde = metrics["cde"]
    return {"seed": seed, "synth_s": round(synth_s, 1), "eval_s": round(eval_s, 1), "folds": cde["folds"],
            "found": cde["found"], "unmapped": len(cde["unmapped"]),
            "table": {k: {"uf1": round(v["uf1"], 4), "uar": round(v["uar"], 4), "n": v["n_samples"]}
                      for k, v in cde["table"].items()},
            "calibration": metrics["run"].get("calibration")}


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--subjects", type=positive_int, default=3,
                    help=f"people per dataset, 1-{BENCHMARK_PEOPLE} (the benchmark split's; default 3)")
    ap.add_argument("--clips", type=positive_int, default=10, help="clips per person and dataset (default 10)")
    ap.add_argument("--world", default="v2", choices=["v1", "v2"], help="realistic world version (default v2)")
    ap.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2],
                    help="data seeds, three datasets written and evaluated per seed (default 0 1 2)")
    ap.add_argument("--workers", type=positive_int, default=2, help="`meu eval --workers` (default 2)")
    args = ap.parse_args(argv)
    if args.subjects > BENCHMARK_PEOPLE:
        ap.error(f"--subjects {args.subjects} is more than the benchmark split's {BENCHMARK_PEOPLE} people")
    refuse_repeats(ap, "--seeds", args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_seed(Path(tmp), s, args) for s in args.seeds]
    over_seeds = {k: {m: spread([r["table"][k][m] for r in runs], 4) for m in ("uf1", "uar")}
                  for k in runs[0]["table"]}
    # `meu eval` records the calibration it scored with (MEU_CALIBRATION or the shipped files); each seed reads it
    calibration = runs[0]["calibration"]
    emit("cde", {"data": f"synthetic, realistic world {args.world}, benchmark split, {args.subjects} subjects x "
                         f"{args.clips} clips per dataset", "method": "template + rules, TV-L1",
                 "calibration": calibration, "runs": [{k: v for k, v in r.items() if k != "calibration"} for r in runs],
                 "over_seeds": over_seeds})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
