"""`meu eval`: run the assistant on every usable clip of a dataset split and score it with the field's protocols.

One predictions row per clip is appended to OUT/predictions.jsonl as soon as the clip is done (raw answer text,
parsed AUs and emotion, parse status, detector probabilities, timings), so `--resume` continues a killed run where
it stopped. The motion stage (landmarks, flow, map, regions) can run in `--workers` processes; the detector, the
reasoner and the parser run in the main process (a VLM is loaded once and answers `--batch-size` clips per
`generate()` call). Under `accelerate launch -m assistant.cli eval ...` the clips are split over the processes
(one per GPU, `eval.shards`); the main process merges their predictions and scores once. Metrics, report.md, plots
and, for DFME, the submission CSV are then computed from the predictions file alone.

Protocols: `zero-shot` (every clip, nothing trained on the dataset), `loso` (pooled over leave-one-subject-out folds,
per-fold figures beside; DFME: its training sheet only), `cross` (a detector trained on another dataset, scored on
the shared AUs), `dfme-test-a` / `dfme-test-b` (the DFME test sheets). With the template reasoner and the rules
detector nothing is trained, so zero-shot and LOSO are the same computation; the report says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant import calibration
from assistant.config import doc_summary, parse_config, resolved_setting, split_list
from assistant.emotions import SCHEME_CLASSES, map_emotion
from assistant.errors import ConfigError, MEUError
from assistant.files import output_folder, write_json
from assistant.motion.analyze import (
    MOTION_CHOICES,
    MOTION_CORE,
    NOISE_MIN_GAP,
    MotionConfig,
    analyze_clip,
    refuse_other_motion_core,
    warn_recorded_motion_core,
)
from assistant.motion.drift import DRIFT_MODES
from assistant.parse import parse_answer
from assistant.reasoners.base import last
from eval.evidence import TRAINED
from eval.null_pairs import NULL_PAIR, null_pair_row, null_pair_scores, null_pair_tasks
from eval.predictions import count_rows, score_rows
from eval.samples import Sample, is_synthetic, scored_aus, select_samples
from eval.shards import current_shard, done_keys, mark_done, merge, prediction_files, wait_for_shards
from instruction_data.loaders import LONG_LOADERS
from instruction_data.records import key_dataset

log = logging.getLogger(__name__)

PROTOCOLS = ("zero-shot", "loso", "cross", "dfme-test-a", "dfme-test-b", "cde")
DATASETS = ("casme2", "samm", "dfme", "casme3", "smic")
DEFAULT_CLASSES = {"casme2": "5", "samm": "3", "dfme": "7", "casme3": "3", "smic": "3"}
# settings a resumed run may change without changing any result
# (batched greedy answers equal unbatched ones token for token: tests/test_vlm_batched.py)
_RESUME_FREE = {"resume", "workers", "progress", "threads", "out", "batch_size"}
_PATHS = ("root", "aullm_checkpoint", "microau_clip_checkpoint", "au_run", "vlm_base", "vlm_adapter", "vlm_run")


@dataclass
class EvalConfig:
    dataset: str = field(default="casme2", metadata={
        "help": f"dataset (loader name: {', '.join(DATASETS)}); with --protocol cde a comma-separated list "
                "(casme2,samm,smic), or a YAML list"})
    root: str = field(default="", metadata={
        "help": "dataset folder holding the annotation sheet(s) and frames; with --protocol cde one per dataset, "
                "comma-separated in the same order (or a YAML list)"})
    protocol: str = field(default="zero-shot", metadata={"help": "evaluation protocol", "choices": list(PROTOCOLS)})
    reasoner: str = field(default="template", metadata={"help": "reasoner backend", "choices": ["template", "vlm"]})
    detector: str = field(default="rules", metadata={
        "help": "AU detector backend: rules, blendshapes and fusion need no training; aullm and microau_clip need a "
                "checkpoint or --au-run", "choices": ["rules", "blendshapes", "fusion", "aullm", "microau_clip"]})
    classes: str | None = field(default=None, metadata={
        "help": "emotion scheme: 3 (MEGC), 5 (CASME II), 7 (DFME); default: the dataset's", "choices": ["3", "5", "7"]})
    out: str = field(default="outputs/eval", metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --out, skipping clips already done"})
    workers: int = field(default=1, metadata={"help": "processes for the motion stage"})
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend",
                                                          "choices": MOTION_CHOICES["landmarks"]})
    flow: str = field(default="tvl1", metadata={"help": "optical flow (tvl1 = published recipe, dis = fast)",
                                                "choices": MOTION_CHOICES["flow"]})
    compensation: str = field(default="register", metadata={"help": "head-motion compensation",
                                                            "choices": MOTION_CHOICES["compensation"]})
    drift: str = field(default="offset", metadata={
        "help": "slow drift: offset (cancelled with the sheet's offset frame where that leaves the face clearly "
                "stiller; assistant.motion.drift) or none; a learned detector (aullm, microau_clip) reads the field "
                "it was trained on, without it, whatever this says", "choices": list(DRIFT_MODES)})
    language: str = field(default="en", metadata={"help": "answer language", "choices": ["en", "zh"]})
    aullm_checkpoint: str | None = field(default=None, metadata={"help": "AU-LLM checkpoint folder (not for loso)"})
    microau_clip_checkpoint: str | None = field(default=None, metadata={
        "help": "Micro-AU CLIP checkpoint folder (not for loso)"})
    au_run: str | None = field(default=None, metadata={
        "help": "`meu train au` output folder: per-fold held-out AU-LLM predictions (loso, cross)"})
    source_dataset: str | None = field(default=None, metadata={
        "help": "cross protocol: the dataset the detector was trained on (default: read from --au-run)"})
    vlm_base: str | None = field(default=None, metadata={"help": "Qwen2.5-VL base model for --reasoner vlm"})
    vlm_adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder for --vlm-base"})
    vlm_run: str | None = field(default=None, metadata={
        "help": "`meu train vlm --protocol loso|cde` output folder: each clip is answered by the adapter of the fold "
                "that held its subject out (loso, cde)"})
    vlm_evidence: bool = field(default=False, metadata={
        "help": "put the AU detector's probabilities into the VLM prompt (for a model trained on data built with "
                "`meu data build --evidence`; compare runs with and without it)"})
    vlm_regions: bool = field(default=False, metadata={"help": "put the region motion table into the VLM prompt"})
    vlm_max_new_tokens: int = field(default=512, metadata={"help": "longest VLM answer (tokens)"})
    vlm_repetition_penalty: float = field(default=1.0, metadata={
        "help": "VLM repetition penalty (1.0 = off: the answer must repeat the prompt's AU and emotion words; "
                "Qwen's checkpoint file says 1.05); generation is greedy and stops at <|im_end|> or <|endoftext|>"})
    batch_size: int = field(default=1, metadata={
        "help": "clips per VLM generate() call (left padding, greedy: the same answers as one at a time)"})
    synthetic: bool | None = field(default=None, metadata={
        "help": "label results synthetic (default: detected from the synthetic writer's synth_truth.json)"})
    threads: int = field(default=1, metadata={"help": "OpenCV / torch threads per process"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    null_pairs: bool = field(default=False, metadata={
        "help": "also read each AU-coded clip's onset frame against the next one (a null pair: the expression starts "
                f"later, its apex at least {NOISE_MIN_GAP} frames away) and count the pairs where the detector names "
                "an AU; not with --au-run (a training run predicts no null pair)"})
    apex_unknown: str = field(default="middle", metadata={
        "help": "where the sheet gives no apex (all of SMIC, a few CASME II rows): the middle frame between onset "
                "and offset (as MEB does) or the project's apex spotter", "choices": ["middle", "spot"]})

    def __post_init__(self):
        names = split_list(self.dataset, "--dataset")
        unknown = [n for n in names if n not in DATASETS]
        if unknown or not names:
            long = [n for n in unknown if n in LONG_LOADERS]
            raise ConfigError(f"Unknown dataset {', '.join(unknown) or 'name (empty)'}; use one of "
                              f"{', '.join(DATASETS)}" + (f" ({', '.join(long)} holds long videos: spot them with "
                                                          "`meu eval --task spotting`)." if long else "."))
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"Unknown protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}.")
        if self.protocol == "cde":
            self._check_cde(names)
        elif len(names) > 1:
            raise ConfigError(f"--dataset {','.join(names)} names several datasets; pooling them is the composite "
                              "protocol: add --protocol cde, or give one dataset.")
        elif isinstance(self.root, (list, tuple)):
            if len(self.root) != 1:
                raise ConfigError(f"--root gives {len(self.root)} folders for one dataset; give one.")
            self.root = str(self.root[0])
        self.dataset = ",".join(names)
        if self.vlm_run:
            self._check_vlm_run()
        elif self.protocol in ("loso", "cde") and self.reasoner == "vlm" and (
                self.vlm_adapter or (self.vlm_base and (Path(self.vlm_base) / "adapter_config.json").is_file())):
            # one adapter, as --vlm-adapter or as the --vlm-base folder that serves it: refused as one AU checkpoint is
            raise ConfigError(f"--protocol {self.protocol} with one adapter (--vlm-adapter, or an adapter folder as "
                              "--vlm-base) scores an adapter that was trained on the test subjects too (one adapter "
                              "cannot leave each of them out): give --vlm-run (the --output-dir of `meu train vlm "
                              f"--protocol {self.protocol}`), or score the adapter zero-shot on a dataset it was not "
                              "trained on.")
        read_by = {"--aullm-checkpoint": (self.aullm_checkpoint, ("aullm",)),
                   "--microau-clip-checkpoint": (self.microau_clip_checkpoint, ("microau_clip",)),
                   "--au-run": (self.au_run, TRAINED)}
        given = [flag for flag, (value, detectors) in read_by.items() if value and self.detector not in detectors]
        if given:  # they were ignored: the run scored the rules and said nothing
            raise ConfigError(f"{', '.join(given)} is not read by --detector {self.detector}; add the --detector it "
                              "belongs to (aullm, microau_clip), or leave it out.")
        if self.null_pairs and self.au_run:
            raise ConfigError("--null-pairs reads the detector on frame pairs that the training run in --au-run never "
                              "predicted: use it with a detector that needs no training, or with a checkpoint.")

    def _check_vlm_run(self) -> None:
        from assistant.reasoners.vlm import adapter_base

        if self.reasoner != "vlm" or self.protocol not in ("loso", "cde") or self.vlm_adapter or not self.vlm_base:
            raise ConfigError("--vlm-run holds one adapter per fold: use it with --reasoner vlm, --vlm-base and "
                              "--protocol loso or cde, without --vlm-adapter.")
        if adapter_base(self.vlm_base):
            raise ConfigError(f"--vlm-base {self.vlm_base} is an adapter folder; with --vlm-run give the base model "
                              "the folds were trained on, so no other adapter sits under theirs.")

    def _check_cde(self, names: list[str]) -> None:
        from instruction_data.loaders import cde_settings

        if self.classes not in (None, "3"):
            raise ConfigError(f"--protocol cde scores the challenge's 3 classes; drop --classes {self.classes}.")
        self.dataset, self.root = cde_settings(names, self.root)

    @property
    def datasets(self) -> list[str]:
        return self.dataset.split(",")

    @property
    def roots(self) -> list[str]:
        return self.root.split(",") if self.protocol == "cde" else [self.root]

    @property
    def scheme(self) -> str:
        if self.protocol == "cde":
            return "3"
        return str(self.classes) if self.classes else DEFAULT_CLASSES[self.dataset]

    def motion_config(self) -> MotionConfig:
        return MotionConfig(landmarks=self.landmarks, flow=self.flow, compensation=self.compensation, drift=self.drift)


# ---- the motion stage, in this process or in worker processes ---------------------------------------------------
_WORKER: dict = {}


def _init_worker(motion: MotionConfig, threads: int) -> None:
    import cv2

    cv2.setNumThreads(threads)
    _WORKER["motion"] = motion


def _motion(task: tuple[str, str, int, int | None, int | None]):
    """(key, analysis or None, error or None, seconds); input problems become the sample's error, not a crash.
    An apex of None is spotted between onset and offset."""
    key, source, onset, apex, offset = task
    t = time.perf_counter()
    try:
        analysis = analyze_clip(source, onset=onset, apex=apex, offset=offset, config=_WORKER["motion"])
        return key, analysis, None, time.perf_counter() - t
    except MEUError as err:
        return key, None, f"{type(err).__name__}: {err}", time.perf_counter() - t


def _motion_results(tasks: list, config: EvalConfig):
    """Motion results as they finish; in task order with per-fold adapters (tasks sorted by fold: each loads once)."""
    if config.workers <= 1 or len(tasks) <= 1:
        _init_worker(config.motion_config(), config.threads)
        yield from map(_motion, tasks)
        return
    ctx = multiprocessing.get_context("spawn")  # mediapipe and torch do not survive fork reliably
    with ctx.Pool(config.workers, initializer=_init_worker, initargs=(config.motion_config(), config.threads)) as pool:
        results = pool.imap if config.vlm_run else pool.imap_unordered
        yield from results(_motion, tasks, chunksize=1)


# ---- the run ------------------------------------------------------------------------------------------------------
def _reasoner(config: EvalConfig, device: str = "auto", folds: list[str] = ()):
    from assistant.reasoners import get_reasoner

    if config.reasoner == "vlm":
        if not config.vlm_base:
            raise ConfigError("--reasoner vlm needs --vlm-base (a Qwen2.5-VL model name or folder).")

        def make(adapter: str | None):
            return get_reasoner("vlm", base=config.vlm_base, adapter=adapter, device=device,
                                max_new_tokens=config.vlm_max_new_tokens,
                                repetition_penalty=config.vlm_repetition_penalty, batch_size=config.batch_size)

        if config.vlm_run:
            from eval.fold_reasoner import FoldReasoner

            return FoldReasoner(config.vlm_run, config.protocol, config.vlm_base, folds, make)
        return make(config.vlm_adapter)
    return get_reasoner("template")


def _texts(reasoner, requests: list) -> list[str]:
    """Raw answers; a reasoner that batches (`texts`) gets them all at once."""
    if hasattr(reasoner, "texts"):
        return reasoner.texts(requests)
    return [last(reasoner.stream(r), "") for r in requests]


def _generation(reasoner) -> dict | None:
    """The VLM's generation settings as the run used them (stop ids resolved), for metrics.json and the report."""
    return reasoner.generation_record() if hasattr(reasoner, "generation_record") else None


def _settings(config: dict) -> dict:
    """The settings that decide the results, with existing paths resolved (`data/` and `./data` are one folder)."""
    out = {k: v for k, v in config.items() if k not in _RESUME_FREE}
    for k in _PATHS:
        if out.get(k):
            out[k] = resolved_setting(out[k], pooled=k == "root" and out.get("protocol") == "cde")
    return out


def _calibration(config: EvalConfig) -> dict:
    """The calibration record of what this run reads: the rules' files, and the fusion ones where the detector reads
    them (a fusion calibration written into the folder since does not stop a rules run from resuming)."""
    return calibration.record(_reads(config))


def _reads(config: EvalConfig) -> tuple[str, ...]:
    reads = {"blendshapes": ("blendshapes_noise.json",), "fusion": ("blendshapes_noise.json", "fusion_weights.json")}
    return calibration.RULES_FILES + reads.get(config.detector, ())


def _check_resume(config: EvalConfig, out: Path) -> None:
    """Refuse to mix runs: read-only, so every process of a sharded run can check before any of them writes. The
    calibration read (`--calibration`, `MEU_CALIBRATION`) counts as a setting: by its files' contents."""
    settings = _settings(dataclasses.asdict(config)) | {"calibration": _calibration(config)["files"]}
    path = out / "run_config.json"
    if prediction_files(out) and not config.resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose a new --out.")
    if config.resume and path.is_file():
        # a setting added since that run was written counts as its default (the run used the default's behaviour),
        # except where the default is new behaviour: runs from before drift cancellation cancelled none
        defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig) if f.default is not dataclasses.MISSING}
        defaults.update(drift="none")
        written = json.loads(path.read_text())
        refuse_other_motion_core(written.pop("motion_core", None), out, "run", "rows")
        used = (written.get("calibration") or {}).get("files", settings["calibration"])  # older runs recorded none
        before = _settings({**defaults, **written}) | {"calibration": used}
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ConfigError(f"{out} holds a run with different settings ({', '.join(changed)}); resume it with the "
                              "same settings or choose a new --out.")


def answer_fields(text: str, scheme: str) -> dict:
    """The parsed answer as a predictions row holds it; the emotion is mapped into `scheme` through the same explicit
    mapping as the sheets' words (e.g. sadness -> others in 5 classes), and a label the scheme excludes is None,
    which scores as wrong."""
    parsed = parse_answer(text, SCHEME_CLASSES[scheme])
    return {"text": text, "parsed_aus": parsed.aus, "parsed_emotion": parsed.emotion,
            "pred_emotion": map_emotion(parsed.emotion, scheme) if parsed.emotion else None,
            "parse_status": parsed.status, "out_of_scheme": parsed.out_of_scheme, "candidates": parsed.candidates}


def _sample_row(sample: Sample) -> dict:
    return {"key": sample.key, "subject": sample.subject, "clip_id": sample.clip_id, "split": sample.split,
            "fold": sample.fold, "true_emotion": sample.true_emotion, "emotion_raw": sample.emotion_raw,
            "true_aus": sample.true_aus}


def _evidence_step(sample: Sample, analysis, error: str | None, motion_s: float, evidence_source,
                   config: EvalConfig) -> tuple[dict, object | None]:
    """(the row so far, the reasoning request); the request is None when the row is already final (an error)."""
    from assistant.reasoners.base import ReasoningRequest

    row = _sample_row(sample)
    if error is not None:
        return {**row, "status": "error", "error": error, "timings": {"motion": round(motion_s, 4)}}, None
    held_by = evidence_source.fold_of(sample.key)
    if held_by is not None and config.protocol in ("loso", "cde") and held_by != sample.fold:
        return {**row, "status": "error", "timings": {"motion": round(motion_s, 4)},
                "error": f"LeakError: the AU evidence comes from fold {held_by}, not from fold {sample.fold} that "
                         "holds this clip's subject out; the training run's folds do not match this data"}, None
    if held_by is not None:
        row["evidence_fold"] = held_by
    t = time.perf_counter()
    try:
        evidence = evidence_source.evidence(sample.key, analysis)
    except MEUError as err:
        return {**row, "status": "error", "error": str(err), "timings": {"motion": round(motion_s, 4)}}, None
    detector_s = time.perf_counter() - t
    classes = SCHEME_CLASSES[config.scheme]
    request = ReasoningRequest(analysis=analysis, evidence=evidence, lang=config.language, emotion_options=classes,
                               include_evidence=config.vlm_evidence, include_regions=config.vlm_regions)
    row = {**row, "probabilities": {str(s.code): round(s.probability, 6) for s in evidence.scores},
           "detector": evidence.backend,
           "timings": {"motion": round(motion_s, 4), "detector": round(detector_s, 4)}}
    return row, request


def _reason(pending: list[tuple[dict, object]], reasoner, config: EvalConfig) -> list[dict]:
    """Finish rows waiting for the reasoner, in one batch (one per fold with per-fold adapters); each row's reasoner
    time is its share of its batch."""
    if hasattr(reasoner, "for_fold"):
        done = []
        for fold in dict.fromkeys(row["fold"] for row, _ in pending):
            mine = [(row, request) for row, request in pending if row["fold"] == fold]
            done += [{**r, "reasoner_fold": fold, "reasoner_adapter": str(reasoner.adapter(fold))}
                     for r in _reason(mine, reasoner.for_fold(fold), config)]
        return done
    t = time.perf_counter()
    texts = _texts(reasoner, [request for _, request in pending])
    share = (time.perf_counter() - t) / max(len(pending), 1)
    done = []
    for (row, _), text in zip(pending, texts):
        clip = {k: v for k, v in row.items() if k not in ("probabilities", "detector", "timings")}
        done.append({**clip, "status": "ok", **answer_fields(text, config.scheme),
                     "probabilities": row["probabilities"], "detector": row["detector"], "reasoner": reasoner.name,
                     "timings": {**row["timings"], "reasoner": round(share, 4)}})
    return done


def run(config: EvalConfig) -> dict:
    """The whole evaluation; returns the metrics also written to OUT/metrics.json."""
    from eval.evidence import EvidenceSource, FoldPredictions
    from eval.report import write_report

    if config.workers < 1:
        raise ConfigError("--workers must be at least 1.")
    source = config.source_dataset
    if config.protocol == "cross":
        trained_on = FoldPredictions(config.au_run).dataset if config.au_run else None
        source = source or trained_on
        if not source:
            raise ConfigError("The cross protocol needs --source-dataset (the dataset the detector was trained on) "
                              "or --au-run of a `meu train au --protocol cross` run.")
        if trained_on and source != trained_on:
            raise ConfigError(f"--source-dataset {source} contradicts --au-run {config.au_run}, trained on "
                              f"{trained_on}; leave --source-dataset out with --au-run.")
        if source == config.dataset:
            raise ConfigError(f"The cross protocol tests on another dataset than the one trained on, and both are "
                              f"{source}; for one dataset use --protocol loso.")
    if config.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1.")
    out = output_folder(config.out)
    shard = current_shard()
    samples, skipped, load_report = select_samples(config, source)
    if not samples:
        raise MEUError(f"No usable clip in {config.root} for {config.dataset} / {config.protocol}.")
    if config.protocol in ("loso", "cde") and len({s.subject for s in samples}) < 2:
        raise ConfigError(f"The {config.protocol} protocol leaves one subject out: it needs at least 2 subjects.")
    _check_resume(config, out)
    shard.marker(out).unlink(missing_ok=True)  # a marker left by a killed run of the same split
    shard.wait_for_everyone()  # every process has checked the folder before any writes to it
    checkpoint = {"aullm": config.aullm_checkpoint, "microau_clip": config.microau_clip_checkpoint}.get(config.detector)
    if checkpoint:
        from eval.evidence import check_unseen

        for name in config.datasets:
            mine = {s.key.split("/")[1] for s in samples if key_dataset(s.key) == name}
            check_unseen(checkpoint, name, sorted(mine))
    evidence_source = EvidenceSource(config.detector, config.protocol, config.motion_config(),
                                     config.aullm_checkpoint, config.au_run, config.microau_clip_checkpoint)
    if config.protocol == "cde":  # a cde training run predicts every held-out clip, SMIC's included
        evidence_source.check_keys([s.key for s in samples], config.datasets)
    else:
        evidence_source.check_keys([s.key for s in samples if s.true_aus is not None],
                                   truth={s.key: s.true_aus for s in samples})
    used = _calibration(config)  # read once: the record of run_config.json and metrics.json alike
    if shard.is_main:  # only once every check passed: a refused run leaves nothing a corrected --resume trips on
        write_json(out / "run_config.json", dataclasses.asdict(config) | {"calibration": used,
                                                                          "motion_core": MOTION_CORE})
    reasoner = _reasoner(config, shard.device, [s.fold for s in samples])
    predictions = shard.log(out)
    mine = shard.take(samples)
    done = done_keys(out, predictions)
    todo = [s for s in mine if s.key not in done]
    if config.vlm_run:  # one adapter per fold: clips of one fold together, so each adapter loads once
        todo.sort(key=lambda s: s.fold)
    if len(todo) < len(mine):
        log.info("resuming: %d clips done, %d to go", len(mine) - len(todo), len(todo))
    by_key = {s.key: s for s in samples}
    t0 = time.perf_counter()
    tasks = [(s.key, s.source, s.onset, s.apex, s.offset) for s in todo]
    if config.null_pairs:
        tasks += null_pair_tasks(mine, done)
    pending: list[tuple[dict, object]] = []
    desc = f"eval {config.dataset} {config.protocol}" + (f" [{shard.index + 1}/{shard.count}]" if shard.count > 1
                                                         else "")
    with tqdm(total=len(tasks), desc=desc, disable=not config.progress, position=shard.index) as bar:
        for key, analysis, error, motion_s in _motion_results(tasks, config):
            if key.endswith(NULL_PAIR):
                predictions.append(null_pair_row(by_key[key.removesuffix(NULL_PAIR)], analysis, error, motion_s,
                                                 evidence_source))
                bar.update(1)
                continue
            row, request = _evidence_step(by_key[key], analysis, error, motion_s, evidence_source, config)
            finished = [row] if request is None else []
            if request is not None:
                pending.append((row, request))
            if len(pending) >= config.batch_size:
                finished += _reason(pending, reasoner, config)
                pending = []
            for r in finished:
                predictions.append(r)
            bar.update(len(finished))
        for r in _reason(pending, reasoner, config) if pending else []:
            predictions.append(r)
            bar.update(1)
    wall = time.perf_counter() - t0
    mark_done(out, shard, len(todo), wall)  # clips; null pairs are not counted
    if not shard.is_main:
        return {}
    shards = wait_for_shards(out, shard)
    order = {s.key: 2 * i for i, s in enumerate(samples)}
    merged = merge(out, {**order, **{k + NULL_PAIR: i + 1 for k, i in order.items()}})  # each null pair after its clip
    rows = [r for r in merged if r["key"] in order]
    null_rows = [r for r in merged if r.get("null_pair") and r["clip"] in order]
    aus = scored_aus(config, source)
    metrics = {
        "run": {"dataset": config.dataset, "protocol": config.protocol, "reasoner": config.reasoner,
                "detector": config.detector, "evidence": evidence_source.description, "classes": config.scheme,
                "class_names": list(SCHEME_CLASSES[config.scheme]), "aus": aus, "source_dataset": source,
                "synthetic": is_synthetic(config), "calibration": used, "motion_core": MOTION_CORE,
                "flow": config.flow, "landmarks": config.landmarks,
                "compensation": config.compensation, "drift": config.drift,
                "language": config.language, "root": config.root,
                "apex_unknown": config.apex_unknown, "vlm_run": config.vlm_run, "generation": _generation(reasoner)},
        "counts": count_rows(rows, skipped, left_out=_left_out(load_report) if config.protocol == "cde" else {}),
        **score_rows(rows, list(SCHEME_CLASSES[config.scheme]), aus, per_fold=config.protocol in ("loso", "cde")),
        "timings": _mean_timings(rows),
        "this_invocation": {"clips_run": sum(m["clips_run"] for m in shards), "wall_s": round(wall, 3),
                            "workers": config.workers, "processes": shard.count, "batch_size": config.batch_size},
        "loader": load_report["datasets"] if config.protocol == "cde" else load_report,
    }
    if config.null_pairs:
        metrics["null_pairs"] = null_pair_scores(null_rows)
    if config.protocol == "cde":
        from eval.cde import cde_scores

        metrics["cde"] = cde_scores(rows, config.datasets, load_report)
    write_json(out / "metrics.json", metrics)
    write_report(out, metrics, rows)
    return metrics


def _left_out(setup: dict) -> dict:
    """The composite's clips left out by its mapping or exclusion list, counted by reason."""
    return {k: n for k, n in (("label outside the composite", len(setup["unmapped"])),
                              ("on the exclusion list", len(setup["excluded"]))) if n}


def _mean_timings(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    keys = sorted({k for r in ok for k in r["timings"]})
    return {k: round(sum(r["timings"].get(k, 0.0) for r in ok) / len(ok), 4) for k in keys} if ok else {}


def parse(argv: list[str] | None) -> EvalConfig:
    """The settings of `meu eval` (the clip task), with the calibration it reads in use. A run's own
    `run_config.json` given as --config runs it again: the calibration folder it recorded is read (unless
    --calibration or MEU_CALIBRATION names one), with a warning if its files changed since."""
    from eval.spotting_run import add_task_argument

    parser = argparse.ArgumentParser(prog="meu eval", description=doc_summary(__doc__))
    add_task_argument(parser)
    calibration.add_argument(parser)
    config, ns = parse_config(EvalConfig, argv, "meu eval", doc_summary(__doc__), parser=parser,
                              records=("calibration", "motion_core"))
    calibration.apply(ns, _reads(config))
    warn_recorded_motion_core(ns.recorded)
    return config


def main(argv: list[str] | None = None) -> int:
    from eval.spotting_run import split_task

    task, argv = split_task(argv)
    if task == "spotting":
        from eval.spotting_run import main as spotting_main

        return spotting_main(argv)
    config = parse(argv)
    if config.detector in ("aullm", "microau_clip") or config.reasoner == "vlm":
        import torch

        torch.set_num_threads(config.threads)
    metrics = run(config)
    if not metrics:  # a non-main process of a sharded run: the main one merges, scores and reports
        return 0
    out = Path(config.out).expanduser()
    print((out / "report.md").read_text())
    e = metrics["emotion"]
    print(f"UF1 {e['uf1']:.3f}  UAR {e['uar']:.3f}  ACC {e['accuracy']:.3f} over {e['n_samples']} clips; "
          f"outputs in {out}")
    return 0
