"""Instruction-data build speed: samples per second with 1 and 2 workers (256 px working size, TV-L1), on a
synthetic CASME II set at the datasets' raw frame size (640x480). Figures are synthetic-data figures.

    .venv/bin/python benchmarks/build.py [--subjects 4] [--clips 3] [--workers 1 2] [--flow tvl1]

Target on the 2-core build machine: at least 3 samples/s. Each run builds into a fresh folder; `analysis_s` is
the wall time of the analysis phase (process start-up of the workers included), `total_s` adds sheet loading and
the exports; `steady_samples_per_s` leaves the one-off worker start-up out (workers x samples per clip / mean clip
time). The machine's load average is printed too: on shared cores it moves every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchmarkError, calibration_record, emit, positive_int, refuse_repeats, run_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary
    from assistant.motion.analyze import MOTION_CHOICES

    parser = argparse.ArgumentParser(description=doc_summary(__doc__))
    parser.add_argument("--subjects", type=positive_int, default=4, help="synthetic subjects (default 4)")
    parser.add_argument("--clips", type=positive_int, default=3, help="clips per subject (default 3)")
    parser.add_argument("--workers", type=positive_int, nargs="+", default=[1, 2],
                        help="motion worker counts, one build each (default 1 2)")
    parser.add_argument("--flow", default="tvl1", choices=MOTION_CHOICES["flow"],
                        help="optical flow of the build (default tvl1, the published recipe; dis is fast)")
    args = parser.parse_args(argv)
    refuse_repeats(parser, "--workers", args.workers)
    calibration = calibration_record()  # the answers carry its intensity words; a bad MEU_CALIBRATION stops here

    import cv2

    cv2.setNumThreads(1)
    from instruction_data.build import BuildConfig, build
    from instruction_data.layouts import write_synthetic_dataset

    figures: dict = {"data": "synthetic CASME II layout, 640x480 frames, 30 frames per clip",
                     "flow": args.flow, "size": 256, "calibration": calibration, "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="meu-bench-build-") as tmp:
        root = write_synthetic_dataset("casme2", Path(tmp) / "data", args.subjects, args.clips, size=(640, 480),
                                       n_frames=30, quirks=False)
        runs = []
        for workers in args.workers:
            cfg = BuildConfig(dataset="casme2", root=str(root), out=str(Path(tmp) / f"out{workers}"), lang="en",
                              mer_ratio=0.25, workers=workers, flow=args.flow, hf=True)
            report = build(cfg, progress=False)
            t = report["timings"]
            n_samples, n_clips = report["samples"]["total"], report["clips"]["analysed"]
            if not n_clips:  # nothing to divide by: say so instead of a ZeroDivisionError
                raise BenchmarkError(f"The build with {workers} workers analysed none of the "
                                     f"{args.subjects * args.clips} clips; its report's clip counts: "
                                     f"{report['clips']}.")
            runs.append({"workers": workers, "clips": n_clips, "samples": n_samples,
                         "fgmu_samples": report["samples"]["fgmu"], "analysis_s": t["analysis_s"],
                         "total_s": t["total_s"], "mean_clip_s": t["mean_clip_s"],
                         "clips_per_s": round(n_clips / t["analysis_s"], 3),
                         "samples_per_s": round(n_samples / t["total_s"], 3),
                         "fgmu_samples_per_s": round(report["samples"]["fgmu"] / t["total_s"], 3),
                         # once the workers are up: each worker finishes a clip every mean_clip_s
                         "steady_samples_per_s": round(workers * n_samples / n_clips / t["mean_clip_s"], 3)})
        figures["runs"] = runs
        figures["load_average_after"] = os.getloadavg()
    figures["target_samples_per_s"] = 3.0
    emit("build", figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
