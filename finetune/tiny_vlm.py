"""A tiny random Qwen2.5-VL, built offline, saved to a folder and loaded back through `from_pretrained`.

Tests, the `--tiny` recipe and the benchmark use it in place of the 7B checkpoint: same classes, same processor
and chat-template path, so what works here works on the real model. Built from scratch: a byte-level BPE
tokenizer trained on the project's own prompt texts with Qwen's special tokens, the Qwen2.5-VL image processor
from defaults with a small pixel budget, and a config whose sizes respect the model's constraints
(`mrope_section` sums to head_dim / 2, vision `out_hidden_size` equals the text hidden size, token ids
are the tokenizer's).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from assistant.emotions import AU_EMOTION_RULES, SCHEME_CLASSES, EmotionRule
from assistant.errors import MEUError
from assistant.facs import FACS
from assistant.files import atomic_path
from assistant.prompts import build_task_prompt, format_conclusion

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2.5-VL chat layout (a newline after each role and each `<|im_end|>`: the tags after them do not trim it), written
# for this project, with `{% generation %}` markers around each assistant turn
# (its closing `<|im_end|>\n` included, so the model learns to stop) for TRL's assistant-only loss: the same span
# TRL's training template marks for the real checkpoint's template.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif -%}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' -%}{% generation %}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n{% endgeneration %}"
    "{%- else -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set image_count.value = image_count.value + 1 -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' or 'video' in part -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n"
    "{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{% endif -%}"
)

TINY_PIXELS = 56 * 56  # each image becomes 4 x 4 patches of 14 px -> 4 merged vision tokens
SUBJECTS = ("s01", "s02", "s03", "s04", "s05", "s06")


def _corpus() -> list[str]:
    """The texts the tiny tokenizer learns from: the real prompts, conclusions and answer phrasing."""
    emotions = sorted({e for classes in SCHEME_CLASSES.values() for e in classes} | {"others"})
    texts = []
    for lang in ("en", "zh"):
        for classes in SCHEME_CLASSES.values():
            texts.append(build_task_prompt(lang, classes))
        for e in emotions:
            texts.append(format_conclusion([1, 2, 4, 6, 7, 12, 14, 15, 17], e, lang))
    texts += [f"AU{au.code} {au.name}: {au.description}" for au in FACS.values()]
    texts += [rule.why for rule in AU_EMOTION_RULES]
    texts += [_answer(rule) for rule in AU_EMOTION_RULES]
    texts.append(DEFAULT_SYSTEM)
    return texts


def train_tokenizer(vocab_size: int = 1200):
    """Byte-level BPE over `_corpus()` with Qwen's special tokens, wrapped as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus() * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[3:]), chat_template=CHAT_TEMPLATE,
        model_max_length=4096, padding_side="right",
    )


def tiny_config(tokenizer, hidden: int = 64, layers: int = 2, vision_hidden: int = 32, vision_depth: int = 2,
                init_std: float = 0.2):
    """`init_std` is large on purpose: with 0.02 a 64-wide random model's logits are nearly uniform and a few LoRA
    steps cannot move them, so tests could not see the loss fall."""
    from transformers import Qwen2_5_VLConfig

    heads = 4
    head_dim = hidden // heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # temporal, height, width: sums to head_dim / 2
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "max_window_layers": layers,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
            "bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"), "initializer_range": init_std,
        },
        vision_config={
            "depth": vision_depth, "hidden_size": vision_hidden, "intermediate_size": vision_hidden * 2,
            "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 56, "out_hidden_size": hidden, "fullatt_block_indexes": [vision_depth - 1],
            "initializer_range": init_std,
        },
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )


def build_processor(tokenizer, max_pixels: int = TINY_PIXELS, min_pixels: int = TINY_PIXELS):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                               tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(size=size),
                               chat_template=CHAT_TEMPLATE)


def build_tiny_vlm(out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a tiny random Qwen2.5-VL (weights, config, processor, tokenizer) to `out_dir`; returns it."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    if out.exists():
        raise MEUError(f"{out} exists but holds no complete tiny model; remove it and build again.")
    torch.manual_seed(seed)
    tokenizer = train_tokenizer()
    model = Qwen2_5_VLForConditionalGeneration(tiny_config(tokenizer, hidden=hidden, layers=layers))
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        build_processor(tokenizer).save_pretrained(tmp)
    log.info("tiny Qwen2.5-VL written to %s (%d parameters)", out, sum(p.numel() for p in model.parameters()))
    return out


# The real checkpoint's files a reference build copies unchanged (config.json is shrunk, the vocabulary is trained).
REFERENCE_FILES = ("chat_template.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json")


def _reference_tokenizer_json(reference: Path, vocab_size: int = 1200) -> dict:
    """A byte-level BPE trained on `_corpus()`, padded with unused entries so that the reference's special tokens
    keep their real ids (`<|endoftext|>` 151643, `<|im_end|>` 151645, `<|image_pad|>` 151655, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = {int(k): v for k, v in json.loads((reference / "tokenizer_config.json").read_text())[
        "added_tokens_decoder"].items()}
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus() * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), min(specials))})
    data["added_tokens"] = [{"id": i, "content": t["content"], "single_word": t["single_word"], "lstrip": t["lstrip"],
                             "rstrip": t["rstrip"], "normalized": t["normalized"], "special": t["special"]}
                            for i, t in sorted(specials.items())]
    return data


def _shrunk_config(reference: Path, hidden: int, layers: int, vision_hidden: int, vision_depth: int,
                   init_std: float) -> dict:
    """The reference config.json with tiny sizes; token ids, vocabulary size and layout kept."""
    cfg = json.loads((reference / "config.json").read_text())
    heads = 4
    half = hidden // heads // 2
    cfg.update(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers, num_attention_heads=heads,
               num_key_value_heads=2, max_window_layers=layers, initializer_range=init_std)
    if "rope_scaling" in cfg:  # [16, 24, 24] of head_dim 128 scaled to this head_dim
        cfg["rope_scaling"]["mrope_section"] = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]
    cfg["vision_config"].update(depth=vision_depth, hidden_size=vision_hidden, intermediate_size=vision_hidden * 2,
                                num_heads=2, out_hidden_size=hidden, fullatt_block_indexes=[vision_depth - 1],
                                initializer_range=init_std)
    return cfg


def build_tiny_vlm_from_reference(out_dir: str | Path, reference: str | Path, seed: int = 0, hidden: int = 64,
                                  layers: int = 2) -> Path:
    """A tiny random model in a real checkpoint's clothes: its chat template, tokenizer settings, processor and
    generation configs copied from `reference` (a folder such as ../shared/reference/qwen2_5_vl_7b_instruct), its
    config.json shrunk, a vocabulary trained here with the special tokens at their real ids. Loading it takes every
    path the real checkpoint takes (`min_pixels` / `max_pixels` keys, TRL's template swap, two stop ids)."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    ref, out = Path(reference), Path(out_dir)
    missing = [f for f in ("config.json", *REFERENCE_FILES) if not (ref / f).is_file()]
    if missing:
        raise MEUError(f"{ref} lacks {', '.join(missing)}; it should hold a Qwen2.5-VL checkpoint's configuration.")
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    if out.exists():
        raise MEUError(f"{out} exists but holds no complete tiny model; remove it and build again.")
    torch.manual_seed(seed)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text(json.dumps(_shrunk_config(ref, hidden, layers, 32, 2, 0.2)))
        model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(tmp))
        model.save_pretrained(tmp)
        for name in REFERENCE_FILES:  # after save_pretrained, which writes a generation_config.json of its own
            shutil.copyfile(ref / name, tmp / name)
        (tmp / "tokenizer.json").write_text(json.dumps(_reference_tokenizer_json(ref)))
    log.info("tiny Qwen2.5-VL with the configuration of %s written to %s", ref, out)
    return out


def _answer(rule: EmotionRule) -> str:
    """An explanatory (MEU) answer in the three-part shape the instruction data uses, ending in the conclusion."""
    names = ", ".join(f"AU{a} ({FACS[a].name if a in FACS else 'unknown'})" for a in rule.aus)
    return (f"1. Motion analysis: the coloured regions show the motion of {names}.\n"
            f"2. Expression reasoning: {rule.why}.\n{format_conclusion(rule.aus, rule.emotion)}")


def _map_image(emotion_index: int, rng: np.random.Generator, size: int = 56) -> Image.Image:
    """A synthetic stand-in for an MMC map: grey noise with a colour patch whose hue and place follow the label."""
    img = rng.integers(90, 140, size=(size, size, 1), dtype=np.uint8).repeat(3, axis=2)
    hue = np.array([[255, 60, 60], [60, 255, 60], [60, 60, 255], [255, 255, 60], [255, 60, 255]])[emotion_index % 5]
    y = (emotion_index * 11) % (size - 16)
    img[y:y + 16, 8:size - 8] = hue
    return Image.fromarray(img)


def tiny_sft_rows(n: int, seed: int = 0, scheme: str = "5") -> list[dict]:
    """`n` synthetic rows in the TRL export format (`messages`, `images`) plus `subject`, `emotion`, `task`.

    Rows alternate between the explanatory task (MEU) and the bare label task (MER), as the MELLM mix does.
    """
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    classes = SCHEME_CLASSES[scheme]
    rules = [r for r in AU_EMOTION_RULES if r.emotion in classes]
    rows = []
    for i in range(n):
        rule = pick.choice(rules)
        task = "meu" if i % 2 == 0 else "mer"
        prompt = build_task_prompt("en", classes)
        answer = _answer(rule) if task == "meu" else format_conclusion(rule.aus, rule.emotion)
        rows.append({
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "images": [_map_image(classes.index(rule.emotion), rng)],
            "subject": SUBJECTS[i % len(SUBJECTS)], "emotion": rule.emotion, "aus": list(rule.aus), "task": task,
        })
    return rows
