"""A tiny CLIP built offline: tokenizer trained on the spot, random tiny weights, saved like a real checkpoint.

Tests and the benchmark cannot download `openai/clip-vit-base-patch32`, so they build this stand-in and load it
back through `CLIPModel.from_pretrained` / `AutoTokenizer.from_pretrained`, the same calls a real checkpoint takes.
The vision tower keeps the real geometry that matters to Micro-AU CLIP (224 px images, 32 px patches: a 7x7 grid).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

from assistant.au.au_sentences import all_sentences

BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"


def train_tokenizer(texts: list[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Lower-case BPE over `texts`, wrapping every sequence in start/end tokens as CLIP's tokenizer does.

    The end token is not id 2, so transformers pools text at the first end token (its modern CLIP path).
    """
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, UNK],
                                                       show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=EOS,
                                   model_max_length=32)


def tiny_clip_config(tokenizer: PreTrainedTokenizerFast, hidden: int = 32, layers: int = 4,
                     projection_dim: int = 32) -> CLIPConfig:
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers, num_attention_heads=2,
                  image_size=224, patch_size=32)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def build_tiny_clip(out_dir: str | Path, seed: int = 0, layers: int = 4) -> Path:
    """Write a tiny CLIP (model + tokenizer) to `out_dir` and return the folder."""
    out = Path(out_dir)
    tokenizer = train_tokenizer(all_sentences())
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config(tokenizer, layers=layers))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
