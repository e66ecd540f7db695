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
from common import emit, positive_int, refuse_repeats, run_child, run_main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def frame_size(text: str) -> tuple[int, int]:
    """argparse type of --size: WIDTHxHEIGHT in pixels, each side at least 64."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as 640x480, got {text!r}") from None
    if min(width, height) < 64:
        raise argparse.ArgumentTypeError(f"{text} is too small: each side must be at least 64 px")
    return width, height


def run_eval(root: Path, out: Path, workers: int, flow: str) -> dict:
    cmd = [sys.executable, "-m", "assistant.cli", "eval", "--dataset", "casme2", "--root", str(root), "--out", str(out),
           "--protocol", "zero-shot", "--flow", flow, "--workers", str(workers), "--progress", "false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    run_child(cmd, f"`meu eval` with {workers} workers", env=env, stdout=subprocess.DEVNULL)
    command_s = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    inv = m["this_invocation"]
    return {"workers": workers, "flow": flow, "clips": inv["clips_run"], "loop_s": inv["wall_s"],
            "samples_per_s": round(inv["clips_run"] / inv["wall_s"], 3), "command_s": round(command_s, 2),
            "mean_stage_s": m["timings"], "uf1_synthetic": round(m["emotion"]["uf1"], 3),
            "calibration": m["run"].get("calibration")}


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary
    from assistant.motion.analyze import MOTION_CHOICES

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--subjects", type=positive_int, default=4, help="synthetic subjects (default 4)")
    ap.add_argument("--clips", type=positive_int, default=4, help="clips per subject (default 4)")
    ap.add_argument("--size", type=frame_size, default=(640, 480),
                    help="frame WIDTHxHEIGHT in pixels (default 640x480)")
    ap.add_argument("--workers", type=positive_int, nargs="+", default=[1, 2],
                    help="`meu eval --workers` values, one run each (default 1 2)")
    ap.add_argument("--flow", default="tvl1", choices=MOTION_CHOICES["flow"],
                    help="tvl1 (the offline default) or dis (fast)")
    args = ap.parse_args(argv)
    refuse_repeats(ap, "--workers", args.workers)
    from instruction_data.layouts import write_synthetic_dataset

    width, height = args.size
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_dataset("casme2", Path(tmp) / "casme2", args.subjects, args.clips, seed=0,
                                       size=(width, height))
        runs = [run_eval(root, Path(tmp) / f"run_w{w}", w, args.flow) for w in args.workers]
    # `meu eval` records the calibration it scored with (MEU_CALIBRATION or the shipped files); each run reads it
    emit("eval", {"dataset": f"synthetic casme2 layout, {args.subjects} subjects x {args.clips} clips, "
                             f"{width}x{height}", "calibration": runs[0].pop("calibration"),
                  "runs": [{k: v for k, v in r.items() if k != "calibration"} for r in runs]})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
