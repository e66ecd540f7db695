"""Qwen2.5-VL speed: tiny-model training steps/s and generated tokens/s at batch 1, 4, 8 on CPU; on a GPU, a
real-size config with random weights (3B or 7B shapes, no download): training step time and peak memory for batch
1-4, generated tokens/s at batch 1, 4, 8, and the time a DFME Test A + B evaluation (773 clips) would take.

    .venv/bin/python benchmarks/vlm.py [--threads 1] [--steps 10] [--gen-batches 1 4 8] [--gpu-model 3b 7b]

The tiny figures measure the recipe's plumbing (collator, LoRA, checkpointing, left-padded batched greedy
generation through `assistant.reasoners.vlm.generate_ids`), not a real model's speed. Real-size steps use the
recipe's settings (LoRA r = alpha = 64 on LM + vision, gradient checkpointing, bf16, AdamW) on one sample per batch
item: the default pixel budget's image tokens plus `--text-tokens` text tokens. Every generated row is forced to
`--gen-tokens` tokens (min_new_tokens), so tokens/s compare equal work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, int_at_least, positive_int, refuse_repeats, run_main  # noqa: E402

from assistant.reasoners.generation import GenerationSettings  # noqa: E402
from assistant.reasoners.vlm import chat_messages  # noqa: E402
from finetune.tiny_vlm import build_tiny_vlm, tiny_sft_rows  # noqa: E402
from finetune.vlm import VLMTrainConfig, lora_config  # noqa: E402

# Published Qwen2.5-VL shapes (config.json of the hub checkpoints), so no download is needed.
REAL_SHAPES = {
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4),
}
QWEN_STOP_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|> (random-weight models are built without a tokenizer)
VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
              temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31])


def _mrope(head_dim: int) -> list[int]:
    """Qwen2.5-VL's split of the rotary half-dimension into (time, height, width): [16, 24, 24] for head_dim 128."""
    half = head_dim // 2
    return [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]


def _peft(model, cfg: VLMTrainConfig):
    from peft import get_peft_model

    model = get_peft_model(model, lora_config(cfg))
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def tiny_figures(steps: int) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_vlm(Path(tmp) / "tiny")
        processor = AutoProcessor.from_pretrained(path)
        cfg = VLMTrainConfig(lora_r=8, lora_alpha=8, lora_dropout=0.0)
        model = _peft(AutoModelForImageTextToText.from_pretrained(path), cfg)
        rows = tiny_sft_rows(2, seed=0)
        collate = DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=True)
        batch = collate([{"messages": r["messages"], "images": r["images"]} for r in rows])
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()

        def step() -> None:
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

        step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        train_s = (time.perf_counter() - t) / steps

    return {
        "model": "tiny random Qwen2.5-VL (synthetic)", "parameters": sum(p.numel() for p in model.parameters()),
        "batch": 2, "sequence_tokens": int(batch["input_ids"].shape[1]),
        "train_steps_per_s": round(1 / train_s, 2), "train_step_s": round(train_s, 4),
    }


def _forced(settings: GenerationSettings, tokenizer):
    """The project's generation config (greedy, both stop ids) with every row forced to the full length."""
    config = settings.generation_config(tokenizer)
    config.min_new_tokens = settings.max_new_tokens
    return config


def _tokens_per_s(generate, batch: int, new_tokens: int, repeats: int) -> dict:
    generate(batch)  # warm-up: allocations, kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        generated = generate(batch)
        times.append(time.perf_counter() - t)
    s = sorted(times)[len(times) // 2]
    assert generated == batch * new_tokens, (generated, batch * new_tokens)
    return {"seconds": round(s, 3), "tokens": generated, "tokens_per_s": round(generated / s, 1)}


def tiny_generation(batches: list[int], new_tokens: int, repeats: int) -> dict:
    """Left-padded batched greedy generation on the tiny model: different prompts and maps per row."""
    from assistant.reasoners.vlm import _inputs, load_vlm

    with tempfile.TemporaryDirectory() as tmp:
        model, processor = load_vlm(str(build_tiny_vlm(Path(tmp) / "tiny")), device="cpu")
    rows = tiny_sft_rows(max(batches), seed=1)
    conversations = [chat_messages(r["messages"][0]["content"], r["images"][0]) for r in rows]
    config = _forced(GenerationSettings(max_new_tokens=new_tokens), processor.tokenizer)
    prepared = {b: _inputs(model, processor, conversations[:b]) for b in batches}  # preprocessing is not timed

    def generate(b: int) -> int:
        inputs = prepared[b]
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=config)
        return int(out[:, inputs["input_ids"].shape[1]:].numel())

    figures = {f"batch_{b}": _tokens_per_s(generate, b, new_tokens, repeats) for b in batches}
    one = figures.get("batch_1", {}).get("tokens_per_s")
    for b in batches:
        if one:
            figures[f"batch_{b}"]["speedup_vs_batch_1"] = round(figures[f"batch_{b}"]["tokens_per_s"] / one, 2)
    return {"model": "tiny random Qwen2.5-VL (synthetic)", "new_tokens_per_row": new_tokens, **figures}


def _real_model(name: str, shape: dict | None, vision: dict | None, device: str):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    shape = shape or REAL_SHAPES[name]
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    config = Qwen2_5_VLConfig(
        text_config={**shape, "vocab_size": 152064, "max_position_embeddings": 32768,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0,
                                         "mrope_section": _mrope(head_dim)}},
        vision_config={**(vision or VISION), "out_hidden_size": shape["hidden_size"]},
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16 if device == "cuda" else None)
    return model, config


def _image_prompt(config, model, batch: int, max_pixels: int, text_tokens: int, device: str) -> tuple[dict, int]:
    """Random prompts of the real layout: `text_tokens` text tokens around one map at the pixel budget."""
    side = int(max_pixels ** 0.5) // 28 * 28
    grid = side // 14
    n_image = grid * grid // 4
    ids = torch.randint(0, 150000, (batch, text_tokens + n_image + 2), device=device)
    ids[:, 10] = config.vision_start_token_id
    ids[:, 11:11 + n_image] = config.image_token_id
    ids[:, 11 + n_image] = config.vision_end_token_id
    pixels = torch.randn(batch * grid * grid, 3 * 2 * 14 * 14, device=device, dtype=model.dtype)
    thw = torch.tensor([[1, grid, grid]] * batch, device=device)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels, image_grid_thw=thw,
                mm_token_type_ids=(ids == config.image_token_id).int()), n_image


def real_size_figures(name: str, batches: list[int], steps: int, max_pixels: int, text_tokens: int,
                      shape: dict | None = None, vision: dict | None = None, device: str = "cuda") -> dict:
    """Random-weight Qwen2.5-VL of the real shapes on the GPU: one recipe training step per batch size.

    `shape`, `vision` and `device` let the same code be smoke-tested with small shapes on a CPU.
    """
    cuda = device == "cuda"
    model, config = _real_model(name, shape, vision, device)
    model = _peft(model, VLMTrainConfig())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    results, n_image = {}, 0
    for b in batches:
        batch, n_image = _image_prompt(config, model, b, max_pixels, text_tokens, device)
        labels = batch["input_ids"].clone()
        labels[:, :11 + n_image + text_tokens // 2] = -100  # prompt + image masked, as assistant-only loss does
        batch["labels"] = labels
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(steps + 1):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t)
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
        results[f"batch_{b}"] = {"sequence_tokens": int(batch["input_ids"].shape[1]),
                                 "step_s": round(sorted(times)[len(times) // 2], 3), "peak_memory_gib": peak}
    return {"model": f"Qwen2.5-VL-{name.upper()} shapes, random weights", "parameters": total,
            "trainable_lora": trainable, "image_tokens": n_image, "max_pixels": max_pixels, **results}


def real_size_generation(name: str, batches: list[int], new_tokens: int, max_pixels: int, text_tokens: int,
                         repeats: int = 1, clips: int = 773, answer_tokens: int = 400, shape: dict | None = None,
                         vision: dict | None = None, device: str = "cuda") -> dict:
    """Generated tokens/s of a random-weight real-shape model (KV cache, greedy, forced length) and the time a
    `clips`-clip evaluation with `answer_tokens`-token answers would take on one and on eight GPUs at that rate."""
    model, config = _real_model(name, shape, vision, device)
    model.eval()
    settings = GenerationSettings(max_new_tokens=new_tokens)
    gen = settings.config_for_ids(QWEN_STOP_IDS, QWEN_STOP_IDS[1])
    gen.min_new_tokens = new_tokens

    def generate(b: int) -> int:
        inputs, _ = _image_prompt(config, model, b, max_pixels, text_tokens, device)
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=gen)
        if device == "cuda":
            torch.cuda.synchronize()
        return int(out[:, inputs["input_ids"].shape[1]:].numel())

    figures = {f"batch_{b}": _tokens_per_s(generate, b, new_tokens, repeats) for b in batches}
    for b in batches:
        hours = clips * answer_tokens / figures[f"batch_{b}"]["tokens_per_s"] / 3600
        figures[f"batch_{b}"].update(dfme_hours_1_gpu=round(hours, 2), dfme_hours_8_gpus=round(hours / 8, 2))
    return {"model": f"Qwen2.5-VL-{name.upper()} shapes, random weights", "new_tokens_per_row": new_tokens,
            "prompt_tokens": text_tokens, "max_pixels": max_pixels,
            "estimate": f"{clips} clips x {answer_tokens} answer tokens / tokens_per_s (generation only; the motion "
                        "stage runs beside it in --workers processes)", **figures}


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--threads", type=positive_int, default=1,
                    help="torch threads (1: a tiny model gains nothing from a second thread, and on shared cores two "
                         "threads wait for each other)")
    ap.add_argument("--steps", type=positive_int, default=10, help="timed tiny-model training steps (default 10)")
    ap.add_argument("--gen-tokens", type=positive_int, default=64, help="tokens generated per row (forced)")
    ap.add_argument("--gen-batches", type=positive_int, nargs="+", default=[1, 4, 8],
                    help="generation batch sizes (default 1 4 8)")
    ap.add_argument("--gen-repeats", type=positive_int, default=3,
                    help="timed generations per batch size, the median reported (default 3)")
    ap.add_argument("--gpu-model", nargs="+", default=["3b", "7b"], choices=list(REAL_SHAPES),
                    help="real-size shapes measured on a GPU (default 3b 7b)")
    ap.add_argument("--batches", type=positive_int, nargs="+", default=[1, 2, 4],
                    help="training batch sizes on the GPU")
    ap.add_argument("--gpu-steps", type=positive_int, default=3, help="timed training steps per batch on the GPU")
    ap.add_argument("--gpu-gen-tokens", type=positive_int, default=128, help="tokens generated per row on the GPU")
    ap.add_argument("--text-tokens", type=int_at_least(10), default=700,
                    help="text tokens around the map in the GPU prompts (at least 10; default 700)")
    ap.add_argument("--skip-training", action="store_true", help="generation figures only")
    args = ap.parse_args(argv)
    for flag in ("--gen-batches", "--gpu-model", "--batches"):
        refuse_repeats(ap, flag, getattr(args, flag[2:].replace("-", "_")))
    torch.set_num_threads(args.threads)  # oversubscribed threads make tiny-model steps 30-50x slower
    figures = {"tiny_cpu_generation": tiny_generation(args.gen_batches, args.gen_tokens, args.gen_repeats)}
    if not args.skip_training:
        figures["tiny_cpu_training"] = tiny_figures(args.steps)
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other jobs on the cores slow every figure
    if torch.cuda.is_available():
        budget = VLMTrainConfig().max_pixels
        for name in args.gpu_model:
            if not args.skip_training:
                figures[f"gpu_{name}_training"] = real_size_figures(name, args.batches, args.gpu_steps, budget,
                                                                    args.text_tokens)
                torch.cuda.empty_cache()
            figures[f"gpu_{name}_generation"] = real_size_generation(name, args.gen_batches, args.gpu_gen_tokens,
                                                                     budget, args.text_tokens)
            torch.cuda.empty_cache()
    else:
        figures["gpu"] = "no GPU here: real-size figures not measured"
    emit("vlm", figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
