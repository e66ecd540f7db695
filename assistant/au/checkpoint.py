"""Checkpoints as a folder: `model.safetensors` (tensors only) + `config.json`. Never pickle.

The generic pair `save_checkpoint` / `read_checkpoint` serves any AU model (Micro-AU CLIP too); `save_aullm` /
`load_aullm` add what AU-LLM needs: the backbone is stored by name or path and rebuilt with `from_pretrained`
(the path a real Qwen2 checkpoint takes), and only the trained tensors are stored, not the frozen LLM.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from assistant.config import resolved_setting
from assistant.errors import BackendError
from assistant.files import atomic_path
from assistant.motion.analyze import MOTION_CORE, motion_core_change

WEIGHTS = "model.safetensors"
CONFIG = "config.json"

log = logging.getLogger(__name__)


def save_checkpoint(state: dict[str, torch.Tensor], config: dict, out_dir: str | Path) -> Path:
    """Write tensors + JSON config into `out_dir` atomically (a temporary folder renamed into place). The config
    records the motion core the inputs were measured by (`warn_motion_core`)."""
    out = Path(out_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps({"motion_core": MOTION_CORE, **config}, indent=2))
    return out


def reads_motion(settings: dict) -> bool:
    """Whether a `meu train au` run with these settings (its run config) reads the motion core: Micro-AU CLIP and
    `rules` always, AU-LLM with the motion input or the region token (not its published frames alone)."""
    model = settings.get("model", "aullm")
    return model in ("microau_clip", "rules") or (model == "aullm" and (settings.get("input") == "motion"
                                                                        or bool(settings.get("regions"))))


def warn_motion_core(path: str | Path, config: dict) -> None:
    """A head whose training inputs another motion core measured still serves, on inputs that may differ a little
    from those it learned from: said once, when it is loaded."""
    change = motion_core_change(config.get("motion_core"))
    if change:
        log.warning("%s: its training input %s; it serves, but its inputs may differ a little from those it learned "
                    "from: train it again for the figures it was trained to give.", path, change)


def read_checkpoint(path: str | Path, head: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and config of a checkpoint folder; `head` names the config section the model needs. A folder cut
    short or edited by hand is one sentence, not a reader's traceback."""
    p = Path(path)
    if not (p / WEIGHTS).is_file() or not (p / CONFIG).is_file():
        raise BackendError(f"{p} is not a checkpoint folder: it needs {WEIGHTS} and {CONFIG}.")
    try:
        state, config = load_file(str(p / WEIGHTS)), json.loads((p / CONFIG).read_text())
    except (SafetensorError, ValueError, OSError) as err:  # a cut-off file, JSON that is not JSON
        raise BackendError(f"{p} is not a readable checkpoint ({type(err).__name__}: {err}); train it again, or give "
                           "another folder.") from None
    if not isinstance(config, dict):
        raise BackendError(f"{p / CONFIG} is not a checkpoint's config: it holds no mapping.")
    # the head section only for a checkpoint of that model: another model's is refused by name by its loader
    needed = ("model", "backbone", "thresholds", *((head,) if head and config.get("model") == head else ()))
    missing = [k for k in needed if k not in config]
    if missing:
        raise BackendError(f"{p / CONFIG} is not a checkpoint's config: it lacks {', '.join(missing)}.")
    return state, config


def check_thresholds(path: str | Path, config: dict, aus: tuple) -> None:
    """One stored threshold per AU the head scores, each a probability."""
    thresholds = config["thresholds"]
    if (not isinstance(thresholds, list) or len(thresholds) != len(aus)
            or not all(isinstance(t, (int, float)) and 0 <= t <= 1 for t in thresholds)):
        raise BackendError(f"{Path(path) / CONFIG} holds thresholds {thresholds!r}, not one probability for each of "
                           f"its {len(aus)} AUs.")


def head_config(path: str | Path, make, values: dict):
    """A head's config from its checkpoint section: a key this version does not know is said, not a TypeError."""
    try:
        return make(values)
    except (TypeError, KeyError, ValueError) as err:
        raise BackendError(f"{Path(path) / CONFIG} holds a head config this version cannot read ({err}); it may "
                           "come from another version of the project.") from None


def load_backbone(name_or_path: str):
    """The LLM (base model, hidden states out) and its tokenizer, through `from_pretrained`."""
    from transformers import AutoModel, AutoTokenizer

    try:
        return AutoModel.from_pretrained(name_or_path), AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:  # a missing folder or hub name; a folder that holds no such model
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
    config = {"model": "aullm", "backbone": resolved_setting(str(backbone)), "aullm": model.config.to_dict(),
              "thresholds": thresholds or [0.5] * len(model.config.aus), **(extra or {})}
    return save_checkpoint(model.trainable_state_dict(), config, out_dir)


def load_aullm(path: str | Path):
    """(model in eval mode, tokenizer, config dict) from a folder written by `save_aullm`."""
    from assistant.au.aullm import AULLMConfig

    state, config = read_checkpoint(path, "aullm")
    if config.get("model") != "aullm":
        raise BackendError(f"{path} holds a {config.get('model')!r} checkpoint, not an AU-LLM one.")
    head = head_config(path, AULLMConfig.from_dict, config["aullm"])
    check_thresholds(path, config, head.aus)
    model, tokenizer = build_aullm(config["backbone"], head)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("llm.") or "lora_" in k]
    if missing or unexpected:
        raise BackendError(f"Checkpoint {path} does not match its config: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}.")
    return model.eval(), tokenizer, config
