"""Smoke test of `meu train au` (LOSO) with the tiny LLM on a small synthetic CASME II-layout set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from _au_data import tiny_llm

from assistant.cli import main as meu
from assistant.errors import ConfigError
from eval.metrics import multilabel_scores
from instruction_data.layouts import write_synthetic_dataset
from instruction_data.loaders import load_dataset

AUS = [1, 2, 4, 7, 12, 14, 15, 17]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("casme2"), subjects=3, clips=2, n_frames=10)
    out = tmp_path_factory.mktemp("run") / "out"
    argv = ["train", "au", "--dataset", "casme2", "--root", str(data), "--protocol", "loso", "--out", str(out),
            "--backbone", str(tiny_llm(tmp_path_factory)), "--epochs", "1", "--batch-size", "4", "--lr", "1e-3",
            "--progress", "false", "--threshold-search", "true"]
    assert meu(argv) == 0
    return data, out, argv


def test_loso_outputs_and_no_subject_leak(run_dir):
    data, out, _ = run_dir
    records = [r for r in load_dataset("casme2", data).records if not r.aus.unknown]
    subjects = sorted({r.subject for r in records})
    folds = sorted(p.name for p in (out / "folds").iterdir())
    assert folds == subjects
    for fold in folds:
        info = json.loads((out / "folds" / fold / "thresholds.json").read_text())
        assert info["n_train"] + info["n_val"] == sum(r.subject != fold for r in records)
        with open(out / "folds" / fold / "predictions.csv") as fh:
            assert {row["subject"] for row in csv.DictReader(fh)} == {fold}  # a fold tests its own subject only
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["key"] for r in rows) == sorted(r.key for r in records)  # every clip once, pooled
    true = np.array([[int(r[f"true_AU{a}"]) for a in AUS] for r in rows])
    pred = np.array([[int(r[f"pred_AU{a}"]) for a in AUS] for r in rows])
    by_key = {r.key: r for r in records}
    assert all(true[i, j] == (a in by_key[r["key"]].aus.codes) for i, r in enumerate(rows) for j, a in enumerate(AUS))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pooled"]["mean_f1"] == pytest.approx(multilabel_scores(true, pred, AUS).mean_f1)
    assert set(metrics["per_fold"]) == set(subjects) and metrics["n_clips"] == len(records)
    assert "| AU1 | AU2 | AU4 | AU7 | AU12 | AU14 | AU15 | AU17 | Mean |" in (out / "pooled_table.md").read_text()


def test_final_model_loads_as_a_detector(run_dir):
    from assistant.au import get_detector
    from assistant.motion.clip import load_clip

    data, out, _ = run_dir
    assert (out / "final" / "model.safetensors").is_file()
    det = get_detector("aullm", checkpoint=out / "final")
    record = load_dataset("casme2", data).records[0]
    clip = load_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex)
    ev = det.detect(clip)
    assert ev.backend == "aullm" and [s.code for s in ev.scores] == AUS
    assert all(0.0 <= s.probability <= 1.0 for s in ev.scores)


def test_a_damaged_checkpoint_is_one_sentence(run_dir, tmp_path):
    """A cut-off weights file, a config that is not JSON, one without its head or with thresholds for other AUs
    stopped in safetensors, json, a KeyError or a broadcasting error at detection time."""
    import shutil

    from assistant.au.checkpoint import load_aullm
    from assistant.errors import BackendError

    _, out, _ = run_dir
    config = json.loads((out / "final" / "config.json").read_text())

    def damaged(name: str, change):
        folder = tmp_path / name
        shutil.copytree(out / "final", folder)
        change(folder)
        return folder

    def edit(key, value):
        return lambda f: (f / "config.json").write_text(json.dumps({**config, key: value}))

    cases = [(damaged("cut", lambda f: (f / "model.safetensors").write_bytes(b"\0" * 100)),
              r"is not a readable checkpoint \(SafetensorError"),
             (damaged("json", lambda f: (f / "config.json").write_text("{oops")),
              r"is not a readable checkpoint \(JSONDecodeError"),
             (damaged("nohead", lambda f: (f / "config.json").write_text(json.dumps(
                 {k: v for k, v in config.items() if k != "aullm"}))), "is not a checkpoint's config: it lacks aullm"),
             (damaged("thresholds", edit("thresholds", [0.5, 0.5, 0.5])),
              r"holds thresholds \[0.5, 0.5, 0.5\], not one probability for each of its 8 AUs"),
             (damaged("newer", edit("aullm", {**config["aullm"], "from_the_future": 1})),
              "holds a head config this version cannot read"),
             (damaged("other_model", edit("model", "microau_clip")), "holds a 'microau_clip' checkpoint, not an "
                                                                    "AU-LLM one")]
    for folder, says in cases:
        with pytest.raises(BackendError, match=says):
            load_aullm(folder)


def test_a_local_backbone_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    """Checkpoints recorded `--backbone tiny_llm` as typed: loaded from another folder, the hub was asked for it."""
    from assistant.config import resolved_setting

    (tmp_path / "tiny_llm").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolved_setting("tiny_llm") == str(tmp_path / "tiny_llm")
    assert resolved_setting("Qwen/Qwen2-0.5B") == "Qwen/Qwen2-0.5B"  # a hub name, not a folder here: as given


def test_rerun_resumes_and_refuses_changed_settings(run_dir):
    _, out, argv = run_dir
    stamps = {p: p.stat().st_mtime_ns for p in (out / "folds").glob("*/predictions.csv")}
    stamps[out / "final" / "model.safetensors"] = (out / "final" / "model.safetensors").stat().st_mtime_ns
    fold = sorted((out / "folds").iterdir())[0]
    (fold / "predictions.csv").unlink()  # an interrupted run: one fold missing
    assert meu(argv) == 0
    assert (fold / "predictions.csv").is_file()  # redone
    assert {p: p.stat().st_mtime_ns for p in stamps if p.parent != fold} == \
        {p: t for p, t in stamps.items() if p.parent != fold}  # everything finished before is kept
    from finetune.au import main

    with pytest.raises(ConfigError, match="different settings"):
        main(argv[2:] + ["--lr", "0.5"])


def test_aullm_plus_plus_fold_uses_training_labels_only(run_dir, tmp_path_factory, tmp_path):
    import torch

    from assistant.au.checkpoint import read_checkpoint
    from assistant.au.graph import cooccurrence_prior
    from eval.protocols import loso_folds
    from finetune.au import FoldData, TrainAUConfig, label_matrix, make_adapter, usable_records

    data, out, _ = run_dir
    records = usable_records(load_dataset("casme2", data).records)
    fold = loso_folds(records, val_subjects=1)[0]
    all_data = FoldData(records, label_matrix(records, AUS))
    cfg = TrainAUConfig(backbone=str(tiny_llm(tmp_path_factory)), graph=True, counterfactual=0.5, soft_prompt=True,
                        epochs=2, batch_size=4, lr=1e-3, cache_dir=str(out / "cache"), progress=False)
    adapter = make_adapter(cfg, AUS)
    log = adapter.fit(all_data.subset(fold.train), all_data.subset(fold.val))
    assert log["epochs_run"] == 2 and all(np.isfinite(e["train_loss"]) for e in log["history"])
    expected = cooccurrence_prior(all_data.labels[list(fold.train)], cfg.graph_threshold)
    assert torch.equal(adapter.model.graph.prior, torch.from_numpy(expected))
    adapter.save(tmp_path / "ckpt", [0.5] * len(AUS))
    state, config = read_checkpoint(tmp_path / "ckpt")
    assert config["aullm"]["graph"] and config["aullm"]["soft_prompt"] and "graph.prior" in state
    assert adapter.predict(all_data.subset(fold.test)).shape == (len(fold.test), len(AUS))


def test_folds_naming_no_subject_is_refused(tmp_path_factory, tmp_path):
    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("folds"), subjects=3, clips=2, n_frames=6)
    from finetune.au import main

    with pytest.raises(ConfigError, match="sub99.*sub01"):
        main(["--model", "prior", "--dataset", "casme2", "--root", str(data), "--out", str(tmp_path / "o"),
              "--folds", "sub99", "--progress", "false"])


def test_refused_settings_leave_the_output_free(tmp_path_factory, tmp_path):
    """A run refused before training must not stamp --out, or the corrected command is refused as a changed run."""
    from assistant.errors import MEUError
    from finetune.au import main

    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("refused"), subjects=3, clips=2, n_frames=6)
    args = ["--dataset", "casme2", "--root", str(data), "--out", str(tmp_path / "o"), "--progress", "false",
            "--final-model", "false"]
    with pytest.raises(MEUError, match="--val-subjects"):
        main([*args, "--model", "prior", "--val-subjects", "5"])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main([*args, "--model", "nope"])
    (tmp_path / "nope.yaml").write_text("model: nope\n")
    with pytest.raises(MEUError, match="model='nope' is not valid; choose one of: aullm, microau_clip"):
        main([*args, "--config", str(tmp_path / "nope.yaml")])
    with pytest.raises(ConfigError, match="--target-dataset"):
        main([*args, "--model", "prior", "--protocol", "cross"])
    assert main([*args, "--model", "prior"]) == 0


def test_dfme_test_sets_stay_out_of_au_training(tmp_path_factory, tmp_path):
    """DFME Test A/B are the official held-out sets: LOSO folds and the final model use the training sheet only."""
    from finetune.au import main

    data = write_synthetic_dataset("dfme", tmp_path_factory.mktemp("dfme"), subjects=4, clips=1, n_frames=6)
    loaded = load_dataset("dfme", data).records
    train_subjects = {r.subject for r in loaded if r.split == "train"}
    assert train_subjects and {r.subject for r in loaded} - train_subjects
    out = tmp_path / "o"
    assert main(["--dataset", "dfme", "--root", str(data), "--out", str(out), "--model", "prior", "--aus", "1", "4",
                 "12", "--val-subjects", "0", "--progress", "false"]) == 0
    with open(out / "predictions.csv") as fh:
        assert {row["subject"] for row in csv.DictReader(fh)} == train_subjects
    assert json.loads((out / "final" / "thresholds.json").read_text())["n_train"] == \
        sum(r.split == "train" for r in loaded)


def test_resume_accepts_the_same_folder_spelled_differently(tmp_path_factory, tmp_path):
    from finetune.au import main

    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("spelled"), subjects=3, clips=2, n_frames=6)
    args = ["--dataset", "casme2", "--root", str(data), "--model", "prior", "--progress", "false"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    stamp = (tmp_path / "o" / "folds" / "sub01" / "predictions.csv").stat().st_mtime_ns
    args[3] += "/"
    assert main([*args, "--out", str(tmp_path / "o") + "/"]) == 0  # resumed: nothing redone
    assert (tmp_path / "o" / "folds" / "sub01" / "predictions.csv").stat().st_mtime_ns == stamp


def test_finished_folds_are_not_reused_over_data_made_again(tmp_path_factory, tmp_path):
    """A rerun over a data folder made again (other labels under the same keys) skipped every finished fold and
    pooled the old labels."""
    from openpyxl import load_workbook

    from finetune.au import main

    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("again"), subjects=3, clips=2, n_frames=6)
    args = ["--model", "prior", "--dataset", "casme2", "--root", str(data), "--out", str(tmp_path / "o"),
            "--progress", "false", "--final-model", "false", "--val-subjects", "0"]
    assert main(args) == 0
    assert main(args) == 0  # the same data: every fold reused
    sheet = data / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    wb.active.cell(row=2, column=8).value = "15+17"
    wb.save(sheet)
    with pytest.raises(ConfigError, match=r"3 finished fold\(s\) were trained or scored on other data than the data "
                                          r"now gives them: .*sub01 \(its test clips or labels \(1 clip\(s\), first: "
                                          r"casme2/sub01/EP01_01\)\); .*sub02 \(its training or validation clips or "
                                          r"labels\); .*delete those folds' folders"):
        main(args)


def test_a_relabelled_or_removed_subject_reaches_every_fold_that_learnt_from_it(tmp_path_factory, tmp_path):
    """Deleting the fold the error named used to be enough: the other folds, trained on the old labels, were reused
    (their priors learnt from them), and a fold of a subject the data no longer holds stayed in the pooled figures."""
    import shutil

    from openpyxl import load_workbook

    from finetune.au import main

    data = write_synthetic_dataset("casme2", tmp_path_factory.mktemp("relabel"), subjects=3, clips=2, n_frames=6)
    out = tmp_path / "o"
    args = ["--model", "prior", "--dataset", "casme2", "--root", str(data), "--out", str(out),
            "--progress", "false", "--final-model", "false", "--val-subjects", "0"]
    assert main(args) == 0
    sheet = data / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    rows = [r for r in wb.active.iter_rows(min_row=2) if r[0].value and str(r[0].value).endswith("3")]
    for row in rows:  # sub03's labels change: sub01 and sub02 learnt from the old ones
        row[7].value = "15+17"
    wb.save(sheet)
    shutil.rmtree(out / "folds" / "sub03")
    with pytest.raises(ConfigError, match=r"2 finished fold\(s\).*sub01 \(its training or validation clips"):
        main([*args, "--folds", "sub03"])  # one fold asked for: the others are still pooled, so still checked
    for sub in ("sub01", "sub02"):
        shutil.rmtree(out / "folds" / sub)
    assert main(args) == 0
    before = json.loads((out / "metrics.json").read_text())
    for index in sorted((row[0].row for row in rows), reverse=True):  # sub03 leaves the data
        wb.active.delete_rows(index)
    wb.save(sheet)
    shutil.rmtree(out / "folds" / "sub01")
    shutil.rmtree(out / "folds" / "sub02")
    assert main(args) == 0
    after = json.loads((out / "metrics.json").read_text())
    assert (before["n_folds"], after["n_folds"]) == (3, 2) and after["n_clips"] == before["n_clips"] - len(rows)


def test_the_frame_cache_does_not_serve_a_clip_made_again_under_its_names(tmp_path):
    """AU-LLM's frame crops were keyed by the clip's key and indices only: a dataset made again with other clips
    under the same names trained on the old crops with the new labels."""
    import os

    from assistant.au.preprocess import ClipCache

    data = write_synthetic_dataset("casme2", tmp_path / "data", subjects=2, clips=1, n_frames=6)
    record = load_dataset("casme2", data).records[0]
    cache = ClipCache(tmp_path / "cache", size=32, max_frames=4)
    first = cache.get(record)
    assert np.array_equal(cache.get(record), first)  # read back
    apex = record.frame_paths[record.apex]
    onset = record.frame_paths[record.onset]
    apex.write_bytes(onset.read_bytes())  # the clip made again: its apex is now a still face
    os.utime(apex, ns=(apex.stat().st_atime_ns, apex.stat().st_mtime_ns + 10**9))
    assert not np.array_equal(cache.get(record), first)
