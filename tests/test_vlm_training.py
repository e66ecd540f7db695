"""The MELLM recipe end to end on a tiny random Qwen2.5-VL and synthetic rows (CPU, offline).

One training run (12 steps, evaluation every 6) is shared by the tests below; a second run resumes it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from assistant.reasoners.vlm import chat_messages, generate_text, load_vlm
from finetune.tiny_vlm import build_tiny_vlm, tiny_sft_rows
from finetune.vlm import TINY_OVERRIDES, VLMTrainConfig, main, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    base = build_tiny_vlm(root / "base")
    cfg = VLMTrainConfig(**{**TINY_OVERRIDES, "model_name_or_path": str(base), "output_dir": str(root / "out"),
                            "tiny": True, "resume": True})
    result = train(cfg, rows=tiny_sft_rows(24, seed=0))
    return cfg, result


def _losses(result):
    return [h["loss"] for h in result.trainer.state.log_history if "loss" in h]


def test_training_lowers_the_loss(run):
    _, result = run
    losses = _losses(result)
    assert result.global_step == 12 and len(losses) >= 10
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses


def test_only_lora_parameters_change(run):
    cfg, result = run
    from transformers import AutoModelForImageTextToText

    before = dict(AutoModelForImageTextToText.from_pretrained(cfg.model_name_or_path).named_parameters())
    changed_lora, checked = [], 0
    for name, p in result.trainer.model.named_parameters():
        if "lora_" in name:
            if "lora_B" in name and p.detach().abs().sum() > 0:  # B starts at zero: non-zero means it was trained
                changed_lora.append(name)
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(p.detach().cpu(), before[key].detach()), f"{key} changed"
        assert not p.requires_grad, f"{key} is trainable"
        checked += 1
    assert checked == len(before)
    assert any("language_model" in n for n in changed_lora) and any("visual" in n for n in changed_lora)


def test_label_mask_covers_assistant_tokens_only(run):
    _, result = run
    trainer = result.trainer
    rows = tiny_sft_rows(2, seed=5)
    batch = trainer.data_collator([{"messages": r["messages"], "images": r["images"]} for r in rows])
    tok = trainer.processing_class.tokenizer
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    for i, row in enumerate(rows):
        labels = batch["labels"][i]
        kept = labels[labels != -100]
        assert tok.decode(kept) == row["messages"][-1]["content"] + "<|im_end|>\n"
        assert image_pad not in kept.tolist()
        # the kept tokens are one contiguous span at the end of the real (unpadded) sequence
        pos = (labels != -100).nonzero().flatten()
        assert pos[-1] - pos[0] + 1 == len(pos)
        assert pos[-1] + 1 <= int(batch["attention_mask"][i].sum()) <= pos[-1] + 2


def test_generation_metrics_are_logged_and_card_written(run):
    cfg, result = run
    evals = [h for h in result.trainer.state.log_history if "eval_uf1" in h]
    assert [h["step"] for h in evals][:2] == [6, 12]
    for h in evals:
        assert 0.0 <= h["eval_uf1"] <= 1 and 0.0 <= h["eval_uar"] <= 1 and 0.0 <= h["eval_accuracy"] <= 1
        assert h["eval_generated"] >= 1
    out = result.output_dir
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "preprocessor_config.json").is_file() or (out / "processor_config.json").is_file()
    card = (out / "README.md").read_text()
    assert cfg.model_name_or_path in card and "eval_uf1" in card and "Synthetic" in card
    assert json.loads((out / "train_config.json").read_text())["lora_r"] == cfg.lora_r
    import dataclasses

    from finetune.vlm import parse  # the run's own record trains it again (its "generation" entry is not a setting)

    again, _ = parse(["--config", str(out / "train_config.json")])  # --tiny builds its tiny base again, seeded
    assert dataclasses.replace(again, model_name_or_path=cfg.model_name_or_path) == cfg


def _logits(model, processor, messages):
    batch = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                          return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[0, -1]


def test_adapter_reloads_unmerged_and_merged(run):
    cfg, result = run
    row = tiny_sft_rows(1, seed=9)[0]
    messages = chat_messages(row["messages"][0]["content"], row["images"][0])

    peft_model, processor = load_vlm(str(result.output_dir))  # adapter folder: base read from adapter_config
    from peft import PeftModel

    assert isinstance(peft_model, PeftModel)
    text = generate_text(peft_model, processor, messages, 8)
    assert isinstance(text, str)

    assert main(["--merge", "--tiny", "--output-dir", str(result.output_dir)]) == 0
    merged, _ = load_vlm(str(result.output_dir / "merged"))
    assert type(merged).__name__ == "Qwen2_5_VLForConditionalGeneration"
    base, _ = load_vlm(cfg.model_name_or_path)
    l_peft, l_merged, l_base = (_logits(m, processor, messages) for m in (peft_model, merged, base))
    assert torch.allclose(l_peft, l_merged, atol=1e-3)
    assert not torch.allclose(l_peft, l_base, atol=1e-2)  # the adapter really is applied
    assert generate_text(merged, processor, messages, 8) == text


def test_resume_continues_the_step_count(run):
    cfg, result = run
    more = dataclasses.replace(cfg, max_steps=15)  # a run is extended by resuming it with more steps
    resumed = train(more, rows=tiny_sft_rows(24, seed=0))
    assert resumed.global_step == 15
    steps = [h["step"] for h in resumed.trainer.state.log_history if "loss" in h]
    new = [s for s in steps if s > 12]
    assert new == [13, 14, 15]


def test_resuming_with_other_training_settings_is_refused(run):
    """A new learning rate used to be taken for the remaining steps without a word (a new LoRA rank stopped in a size
    mismatch), and a finished run rerun with other settings printed its old metrics with exit 0."""
    from assistant.errors import ConfigError

    cfg, _ = run
    for change, says in (({"learning_rate": 0.5}, "--learning-rate 0.02 -> 0.5"), ({"lora_r": 4}, "--lora-r 8 -> 4")):
        with pytest.raises(ConfigError, match=f"holds a run trained with other settings \\({says}\\)"):
            train(dataclasses.replace(cfg, **change), rows=tiny_sft_rows(24, seed=0))
    # the same settings over other rows (a --train-file rebuilt under its path) returned the old adapter silently
    with pytest.raises(ConfigError, match=r"^The rows given differ from those the run in .* was trained on \(a "
                                          r"rebuilt or edited file"):
        train(cfg, rows=tiny_sft_rows(24, seed=1))


@pytest.mark.parametrize("setting,says", [({"per_device_train_batch_size": 0}, "--per-device-train-batch-size 0 must "
                                           "be at least 1"), ({"lora_r": 0}, "--lora-r 0 must be at least 1"),
                                          ({"max_steps": 0}, "--max-steps 0 must be at least 1"),
                                          ({"max_pixels": 10}, "--max-pixels 10 must be at least --min-pixels 3136")])
def test_training_settings_out_of_range_are_one_sentence(setting, says):
    from assistant.errors import ConfigError

    with pytest.raises(ConfigError, match=says):
        VLMTrainConfig(**setting)


def test_a_local_base_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    """A relative --model-name-or-path went into the adapter as written, so the adapter could not be loaded from
    another folder (and the hub was asked for it, retried for about 50 s)."""
    (tmp_path / "base").mkdir()
    monkeypatch.chdir(tmp_path)
    assert VLMTrainConfig(model_name_or_path="base").model_name_or_path == str(tmp_path / "base")
    assert VLMTrainConfig(model_name_or_path="Qwen/Qwen2.5-VL-7B-Instruct").model_name_or_path == \
        "Qwen/Qwen2.5-VL-7B-Instruct"


def test_rows_built_in_another_scheme_are_refused(tmp_path):
    """DFME exports answer in 7 classes: scoring them against the default 5 would drop some held-out rows and count
    the rest against the wrong label set."""
    from assistant.errors import ConfigError

    rows = [{**r, "scheme": "7"} for r in tiny_sft_rows(4, seed=0, scheme="7")]
    cfg = VLMTrainConfig(model_name_or_path=str(tmp_path / "absent"), output_dir=str(tmp_path / "out"), scheme="5")
    with pytest.raises(ConfigError, match="--scheme 7"):
        train(cfg, rows=rows[:2], eval_rows=rows[2:])


def test_rerunning_a_finished_run_trains_no_further(run):
    """`resume` on a run that reached max_steps must leave the adapter alone (it used to add one step per rerun)."""
    cfg, _ = run
    out = cfg.output_dir
    from pathlib import Path

    before = sorted(p.name for p in Path(out).glob("checkpoint-*"))
    adapter = (Path(out) / "adapter_model.safetensors").read_bytes()
    again = train(cfg, rows=tiny_sft_rows(24, seed=0))
    assert sorted(p.name for p in Path(out).glob("checkpoint-*")) == before
    assert (Path(out) / "adapter_model.safetensors").read_bytes() == adapter
    assert again.global_step >= cfg.max_steps


def test_the_maps_motion_core_comes_from_the_build_and_goes_back_as_config(tmp_path, caplog):
    """An adapter records the motion core of the `meu data build` its rows came from; rows from elsewhere record
    nothing, a damaged build record is said, and the record given back as --config is not taken for a setting."""
    from finetune.vlm import maps_motion_core, parse

    build = tmp_path / "build"
    build.mkdir()
    assert maps_motion_core(None) == {} and maps_motion_core(str(build / "train.jsonl")) == {}
    (build / "build_settings.json").write_text(json.dumps({"motion_core": "2026-12-07", "flow": "tvl1"}))
    assert maps_motion_core(str(build / "train.jsonl")) == {"maps_motion_core": "2026-12-07"}
    (build / "build_settings.json").write_text(json.dumps({"flow": "tvl1"}))  # a build from before the record
    assert maps_motion_core(str(build / "train.jsonl")) == {"maps_motion_core": None}
    (build / "build_settings.json").write_text('{"motion_core": "2026-')
    assert maps_motion_core(str(build / "train.jsonl")) == {}
    assert "build_settings.json cannot be read; the adapter records no motion core" in caplog.text
    cfg = VLMTrainConfig(train_file=str(build / "train.jsonl"), output_dir=str(tmp_path / "out"))
    record = tmp_path / "train_config.json"
    record.write_text(json.dumps({**dataclasses.asdict(cfg), "generation": {}, "maps_motion_core": "2026-12-07"}))
    again, _ = parse(["--config", str(record)])
    assert again == cfg
