"""`meu eval --task spotting`: spot expressions in every long video of CAS(ME)^2 or SAMM Long Videos and score them
with the MEGC protocol (`eval.spotting`).

Each video's result is written to OUT/videos/<subject>__<video>.json (atomically) as soon as it is done, so
`--resume` continues a killed run at the next video. A video the spotter cannot read (no face, unreadable frames)
is recorded with its error and scored with nothing spotted: its expressions count as missed, as they would in a
challenge submission. When all videos are done: OUT/predictions.csv (every spotted interval, with the sheet's frame
numbers), OUT/metrics.json and OUT/report.md (pooled micro / macro / overall F1, per-subject figures beside them).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant.config import doc_summary, from_dict, load_yaml, parse_config
from assistant.errors import ConfigError, MEUError
from assistant.files import atomic_write_text, output_folder, write_json
from assistant.motion.analyze import MOTION_CORE, refuse_other_motion_core, warn_recorded_motion_core
from eval.spotting import IOU_THRESHOLD, KINDS, Span, VideoSpots, score_videos
from eval.spotting_report import render_report

log = logging.getLogger(__name__)

TASKS = ("recognition", "spotting")
DATASETS = ("casme2_long", "samm_long")
_RESUME_FREE = {"resume", "progress", "threads", "out"}


@dataclass
class SpotEvalConfig:
    dataset: str = field(default="casme2_long", metadata={"help": "long-video dataset", "choices": list(DATASETS)})
    root: str = field(default="", metadata={"help": "dataset folder holding the annotation sheet and the frames"})
    out: str = field(default="outputs/eval_spotting", metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --out, skipping videos already done"})
    spot_config: str | None = field(default=None, metadata={
        "help": "YAML file of spotting settings (assistant.motion.spotting.SpotConfig fields); the dataset's frame "
                "rate is always set from the dataset"})
    strict: bool = field(default=False, metadata={"help": "stop at the first problem row of the annotation sheet"})
    synthetic: bool | None = field(default=None, metadata={
        "help": "label results synthetic (default: detected from the synthetic writer's synth_truth.json)"})
    threads: int = field(default=1, metadata={"help": "OpenCV threads"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def add_task_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="recognition", help="recognition: emotion and AUs of annotated clips; "
                        "spotting: find expressions in long videos (see `meu eval --task spotting --help`)")


def split_task(argv: list[str] | None) -> tuple[str, list[str]]:
    """`--task X` (or `--task=X`) taken out of `argv` (default: the command line); `recognition` when absent."""
    pre = argparse.ArgumentParser(add_help=False)
    add_task_argument(pre)
    ns, rest = pre.parse_known_args(argv)
    if ns.task not in TASKS:
        raise ConfigError(f"--task {ns.task!r} is not known; use one of {', '.join(TASKS)}.")
    return ns.task, rest


def _spot_config(config: SpotEvalConfig, fps: float):
    from assistant.motion.spotting import SpotConfig

    data = load_yaml(config.spot_config) if config.spot_config else {}
    names = {f.name for f in dataclasses.fields(SpotConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{config.spot_config}: unknown spotting setting(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(names))}.")
    return from_dict(SpotConfig, {**data, "fps": fps})


def _compare_recorded(recorded: dict | None, config: SpotEvalConfig) -> None:
    """A run's record given as --config holds the spotter settings it resolved; the spotter's defaults may have
    changed since, and then this run is not that one again: say which."""
    if not isinstance(recorded, dict):
        return
    now = dataclasses.asdict(_spot_config(config, None))
    changed = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    if changed:
        log.warning("The spotter's settings differ from those of the run given as --config (%s); set them in a "
                    "--spot-config file to repeat that run.", ", ".join(f"{k} {recorded.get(k)} -> {now.get(k)}"
                                                                       for k in changed))


def video_file(out: Path, key_subject: str, video_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{key_subject}__{video_id}")
    return out / "videos" / f"{safe}.json"


def _done_row(path: Path) -> dict | None:
    """A video's row from a previous run (None: not run yet). A file cut short (a full disk, an interrupted copy) is
    named, as a bare JSONDecodeError would not."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON (cut short?): delete it and rerun with --resume to spot that "
                          "video again, or run without --resume into a new --out.") from None


def _interval_row(interval, numbers: list[int]) -> dict:
    def number(i: int) -> int:
        return numbers[i] if 0 <= i < len(numbers) else -1

    return {"onset": int(interval.onset), "apex": int(interval.apex), "offset": int(interval.offset),
            "kind": interval.kind, "score": round(float(interval.score), 4),
            "near_threshold": bool(interval.near_threshold), "regions": list(interval.regions),
            "onset_frame": number(interval.onset), "apex_frame": number(interval.apex),
            "offset_frame": number(interval.offset)}


def spot_one(video, spot_config, bar: tqdm | None = None) -> dict:
    """Spot one video; input problems become the row's error, not a crash."""
    from assistant.motion.spotting import spot_video

    row = {"key": video.key, "subject": video.subject, "video_id": video.video_id, "n_frames": video.n_frames,
           "fps": video.fps}

    def progress(done: int, total: int | None) -> None:
        if bar is not None:
            bar.total = total or video.n_frames
            bar.n = done
            bar.refresh()

    t = time.perf_counter()
    try:
        result = spot_video(str(video.frame_dir), spot_config, progress=progress)
    except MEUError as err:
        return {**row, "status": "error", "error": f"{type(err).__name__}: {err}",
                "seconds": round(time.perf_counter() - t, 3)}
    seconds = time.perf_counter() - t
    return {**row, "status": "ok", "seconds": round(seconds, 3),
            "frames_per_s": round(video.n_frames / seconds, 2) if seconds > 0 else None,
            "intervals": [_interval_row(i, video.frame_numbers) for i in result.intervals],
            "distractors": [_interval_row(i, video.frame_numbers) for i in result.distractors]}


def is_synthetic(config: SpotEvalConfig) -> bool:
    if config.synthetic is not None:
        return bool(config.synthetic)
    root = Path(config.root)
    return any((p / "synth_truth.json").is_file() for p in (root, root.parent) if p.is_dir())


def _settings(config: SpotEvalConfig) -> dict:
    out = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUME_FREE}
    for k in ("root", "spot_config"):
        if out.get(k) and Path(out[k]).exists():
            out[k] = str(Path(out[k]).resolve())
    # the resolved settings, defaults included: a run started before a default changed is not resumed with the new one
    out["spot_settings"] = dataclasses.asdict(_spot_config(config, None))
    return out


def _check_resume(config: SpotEvalConfig, out: Path) -> None:
    path = out / "run_config.json"
    done = list((out / "videos").glob("*.json")) if (out / "videos").is_dir() else []
    if done and not config.resume:
        raise ConfigError(f"{out} already holds a spotting run; pass --resume to continue it or choose a new --out.")
    if config.resume and path.is_file():
        before = json.loads(path.read_text())
        refuse_other_motion_core(before.pop("motion_core", None), out, "run", "videos")
        now = _settings(config)
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            raise ConfigError(f"{out} holds a run with different settings ({', '.join(changed)}); resume it with the "
                              "same settings or choose a new --out.")
    write_json(path, _settings(config) | {"motion_core": MOTION_CORE})


def truth_spans(video) -> list[Span]:
    return [Span(e.onset, e.offset, e.kind, e.apex) for e in video.expressions]


def predicted_spans(row: dict) -> list[Span]:
    return [Span(i["onset"], i["offset"], i["kind"], i["apex"]) for i in row.get("intervals", [])
            if i["kind"] in KINDS]


def predictions_csv(rows: list[dict]) -> str:
    """Every spotted expression, one line each; frames as the sheet numbers them (and as indices from 0)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject", "video", "onset_frame", "apex_frame", "offset_frame", "type", "score", "near_threshold",
                "regions", "onset_index", "apex_index", "offset_index"])
    for r in rows:
        for i in r.get("intervals", []):
            w.writerow([r["subject"], r["video_id"], i["onset_frame"], i["apex_frame"], i["offset_frame"], i["kind"],
                        i["score"], i.get("near_threshold", ""), "+".join(i["regions"]), i["onset"], i["apex"],
                        i["offset"]])
    return buf.getvalue()


def run(config: SpotEvalConfig) -> dict:
    """The whole spotting evaluation; returns the metrics also written to OUT/metrics.json."""
    import cv2

    from instruction_data.loaders import load_long_dataset

    if not config.root:
        raise ConfigError("Give the dataset folder with --root.")
    cv2.setNumThreads(max(1, config.threads))
    loaded = load_long_dataset(config.dataset, config.root, strict=config.strict)
    log.info("%s: %s", config.dataset, loaded.summary())
    if not loaded.videos:
        raise MEUError(f"No usable long video in {config.root} for {config.dataset}: {loaded.summary()}.")
    if not loaded.expressions:
        raise MEUError(f"No expression of the {config.dataset} sheet in {config.root} could be used, so every interval "
                       f"spotted would score as a false alarm: {loaded.summary()}. Fix the rows the summary lists "
                       "(with --strict the evaluation stops at the first one and says why).")
    out = output_folder(config.out)
    _check_resume(config, out)
    fps = loaded.videos[0].fps
    spot_config = _spot_config(config, fps)
    rows, ran = [], 0
    t0 = time.perf_counter()
    with tqdm(total=len(loaded.videos), desc=f"spot {config.dataset}", disable=not config.progress,
              unit="video") as videos_bar:
        for video in loaded.videos:
            path = video_file(out, video.subject, video.video_id)
            row = _done_row(path)
            if row is None or row.get("key") != video.key:
                with tqdm(total=video.n_frames, desc=video.video_id, disable=not config.progress, unit="frame",
                          leave=False) as frames_bar:
                    row = spot_one(video, spot_config, frames_bar)
                write_json(path, row)
                ran += 1
            rows.append(row)
            videos_bar.update(1)
    wall = time.perf_counter() - t0
    by_key = {v.key: v for v in loaded.videos}
    scored = [VideoSpots(r["key"], r["subject"], truth_spans(by_key[r["key"]]), predicted_spans(r)) for r in rows]
    ok = [r for r in rows if r["status"] == "ok"]
    frames = sum(r["n_frames"] for r in ok)
    seconds = sum(r["seconds"] for r in ok)
    metrics = {
        "run": {"task": "spotting", "dataset": config.dataset, "root": config.root, "fps": fps,
                "synthetic": is_synthetic(config), "iou_threshold": IOU_THRESHOLD,
                "spot_config": dataclasses.asdict(spot_config), "motion_core": MOTION_CORE},
        "counts": {"videos": len(rows), "failed": len(rows) - len(ok),
                   "failed_videos": {r["key"]: r["error"] for r in rows if r["status"] != "ok"},
                   "expressions": {k: sum(e.kind == k for e in loaded.expressions) for k in KINDS},
                   "rows_skipped_by_loader": len(loaded.skipped),
                   "distractors_listed": sum(len(r.get("distractors", [])) for r in ok)},
        "spotting": score_videos(scored),
        "timings": {"frames": frames, "seconds": round(seconds, 3),
                    "frames_per_s": round(frames / seconds, 2) if seconds > 0 else None},
        "this_invocation": {"videos_run": ran, "wall_s": round(wall, 3)},
        "loader": loaded.report(),
    }
    atomic_write_text(out / "predictions.csv", predictions_csv(rows))
    write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics))
    return metrics


def parse(argv: list[str] | None) -> SpotEvalConfig:
    """The settings of `meu eval --task spotting`; a run's own `run_config.json` given as --config runs it again."""
    config, ns = parse_config(SpotEvalConfig, argv, "meu eval --task spotting", doc_summary(__doc__),
                              records=("spot_settings", "motion_core"))
    _compare_recorded(ns.recorded.get("spot_settings"), config)
    warn_recorded_motion_core(ns.recorded)
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    metrics = run(config)
    out = Path(config.out).expanduser()
    print((out / "report.md").read_text())
    pooled = metrics["spotting"]["pooled"]

    def f(x):
        return "-" if x is None else f"{x:.3f}"

    print(f"F1 micro {f(pooled['micro']['f1'])}  macro {f(pooled['macro']['f1'])}  overall "
          f"{f(pooled['overall']['f1'])} over {metrics['counts']['videos']} videos; outputs in {out}")
    return 0
