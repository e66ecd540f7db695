"""AU detection benchmark (synthetic): LOSO on a synthetic CASME II-layout set with the tiny LLM and CLIP backbones.

Prints JSON: per detector, pooled macro F1 over CASME II's 8 AUs as mean and spread over training seeds (`--seeds`,
three by default), the null clips (no AU at all) given any AU (`null_any_au`), the wall time of its LOSO run, the
margins of the learned models over the naive baselines, per-clip inference latency, what is and is not held fixed
between runs (thread counts, BLAS), and a machine description. Every figure is measured on synthetic clips: it checks
that the code learns and scores correctly, it says nothing about real micro-expressions. A rerun with the same --out
reuses the data, the caches and every finished fold (per seed); data under --out written with other --subjects,
--clips, --size or --data-seed than asked are refused, not reused under the settings asked.

Detectors (`--models`, default all): `aullm` (noise-normalised motion input and the region token), `aullm_no_regions`
(the same input without the token: what the motion field carries alone), `aullm_frames` (published: grey frames),
`microau_clip` (motion input), `microau_clip_flow_image` (published flow image), `rules`, `always_positive`, `prior`
(random draws at the training prior). Recipes: the published inputs keep the tiny-synthetic recipes
(configs/au_llm_tiny_synthetic.yaml, configs/au_microau_clip_tiny_synthetic.yaml), chosen on a separate synthetic set;
in the realistic world the motion inputs take configs/au_llm_realistic.yaml (aullm_no_regions its own
configs/au_llm_realistic_no_regions.yaml) and configs/au_microau_clip_realistic.yaml, chosen on the realistic
calibration split (benchmarks/au_recipes.py). Nothing is tuned on these folds.

    python benchmarks/au.py [--seeds 0 1 2] [--subjects 8] [--clips 8] [--out outputs/bench_au] [--threads 1]
    python benchmarks/au.py --world realistic --world-version v2 --clips 40 --val-subjects 1 --seeds 0 1 2 \
        --out outputs/bench_au_v2

With `--world realistic` the clips are the realistic world's benchmark split (`write_realistic_dataset`: its people,
amplitudes of 0.08-3 px, head drift, noise, JPEG), folds are its people, and `rules` is the one calibrated on the
realistic calibration split.
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
from common import (  # noqa: E402
    calibration_record,
    determinism,
    machine,
    nonnegative_int,
    positive_int,
    refuse_repeats,
    run_main,
    spread,
)

BASELINES = ["rules", "always_positive", "prior"]
SEED_FREE = {"rules", "always_positive"}  # no random draw anywhere: run for the first seed, the same for the others
# name -> (model family, input settings). `aullm` and `microau_clip` read the noise-normalised motion input
# (assistant.au.aullm_input, assistant.au.motion_input), `aullm` with the region token; `aullm_frames` and
# `microau_clip_flow_image` are the published inputs.
LEARNED = {
    "aullm": ("aullm", {"input": "motion", "regions": True}),
    "aullm_no_regions": ("aullm", {"input": "motion", "regions": False}),
    "aullm_frames": ("aullm", {"input": "frames", "regions": False}),
    "microau_clip": ("microau_clip", {"clip_input": "motion"}),
    "microau_clip_flow_image": ("microau_clip", {"clip_input": "flow_image"}),
}
DEFAULT_MODELS = [*LEARNED, *BASELINES]
# recipes: the published inputs keep the easy world's tiny-synthetic recipes everywhere; in the realistic world the
# motion inputs take the recipes chosen on its calibration split (configs/*_realistic.yaml)
RECIPES = {("aullm", "easy"): "au_llm_tiny_synthetic.yaml", ("aullm", "realistic"): "au_llm_realistic.yaml",
           ("microau_clip", "easy"): "au_microau_clip_tiny_synthetic.yaml",
           ("microau_clip", "realistic"): "au_microau_clip_realistic.yaml",
           # a model name before its family: the ablation without the region token has a recipe of its own
           ("aullm_no_regions", "realistic"): "au_llm_realistic_no_regions.yaml"}
PUBLISHED = {"aullm_frames", "microau_clip_flow_image"}


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


def latency(records, backbone: str, out: Path, n: int = 5) -> dict:
    """Median per-clip wall time of the aullm detectors (published frames; motion input with the region token, which
    analyses the clip and its frames in between) and of rules, clip read from its frame folder."""
    import torch

    from assistant.au import get_detector
    from assistant.au.aullm import AULLMConfig
    from assistant.au.aullm_input import REGION_KEYS, REGION_VALUES
    from assistant.au.checkpoint import build_aullm, save_aullm
    from assistant.motion.analyze import MotionConfig

    detectors = {"rules": get_detector("rules")}
    configs = {"aullm_frames": AULLMConfig(),
               "aullm": AULLMConfig(input="motion", regions=True, region_features=len(REGION_KEYS) * REGION_VALUES)}
    for name, model_config in configs.items():
        ckpt = out / f"latency_ckpt_{name}"
        if not (ckpt / "model.safetensors").is_file():  # weights do not change the cost, so an untrained model serves
            model, _ = build_aullm(backbone, model_config)
            save_aullm(model, backbone, ckpt, extra={"motion": dataclasses.asdict(MotionConfig(drift="none"))})
        detectors[name] = get_detector("aullm", checkpoint=ckpt)
    result = {f"{name}_detect_ms": detect_ms(det, records[:n]) for name, det in detectors.items()}
    model = detectors["aullm_frames"].model
    x = torch.rand(1, 6, 64, 64)
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(n):
            model(x)
    result["aullm_frames_forward_ms"] = round(1000 * (time.perf_counter() - t) / n, 1)
    result["note"] = ("detect = clip already read (onset/apex), then frames onset..apex re-read from the folder, "
                      "face found, model/flow run; rules includes TV-L1 flow and landmarks; aullm (motion input) "
                      "analyses the clip and its four frames between onset and apex")
    return result


def recipe(name: str, world: str, out: Path, common: dict):
    """The run config of learned model `name`: its recipe (`RECIPES`) with `common` and its input settings."""
    from assistant.config import from_dict, load_yaml
    from finetune.au import TrainAUConfig
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig
    from finetune.tiny_clip import build_tiny_clip

    family, settings = LEARNED[name]
    world = "easy" if name in PUBLISHED else world
    path = ROOT / "configs" / (RECIPES.get((name, world)) or RECIPES[family, world])
    extra = {}
    if family == "microau_clip":
        tiny = out / "tiny_clip"
        if not (tiny / "config.json").is_file():
            build_tiny_clip(tiny)
        extra = {"clip_backbone": str(tiny)}
    cls = TrainMicroAUCLIPConfig if family == "microau_clip" else TrainAUConfig
    return from_dict(cls, {**load_yaml(path), **common, **extra, **settings, "model": family})


def microau_clip_latency(records, config, out: Path, n: int = 5) -> dict:
    """Median per-clip detect time of microau_clip with `config`'s input (TV-L1 flow + landmarks + model) and its
    forward pass."""
    import torch

    from assistant.au import get_detector
    from assistant.au.microau_clip import MicroAUCLIPConfig
    from assistant.au.microau_clip_io import build_model, save_microau_clip
    from assistant.motion.analyze import MotionConfig

    ckpt = out / f"latency_ckpt_microau_clip_{config.clip_input}"
    if not (ckpt / "model.safetensors").is_file():  # weights do not change the cost, so an untrained model serves
        model, _ = build_model(config.clip_backbone, MicroAUCLIPConfig(input=config.clip_input))
        save_microau_clip(model, config.clip_backbone, ckpt, extra={"motion": {"eyes": MotionConfig().eyes}})
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


def null_any_au(run_dir: Path, records) -> float | None:
    """Share of the null clips (no AU at all) given any AU in the run's pooled predictions."""
    import csv

    null = {r.key for r in records if not r.aus.aus}
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["key"] in null]
    if not rows:
        return None
    return round(sum(any(int(v) for k, v in r.items() if k.startswith("pred_AU")) for r in rows) / len(rows), 4)


def score_seed(models: list[str], records, world: str, common: dict, out: Path, seed: int) -> tuple[dict, dict, dict]:
    """Every model's LOSO run with training seed `seed` (weights, jitter, validation subjects, the prior baseline's
    draws), in `out/seed<seed>/<model>`; returns per-model figures, wall times and the last run's metrics."""
    from finetune.au import TrainAUConfig, run

    results, timings, metrics = {}, {}, {}
    for name in models:
        t = time.perf_counter()
        # baselines do not read a learned model's recipe, so changing one never invalidates their finished folds
        cfg = recipe(name, world, out, common) if name in LEARNED else TrainAUConfig(**common, model=name)
        cfg = dataclasses.replace(cfg, seed=seed, out=str(out / f"seed{seed}" / name))
        metrics = run(cfg, records)
        timings[name] = round(time.perf_counter() - t, 1)
        results[name] = {"pooled_macro_f1": metrics["pooled"]["mean_f1"],
                         "per_au_f1": {str(k): v for k, v in metrics["pooled"]["f1"].items()},
                         "fold_mean_f1": metrics["fold_mean_f1"],
                         "null_any_au": null_any_au(Path(cfg.out), records), "wall_s": timings[name]}
    return results, timings, metrics


def summarise(per_seed: dict[int, dict]) -> dict:
    """Per model: pooled macro F1, per-AU F1 and fold-mean F1 as mean / std / range over the seeds."""
    seeds = sorted(per_seed)
    models = list(per_seed[seeds[0]])
    out = {}
    for m in models:
        runs = [per_seed[s][m] for s in seeds]
        nulls = [r["null_any_au"] for r in runs if r.get("null_any_au") is not None]
        out[m] = {"pooled_macro_f1": spread([r["pooled_macro_f1"] for r in runs]),
                  "fold_mean_f1": spread([r["fold_mean_f1"] for r in runs]),
                  "null_any_au": spread(nulls) if nulls else None,
                  "wall_s": spread([r["wall_s"] for r in runs]),
                  "per_au_f1_mean": {au: round(statistics.fmean(r["per_au_f1"][au] for r in runs), 4)
                                     for au in runs[0]["per_au_f1"]},
                  "label": "synthetic"}
    return out


def data_settings(data: Path) -> dict | None:
    """What the synthetic data set under `data` was written with, read from its `synth_truth.json` (None: no data
    yet): the world ("easy" or "realistic v1/v2"), the realistic split, the data seed, the frame size, the people and
    the clips per person. Clips per person are (low, high): the realistic writer numbers clip c of person s
    `s * clips + c` and may leave a clip out, so the disk bounds the number rather than stating it (high None: no
    upper bound, one person)."""
    import collections

    truth_file = data / "synth_truth.json"
    if not truth_file.is_file():
        return None
    truth = json.loads(truth_file.read_text())
    clips = truth.get("clips") or []
    per_person = collections.Counter(c["subject_n"] for c in clips)
    first = 6 if truth.get("layout") == "samm" else 1  # subject_n of the first person (instruction_data.layouts)
    if truth.get("realistic"):
        low = max([c["index"] // (c["subject_n"] - first + 1) + 1 for c in clips] + [max(per_person.values(),
                                                                                         default=1)])
        highs = [c["index"] // (c["subject_n"] - first) for c in clips if c["subject_n"] > first]
        clips_range = (low, min(highs) if highs else None)
        world = f"realistic {truth.get('world', 'v1')}"
    else:
        n = max(per_person.values(), default=0)
        clips_range, world = (n, n), "easy"
    return {"world": world, "split": truth.get("split"), "data_seed": truth.get("seed"),
            "size": list(truth.get("size") or []), "subjects": len(per_person), "clips": clips_range}


def refuse_other_data(parser: argparse.ArgumentParser, out: Path, held: dict, asked: dict) -> None:
    """Refuse to run on data under `out` written with other settings than those asked (`asked`: option -> value, of
    "--world-version", "--subjects", "--clips", "--size", "--data-seed"): the figures would be reported with the
    settings asked while measured on the data on disk."""
    def held_value(flag: str):
        return {"--world-version": held["world"].removeprefix("realistic "), "--subjects": held["subjects"],
                "--clips": held["clips"], "--size": held["size"], "--data-seed": held["data_seed"]}[flag]

    def same(flag: str, value) -> bool:
        have = held_value(flag)
        if flag == "--clips":
            return have[0] <= value and (have[1] is None or value <= have[1])
        return have == (list(value) if isinstance(value, (list, tuple)) else value)

    def shown(flag: str, value) -> str:
        if flag == "--clips" and isinstance(value, tuple):
            value = value[0] if value[0] == value[1] else f"{value[0]} or more" if value[1] is None else \
                f"{value[0]}-{value[1]}"
        return f"{flag} {' '.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"

    differ = [flag for flag, value in asked.items() if not same(flag, value)]
    if differ:
        parser.error(f"{out / 'data'} holds the data of {' '.join(shown(f, held_value(f)) for f in differ)}, not "
                     f"{' '.join(shown(f, asked[f]) for f in differ)} as asked; give another --out, or delete {out} "
                     "(its data, input cache and finished runs belong together) to start over")


DETERMINISM_NOTE = (
    "Held fixed: the synthetic data (--data-seed), the tiny backbones (seed 0), each run's training seed (torch and "
    "numpy generators: weights, temporal jitter, validation subjects, the prior baseline's draws), the torch thread "
    "count (--threads), the OpenCV thread count (1) and the BLAS/OpenMP thread variables printed under determinism. "
    "Not held fixed: floating-point summation order, which changes with the thread count and with the CPU's "
    "instruction set (MKL and oneDNN pick AVX2 or AVX-512 kernels per machine), so the same seed can train to "
    "slightly different weights on another machine or thread count; deterministic algorithms are not forced. "
    "Small weight differences move a threshold-0.5 decision on a few of the 63 clips, which moves F1 by points: "
    "hence mean and spread over seeds, not one run's figure.")


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--world", choices=["easy", "realistic"], default="easy",
                    help="easy: the synthetic world the detectors were built in; realistic: the realistic world's "
                         "benchmark split (its people, realistic amplitudes, drift and noise), LOSO over its people")
    ap.add_argument("--world-version", choices=["v1", "v2"], default="v1",
                    help="with --world realistic: v1, or v2 with 3-D head turns, coupled skin, gaze and flicker")
    ap.add_argument("--subjects", type=positive_int, default=8,
                    help="easy world only: the realistic split has its own people")
    ap.add_argument("--clips", type=positive_int, default=8, help="clips per subject")
    ap.add_argument("--val-subjects", type=nonnegative_int, default=None,
                    help="training people held out for validation per fold, for both learned models (default: each "
                         "recipe's own; with the realistic split's four people, 2 leaves one person to train on)")
    ap.add_argument("--size", type=positive_int, nargs=2, default=[640, 480], help="frame width height")
    ap.add_argument("--data-seed", "--seed", type=nonnegative_int, default=0, dest="data_seed",
                    help="seed of the synthetic data set")
    ap.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2],
                    help="training seeds; every model is run once per seed and reported as mean and spread")
    ap.add_argument("--out", default=None, help="default outputs/bench_au (easy world), outputs/bench_au_realistic")
    ap.add_argument("--threads", type=positive_int, default=1,
                    help="torch threads (2 oversubscribes a busy 2-core box)")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=DEFAULT_MODELS)
    ap.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    args = ap.parse_args(argv)
    refuse_repeats(ap, "--seeds", args.seeds)
    refuse_repeats(ap, "--models", args.models)
    out = Path(args.out or ROOT / "outputs" / ("bench_au" if args.world == "easy" else "bench_au_realistic"))
    data = out / "data"
    marker = out / "world.txt"  # the data, the cache and the finished folds under --out belong to one world
    world = args.world if args.world == "easy" else f"realistic {args.world_version}"
    held_data = data_settings(data)
    held = marker.read_text().strip() if marker.is_file() else held_data["world"] if held_data else None
    held = "realistic v1" if held == "realistic" else held  # marked before world v2 existed
    if held not in (None, world):
        ap.error(f"{out} holds the {held} world's data and folds; give another --out for the {world} world")
    if held_data and held_data["split"] not in (None, "benchmark"):
        ap.error(f"{data} holds the realistic world's {held_data['split']} split, not its benchmark split; give "
                 "another --out")
    if held_data:  # the data on disk must be what is asked, or the report would name settings it was not run with
        refuse_other_data(ap, out, held_data, {**({"--subjects": args.subjects} if args.world == "easy" else {}),
                                               "--clips": args.clips, "--size": args.size,
                                               "--data-seed": args.data_seed})
    calibration = calibration_record()  # `rules` and the motion inputs read it; a bad MEU_CALIBRATION stops here
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    from finetune.tiny_llm import build_tiny_llm
    from instruction_data.layouts import write_realistic_dataset, write_synthetic_dataset
    from instruction_data.loaders import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    if held != world:  # written once and whole: runs sharing --out (e.g. one per model) read it meanwhile
        from assistant.files import atomic_write_text

        atomic_write_text(marker, world + "\n")
    if held_data is None and args.world == "realistic":
        write_realistic_dataset("casme2", data, "benchmark", clips=args.clips, seed=args.data_seed,
                                size=tuple(args.size), progress=True, world=args.world_version)
    elif held_data is None:
        write_synthetic_dataset("casme2", data, subjects=args.subjects, clips=args.clips, seed=args.data_seed,
                                size=tuple(args.size), progress=True)
    used = data_settings(data)
    records = load_dataset("casme2", data).records
    common = {"backbone": str(build_tiny_llm(out / "tiny_llm")), "cache_dir": str(out / "cache"),
              "threads": args.threads, "final_model": False, "progress": False,
              **({"val_subjects": args.val_subjects} if args.val_subjects is not None else {})}
    per_seed, timings = {}, {}
    for i, seed in enumerate(args.seeds):
        models = args.models if i == 0 else [m for m in args.models if m not in SEED_FREE]
        per_seed[seed], timings[seed], metrics = score_seed(models, records, args.world, common, out, seed)
        per_seed[seed].update({m: per_seed[args.seeds[0]][m] for m in args.models if m not in per_seed[seed]})
    results = summarise(per_seed)
    report = {
        "benchmark": "au_loso_synthetic", "synthetic": True, "world": world,
        # what the data on disk were written with (checked against the options above)
        "data": {"layout": "casme2", "subjects": len({r.subject for r in records}),
                 "clips_per_subject": args.clips, "clips_scored": metrics["n_clips"], "frame_size": used["size"],
                 "data_seed": used["data_seed"], "aus": metrics["aus"]},
        "seeds": args.seeds, "seed_free": sorted(SEED_FREE & set(args.models)),
        "val_subjects": args.val_subjects if args.val_subjects is not None else "each recipe's own",
        "calibration": calibration,
        "results": results,
        "margins_mean": {f"{m}_minus_{b}": round(results[m]["pooled_macro_f1"]["mean"]
                                                 - results[b]["pooled_macro_f1"]["mean"], 4)
                         for m in LEARNED if m in results for b in ("always_positive", "prior")
                         if b in results},
        "per_seed": {s: {m: round(r["pooled_macro_f1"], 4) for m, r in per_seed[s].items()} for s in args.seeds},
        "wall_s": timings,
        "determinism": {**determinism(), "note": DETERMINISM_NOTE},
        "machine": machine(),
    }
    if not args.no_latency:
        report["latency"] = {**latency(records, common["backbone"], out),
                             **(microau_clip_latency(records, recipe("microau_clip", args.world, out, common), out)
                                if "microau_clip" in args.models else {})}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(run_main(main))
