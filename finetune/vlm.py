"""`meu train vlm`: LoRA fine-tuning of Qwen2.5-VL on the MMC-map instruction data with TRL (the MELLM recipe).

The recipe lives in `configs/vlm_mellm.yaml`: LoRA (r = alpha = 64) on the language model's attention and MLP
projections and on the vision encoder's blocks, AdamW lr 1e-4 with a cosine schedule, about 1200 steps,
assistant-only loss. Evaluation holds out whole subjects (`eval.protocols`) and, at each evaluation step, generates
answers for a few held-out samples and logs UF1 / UAR / accuracy from the parsed emotion (`eval.metrics`), not just
the loss. Runs resume from the last checkpoint in `--output-dir`; the adapter, the processor and a model card are
saved there; `--merge` writes merged weights to `DIR/merged`. `--tiny` runs the whole recipe on CPU with a tiny
random model and synthetic rows (`finetune.tiny_vlm`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from assistant.config import parse_config, resolved_setting
from assistant.emotions import SCHEME_CLASSES
from assistant.errors import ConfigError, MEUError
from assistant.files import atomic_write_text, write_json
from assistant.reasoners.generation import DEFAULT_GENERATION, GenerationSettings

log = logging.getLogger(__name__)

LM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VISION_TARGETS = ("attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass
class VLMTrainConfig:
    model_name_or_path: str = field(default="Qwen/Qwen2.5-VL-7B-Instruct",
                                    metadata={"help": "base model: hub name or local folder"})
    train_file: str | None = field(default=None, metadata={
        "help": "TRL JSONL export (rows with messages, images, subject); image paths relative to the file"})
    eval_file: str | None = field(default=None, metadata={
        "help": "separate evaluation JSONL; when unset, --val-subjects subjects are held out of --train-file"})
    data_card: str | None = field(default=None, metadata={"help": "the dataset card to cite in the model card"})
    output_dir: str = field(default="outputs/vlm_mellm", metadata={"help": "checkpoints, adapter, model card"})
    val_subjects: int = field(default=2, metadata={"help": "subjects held out for evaluation (0 = no evaluation)"})
    scheme: str = field(default="5", metadata={"help": "emotion classes for the metrics",
                                               "choices": list(SCHEME_CLASSES)})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_vision: bool = field(default=True, metadata={"help": "also put LoRA on the vision encoder blocks"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_steps: float = field(default=0.03, metadata={
        "help": "linear warm-up: steps, or a fraction of all steps when < 1"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_steps: int = field(default=1200, metadata={"help": "optimiser steps"})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "batch per device"})
    gradient_accumulation_steps: int = field(default=8, metadata={"help": "micro-batches per optimiser step"})
    min_pixels: int = field(default=56 * 56, metadata={"help": "smallest image area after resizing (pixels)"})
    max_pixels: int = field(default=448 * 448, metadata={"help": "image pixel budget: largest area (pixels)"})
    max_length: int | None = field(default=None, metadata={"help": "truncate sequences (None: never, keeps images)"})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "trade compute for memory"})
    precision: str = field(default="auto", metadata={"help": "auto = bf16 on GPUs that have it, else fp32",
                                                     "choices": ["auto", "bf16", "fp16", "fp32"]})
    logging_steps: int = field(default=10, metadata={"help": "log the loss every N steps"})
    eval_steps: int = field(default=100, metadata={"help": "evaluate (loss + generation metrics) every N steps"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int = field(default=3, metadata={"help": "checkpoints kept"})
    eval_generate: int = field(default=32, metadata={"help": "held-out samples generated at each evaluation"})
    max_new_tokens: int = field(default=512, metadata={"help": "generation length at evaluation"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "generation at evaluation (greedy, both stop ids); 1.0 = off, see assistant.reasoners.generation"})
    resume: bool = field(default=True, metadata={"help": "continue from the last checkpoint in --output-dir"})
    seed: int = field(default=42, metadata={"help": "random seed (also picks the held-out subjects)"})
    report_to: str = field(default="none", metadata={"help": "trackers (none, tensorboard, wandb)"})
    tiny: bool = field(default=False, metadata={"help": "tiny random model + synthetic data, CPU, < 2 minutes"})
    tiny_rows: int = field(default=24, metadata={"help": "synthetic rows for --tiny"})
    merge: bool = field(default=False, metadata={
        "help": "merge the adapter in --output-dir into its base and write DIR/merged, then stop"})
    protocol: str = field(default="", metadata={
        "help": "loso or cde: one adapter per fold under OUTPUT_DIR/folds/<held-out subject>/ (cde: the rows of a "
                "composite `meu data build --dataset casme2,samm,smic`); empty: one adapter", "choices": ["", "loso",
                                                                                                     "cde"]})
    folds: list[str] | None = field(default=None, metadata={"help": "with --protocol: train only these folds"})
    fold_shard: str | None = field(default=None, metadata={
        "help": "with --protocol: I/N, train every N-th fold from the I-th, so N processes or machines share the "
                "folds of one OUTPUT_DIR"})

    def __post_init__(self):
        """Ranges checked here, for flags, YAML and --tiny alike: a batch or a rank of 0 stopped deep in torch or
        PEFT, and --max-steps 0 trained one step and called it 0."""
        for name, low in (("lora_r", 1), ("lora_alpha", 1), ("max_steps", 1), ("per_device_train_batch_size", 1),
                          ("gradient_accumulation_steps", 1), ("min_pixels", 1), ("logging_steps", 1),
                          ("eval_steps", 1), ("save_steps", 1), ("save_total_limit", 1), ("eval_generate", 0),
                          ("max_new_tokens", 1), ("val_subjects", 0), ("seed", 0), ("tiny_rows", 4)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least {low}.")
        if self.max_pixels < self.min_pixels:
            raise ConfigError(f"--max-pixels {self.max_pixels} must be at least --min-pixels {self.min_pixels}.")
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"--max-length {self.max_length} must be at least 1 (or unset: never truncate).")
        if not self.learning_rate > 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError(f"--learning-rate {self.learning_rate} must be above 0, and --weight-decay "
                              f"{self.weight_decay} and --warmup-steps {self.warmup_steps} at least 0.")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout {self.lora_dropout} must lie in [0, 1).")
        if not self.repetition_penalty > 0:
            raise ConfigError(f"--repetition-penalty {self.repetition_penalty} must be above 0 (1.0 = off).")
        self.model_name_or_path = resolved_setting(self.model_name_or_path)  # adapters record their base by it


# --tiny: the same recipe at toy scale; flags given on the command line still win.
TINY_OVERRIDES = dict(
    lora_r=8, lora_alpha=8, lora_dropout=0.0, learning_rate=2e-2, warmup_steps=0, max_steps=12,
    per_device_train_batch_size=2, gradient_accumulation_steps=1, min_pixels=56 * 56, max_pixels=56 * 56,
    logging_steps=1, eval_steps=6, save_steps=6, eval_generate=4, max_new_tokens=24, val_subjects=1,
    precision="fp32",
)


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    metrics: dict
    trainer: object  # the TRL SFTTrainer, for callers that inspect the model or its state; None if nothing ran


# ---- data ----------------------------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a TRL export with image paths made absolute (they are relative to the file's folder)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Training data {p} does not exist; write it with `meu data build` first.")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MEUError(f"{p}:{n} is not valid JSON ({err}).") from None
        if "messages" not in row or "images" not in row:
            raise MEUError(f"{p}:{n} lacks `messages` or `images`; expected a TRL export row.")
        row["images"] = [str((p.parent / img).resolve()) if isinstance(img, str) else img for img in row["images"]]
        rows.append(row)
    if not rows:
        raise MEUError(f"{p} holds no rows.")
    return rows


def subject_split(rows: list[dict], val_subjects: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole subjects, with the folds owned by `eval.protocols` (no subject in both parts)."""
    from eval.protocols import all_subjects_split

    if val_subjects <= 0:
        return rows, []
    missing = sum(1 for r in rows if not r.get("subject"))
    if missing:
        raise MEUError(f"{missing} row(s) have no `subject`; the evaluation split holds out whole subjects. "
                       "Re-export with subjects, give --eval-file, or set --val-subjects 0.")
    fold = all_subjects_split([SimpleNamespace(subject=r["subject"]) for r in rows], val_subjects, seed)
    log.info("evaluation subjects: %s", ", ".join(fold.val_subjects))
    return [rows[i] for i in fold.train], [rows[i] for i in fold.val]


def check_scheme(rows: list[dict], scheme: str) -> None:
    """Refuse rows built in another emotion scheme: their labels would be scored against the wrong classes."""
    built = sorted({str(r["scheme"]) for r in rows if r.get("scheme")})
    if built and built != [scheme]:
        raise ConfigError(f"The rows were built with the {' and '.join(built)}-class scheme but --scheme is {scheme}; "
                          f"pass --scheme {built[0]} or rebuild the data with --scheme {scheme}.")


def to_dataset(rows: list[dict]):
    """A `datasets.Dataset` whose `images` column decodes to PIL images (paths and PIL objects both accepted)."""
    import datasets

    keep = [{k: v for k, v in r.items() if k in ("messages", "images")} for r in rows]
    return datasets.Dataset.from_list(keep).cast_column("images", datasets.List(datasets.Image()))


# ---- model ---------------------------------------------------------------------------------------------------
def lora_config(cfg: VLMTrainConfig):
    """LoRA on the LM's attention + MLP projections and (optionally) on the vision encoder's blocks."""
    from peft import LoraConfig

    lm = r"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.(" + "|".join(LM_TARGETS) + ")"
    vision = r"model\.visual\.blocks\.\d+\.(" + "|".join(t.replace(".", r"\.") for t in VISION_TARGETS) + ")"
    pattern = f".*({lm}|{vision})$" if cfg.lora_vision else f".*{lm}$"
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=pattern, task_type="CAUSAL_LM", bias="none")


def _precision(cfg: VLMTrainConfig):
    import torch

    want = cfg.precision
    if want == "auto":
        want = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if want in ("bf16", "fp16") and not torch.cuda.is_available():
        raise ConfigError(f"--precision {want} needs a GPU; use auto or fp32 on this machine.")
    return want, {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[want]


def load_model_and_processor(cfg: VLMTrainConfig):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _, dtype = _precision(cfg)
    try:
        # min_pixels= / max_pixels=, not size=: a checkpoint's preprocessor_config.json carries these two keys, and in
        # transformers 5 they override a `size` argument, which would silently keep the checkpoint's 12.8 MP budget.
        processor = AutoProcessor.from_pretrained(cfg.model_name_or_path, min_pixels=cfg.min_pixels,
                                                  max_pixels=cfg.max_pixels)
        model = AutoModelForImageTextToText.from_pretrained(cfg.model_name_or_path, dtype=dtype)
    except (OSError, ValueError) as err:  # missing; a folder that holds no Qwen2.5-VL
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise MEUError(f"Cannot load {cfg.model_name_or_path!r}: {reason}. Give the folder of a Qwen2.5-VL model or "
                       "a cached hub name (runs are offline).") from None
    return model, processor


# ---- generation-based evaluation --------------------------------------------------------------------------------
def generation_metrics(model, processor, rows: list[dict], scheme: str, settings: GenerationSettings) -> dict:
    """Generate for `rows`, parse the emotion, score it against the reference answer's: UF1, UAR, accuracy."""
    import torch
    from trl.data_utils import prepare_multimodal_messages

    from assistant.parse import parse_answer
    from assistant.reasoners.vlm import generate_text
    from eval.metrics import classification_scores

    classes = SCHEME_CLASSES[scheme]
    y_true, y_pred, unparsable = [], [], 0
    was_training = model.training
    model.eval()
    for row in rows:
        reference = row["messages"][-1]["content"]
        if not isinstance(reference, str):
            reference = " ".join(p.get("text", "") for p in reference)
        gold = row.get("emotion") or parse_answer(reference, classes).emotion
        if gold not in classes:
            continue
        messages = prepare_multimodal_messages(row["messages"][:-1], images=list(row["images"]))
        with torch.no_grad():
            text = generate_text(model, processor, messages, settings)
        parsed = parse_answer(text, classes)
        unparsable += parsed.status == "unparsable"
        y_true.append(gold)
        y_pred.append(parsed.emotion)
    if was_training:
        model.train()
    if not y_true:
        return {}
    scores = classification_scores(y_true, y_pred, classes)
    return {"uf1": scores.uf1, "uar": scores.uar, "accuracy": scores.accuracy,
            "unparsable": unparsable / len(y_true), "generated": len(y_true)}


def _trainer_class():
    from trl import SFTTrainer

    class MELLMTrainer(SFTTrainer):
        """SFTTrainer whose evaluation also generates answers and logs the emotion metrics."""

        def __init__(self, *args, gen_rows=(), scheme="5", generation=DEFAULT_GENERATION, **kwargs):
            super().__init__(*args, **kwargs)
            self.gen_rows, self.scheme, self.generation = list(gen_rows), scheme, generation

        def evaluate(self, *args, **kwargs):
            metrics = super().evaluate(*args, **kwargs)
            if self.gen_rows:
                gen = generation_metrics(self.model, self.processing_class, self.gen_rows, self.scheme,
                                         self.generation)
                gen = {f"eval_{k}": v for k, v in gen.items()}
                self.log(gen)
                metrics.update(gen)
            return metrics

    return MELLMTrainer


# ---- the run -----------------------------------------------------------------------------------------------------
def train(cfg: VLMTrainConfig, rows: list[dict] | None = None, eval_rows: list[dict] | None = None) -> TrainResult:
    """Train (or resume) and save adapter + processor + model card; `rows` replace `--train-file` when given."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig

    out = Path(cfg.output_dir)
    if rows is None:
        if not cfg.train_file:
            raise ConfigError("Give --train-file (a TRL JSONL export from `meu data build`) or use --tiny.")
        rows = read_jsonl(cfg.train_file)
    if eval_rows is None:
        rows, eval_rows = (rows, read_jsonl(cfg.eval_file)) if cfg.eval_file else subject_split(
            rows, cfg.val_subjects, cfg.seed)
    check_scheme(rows + list(eval_rows), cfg.scheme)
    maps = maps_motion_core(cfg.train_file)
    last = get_last_checkpoint(str(out)) if cfg.resume and out.is_dir() else None
    _check_settings(out, cfg, resuming=last is not None, data={"train_rows": rows_fingerprint(rows),
                                                               "eval_rows": rows_fingerprint(eval_rows or [])})
    finished = _finished_run(out, last, cfg.max_steps)
    if finished is not None:
        return finished
    model, processor = load_model_and_processor(cfg)
    precision, _ = _precision(cfg)
    has_eval = bool(eval_rows)
    args = SFTConfig(
        output_dir=str(out), max_length=cfg.max_length, assistant_only_loss=True,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, optim="adamw_torch", max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size, per_device_eval_batch_size=1,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        bf16=precision == "bf16", fp16=precision == "fp16",
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval else "no", eval_steps=cfg.eval_steps if has_eval else None,
        seed=cfg.seed, report_to=cfg.report_to, remove_unused_columns=False, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=to_dataset(rows),
        eval_dataset=to_dataset(eval_rows) if has_eval else None,
        processing_class=processor, peft_config=lora_config(cfg), gen_rows=eval_rows[:cfg.eval_generate],
        scheme=cfg.scheme, generation=generation_settings(cfg),
    )
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    metrics = _final_metrics(trainer) if has_eval else {}
    trainer.save_model(str(out))  # every process takes part (sharded states); the files come from the main one
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))
        generation = generation_settings(cfg).record(processor.tokenizer)
        write_json(out / "train_config.json", {**dataclasses.asdict(cfg), "generation": generation, **maps})
        write_json(out / "metrics.json", metrics)
        atomic_write_text(out / "README.md", model_card(cfg, trainer.state.global_step, metrics, len(rows),
                                                        len(eval_rows or []), generation, maps))
        log.info("adapter, processor and model card written to %s", out)
    return TrainResult(out, trainer.state.global_step, metrics, trainer)


def maps_motion_core(train_file: str | None) -> dict:
    """{"maps_motion_core": version} when --train-file is an export of `meu data build` (its build_settings.json lies
    beside it; None for a build from before the record): the motion core that drew the maps the adapter learns from,
    so that serving can say when it draws them another way. {} for rows from elsewhere, which record nothing."""
    stamp = Path(train_file).parent / "build_settings.json" if train_file else None
    if stamp is None or not stamp.is_file():
        return {}
    try:
        return {"maps_motion_core": json.loads(stamp.read_text()).get("motion_core")}
    except (OSError, ValueError, AttributeError):
        log.warning("%s cannot be read; the adapter records no motion core for its maps.", stamp)
        return {}


# Settings a resumed run may change: where and how often it logs, saves and evaluates, and --max-steps (a run is
# extended by resuming it with more steps).
RESUME_FREE = ("output_dir", "resume", "merge", "report_to", "logging_steps", "eval_steps", "save_steps",
               "save_total_limit", "eval_generate", "max_new_tokens", "repetition_penalty", "data_card", "protocol",
               "folds", "fold_shard", "max_steps")
RUN_SETTINGS = "run_settings.json"
PATH_SETTINGS = ("model_name_or_path", "train_file", "eval_file")


def rows_fingerprint(rows) -> str:
    """A hash of the training rows' contents (texts, labels, image paths; the pixels of images given as objects): the
    same file path holding other answers is other training data."""
    def value(o) -> str:
        return hashlib.sha256(o.tobytes()).hexdigest() if hasattr(o, "tobytes") else str(o)

    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=value).encode())
    return digest.hexdigest()[:16]


def _check_settings(out: Path, cfg: VLMTrainConfig, resuming: bool, data: dict | None = None) -> None:
    """A run resumed (or found finished) with other training settings is refused: the checkpoint's steps were taken
    with the old ones (a new rate or schedule went unnoticed, and a new LoRA rank stopped in a size mismatch). `data`:
    fingerprints of the training and evaluation rows (a rebuilt or edited --train-file under the same path resumed,
    or returned the finished adapter, silently). A fresh run records its settings first."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_FREE} | (data or {})
    path = out / RUN_SETTINGS
    if resuming and path.is_file():
        before = json.loads(path.read_text())

        def same(k: str) -> bool:  # files spelled another way, or from another folder, are the same files
            a, b = before[k], settings[k]
            return a == b or (k in PATH_SETTINGS and a and b and resolved_setting(a) == resolved_setting(b))

        changed = [k for k in settings if k in before and not same(k)]
        rows = [k for k in changed if k in (data or {})]
        if rows:
            files = [f"--train-file {cfg.train_file}"] if cfg.train_file and (
                "train_rows" in rows or not cfg.eval_file) else []  # without --eval-file both come from the one file
            files += [f"--eval-file {cfg.eval_file}"] if "eval_rows" in rows and cfg.eval_file else []
            what = (f"{' and '.join(files)} now {'hold' if len(files) > 1 else 'holds'} other rows than"
                    if files else "The rows given differ from those")
            raise ConfigError(f"{what} the run in {out} was trained on (a rebuilt or edited file under the same "
                              "path): restore it, or give another --output-dir (or --resume false to train again from "
                              "the start).")
        if changed:
            was = ", ".join(f"--{k.replace('_', '-')} {before[k]} -> {settings[k]}" for k in changed)
            raise ConfigError(f"{out} holds a run trained with other settings ({was}); resume it with its own "
                              "settings, or give another --output-dir (or --resume false to start it again).")
    elif not resuming:
        write_json(path, settings)


def _finished_run(out: Path, last: str | None, max_steps: int) -> TrainResult | None:
    """The saved result when the last checkpoint already reached `max_steps` and the adapter was written: resuming
    would train past the schedule (and overwrite the adapter)."""
    if not last or not (out / "adapter_config.json").is_file() or not (out / "metrics.json").is_file():
        return None
    step = int(json.loads((Path(last) / "trainer_state.json").read_text()).get("global_step", 0))
    if step < max_steps:
        return None
    log.info("%s finished already (step %d of %d); nothing to train", out, step, max_steps)
    return TrainResult(out, step, json.loads((out / "metrics.json").read_text()), None)


def _final_metrics(trainer) -> dict:
    """The evaluation of the last step: taken from the log when the schedule already ran it, else run now."""
    step = trainer.state.global_step
    logged = {k: v for h in trainer.state.log_history if h.get("step") == step for k, v in h.items()
              if k.startswith("eval_")}
    return logged if "eval_loss" in logged else trainer.evaluate()


def generation_settings(cfg: VLMTrainConfig) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=cfg.max_new_tokens, repetition_penalty=cfg.repetition_penalty)


def model_card(cfg: VLMTrainConfig, steps: int, metrics: dict, n_train: int, n_eval: int,
               generation: dict | None = None, maps: dict | None = None) -> str:
    """`maps`: `maps_motion_core`'s record of the build the rows came from ({} or None: no line)."""
    hp = {k: getattr(cfg, k) for k in (
        "lora_r", "lora_alpha", "lora_dropout", "lora_vision", "learning_rate", "lr_scheduler_type", "warmup_steps",
        "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "min_pixels", "max_pixels", "seed")}
    lines = [
        "---", f"base_model: {cfg.model_name_or_path}", "library_name: peft",
        "tags: [micro-expression, qwen2.5-vl, lora, trl, meu-assistant]", "---", "",
        "# MEU Assistant: Qwen2.5-VL LoRA adapter (MELLM recipe)", "",
        f"- Base model: `{cfg.model_name_or_path}`",
        f"- Data: `{cfg.train_file or 'synthetic rows (--tiny)'}`; data card: `{cfg.data_card or 'not given'}`",
        *([f"- Maps drawn by the motion core of {maps['maps_motion_core'] or 'a build from before the record'} "
           "(`meu data build`'s build_settings.json)"] if maps else []),
        f"- Training rows: {n_train}; held-out rows: {n_eval} (held out by subject)",
        f"- Steps: {steps}; assistant-only loss; LoRA on the language model"
        + (" and the vision encoder" if cfg.lora_vision else ""),
        "- Input: the MMC map with the prompt of `assistant.prompts.build_task_prompt`; the answer ends with the "
        "conclusion line read by `assistant.parse.parse_answer`.", "",
        "## Hyperparameters", "", *(f"- {k}: {v}" for k, v in hp.items()), "",
        "## Generation (evaluation here; the same settings serve `meu eval` and the app)", "",
        *(f"- {k}: {v}" for k, v in (generation or generation_settings(cfg).record()).items()),
        "- why: `assistant.reasoners.generation` (greedy for reproducible, batchable answers; both stop ids; no "
        "repetition penalty, because the answer must repeat the prompt's AU and emotion words)", "",
        "## Evaluation (held-out subjects)", "",
        *(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in sorted(metrics.items())), "",
    ]
    if cfg.tiny:
        lines += ["**Synthetic**: tiny random model and synthetic rows, a smoke test of the recipe; the figures "
                  "above mean nothing about micro-expressions.", ""]
    return "\n".join(lines)


def merge(cfg: VLMTrainConfig) -> Path:
    """Write base + adapter as plain weights to `DIR/merged` (loadable without PEFT)."""
    from assistant.reasoners.vlm import adapter_base, load_vlm, maps_record

    adapter = Path(cfg.output_dir)
    base = adapter_base(adapter)
    if base is None:
        raise ConfigError(f"{adapter} holds no adapter (adapter_config.json); train first or give --output-dir.")
    model, processor = load_vlm(base, str(adapter), device="cpu", dtype="float32" if cfg.tiny else "bfloat16",
                                merge=True)
    target = adapter / "merged"
    tmp = adapter / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    maps = maps_record(adapter)
    if maps:  # served as a base, the merged model still says which motion core drew its maps
        write_json(tmp / "train_config.json", maps)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    log.info("merged weights written to %s", target)
    return target


def _apply_tiny(cfg: VLMTrainConfig, explicit: set[str]) -> tuple[VLMTrainConfig, list[dict] | None]:
    """Toy-scale settings and the tiny model; synthetic rows unless a --train-file export is given."""
    from finetune.tiny_vlm import build_tiny_vlm, tiny_sft_rows

    changes = {k: v for k, v in TINY_OVERRIDES.items() if k not in explicit}
    if "model_name_or_path" not in explicit:
        changes["model_name_or_path"] = str(build_tiny_vlm(Path(cfg.output_dir) / "tiny-base"))
    rows = None if cfg.train_file else tiny_sft_rows(cfg.tiny_rows, seed=cfg.seed)
    return dataclasses.replace(cfg, **changes), rows


def parse(argv: list[str] | None) -> tuple[VLMTrainConfig, list[dict] | None]:
    """The settings of `meu train vlm` and, with --tiny, its synthetic rows. A run's own `train_config.json` given as
    --config trains it again (the generation settings and the maps' motion core it recorded are derived, not set).
    --tiny scales a recipe from --config down to toy size; only flags keep their values."""
    cfg, ns = parse_config(VLMTrainConfig, argv, prog="meu train vlm",
                           description="Fine-tune Qwen2.5-VL with LoRA through TRL (the MELLM recipe).",
                           records=("generation", "maps_motion_core"))
    cfg = dataclasses.replace(cfg, output_dir=str(Path(cfg.output_dir).expanduser()))  # `--output-dir=~/x` as typed
    if not cfg.tiny or cfg.merge:
        return cfg, None
    return _apply_tiny(cfg, {k for k in vars(ns) if k not in ("config", "recorded")})


def main(argv: list[str] | None = None) -> int:
    cfg, rows = parse(argv)
    if cfg.merge:
        print(merge(cfg))
        return 0
    if (cfg.folds or cfg.fold_shard) and not cfg.protocol:
        raise ConfigError("--folds and --fold-shard choose folds of --protocol loso or cde; add --protocol.")
    if cfg.protocol:
        from finetune.vlm_folds import train_folds

        print(json.dumps(train_folds(cfg, rows), indent=2))
        return 0
    result = train(cfg, rows=rows)
    print(json.dumps({"output_dir": str(result.output_dir), "global_step": result.global_step,
                      **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}}, indent=2))
    return 0
