"""A tiny Qwen2-style LLM with a tokenizer trained on the spot, saved as a normal Hugging Face folder.

Tests and the benchmark cannot download Qwen2-1.5B; they build this instead and load it back with
`AutoModel.from_pretrained` / `AutoTokenizer.from_pretrained`, the same code path a real checkpoint takes.
"""

from __future__ import annotations

from pathlib import Path

from assistant.au.prompt import prompt_text
from assistant.facs import FACS


def _corpus() -> list[str]:
    lines = [f"AU{a.code} {a.name}: {a.description}." for a in FACS.values()]
    lines += [prompt_text(sorted(FACS)), prompt_text(sorted(FACS), graph=True)]
    return lines * 4


def build_tiny_llm(out_dir: str | Path, hidden_size: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                   vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a random tiny Qwen2 model + BPE tokenizer to `out_dir` (skipped when already there)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<|endoftext|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>",
                                        pad_token="<pad>")
    config = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
