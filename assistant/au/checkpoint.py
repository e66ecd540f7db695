"""Checkpoints as a folder: `model.safetensors` (tensors only) + `config.json`. Never pickle.

The generic pair `save_checkpoint` / `read_checkpoint` serves any AU model (Micro-AU CLIP too); `save_aullm` /
`load_aullm` add what AU-LLM needs: the backbone is stored by name or path and rebuilt with `from_pretrained`
(the path a real Qwen2 checkpoint takes), and only the trained tensors are stored, not the frozen LLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from assistant.errors import BackendError
from assistant.files import atomic_path

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(state: dict[str, torch.Tensor], config: dict, out_dir: str | Path) -> Path:
    """Write tensors + JSON config into `out_dir` atomically (a temporary folder renamed into place)."""
    out = Path(out_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
    return out


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    p = Path(path)
    if not (p / WEIGHTS).is_file() or not (p / CONFIG).is_file():
        raise BackendError(f"{p} is not a checkpoint folder: it needs {WEIGHTS} and {CONFIG}.")
    return load_file(str(p / WEIGHTS)), json.loads((p / CONFIG).read_text())


def load_backbone(name_or_path: str):
    """The LLM (base model, hidden states out) and its tokenizer, through `from_pretrained`."""
    from transformers import AutoModel, AutoTokenizer

    try:
        return AutoModel.from_pretrained(name_or_path), AutoTokenizer.from_pretrained(name_or_path)
    except OSError as err:
        raise BackendError(f"Cannot load the LLM backbone {name_or_path!r}: {err}. Give a local folder or a "
                           "model name that is in the Hugging Face cache (this machine is offline).") from None


def build_aullm(backbone: str, config, prior=None):
    """A fresh AU-LLM over `backbone`; returns (model, tokenizer)."""
    from assistant.au.aullm import AULLM
    from assistant.au.prompt import encode_prompt

    llm, tokenizer = load_backbone(backbone)
    return AULLM(llm, encode_prompt(tokenizer, config.aus, config.graph, config.regions), config, prior), tokenizer


def save_aullm(model, backbone: str, out_dir: str | Path, thresholds: list[float] | None = None,
               extra: dict | None = None) -> Path:
    config = {"model": "aullm", "backbone": str(backbone), "aullm": model.config.to_dict(),
              "thresholds": thresholds or [0.5] * len(model.config.aus), **(extra or {})}
    return save_checkpoint(model.trainable_state_dict(), config, out_dir)


def load_aullm(path: str | Path):
    """(model in eval mode, tokenizer, config dict) from a folder written by `save_aullm`."""
    from assistant.au.aullm import AULLMConfig

    state, config = read_checkpoint(path)
    if config.get("model") != "aullm":
        raise BackendError(f"{path} holds a {config.get('model')!r} checkpoint, not an AU-LLM one.")
    model, tokenizer = build_aullm(config["backbone"], AULLMConfig.from_dict(config["aullm"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("llm.") or "lora_" in k]
    if missing or unexpected:
        raise BackendError(f"Checkpoint {path} does not match its config: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}.")
    return model.eval(), tokenizer, config
