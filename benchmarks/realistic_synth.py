"""The realistic synthetic world: what it draws (distributions over many clip specs, nothing rendered) and how long
a clip takes to render.

    .venv/bin/python benchmarks/realistic_synth.py [--specs 2000] [--render 10] [--split benchmark] [--seed 0]

Figures are synthetic. Render time is reported per clip and per 100 frames, as wall time and as this process's CPU
time (the wall time grows with whatever else the machine runs).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, nonnegative_int, positive_int, run_main  # noqa: E402

from instruction_data.realistic import draw_spec, render_realistic, split_subjects  # noqa: E402


def _quantiles(values: list[float], digits: int = 3) -> dict:
    q = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    return dict(zip(("min", "p10", "p25", "median", "p75", "p90", "max"), (round(float(v), digits) for v in q),
                    strict=True))


def distributions(split: str, seed: int, n: int) -> dict:
    specs = [draw_spec(i, split, seed) for i in range(n)]
    motions = [m for s in specs for m in s.motions]
    combos = collections.Counter("+".join(str(a.code) for a in s.aus) or "null" for s in specs)
    codes = collections.Counter(m.au.code for m in motions)
    return {
        "specs": n,
        "null_share": round(sum(s.is_null for s in specs) / n, 3),
        "aus_per_clip": dict(sorted(collections.Counter(len(s.motions) for s in specs).items())),
        "au_share": {str(k): round(v / len(motions), 3) for k, v in codes.most_common()},
        "top_combinations": dict(combos.most_common(12)),
        "amplitude_px": _quantiles([m.amplitude_px for m in motions]),
        "share_of_aus_below_0.6_px": round(float(np.mean([m.amplitude_px < 0.6 for m in motions])), 3),
        "intensity": dict(sorted(collections.Counter(m.au.intensity for m in motions).items())),
        "side": dict(collections.Counter(m.au.side or "both" for m in motions)),
        "frames": _quantiles([s.n_frames for s in specs], 1),
        "expression_s": _quantiles([(s.offset - s.onset) / s.fps for s in specs]),
        "apex_fraction": _quantiles([(s.apex - s.onset) / (s.offset - s.onset) for s in specs]),
        "blink_share": round(sum(bool(s.blinks) for s in specs) / n, 3),
        "head_translation_px": _quantiles([float(np.hypot(*s.head_translation_px)) for s in specs]),
        "head_rotation_deg": _quantiles([s.head_rotation_deg for s in specs]),
        "head_zoom": _quantiles([s.head_zoom for s in specs], 4),
        "noise_sigma": _quantiles([s.noise_sigma for s in specs]),
        "jpeg_quality": _quantiles([s.jpeg_quality for s in specs], 0),
        "illumination_drift": _quantiles([s.illumination_drift for s in specs]),
        "subjects": dict(collections.Counter(s.subject.id for s in specs)),
    }


def render_times(split: str, seed: int, n: int) -> dict:
    split_subjects(split)  # landmarks of the split's photos: once per process, not per clip
    wall, cpu, frames = [], [], []
    for i in range(n):
        spec = draw_spec(i, split, seed)
        t, c = time.perf_counter(), time.process_time()
        clip = render_realistic(spec)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        frames.append(len(clip.frames))
    per100 = [100 * w / f for w, f in zip(wall, frames, strict=True)]
    per100_cpu = [100 * c / f for c, f in zip(cpu, frames, strict=True)]
    return {"clips": n, "frame_size": list(spec.frame_size), "frames_median": statistics.median(frames),
            "wall_s_per_clip_median": round(statistics.median(wall), 3),
            "wall_s_per_100_frames_median": round(statistics.median(per100), 3),
            "cpu_s_per_100_frames_median": round(statistics.median(per100_cpu), 3),
            "cpu_s_per_100_frames_spread": [round(min(per100_cpu), 3), round(max(per100_cpu), 3)]}


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--specs", type=positive_int, default=2000,
                    help="clip specs drawn for the distributions (default 2000)")
    ap.add_argument("--render", type=positive_int, default=10, help="clips rendered for the timing (default 10)")
    ap.add_argument("--split", default="benchmark", choices=("calibration", "benchmark"),
                    help="which split's people and stream (default benchmark)")
    ap.add_argument("--seed", type=nonnegative_int, default=0, help="the split's stream seed (default 0)")
    args = ap.parse_args(argv)
    emit("realistic_synth", {"synthetic": True, "split": args.split, "seed": args.seed,
                             "drawn": distributions(args.split, args.seed, args.specs),
                             "render": render_times(args.split, args.seed, args.render)})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
