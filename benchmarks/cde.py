"""The MEGC 2019 composite protocol end to end on synthetic CASME II + SAMM + SMIC sets of the realistic world: the
table's figures (mechanics only: the three synthetic datasets share faces, and their emotions follow from the
AU-to-emotion table the template reasoner argues with), the clips per class, and the wall time.

    .venv/bin/python benchmarks/cde.py [--subjects 3] [--clips 10] [--world v2] [--seeds 0 1 2] [--workers 2]

Each seed writes its own three datasets (the realistic world's benchmark split) and runs `meu eval --protocol cde`
with the offline default (template reasoner, rules detector, TV-L1). Figures are synthetic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATASETS = ("casme2", "samm", "smic")


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
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eval_s = time.perf_counter() - t
    cde = json.loads((out / "metrics.json").read_text())["cde"]
    return {"seed": seed, "synth_s": round(synth_s, 1), "eval_s": round(eval_s, 1), "folds": cde["folds"],
            "found": cde["found"], "unmapped": len(cde["unmapped"]),
            "table": {k: {"uf1": round(v["uf1"], 4), "uar": round(v["uar"], 4), "n": v["n_samples"]}
                      for k, v in cde["table"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--world", default="v2", choices=["v1", "v2"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_seed(Path(tmp), s, args) for s in args.seeds]
    spread = {k: {m: {"mean": round(statistics.mean(r["table"][k][m] for r in runs), 4),
                      "sd": round(statistics.pstdev(r["table"][k][m] for r in runs), 4)} for m in ("uf1", "uar")}
              for k in runs[0]["table"]}
    emit("cde", {"data": f"synthetic, realistic world {args.world}, benchmark split, {args.subjects} subjects x "
                         f"{args.clips} clips per dataset", "method": "template + rules, TV-L1",
                 "runs": runs, "over_seeds": spread})


if __name__ == "__main__":
    main()
