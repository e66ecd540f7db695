"""AU detection benchmark (synthetic): LOSO on a synthetic CASME II-layout set with the tiny LLM backbone.

Prints JSON: pooled macro F1 over CASME II's 8 AUs for `aullm`, `rules` and two naive baselines (always positive;
random draws at the training prior), the margin of aullm over the baselines, per-clip inference latency, and a
machine description. Every figure is measured on synthetic clips: it checks that the code learns and scores
correctly, it says nothing about real micro-expressions. The aullm settings come from
configs/au_llm_tiny_synthetic.yaml; they were chosen on a separate synthetic set (another seed), never on these
test folds. A rerun with the same --out reuses the data, the cache and every finished fold.

    python benchmarks/au.py [--subjects 8] [--clips 8] [--out outputs/bench_au] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

BASELINES = ["rules", "always_positive", "prior"]
LEARNED = ["aullm", "microau_clip"]
MICROAU_CLIP_CONFIG = ROOT / "configs" / "au_microau_clip_tiny_synthetic.yaml"


def detect_ms(detector, records) -> float:
    """Median wall time (ms) of `detector.detect` per clip, the clip read from its frame folder beforehand; the first
    call (model warm-up) is left out."""
    from assistant.motion.clip import load_clip

    times = []
    for r in records:
        clip = load_clip(str(Path(r.frame_paths[0]).parent), onset=r.onset, apex=r.apex)
        t = time.perf_counter()
        detector.detect(clip)
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times[1:] or times), 1)


def latency(records, config, out: Path, n: int = 5) -> dict:
    """Median per-clip wall time of the aullm and rules detectors, clip read from its frame folder."""
    import torch

    from assistant.au import get_detector
    from assistant.au.aullm import AULLMConfig
    from assistant.au.checkpoint import build_aullm, save_aullm

    ckpt = out / "latency_ckpt"
    if not (ckpt / "model.safetensors").is_file():  # weights do not change the cost, so an untrained model serves
        model, _ = build_aullm(config.backbone, AULLMConfig())
        save_aullm(model, config.backbone, ckpt)
    detectors = {"aullm": get_detector("aullm", checkpoint=ckpt), "rules": get_detector("rules")}
    result = {f"{name}_detect_ms": detect_ms(det, records[:n]) for name, det in detectors.items()}
    model = detectors["aullm"].model
    x = torch.rand(1, 6, 64, 64)
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(n):
            model(x)
    result["aullm_forward_ms"] = round(1000 * (time.perf_counter() - t) / n, 1)
    result["note"] = ("detect = clip already read (onset/apex), then frames onset..apex re-read from the folder, "
                      "face found, model/flow run; rules includes TV-L1 flow and landmarks")
    return result


def microau_clip_config(out: Path, common: dict):
    """Micro-AU CLIP run config: its tiny-synthetic recipe over the tiny CLIP built offline."""
    from assistant.config import from_dict, load_yaml
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig
    from finetune.tiny_clip import build_tiny_clip

    tiny = out / "tiny_clip"
    if not (tiny / "config.json").is_file():
        build_tiny_clip(tiny)
    return from_dict(TrainMicroAUCLIPConfig, {**load_yaml(MICROAU_CLIP_CONFIG), **common, "clip_backbone": str(tiny)})


def microau_clip_latency(records, config, out: Path, n: int = 5) -> dict:
    """Median per-clip detect time of microau_clip (TV-L1 flow + landmarks + model) and its forward pass."""
    import torch

    from assistant.au import get_detector
    from assistant.au.microau_clip import MicroAUCLIPConfig
    from assistant.au.microau_clip_io import build_model, save_microau_clip

    ckpt = out / "latency_ckpt_microau_clip"
    if not (ckpt / "model.safetensors").is_file():  # weights do not change the cost, so an untrained model serves
        model, _ = build_model(config.clip_backbone, MicroAUCLIPConfig())
        save_microau_clip(model, config.clip_backbone, ckpt)
    det = get_detector("microau_clip", checkpoint=ckpt)
    detect = detect_ms(det, records[:n])
    x, lm = torch.rand(1, 3, 224, 224), torch.rand(1, 68, 2) * 224
    with torch.no_grad():
        det.model(x, lm)
        t = time.perf_counter()
        for _ in range(n):
            det.model(x, lm)
    return {"microau_clip_detect_ms": detect,
            "microau_clip_forward_ms": round(1000 * (time.perf_counter() - t) / n, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--clips", type=int, default=8, help="clips per subject")
    ap.add_argument("--size", type=int, nargs=2, default=[640, 480], help="frame width height")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench_au"))
    ap.add_argument("--config", default=str(ROOT / "configs" / "au_llm_tiny_synthetic.yaml"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 oversubscribes a busy 2-core box)")
    ap.add_argument("--models", nargs="+", default=LEARNED + BASELINES)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from assistant.config import from_dict, load_yaml
    from finetune.au import TrainAUConfig, run
    from finetune.tiny_llm import build_tiny_llm
    from instruction_data.layouts import write_synthetic_dataset
    from instruction_data.loaders import load_dataset

    out = Path(args.out)
    data = out / "data"
    if not (data / "synth_truth.json").is_file():
        write_synthetic_dataset("casme2", data, subjects=args.subjects, clips=args.clips, seed=args.seed,
                                size=tuple(args.size), progress=True)
    records = load_dataset("casme2", data).records
    common = {"backbone": str(build_tiny_llm(out / "tiny_llm")), "cache_dir": str(out / "cache"),
              "threads": args.threads, "final_model": False, "progress": False}
    base = from_dict(TrainAUConfig, {**load_yaml(args.config), **common})
    results, timings = {}, {}
    for name in args.models:
        t = time.perf_counter()
        # baselines do not read the learned model's recipe, so changing it never invalidates their finished folds
        cfg = base if name in LEARNED else TrainAUConfig(**common)
        if name == "microau_clip":
            cfg = microau_clip_config(out, common)
        cfg = dataclasses.replace(cfg, model=name, out=str(out / name))
        metrics = run(cfg, records)
        timings[name] = round(time.perf_counter() - t, 1)
        results[name] = {"pooled_macro_f1": round(metrics["pooled"]["mean_f1"], 4),
                         "per_au_f1": {str(k): round(v, 4) for k, v in metrics["pooled"]["f1"].items()},
                         "fold_mean_f1": round(metrics["fold_mean_f1"], 4), "label": "synthetic"}
    report = {
        "benchmark": "au_loso_synthetic", "synthetic": True,
        "data": {"layout": "casme2", "subjects": args.subjects, "clips_per_subject": args.clips,
                 "clips_scored": metrics["n_clips"], "frame_size": args.size, "seed": args.seed,
                 "aus": metrics["aus"]},
        "results": results,
        "margins": {f"{m}_minus_{b}": round(results[m]["pooled_macro_f1"] - results[b]["pooled_macro_f1"], 4)
                    for m in LEARNED if m in results for b in ("always_positive", "prior") if b in results},
        "wall_s": timings,
        "latency": {**latency(records, base, out),
                    **(microau_clip_latency(records, microau_clip_config(out, common), out)
                       if "microau_clip" in args.models else {})},
        "machine": machine(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
