"""Qwen2.5-VL LoRA speed: tiny-model training steps/s and generation tokens/s on CPU; on a GPU, a real-size
config with random weights (3B or 7B shapes, no download): peak memory and step time for batch 1-4.

    .venv/bin/python benchmarks/vlm.py [--threads 2] [--steps 10] [--gpu-model 7b] [--batches 1 2 4]

The tiny figures measure the recipe's plumbing (collator, LoRA, checkpointing), not a real model's speed. Real-size
steps use the recipe's settings (LoRA r = alpha = 64 on LM + vision, gradient checkpointing, bf16, AdamW) on one
sample per batch item: the default pixel budget's image tokens plus `--text-tokens` text tokens.
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
from common import emit  # noqa: E402

from finetune.tiny_vlm import build_tiny_vlm, tiny_sft_rows  # noqa: E402
from finetune.vlm import VLMTrainConfig, lora_config  # noqa: E402

# Published Qwen2.5-VL shapes (config.json of the hub checkpoints), so no download is needed.
REAL_SHAPES = {
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4),
}
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


def tiny_figures(steps: int, gen_tokens: int) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from assistant.reasoners.vlm import chat_messages

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

        model.eval()
        messages = chat_messages(rows[0]["messages"][0]["content"], rows[0]["images"][0])
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")
        kw = dict(max_new_tokens=gen_tokens, min_new_tokens=gen_tokens, do_sample=False,
                  pad_token_id=processor.tokenizer.pad_token_id)
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=4, do_sample=False)
            t = time.perf_counter()
            out = model.generate(**inputs, **kw)
            gen_s = time.perf_counter() - t
        n_new = out.shape[1] - inputs["input_ids"].shape[1]
    return {
        "model": "tiny random Qwen2.5-VL (synthetic)", "parameters": sum(p.numel() for p in model.parameters()),
        "batch": 2, "sequence_tokens": int(batch["input_ids"].shape[1]),
        "train_steps_per_s": round(1 / train_s, 2), "train_step_s": round(train_s, 4),
        "generate_tokens": int(n_new), "generate_tokens_per_s": round(n_new / gen_s, 1),
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
    }


def real_size_figures(name: str, batches: list[int], steps: int, max_pixels: int, text_tokens: int,
                      shape: dict | None = None, vision: dict | None = None, device: str = "cuda") -> dict:
    """Random-weight Qwen2.5-VL of the real shapes on the GPU: one recipe training step per batch size.

    `shape`, `vision` and `device` let the same code be smoke-tested with small shapes on a CPU.
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    shape = shape or REAL_SHAPES[name]
    vision = vision or VISION
    cuda = device == "cuda"
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    config = Qwen2_5_VLConfig(
        text_config={**shape, "vocab_size": 152064, "max_position_embeddings": 32768,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0,
                                         "mrope_section": _mrope(head_dim)}},
        vision_config={**vision, "out_hidden_size": shape["hidden_size"]},
    )
    cfg = VLMTrainConfig()
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16 if cuda else None)
    model = _peft(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    side = int(max_pixels ** 0.5) // 28 * 28
    grid = side // 14
    n_image = grid * grid // 4
    results = {}
    for b in batches:
        ids = torch.randint(0, 150000, (b, text_tokens + n_image + 2), device=device)
        ids[:, 10] = config.vision_start_token_id
        ids[:, 11:11 + n_image] = config.image_token_id
        ids[:, 11 + n_image] = config.vision_end_token_id
        mm = (ids == config.image_token_id).int()
        labels = ids.clone()
        labels[:, :11 + n_image + text_tokens // 2] = -100  # prompt + image masked, as assistant-only loss does
        pixels = torch.randn(b * grid * grid, 3 * 2 * 14 * 14, device=device, dtype=model.dtype)
        thw = torch.tensor([[1, grid, grid]] * b, device=device)
        batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, pixel_values=pixels,
                     image_grid_thw=thw, mm_token_type_ids=mm)
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
        results[f"batch_{b}"] = {"sequence_tokens": int(ids.shape[1]),
                                 "step_s": round(sorted(times)[len(times) // 2], 3), "peak_memory_gib": peak}
    return {"model": f"Qwen2.5-VL-{name.upper()} shapes, random weights", "parameters": total,
            "trainable_lora": trainable, "image_tokens": n_image, "image_side_px": side, **results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--gpu-model", nargs="+", default=["7b"], choices=list(REAL_SHAPES))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--gpu-steps", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=700)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"tiny_cpu": tiny_figures(args.steps, args.gen_tokens),
               "load_average_1min": round(os.getloadavg()[0], 2)}  # other jobs on the cores slow every figure
    if torch.cuda.is_available():
        for name in args.gpu_model:
            figures[f"gpu_{name}"] = real_size_figures(name, args.batches, args.gpu_steps,
                                                       VLMTrainConfig().max_pixels, args.text_tokens)
            torch.cuda.empty_cache()
    emit("vlm", figures)


if __name__ == "__main__":
    main()
