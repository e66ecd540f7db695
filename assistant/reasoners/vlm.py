"""The `vlm` reasoner: Qwen2.5-VL (optionally with a LoRA adapter) reads the MMC map and explains it.

The prompt comes from `assistant.prompts.build_task_prompt`, the builder the training data uses, so a fine-tuned
model sees at serving time exactly what it saw in training. The model is given by hub name or local path; a folder
holding `adapter_config.json` is a LoRA adapter and its base is read from there. Device and dtype are automatic:
CUDA with bf16 when available, else CPU with fp32. The loading and generation helpers here are also what
`finetune.vlm` uses for its generation-based evaluation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors import SafetensorError

from assistant.au import AU
from assistant.errors import BackendError
from assistant.parse import parse_answer
from assistant.prompts import build_task_prompt, format_evidence_line, format_region_table
from assistant.reasoners.base import Conversation, ReasoningRequest, last
from assistant.reasoners.generation import DEFAULT_GENERATION, GenerationSettings, settings_of
from assistant.types import Answer

log = logging.getLogger(__name__)


def pick_device_dtype(device: str = "auto", dtype: str = "auto"):
    """("cuda", bfloat16) when a GPU is there (float16 on GPUs without bf16), else ("cpu", float32)."""
    import torch

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dtype != "auto":
        return dev, getattr(torch, dtype)
    if dev.startswith("cuda"):
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


def adapter_base(path: str | Path) -> str | None:
    """The base model an adapter folder was trained on, or None when `path` is not an adapter folder."""
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():
        return None
    return json.loads(cfg.read_text()).get("base_model_name_or_path")


_warned_maps: set[str | None] = set()


def maps_record(folder: str | Path) -> dict:
    """{"maps_motion_core": version} as the model in `folder` recorded it in its train_config.json; {} when it
    records none or the record cannot be read."""
    record = Path(folder) / "train_config.json"
    try:
        recorded = json.loads(record.read_text()) if record.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict) or "maps_motion_core" not in recorded:
        return {}
    return {"maps_motion_core": recorded["maps_motion_core"]}


def warn_maps_motion_core(folder: str | Path) -> None:
    """A model trained on maps that another motion core drew (`meu train vlm` records the build's in the adapter's
    train_config.json, and `--merge` carries it into the merged weights) reads maps drawn another way now: said
    once per recorded version and process (an evaluation loads one adapter per fold). Models whose rows were not a
    build's record nothing."""
    from assistant.motion.analyze import motion_core_change

    recorded = maps_record(folder)
    if not recorded:
        return
    version = recorded["maps_motion_core"]
    change = motion_core_change(version)
    if change and version not in _warned_maps:
        _warned_maps.add(version)
        log.warning("%s: the maps it was trained on were drawn from motion that %s; it serves, but the maps it reads "
                    "now differ a little from those it learned from: build the data again and train it again for the "
                    "answers it was trained to give.", folder, change)


def has_processor(folder: str | Path | None) -> bool:
    """Whether `folder` holds a saved processor: transformers 5 writes `processor_config.json`, older versions and
    hub checkpoints `preprocessor_config.json`. Training saves the processor beside the adapter, so serving reads the
    pixel budget the model was trained with."""
    return folder is not None and any((Path(folder) / f).is_file()
                                      for f in ("processor_config.json", "preprocessor_config.json"))


def resolve_adapter(base: str, adapter: str | None) -> tuple[str, str | None]:
    """(base, adapter): an adapter folder given as the base names its own base."""
    if adapter is None and adapter_base(base):
        return adapter_base(base), base
    return base, adapter


def load_vlm(base: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
             merge: bool = False):
    """(model, processor) in eval mode. `adapter` is applied unmerged through PEFT unless `merge`."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base, adapter = resolve_adapter(base, adapter)
    for what, name in (("VLM", base), ("adapter", adapter)):
        if name and name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
            raise BackendError(f"The {what} folder {name} does not exist; give the folder of a Qwen2.5-VL "
                               f"{'model' if what == 'VLM' else 'LoRA adapter'}, or a hub name that is in the local "
                               "cache (runs are offline).")
    dev, torch_dtype = pick_device_dtype(device, dtype)
    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch_dtype)
        processor = AutoProcessor.from_pretrained(adapter if has_processor(adapter) else base)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
            if merge:
                model = model.merge_and_unload()
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # missing, not a VLM, not its adapter, cut off
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise BackendError(f"Cannot load the VLM {base!r}{f' with adapter {adapter!r}' if adapter else ''}: {reason}. "
                           "Give the folder of a Qwen2.5-VL model (and of a LoRA adapter trained on it), or a hub name "
                           "that is in the local cache (runs are offline).") from None
    model.to(dev).eval()
    if Path(adapter or base).is_dir():
        warn_maps_motion_core(adapter or base)
    log.info("loaded %s%s on %s (%s)", base, f" + {adapter}" if adapter else "", dev, torch_dtype)
    return model, processor


def chat_messages(prompt: str, image, history: list[tuple[str, str]] = ()) -> list[dict]:
    """The conversation as the chat template wants it: image + prompt first, then (role, text) turns."""
    first = {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}
    turns = [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in history]
    return [first, *turns]


def _inputs(model, processor, conversations: list[list[dict]]):
    """One conversation, or several left-padded into one batch (generation appends on the right)."""
    batch = processor.apply_chat_template(conversations if len(conversations) > 1 else conversations[0],
                                          add_generation_prompt=True, tokenize=True, return_dict=True,
                                          return_tensors="pt",
                                          processor_kwargs={"padding": len(conversations) > 1, "padding_side": "left"})
    return batch.to(model.device)


def generate_ids(model, processor, conversations: list[list[dict]],
                 settings: GenerationSettings | int = DEFAULT_GENERATION) -> list[list[int]]:
    """Greedy replies to several conversations in one `generate()` call: each reply's token ids up to and
    including its first stop token (the padding that follows a finished row is cut)."""
    import torch

    settings = settings_of(settings)
    inputs = _inputs(model, processor, conversations)
    config = settings.generation_config(processor.tokenizer)
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=config)
    stops = set(config.eos_token_id)
    replies = []
    for row in out[:, inputs["input_ids"].shape[1]:].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        replies.append(row[:end])
    return replies


def generate_texts(model, processor, conversations: list[list[dict]],
                   settings: GenerationSettings | int = DEFAULT_GENERATION) -> list[str]:
    """Greedy replies (special tokens removed) to several conversations, batched."""
    return [processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
            for ids in generate_ids(model, processor, conversations, settings)]


def generate_text(model, processor, messages: list[dict],
                  settings: GenerationSettings | int = DEFAULT_GENERATION) -> str:
    """One greedy reply, special tokens removed."""
    return generate_texts(model, processor, [messages], settings)[0]


def stream_text(model, processor, messages: list[dict],
                settings: GenerationSettings | int = DEFAULT_GENERATION) -> Iterator[str]:
    """Greedy generation in a worker thread; yields the reply text so far after each decoded piece."""
    import torch
    from transformers import TextIteratorStreamer

    inputs = _inputs(model, processor, [messages])
    config = settings_of(settings).generation_config(processor.tokenizer)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, generation_config=config, streamer=streamer)
        except BaseException as err:  # re-raised in the caller's thread below
            errors.append(err)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text
    thread.join()
    if errors:
        raise errors[0]


def request_prompt(request: ReasoningRequest) -> str:
    """The user prompt for a request: legend prior + steps + options (+ evidence line, region table).

    The evidence line lists every detector score, as `instruction_data` writes it from a detector's predictions.
    """
    evidence = None
    if request.include_evidence:
        scores = [(s.code, s.probability) for s in request.evidence.scores]
        evidence = format_evidence_line(scores, request.evidence.backend, request.lang)
    regions = format_region_table(request.analysis.regions, request.lang) if request.include_regions else None
    return build_task_prompt(request.lang, request.emotion_options, evidence, regions)


class VLMReasoner:
    """Qwen2.5-VL over the MMC map; the model is loaded once, on first use. `batch_size` answers go through one
    `generate()` call in `answer_batch` (left padding, greedy: the same tokens as one at a time)."""

    name = "vlm"

    def __init__(self, base: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 512, repetition_penalty: float = 1.0, batch_size: int = 1):
        if batch_size < 1:
            raise BackendError(f"The VLM batch size must be at least 1, not {batch_size}.")
        self.base, self.adapter = base, adapter
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.generation = GenerationSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
        self._loaded = None
        self._lock = threading.Lock()

    @property
    def max_new_tokens(self) -> int:
        return self.generation.max_new_tokens

    @property
    def model(self):
        with self._lock:
            if self._loaded is None:
                self._loaded = load_vlm(self.base, self.adapter, self.device, self.dtype)
            return self._loaded

    def _messages(self, request: ReasoningRequest, history: list[tuple[str, str]] = ()) -> list[dict]:
        image = Image.fromarray(np.ascontiguousarray(request.analysis.mmc_map))
        return chat_messages(request_prompt(request), image, history)

    def stream(self, request: ReasoningRequest) -> Iterator[str]:
        model, processor = self.model
        yield from stream_text(model, processor, self._messages(request), self.generation)

    def generation_record(self) -> dict:
        """The generation settings with the stop ids this model's tokenizer gives them (the tokenizer is loaded
        alone when the model is not: a resumed shard may have had nothing left to generate)."""
        if self._loaded is not None:
            return self.generation.record(self._loaded[1].tokenizer)
        from transformers import AutoTokenizer

        base, adapter = resolve_adapter(self.base, self.adapter)
        return self.generation.record(AutoTokenizer.from_pretrained(adapter if has_processor(adapter) else base))

    def _answer(self, request: ReasoningRequest, text: str) -> Answer:
        parsed = parse_answer(text, request.emotion_options)
        sides = {s.code: s.side for s in request.evidence.scores}
        body = text.rsplit(parsed.conclusion, 1)[0].rstrip() if parsed.conclusion else text
        return Answer(aus=[AU(c, sides.get(c)) for c in parsed.aus], emotion=parsed.emotion, reasoning=body,
                      text=text, backends={"reasoner": self.name}, parse_status=parsed.status)

    def answer(self, request: ReasoningRequest) -> Answer:
        return self._answer(request, last(self.stream(request), "").strip())

    def texts(self, requests: list[ReasoningRequest]) -> list[str]:
        """The raw replies to `requests`, `batch_size` per `generate()` call."""
        model, processor = self.model
        out: list[str] = []
        for i in range(0, len(requests), self.batch_size):
            chunk = [self._messages(r) for r in requests[i:i + self.batch_size]]
            out += generate_texts(model, processor, chunk, self.generation)
        return out

    def answer_batch(self, requests: list[ReasoningRequest]) -> list[Answer]:
        return [self._answer(r, t) for r, t in zip(requests, self.texts(requests))]

    def follow_up(self, conversation: Conversation, message: str) -> Iterator[str]:
        """The model sees the map, the first prompt, its first answer and every turn since."""
        history = [("assistant", conversation.answer.text)]
        history += [(t.role, t.content) for t in conversation.turns]
        history.append(("user", message))
        model, processor = self.model
        yield from stream_text(model, processor, self._messages(conversation.request, history), self.generation)
