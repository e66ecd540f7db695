"""The VLM paths a real checkpoint takes, checked against Qwen2.5-VL-7B-Instruct's own configuration files.

A tiny random model is built from ../shared/reference/qwen2_5_vl_7b_instruct (the real chat template, tokenizer
settings, preprocessor and generation configs; config.json shrunk; a vocabulary trained here with the special tokens
at their real ids), so the pixel budget, the processor saved with an adapter, TRL's template swap and the two stop
ids are exercised as they are with the 7B checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from assistant.reasoners.generation import GenerationSettings
from assistant.reasoners.vlm import chat_messages, generate_ids, load_vlm
from finetune.tiny_vlm import build_tiny_vlm_from_reference, tiny_sft_rows
from finetune.vlm import VLMTrainConfig, load_model_and_processor, train

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "qwen2_5_vl_7b_instruct"
BUDGET = 448 * 448  # configs/vlm_mellm.yaml's max_pixels: a 1024 x 1024 map -> 16 x 16 merged patches


def image_tokens(processor, size: int = 1024) -> int:
    messages = chat_messages("Describe the map.", Image.new("RGB", (size, size), (120, 60, 200)))
    batch = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                          return_tensors="pt")
    return int((batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory):
    if not (REFERENCE / "config.json").is_file():
        pytest.fail(f"The reference configuration {REFERENCE} is missing: these tests need the shared/ folder beside "
                    "the repository (../shared/reference/qwen2_5_vl_7b_instruct with the checkpoint's five files).")
    return build_tiny_vlm_from_reference(tmp_path_factory.mktemp("ref") / "base", REFERENCE)


@pytest.fixture(scope="module")
def trained(reference_model, tmp_path_factory):
    cfg = VLMTrainConfig(model_name_or_path=str(reference_model), output_dir=str(tmp_path_factory.mktemp("ref_out")),
                         lora_r=4, lora_alpha=4, lora_dropout=0.0, max_steps=2, warmup_steps=0,
                         per_device_train_batch_size=2, gradient_accumulation_steps=1, val_subjects=0,
                         min_pixels=56 * 56, max_pixels=BUDGET, precision="fp32", logging_steps=1, save_steps=2,
                         gradient_checkpointing=False)
    return cfg, train(cfg, rows=tiny_sft_rows(4, seed=0))


def test_the_reference_build_keeps_the_real_ids_and_budget(reference_model):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(reference_model)
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|image_pad|>"]) == [151643, 151645, 151655]
    assert json.loads((reference_model / "config.json").read_text())["text_config"]["vocab_size"] == 152064
    assert image_tokens(processor) == 37 * 37  # the checkpoint's own 12.8 MP budget keeps 1036 x 1036


def test_pixel_budget_overrides_the_checkpoint_config(reference_model):
    cfg = VLMTrainConfig(model_name_or_path=str(reference_model), min_pixels=56 * 56, max_pixels=BUDGET,
                         precision="fp32")
    _, processor = load_model_and_processor(cfg)
    assert image_tokens(processor) == 256
    assert image_tokens(processor, 64) == 4  # small maps grow to whole 28 px units, not to the budget


def test_serving_uses_the_adapters_processor(trained):
    cfg, result = trained
    out = result.output_dir
    assert (out / "processor_config.json").is_file() or (out / "preprocessor_config.json").is_file()
    trained_count = image_tokens(result.trainer.processing_class)
    _, served = load_vlm(str(out))
    assert trained_count == image_tokens(served) == 256


def test_label_mask_with_the_real_template(trained):
    """TRL recognises the checkpoint's template and swaps in its training template: the loss covers exactly the
    answer, its `<|im_end|>` and the newline after it."""
    _, result = trained
    trainer = result.trainer
    rows = tiny_sft_rows(2, seed=5)
    batch = trainer.data_collator([{"messages": r["messages"], "images": r["images"]} for r in rows])
    tok = trainer.processing_class.tokenizer
    for i, row in enumerate(rows):
        labels = batch["labels"][i]
        kept = labels[labels != -100]
        assert tok.decode(kept) == row["messages"][-1]["content"] + "<|im_end|>\n"
        pos = (labels != -100).nonzero().flatten()
        assert pos[-1] - pos[0] + 1 == len(pos)
        assert int(batch["attention_mask"][i].sum()) == pos[-1] + 1


def test_generation_settings_are_written_to_settings_and_card(trained):
    _, result = trained
    out = result.output_dir
    generation = json.loads((out / "train_config.json").read_text())["generation"]
    assert generation == {"do_sample": False, "max_new_tokens": 512, "repetition_penalty": 1.0,
                          "stop_tokens": ["<|im_end|>", "<|endoftext|>"], "stop_ids": [151645, 151643]}
    card = (out / "README.md").read_text()
    assert "- stop_ids: [151645, 151643]" in card and "- repetition_penalty: 1.0" in card
    assert "- do_sample: False" in card


def _prompt(processor, seed: int = 1):
    row = tiny_sft_rows(1, seed=seed)[0]
    messages = chat_messages(row["messages"][0]["content"], row["images"][0])
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt"), messages


def test_generation_is_greedy_without_the_checkpoints_penalty(reference_model):
    """The checkpoint's generation_config.json samples with repetition_penalty 1.05; our settings leave the model's
    logits untouched (greedy: the chosen token is the raw argmax at every step)."""
    model, processor = load_vlm(str(reference_model))
    assert model.generation_config.repetition_penalty == 1.05 and model.generation_config.do_sample
    inputs, _ = _prompt(processor)
    config = GenerationSettings(max_new_tokens=6).generation_config(processor.tokenizer)
    config.update(output_scores=True, output_logits=True, return_dict_in_generate=True)
    with torch.inference_mode():
        ours = model.generate(**inputs, generation_config=config)
        checkpoint = model.generate(**inputs, max_new_tokens=6, output_scores=True, output_logits=True,
                                    return_dict_in_generate=True)
    for score, logit in zip(ours.scores, ours.logits):
        assert torch.equal(score, logit)
    new = ours.sequences[0, inputs["input_ids"].shape[1]:]
    assert new.tolist() == [int(logit[0].argmax()) for logit in ours.logits]
    # the file's settings would have changed the scores (the penalty divides the prompt's tokens' logits)
    assert any(not torch.equal(s, lg) for s, lg in zip(checkpoint.scores, checkpoint.logits))


def test_generation_stops_at_either_stop_id(reference_model):
    model, processor = load_vlm(str(reference_model))
    tok = processor.tokenizer
    assert GenerationSettings().stop_ids(tok) == [151645, 151643]
    inputs, messages = _prompt(processor)
    with torch.no_grad():
        first = int(model(**inputs).logits[0, -1].argmax())
        head = model.lm_head.weight
        head[151643] = head[first] * 10  # <|endoftext|> now wins the first step by far
    assert generate_ids(model, processor, [messages], GenerationSettings(max_new_tokens=5)) == [[151643]]
    only_im_end = GenerationSettings(max_new_tokens=5, stop_tokens=("<|im_end|>",))
    assert len(generate_ids(model, processor, [messages], only_im_end)[0]) > 1


def test_the_tiny_models_own_template_lays_out_a_chat_as_the_real_one():
    """The template written for the tiny model (the build that has no reference to copy) trimmed the newline after
    each role and each `<|im_end|>`: training on it taught another layout than Qwen2.5-VL's."""
    import tempfile

    from transformers import AutoProcessor

    from finetune.tiny_vlm import build_tiny_vlm

    real = json.loads((REFERENCE / "chat_template.json").read_text())["chat_template"]
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_vlm(Path(folder) / "tiny")
        processor = AutoProcessor.from_pretrained(Path(folder) / "tiny")
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which AUs?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "AUs: AU12; Micro-expression: happiness"}]}]
    for messages, prompt in ((chat, False), (chat[:1], True),
                             ([{"role": "system", "content": "Be brief."}, *chat], False)):
        ours = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        assert ours == processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                                     chat_template=real), ours
