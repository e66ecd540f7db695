"""Throughput of `meu eval` with the offline default (template reasoner, rules detector, TV-L1 flow) on a synthetic
CASME II-layout dataset, with 1 and 2 motion workers. Figures are synthetic-data throughput, not accuracy.

    .venv/bin/python benchmarks/evaluation.py [--subjects 4] [--clips 4] [--size 640x480] [--workers 1 2]

`samples_per_s` counts the clips of the evaluation loop (motion, detector, reasoner, parsing, one row written per
clip) over its wall time; `command_s` is the whole command, imports and report included.
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
from common import emit  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_eval(root: Path, out: Path, workers: int, flow: str) -> dict:
    cmd = [sys.executable, "-m", "assistant.cli", "eval", "--dataset", "casme2", "--root", str(root), "--out", str(out),
           "--protocol", "zero-shot", "--flow", flow, "--workers", str(workers), "--progress", "false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command_s = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    inv = m["this_invocation"]
    return {"workers": workers, "flow": flow, "clips": inv["clips_run"], "loop_s": inv["wall_s"],
            "samples_per_s": round(inv["clips_run"] / inv["wall_s"], 3), "command_s": round(command_s, 2),
            "mean_stage_s": m["timings"], "uf1_synthetic": round(m["emotion"]["uf1"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--flow", default="tvl1", help="tvl1 (the offline default) or dis")
    args = ap.parse_args()
    from instruction_data.layouts import write_synthetic_dataset

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_dataset("casme2", Path(tmp) / "casme2", args.subjects, args.clips, seed=0,
                                       size=(width, height))
        runs = [run_eval(root, Path(tmp) / f"run_w{w}", w, args.flow) for w in args.workers]
    emit("eval", {"dataset": f"synthetic casme2 layout, {args.subjects} subjects x {args.clips} clips, {args.size}",
                  "runs": runs})


if __name__ == "__main__":
    main()
