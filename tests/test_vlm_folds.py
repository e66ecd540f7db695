"""Per-fold VLM adapters on a tiny composite: one `meu data build` over CASME II + SMIC layouts, `meu train vlm
--protocol cde` in two shards (one killed mid-fold and resumed at that fold), and `meu eval --vlm-run` answering each
clip with the adapter of the fold that held its subject out."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from assistant.errors import ConfigError
from assistant.motion.analyze import MOTION_CORE
from assistant.reasoners.vlm import load_vlm
from eval.run import main as evaluate
from finetune.vlm import VLMTrainConfig, _apply_tiny, read_jsonl
from finetune.vlm import main as train_vlm
from finetune.vlm_folds import fold_dir, train_folds
from instruction_data.build import main as build
from instruction_data.layouts import write_synthetic_dataset

FOLDS = ["casme2__sub01", "smic__s01"]


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    base = tmp_path_factory.mktemp("vlm_cde")
    roots = [str(write_synthetic_dataset(d, base / d, subjects=1, clips=2, n_frames=10, quirks=False))
             for d in ("casme2", "smic")]
    data = ["--dataset", "casme2,smic", "--root", ",".join(roots)]
    out = base / "build"
    assert build([*data, "--out", str(out), "--flow", "dis", "--mer-ratio", "0", "--hf", "false"]) == 0
    return data, out / "train.jsonl", base


def _config(train_file, out, **changes) -> VLMTrainConfig:
    cfg = VLMTrainConfig(train_file=str(train_file), output_dir=str(out), tiny=True, protocol="cde", val_subjects=0)
    cfg, _ = _apply_tiny(cfg, {"train_file", "output_dir", "protocol", "val_subjects"})
    return VLMTrainConfig(**{**cfg.__dict__, "max_steps": 2, "save_steps": 1, "eval_steps": 1, **changes})


def test_composite_build_qualifies_subjects(composite):
    _, train_file, _ = composite
    rows = read_jsonl(train_file)
    assert sorted({r["subject"] for r in rows}) == FOLDS
    assert {r["scheme"] for r in rows} == {"3"} and {r["task"] for r in rows if r["dataset"] == "smic"} == {"mer"}


def test_shards_resume_mid_fold_and_eval_uses_each_folds_adapter(composite, tmp_path, caplog):
    data, train_file, _ = composite
    out = tmp_path / "vlm"
    first = train_folds(_config(train_file, out, fold_shard="1/2"))
    assert list(first["folds"]) == FOLDS[:1] and first["folds_missing"] == FOLDS[1:]
    held = json.loads((fold_dir(out, FOLDS[0]) / "fold.json").read_text())
    # read from the training rows themselves: the held-out subject's rows never reached the trainer
    assert held["held_out"] == FOLDS[:1] and held["trained_on"] == FOLDS[1:]
    # the fold is killed after its first checkpoint: only checkpoint-1 is left, no adapter
    folder = fold_dir(out, FOLDS[0])
    shutil.rmtree(folder / "checkpoint-2")
    for name in ("adapter_config.json", "adapter_model.safetensors", "metrics.json", "fold.json"):
        (folder / name).unlink()
    with caplog.at_level(logging.INFO, logger="finetune.vlm"):
        again = train_folds(_config(train_file, out, fold_shard="1/2"))
    assert "resuming from" in caplog.text and "checkpoint-1" in caplog.text
    assert again["folds"][FOLDS[0]]["global_step"] == 2 and (folder / "adapter_config.json").is_file()
    with pytest.raises(ConfigError, match="no finished adapter"):  # the other shard has not run yet
        evaluate([*data, "--protocol", "cde", "--reasoner", "vlm", "--vlm-base", _config(train_file, out)
                  .model_name_or_path, "--vlm-run", str(out), "--out", str(tmp_path / "early"), "--flow", "dis",
                  "--progress", "false"])
    assert train_folds(_config(train_file, out, fold_shard="2/2"))["folds_missing"] == []
    result = tmp_path / "eval"
    assert evaluate([*data, "--protocol", "cde", "--reasoner", "vlm", "--vlm-base",
                     _config(train_file, out).model_name_or_path, "--vlm-run", str(out), "--out", str(result),
                     "--flow", "dis", "--progress", "false", "--vlm-max-new-tokens", "8"]) == 0
    rows = [json.loads(x) for x in (result / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] == "ok" and r["reasoner_fold"] == r["fold"] == r["subject"] for r in rows)
    assert all(r["reasoner_adapter"] == str(fold_dir(out, r["subject"])) for r in rows)
    assert {r["fold"] for r in rows} == set(FOLDS)
    assert "adapter trained without its subject" in (result / "report.md").read_text()
    # each adapter records the motion core that drew its maps (the build's); served by another one, it says so
    configs = {f: json.loads((fold_dir(out, f) / "train_config.json").read_text()) for f in FOLDS}
    assert {c["maps_motion_core"] for c in configs.values()} == {MOTION_CORE}
    assert f"Maps drawn by the motion core of {MOTION_CORE}" in (folder / "README.md").read_text()
    assert "the maps it was trained on" not in caplog.text
    configs[FOLDS[0]]["maps_motion_core"] = "2026-01-01"
    (folder / "train_config.json").write_text(json.dumps(configs[FOLDS[0]]))
    with caplog.at_level(logging.WARNING, logger="assistant.reasoners.vlm"):
        load_vlm(str(folder))
    assert f"{folder}: the maps it was trained on were drawn from motion that was measured by the motion core of " \
           "2026-01-01" in caplog.text
    # merged, the weights still say which motion core drew their maps (the warning comes once per version)
    assert train_vlm(["--merge", "--tiny", "--output-dir", str(folder)]) == 0
    merged = folder / "merged"
    assert json.loads((merged / "train_config.json").read_text()) == {"maps_motion_core": "2026-01-01"}
    (merged / "train_config.json").write_text(json.dumps({"maps_motion_core": "2026-01-02"}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assistant.reasoners.vlm"):
        load_vlm(str(merged))
        load_vlm(str(merged))
    assert caplog.text.count(f"{merged}: the maps it was trained on were drawn from motion that was measured by the "
                             "motion core of 2026-01-02") == 1
    other_base = tmp_path / "other_base"
    shutil.copytree(_config(train_file, out).model_name_or_path, other_base)
    with pytest.raises(ConfigError, match="was trained on"):
        evaluate([*data, "--protocol", "cde", "--reasoner", "vlm", "--vlm-base", str(other_base), "--vlm-run",
                  str(out), "--out", str(tmp_path / "other"), "--flow", "dis", "--progress", "false"])
    with pytest.raises(ConfigError, match="is an adapter folder"):
        evaluate([*data, "--protocol", "cde", "--reasoner", "vlm", "--vlm-base", str(folder), "--vlm-run", str(out),
                  "--out", str(tmp_path / "adapter"), "--flow", "dis", "--progress", "false"])


def test_fold_flags_need_a_protocol(tmp_path):
    with pytest.raises(ConfigError, match="add --protocol"):
        train_vlm(["--fold-shard", "1/2", "--output-dir", str(tmp_path)])


def test_cde_folds_need_a_composite_export(tmp_path):
    rows = [{"subject": "sub01", "messages": [], "images": []}, {"subject": "sub02", "messages": [], "images": []}]
    with pytest.raises(ConfigError, match="composite export"):
        train_folds(VLMTrainConfig(protocol="cde", output_dir=str(tmp_path)), rows)


def test_a_composite_build_refuses_another_scheme_or_dataset():
    from instruction_data.build import BuildConfig

    with pytest.raises(ConfigError, match="drop --scheme"):
        BuildConfig(dataset="casme2,smic", root="a,b", scheme="5")
    with pytest.raises(ConfigError, match="pools casme2, samm, smic"):
        BuildConfig(dataset="casme2,dfme", root="a,b")
    with pytest.raises(ConfigError, match="1 folder"):
        BuildConfig(dataset="casme2,smic", root="a")
