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

from assistant.au import AU
from assistant.errors import BackendError
from assistant.parse import parse_answer
from assistant.prompts import build_task_prompt, format_evidence_line, format_region_table
from assistant.reasoners.base import Conversation, ReasoningRequest, last
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


def load_vlm(base: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
             merge: bool = False):
    """(model, processor) in eval mode. `adapter` is applied unmerged through PEFT unless `merge`."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if adapter is None and adapter_base(base):
        base, adapter = adapter_base(base), base
    dev, torch_dtype = pick_device_dtype(device, dtype)
    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch_dtype)
        processor_src = adapter if adapter and (Path(adapter) / "preprocessor_config.json").is_file() else base
        processor = AutoProcessor.from_pretrained(processor_src)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
            if merge:
                model = model.merge_and_unload()
    except OSError as err:
        raise BackendError(f"Cannot load the VLM {base!r}{f' with adapter {adapter!r}' if adapter else ''}: {err}. "
                           "Give a local folder or a hub name that is in the local cache (runs are offline).") from None
    model.to(dev).eval()
    log.info("loaded %s%s on %s (%s)", base, f" + {adapter}" if adapter else "", dev, torch_dtype)
    return model, processor


def chat_messages(prompt: str, image, history: list[tuple[str, str]] = ()) -> list[dict]:
    """The conversation as the chat template wants it: image + prompt first, then (role, text) turns."""
    first = {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}
    turns = [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in history]
    return [first, *turns]


def _inputs(model, processor, messages: list[dict]):
    batch = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                          return_tensors="pt")
    return batch.to(model.device)


def _gen_kwargs(processor, max_new_tokens: int) -> dict:
    tok = processor.tokenizer
    return {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>")}


def generate_text(model, processor, messages: list[dict], max_new_tokens: int = 512) -> str:
    """One greedy reply, special tokens removed."""
    import torch

    inputs = _inputs(model, processor, messages)
    with torch.inference_mode():
        out = model.generate(**inputs, **_gen_kwargs(processor, max_new_tokens))
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def stream_text(model, processor, messages: list[dict], max_new_tokens: int = 512) -> Iterator[str]:
    """Greedy generation in a worker thread; yields the reply text so far after each decoded piece."""
    import torch
    from transformers import TextIteratorStreamer

    inputs = _inputs(model, processor, messages)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, **_gen_kwargs(processor, max_new_tokens), streamer=streamer)
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
    """Qwen2.5-VL over the MMC map; the model is loaded once, on first use."""

    name = "vlm"

    def __init__(self, base: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 512):
        self.base, self.adapter = base, adapter
        self.device, self.dtype, self.max_new_tokens = device, dtype, max_new_tokens
        self._loaded = None
        self._lock = threading.Lock()

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
        yield from stream_text(model, processor, self._messages(request), self.max_new_tokens)

    def answer(self, request: ReasoningRequest) -> Answer:
        text = last(self.stream(request), "")
        parsed = parse_answer(text, request.emotion_options)
        sides = {s.code: s.side for s in request.evidence.scores}
        body = text.rsplit(parsed.conclusion, 1)[0].rstrip() if parsed.conclusion else text
        return Answer(aus=[AU(c, sides.get(c)) for c in parsed.aus], emotion=parsed.emotion, reasoning=body,
                      text=text, backends={"reasoner": self.name}, parse_status=parsed.status)

    def follow_up(self, conversation: Conversation, message: str) -> Iterator[str]:
        """The model sees the map, the first prompt, its first answer and every turn since."""
        history = [("assistant", conversation.answer.text)]
        history += [(t.role, t.content) for t in conversation.turns]
        history.append(("user", message))
        model, processor = self.model
        yield from stream_text(model, processor, self._messages(conversation.request, history), self.max_new_tokens)
