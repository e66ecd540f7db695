"""`meu data build`: annotated clips -> MMC maps -> FGMU instruction samples -> JSONL, LLaVA JSON, HF datasets.

Each record is one job: analyse onset -> apex with the motion core, save the map once (`images/<name>.png`), write
its samples to `parts/<name>.json`. Every file goes to a temporary name first and is renamed, so a killed build
leaves only whole files (plus temporary ones, which the next run into that folder removes) and `--resume` skips the
records whose part exists; the exports are assembled from the parts in sheet order, so a resumed build writes the
same files as an uninterrupted one. Jobs run in `--workers` processes (spawned, one thread each) behind one progress
bar.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant import calibration
from assistant.config import parse_config, split_list
from assistant.emotions import CDE_EXCLUDED, cde_emotion
from assistant.errors import ConfigError, MEUError
from assistant.files import output_folder, remove_stale_parts, save_png, write_json
from assistant.motion.analyze import MOTION_CORE, refuse_other_motion_core, warn_recorded_motion_core
from assistant.motion.drift import DRIFT_MODES
from assistant.motion.face import LANDMARKERS
from assistant.motion.flow import COMPENSATIONS
from instruction_data.export import assign_folds, dataset_card, write_hf, write_jsonl_splits, write_llava
from instruction_data.fgmu import DATASET_SCHEMES, LANGS, FGMUConfig, left_out_aus, load_evidence, make_samples
from instruction_data.loaders import LOADERS, cde_settings, load_dataset
from instruction_data.loaders.common import merge
from instruction_data.records import LoadResult, Record, qualified_subject

log = logging.getLogger(__name__)

# Settings that change the output; a resumed build must use the same ones.
OUTPUT_SETTINGS = ("dataset", "root", "sheet", "lang", "mer_ratio", "seed", "scheme", "evidence", "limit", "landmarks",
                   "flow", "compensation", "drift", "mode", "size", "margin", "allow_unknown_aus")


@dataclass
class BuildConfig:
    dataset: str = field(default="casme2", metadata={
        "help": f"dataset loader ({', '.join(LOADERS)}); casme2,samm,smic (comma-separated) builds the MEGC 2019 "
                "composite: subjects qualified by dataset (casme2__sub01), the challenge's 3-class mapping"})
    root: str = field(default="", metadata={"help": "dataset folder (sheet + frames); one per dataset, "
                                                    "comma-separated, for a composite build"})
    out: str = field(default="", metadata={"help": "output folder"})
    sheet: str = field(default="", metadata={"help": "annotation sheet path, when it is not found in --root"})
    lang: str = field(default="en", metadata={"help": "answer language", "choices": list(LANGS)})
    mer_ratio: float = field(default=0.25, metadata={"help": "chance that a clip also yields a MER-only sample"})
    scheme: str = field(default="", metadata={"help": "emotion scheme 3|5|7 (default: the dataset's usual one)"})
    evidence: str = field(default="", metadata={"help": "JSON lines of AU detector predictions for the prompt"})
    seed: int = field(default=0, metadata={"help": "seed of phrasing and MER selection"})
    workers: int = field(default=1, metadata={"help": "worker processes"})
    resume: bool = field(default=False, metadata={"help": "skip clips whose samples are already written"})
    strict: bool = field(default=False, metadata={"help": "fail on the first problem row of the sheet"})
    allow_unknown_aus: bool = field(default=False, metadata={
        "help": "name AU codes outside the FACS table (such as AU99) in answers; by default they are reported per "
                "row in report.json and left out"})
    limit: int = field(default=0, metadata={"help": "use only the first N usable rows (0: all)"})
    hf: bool = field(default=True, metadata={"help": "also write the Hugging Face datasets copy (hf/)"})
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend", "choices": list(LANDMARKERS)})
    flow: str = field(default="tvl1", metadata={"help": "optical flow", "choices": ["tvl1", "dis"]})
    compensation: str = field(default="register", metadata={"help": "head-motion compensation",
                                                            "choices": list(COMPENSATIONS)})
    drift: str = field(default="offset", metadata={
        "help": "slow drift: offset (cancelled with each sheet's offset frame where that leaves the face clearly "
                "stiller, as `meu eval` reads the clips; assistant.motion.drift) or none",
        "choices": list(DRIFT_MODES)})
    mode: str = field(default="default", metadata={"help": "MMC map mode", "choices": ["default", "mellm"]})
    size: int = field(default=256, metadata={"help": "working size of the face crop"})
    margin: float = field(default=0.15, metadata={"help": "crop margin"})

    def __post_init__(self):
        names = split_list(self.dataset, "--dataset")
        unknown = [n for n in names if n not in LOADERS]
        if unknown or not names:
            raise ConfigError(f"Unknown dataset {', '.join(unknown) or '(empty)'}; use one of {', '.join(LOADERS)}, "
                              "or casme2,samm,smic for the composite.")
        if len(names) == 1:
            self.dataset = names[0]
            return
        self.dataset, self.root = cde_settings(names, self.root)
        if self.scheme not in ("", "3") or self.sheet:
            raise ConfigError("A composite build (several --dataset) uses the challenge's 3 classes and each "
                              "dataset's own sheet: drop --scheme (or give 3) and --sheet.")

    @property
    def pooled(self) -> bool:
        """Several datasets pooled as the MEGC 2019 composite."""
        return "," in self.dataset

    def scheme_or_default(self) -> str:
        return "3" if self.pooled else self.scheme or DATASET_SCHEMES.get(self.dataset, "7")

    def motion(self):
        """The motion core's settings, checked when the build starts: a bad size or margin used to be reported per
        clip after the output folder was made."""
        from assistant.motion.analyze import MotionConfig

        return MotionConfig(landmarks=self.landmarks, flow=self.flow, compensation=self.compensation, drift=self.drift,
                            mode=self.mode, size=self.size, margin=self.margin)

    def fgmu(self) -> FGMUConfig:
        return FGMUConfig(lang=self.lang, mer_ratio=self.mer_ratio, seed=self.seed, scheme=self.scheme_or_default(),
                          allow_unknown_aus=self.allow_unknown_aus)

    def settings(self) -> dict:
        d = {k: getattr(self, k) for k in OUTPUT_SETTINGS}
        d["scheme"] = self.scheme_or_default()
        for k in ("root", "sheet", "evidence"):  # the same files however they were spelled
            paths = d[k].split(",") if k == "root" and self.pooled else [d[k]]
            d[k] = ",".join(str(Path(p).resolve()) for p in paths) if d[k] else ""
        return d


def sample_names(records: list[Record]) -> list[str]:
    """Deterministic file names per record; a repeated clip gets its sheet row appended."""
    names, seen = [], set()
    for r in records:
        split = "" if r.split == "train" else f"_{r.split}"
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{r.dataset}_{r.subject}_{r.clip_id}{split}")
        if name in seen:
            name = f"{name}_r{r.row}"
        seen.add(name)
        names.append(name)
    return names


_WORKER: dict = {}


def _init_worker(cfg: BuildConfig, evidence: dict | None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(cfg=cfg, evidence=evidence)


def process_record(record: Record, name: str, cfg: BuildConfig, evidence: dict | None) -> dict:
    """Analyse one clip, save its map and its samples; returns the part written to `parts/<name>.json`."""
    from assistant.motion.analyze import analyze_clip

    out = Path(cfg.out)
    fgmu = cfg.fgmu()
    part: dict = {"key": record.key, "name": name, "row": row_fingerprint(record)}
    if record.emotion(fgmu.scheme) is None:
        part["excluded"] = (f"emotion {record.emotion_raw!r} has no class in this build's {fgmu.scheme}-class "
                            "labels (the composite protocol's mapping leaves some words out, as CASME II's fear)")
    else:
        motion = cfg.motion()
        t = time.perf_counter()
        try:  # read as `meu eval` and the app read a clip: the null pair's noise floor, drift cancelled with the
            # offset frame (measured on the stable area alone, the floor halved the SNRs of AU6+AU12 clips), and the
            # apex spotted between onset and offset where the sheet has none
            analysis = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset,
                                    apex=record.apex if record.apex_known else None, offset=record.offset,
                                    config=motion)
            if not record.apex_known:
                part["apex_spotted"] = record.frame_paths[analysis.clip.apex].name
        except MEUError as err:
            part["error"] = str(err)
        else:
            image = f"images/{name}.png"
            save_png(out / image, analysis.mmc_map)
            part["samples"] = make_samples(record, analysis.regions, image, fgmu, evidence)
            part["seconds"] = round(time.perf_counter() - t, 4)
    write_json(out / "parts" / f"{name}.json", part)
    return part


def _read_part(path: Path) -> dict:
    """A part cut short (a full disk, an interrupted copy) is named, as a bare JSONDecodeError would not."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON (cut short?): delete it and rerun with --resume to redo that "
                          "clip, or build without --resume into a new --out.") from None


def row_fingerprint(record: Record) -> str:
    """A hash of what a clip's samples are made from (labels, frames, split): a part is reused only for the same."""
    row = {k: getattr(record, k) for k in ("aus", "emotion_raw", "emotion3", "emotion5", "emotion7", "onset", "apex",
                                           "offset", "apex_known", "aus_coded", "split")}
    row["frames"] = [p.name for p in record.frame_paths]
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _part_done(out: Path, name: str, record: Record) -> bool:
    """A clip's part is written for the same sheet row and every image its samples name is still there: an image
    deleted since (a full disk cleaned by hand) stopped the export with a FileNotFoundError after the JSONL had been
    rewritten without it, and a row corrected in the sheet since kept its old labels in the export."""
    path = out / "parts" / f"{name}.json"
    if not path.is_file():
        return False
    part = _read_part(path)
    if part.get("row", row_fingerprint(record)) != row_fingerprint(record):  # parts of older builds carry none
        log.warning("%s: the sheet's row changed since it was built (labels, frames or split); that clip is built "
                    "again", path.name)
        return False
    images = {s["image"] for s in part.get("samples", [])}
    missing = [i for i in images if not (out / i).is_file()]
    if missing:
        log.warning("%s: %s is missing; that clip is built again", path.name, missing[0])
    return not missing


def _work(job: tuple[Record, str]) -> dict:
    return process_record(job[0], job[1], _WORKER["cfg"], _WORKER["evidence"])


def _check_output(cfg: BuildConfig, out: Path) -> None:
    """The build's settings, the calibration read among them (`--calibration`, `MEU_CALIBRATION`: it sets the
    intensity words of the answers), stamped; a resume with others would mix two builds."""
    stamp = out / "build_settings.json"
    used = calibration.record(calibration.RULES_FILES)  # the answers read the intensity words, not the fusion files
    if stamp.is_file():
        # builds from before a setting existed: drift cancelled none; the calibration was not recorded (unchecked)
        previous = {"drift": "none", **json.loads(stamp.read_text())}
        before = (previous.pop("calibration", None) or used)["files"]  # its files decide, not where they were read
        if not cfg.resume:
            raise ConfigError(f"{out} already holds a build; add --resume to finish it or choose another --out.")
        refuse_other_motion_core(previous.pop("motion_core", None), out, "build", "samples")
        changed = sorted(k for k in set(previous) | set(cfg.settings()) if previous.get(k) != cfg.settings().get(k))
        changed += ["calibration"] if before != used["files"] else []
        if changed:
            raise ConfigError(f"--resume with different settings ({', '.join(changed)}) would mix two builds; use the "
                              "same settings or another --out.")
    write_json(stamp, cfg.settings() | {"calibration": used, "motion_core": MOTION_CORE})


def build(cfg: BuildConfig, progress: bool = True) -> dict:
    """Run the whole build; returns the report also written to `out/report.json`."""
    if not cfg.root or not cfg.out:
        raise ConfigError("Give the dataset folder with --root and the output folder with --out.")
    if cfg.workers < 1 or cfg.limit < 0:
        raise ConfigError(f"--workers must be at least 1 and --limit at least 0, not {cfg.workers} and {cfg.limit}.")
    cfg.fgmu()  # validates
    cfg.motion()
    cfg.out = str(output_folder(cfg.out))
    t0 = time.perf_counter()
    loaded = _load(cfg)
    records = loaded.records[:cfg.limit] if cfg.limit else loaded.records
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_output(cfg, out)
    for folder in (out, out / "parts", out / "images"):  # a killed run's temporary files; the folder is ours now
        remove_stale_parts(folder)
    evidence = load_evidence(cfg.evidence) if cfg.evidence else None
    names = sample_names(records)
    jobs = [(r, n) for r, n in zip(records, names, strict=True) if not (cfg.resume and _part_done(out, n, r))]
    done_before = len(records) - len(jobs)
    t1 = time.perf_counter()
    bar = tqdm(total=len(records), initial=done_before, desc="build", unit="clip", disable=not progress)
    if cfg.workers == 1 or len(jobs) <= 1:
        _init_worker(cfg, evidence)
        for job in jobs:
            _work(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # mediapipe and OpenCV threads do not survive fork
        with ctx.Pool(min(cfg.workers, len(jobs)), initializer=_init_worker, initargs=(cfg, evidence)) as pool:
            for _ in pool.imap_unordered(_work, jobs):
                bar.update()
    bar.close()
    work_s = time.perf_counter() - t1

    parts = [_read_part(out / "parts" / f"{n}.json") for n in names]
    samples = [s for p in parts for s in p.get("samples", [])]
    if cfg.pooled:  # one subject id per person across the datasets: `casme2__sub01`
        for s in samples:
            s["subject"] = qualified_subject(s["dataset"], s["subject"])
    assign_folds(samples)
    t2 = time.perf_counter()
    write_jsonl_splits(out, samples)
    write_llava(out, samples)
    if cfg.hf:
        write_hf(out, samples)
    load_report = loaded.report()
    roots = cfg.root.split(",") if cfg.pooled else [cfg.root]
    synthetic = any((Path(p) / "synth_truth.json").is_file()
                    for p in [*(Path(x).parent for x in load_report["sheets"]), *roots])
    dataset_card(out, samples, cfg.settings(), load_report, synthetic)
    export_s = time.perf_counter() - t2
    analysed = [p for p in parts if "samples" in p]
    report = {
        "dataset": cfg.dataset, "synthetic": synthetic, "settings": cfg.settings(), "workers": cfg.workers,
        "calibration": calibration.record(calibration.RULES_FILES),
        "load": load_report,
        "clips": {"usable_rows": len(records), "analysed": len(analysed), "resumed_from_parts": done_before,
                  "failed": [{"key": p["key"], "error": p["error"]} for p in parts if "error" in p],
                  "excluded": [{"key": p["key"], "reason": p["excluded"]} for p in parts if "excluded" in p],
                  "apex_spotted": {p["key"]: p["apex_spotted"] for p in parts if "apex_spotted" in p},  # frame file
                  "aus_outside_facs": {r.key: {"row": r.row, "aus": left_out_aus(r),
                                               "in_answers": cfg.allow_unknown_aus}
                                       for r in records if left_out_aus(r)}},
        "samples": {"total": len(samples), "fgmu": sum(s["task"] == "fgmu" for s in samples),
                    "mer": sum(s["task"] == "mer" for s in samples),
                    "by_split": {k: sum(s["split"] == k for s in samples) for k in dict.fromkeys(s["split"]
                                                                                             for s in samples)}},
        "timings": {"load_s": round(t1 - t0, 3), "analysis_s": round(work_s, 3), "export_s": round(export_s, 3),
                    "total_s": round(time.perf_counter() - t0, 3),
                    "clips_per_s": round(len(jobs) / work_s, 3) if jobs and work_s > 0 else None,
                    "mean_clip_s": round(sum(p.get("seconds", 0.0) for p in analysed) / len(analysed), 4)
                    if analysed else None},
    }
    if evidence is not None:  # keys of another dataset or copy used to be ignored without a word
        keys = {r.key for r in records}
        stray = sorted(set(evidence) - keys)
        report["evidence"] = {"clips_with_evidence": len(keys & set(evidence)), "clips": len(keys),
                              "keys_not_in_the_sheet": len(stray), "first_keys_not_in_the_sheet": stray[:10]}
        if stray:
            log.warning("%d evidence line(s) name no clip of this build (first: %s); those clips' prompts are built "
                        "without them", len(stray), stray[0])
    write_json(out / "report.json", report)
    return report


def _load(cfg: BuildConfig) -> LoadResult:
    """The dataset's records; for a composite build, every dataset's, with the challenge's 3-class labels."""
    if not cfg.pooled:
        options = {"sheet": cfg.sheet} if cfg.sheet else {}
        return load_dataset(cfg.dataset, cfg.root, strict=cfg.strict, **options)
    results = []
    for name, root in zip(cfg.dataset.split(","), cfg.root.split(","), strict=True):
        loaded = load_dataset(name, root, strict=cfg.strict)
        loaded.records = [dataclasses.replace(r, emotion3=cde_emotion(name, r.emotion_raw)) for r in loaded.records
                          if (name, r.subject, r.clip_id) not in CDE_EXCLUDED]
        results.append(loaded)
    return merge(results)


def main(argv: list[str] | None = None) -> int:
    import argparse

    description = "Build the FGMU instruction dataset (MMC maps + explanations) from an annotated dataset."
    parser = argparse.ArgumentParser(prog="meu data build", description=description)
    calibration.add_argument(parser)
    cfg, ns = parse_config(BuildConfig, argv, "meu data build", description, parser=parser,
                           records=("calibration", "motion_core"))
    calibration.apply(ns)
    warn_recorded_motion_core(ns.recorded)
    report = build(cfg)
    print(f"sheet: {report['load']['summary']}")
    c = report["clips"]
    print(f"clips: {c['analysed']} analysed ({c['resumed_from_parts']} from a previous run), {len(c['failed'])} "
          f"failed, {len(c['excluded'])} outside the emotion scheme")
    if c["aus_outside_facs"]:
        fate = "named in answers (--allow-unknown-aus)" if cfg.allow_unknown_aus else "left out of answers"
        print(f"AU codes outside the FACS table on {len(c['aus_outside_facs'])} row(s), {fate}: "
              + "; ".join(f"row {v['row']} {'+'.join(v['aus'])}" for v in c["aus_outside_facs"].values()))
    s = report["samples"]
    print(f"samples: {s['total']} ({s['fgmu']} FGMU, {s['mer']} MER-only) -> {cfg.out}")
    print(f"time: {report['timings']['total_s']:.1f} s (see {Path(cfg.out) / 'report.json'})")
    return 0
