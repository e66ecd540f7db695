"""How the VLM generates, decided here once for serving, evaluation and training-time evaluation.

The checkpoint's `generation_config.json` (Qwen2.5-VL-7B-Instruct) samples at temperature 1e-6 with
`repetition_penalty` 1.05 and stops at `<|im_end|>` (151645) or `<|endoftext|>` (151643). `generate()` fills every
setting a caller leaves unset from that file, so each one is set here on purpose:

- **Greedy** (`do_sample=False`): an evaluation must give the same answer twice, and batched answers must equal
  unbatched ones. Sampling at temperature 1e-6 is greedy in intent but goes through the sampling path (random
  draws on near-ties, top-k/top-p filters); the sampling fields are set neutral so none leaks in.
- **Both stop ids**, read from the tokenizer by name: `<|im_end|>` ends a chat turn, `<|endoftext|>` ends a
  document; a model that emits the second must stop there too, not run on to `max_new_tokens`.
- **No repetition penalty** (1.0) by default: transformers applies it to every token already in the sequence,
  prompt included, and the prompt lists the emotion options and the AU legend that the answer's conclusion line must
  repeat (`assistant.parse` reads it); the fine-tuned model learned its answers without a penalty. It is a setting
  (`--vlm-repetition-penalty`, `--repetition-penalty`) for zero-shot runs of the base model with Qwen's 1.05; every
  run writes the value it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    stop_tokens: tuple[str, ...] = STOP_TOKENS

    def stop_ids(self, tokenizer) -> list[int]:
        """The stop tokens' ids in this tokenizer; a token it lacks is left out (never an unknown-token id)."""
        ids = []
        for token in self.stop_tokens:
            i = tokenizer.convert_tokens_to_ids(token)
            if i is not None and i != tokenizer.unk_token_id and i not in ids:
                ids.append(int(i))
        return ids

    def generation_config(self, tokenizer):
        """A complete `GenerationConfig`: nothing left for `generate()` to take from the checkpoint's file."""
        stops = self.stop_ids(tokenizer)
        return self.config_for_ids(stops, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0])

    def config_for_ids(self, stop_ids: list[int], pad_token_id: int):
        from transformers import GenerationConfig

        return GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=self.repetition_penalty,
                                eos_token_id=list(stop_ids), pad_token_id=pad_token_id)

    def record(self, tokenizer=None) -> dict:
        """What a run writes into its settings and model card (with the resolved stop ids when a tokenizer is given)."""
        out = {"do_sample": False, **asdict(self), "stop_tokens": list(self.stop_tokens)}
        if tokenizer is not None:
            out["stop_ids"] = self.stop_ids(tokenizer)
        return out


def settings_of(value: GenerationSettings | int) -> GenerationSettings:
    """Settings from settings or from a bare `max_new_tokens`."""
    return value if isinstance(value, GenerationSettings) else GenerationSettings(max_new_tokens=int(value))


DEFAULT_GENERATION = GenerationSettings()
