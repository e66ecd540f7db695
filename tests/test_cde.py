"""The MEGC 2019 composite protocol: its mapping table, its folds, its scores on hand-worked rows, its refusals, and a
synthetic CASME II + SAMM + SMIC set end to end (template reasoner; AU-LLM folds from `meu train au --protocol cde`)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import yaml
from _au_data import tiny_llm

from assistant.cli import main as meu
from assistant.config import parse_config
from assistant.emotions import CDE_MAPPING, cde_emotion, map_emotion
from assistant.errors import ConfigError
from eval.cde import cde_scores
from eval.compare import compare
from eval.metrics import classification_scores
from eval.protocols import ProtocolError, cde_folds
from eval.run import EvalConfig, main
from instruction_data.layouts import write_synthetic_dataset

FAST = ["--flow", "dis", "--progress", "false"]
DATASETS = ("casme2", "samm", "smic")


def test_mapping_table_per_dataset():
    assert set(CDE_MAPPING) == set(DATASETS)
    # CASME II: fear and sadness are left out of the composite, although scheme "3" calls them negative
    assert cde_emotion("casme2", "fear") is None and cde_emotion("casme2", "sadness") is None
    assert map_emotion("fear", "3") == "negative"
    assert [cde_emotion("casme2", w) for w in ("disgust", "repression", "happiness", "surprise", "others")] == [
        "negative", "negative", "positive", "surprise", None]
    assert [cde_emotion("samm", w) for w in ("Anger", "Contempt", "Disgust", "Fear", "Sadness", "Happiness",
                                             "Surprise", "Other")] == ["negative"] * 5 + ["positive", "surprise", None]
    assert [cde_emotion("smic", w) for w in ("negative", "positive", "surprise")] == ["negative", "positive",
                                                                                      "surprise"]
    with pytest.raises(ValueError, match="composite"):
        cde_emotion("dfme", "happiness")


def test_uf1_and_uar_on_a_hand_worked_example():
    # negative: tp 2, fp 1, fn 1 -> F1 2/3, recall 2/3; positive: tp 1, fp 1 -> F1 2/3, recall 1; surprise: 0, 0
    s = classification_scores(["negative"] * 3 + ["positive", "surprise"],
                              ["negative", "positive", "negative", "positive", "negative"],
                              ["negative", "positive", "surprise"])
    assert math.isclose(s.uf1, 4 / 9) and math.isclose(s.uar, 5 / 9)


def _row(dataset: str, subject: str, true: str, pred: str) -> dict:
    return {"key": f"{dataset}/{subject}/c{true}{pred}", "subject": f"{dataset}__{subject}", "status": "ok",
            "true_emotion": true, "pred_emotion": pred, "true_aus": None, "parsed_aus": [], "probabilities": {},
            "parse_status": "ok",
            "fold": f"{dataset}__{subject}"}


def test_a_datasets_figures_are_the_composite_predictions_restricted_to_it():
    rows = [_row("casme2", "sub01", "negative", "negative"), _row("casme2", "sub01", "positive", "negative"),
            _row("smic", "s01", "surprise", "surprise"), _row("smic", "s01", "negative", "positive")]
    setup = {"found": {}, "subjects": {}, "excluded": [], "unmapped": [], "folds": 2}
    cde = cde_scores(rows, ["casme2", "smic"], setup)
    # casme2 alone: negative F1 2/3 (tp 1, fp 1), positive 0, surprise absent 0 -> UF1 2/9; recall 1, 0, 0 -> 1/3
    assert math.isclose(cde["table"]["casme2"]["uf1"], 2 / 9) and math.isclose(cde["table"]["casme2"]["uar"], 1 / 3)
    # the composite pools all four rows once: negative tp 1 fp 1 fn 1 (1/2), positive 0, surprise 1 -> UF1 1/2
    assert math.isclose(cde["table"]["composite"]["uf1"], 0.5)
    # per subject, over the classes that subject shows (casme2__sub01: negative and positive)
    assert cde["per_subject"]["casme2__sub01"]["classes"] == ["negative", "positive"]
    assert math.isclose(cde["per_subject"]["casme2__sub01"]["uf1"], (2 / 3 + 0) / 2)
    assert {a["method"] for a in cde["anchors"]} >= {"LBP-TOP", "STSTNet", "EMR"}


def test_a_pooled_checkpoint_is_refused_for_the_subjects_it_was_trained_on(tmp_path):
    from eval.evidence import check_unseen

    (tmp_path / "thresholds.json").write_text(json.dumps({"trained_on": {"dataset": "casme2,samm,smic",
                                                                         "subjects": ["casme2__sub01", "samm__006"]}}))
    with pytest.raises(ConfigError, match="sub01"):
        check_unseen(tmp_path, "casme2", ["sub01", "sub02"])
    check_unseen(tmp_path, "casme2", ["sub02"])
    check_unseen(tmp_path, "samm", ["sub01"])  # samm's 006, not casme2's sub01, was seen
    with pytest.raises(ConfigError, match="006"):
        check_unseen(tmp_path, "samm", ["006"])


def test_the_same_subject_id_in_two_datasets_stays_two_subjects():
    records = [SimpleNamespace(dataset=d, subject="s01") for d in ("casme2", "samm", "samm")]
    folds = cde_folds(records, val_subjects=0)
    assert [f.name for f in folds] == ["casme2__s01", "samm__s01"]
    assert folds[0].test == (0,) and folds[0].train == (1, 2)
    assert folds[1].test == (1, 2) and folds[1].train == (0,)
    # a subject whose clips are never trained on (SMIC) still gets a fold that never saw it
    smic = [SimpleNamespace(dataset="smic", subject="s01")]
    extra = cde_folds(records, val_subjects=0, test_only=smic)
    assert [f.name for f in extra] == ["casme2__s01", "samm__s01", "smic__s01"]
    assert extra[-1].test == () and extra[-1].train == (0, 1, 2) and extra[-1].test_subjects == ("smic__s01",)
    with pytest.raises(ProtocolError, match="at least 2 subjects"):  # SMIC alone: nothing to train an AU model on
        cde_folds([], val_subjects=0, test_only=smic)


def _config(argv: list[str]) -> EvalConfig:
    return parse_config(EvalConfig, argv, "meu eval", "")[0]


def test_composite_settings_are_checked_in_the_config(tmp_path):
    ok = _config(["--protocol", "cde", "--dataset", "casme2,samm,smic", "--root", "a,b,c"])
    assert ok.datasets == list(DATASETS) and ok.roots == ["a", "b", "c"] and ok.scheme == "3"
    listed = tmp_path / "cde.yaml"
    listed.write_text(yaml.safe_dump({"protocol": "cde", "dataset": list(DATASETS), "root": ["x", "y", "z"]}))
    assert _config(["--config", str(listed)]).roots == ["x", "y", "z"]
    comma = tmp_path / "comma.yaml"
    comma.write_text(yaml.safe_dump({"protocol": "cde", "dataset": list(DATASETS), "root": ["x", "y,1", "z"]}))
    refusals = [
        (["--config", str(comma)], "'y,1' holds a comma"),
        (["--protocol", "cde", "--dataset", "casme2,samm,smic", "--root", "a,b"], "2 folder\\(s\\) for the 3"),
        (["--protocol", "cde", "--dataset", "casme2,samm", "--root", "a,b", "--classes", "5"], "drop --classes 5"),
        (["--protocol", "cde", "--dataset", "casme2,dfme", "--root", "a,b"], "pools casme2, samm, smic"),
        (["--protocol", "cde", "--dataset", "casme2,casme2", "--root", "a,b"], "each once"),
        (["--dataset", "casme2,samm", "--root", "a"], "add --protocol cde"),
        (["--dataset", "smc", "--root", "a"], "Unknown dataset smc"),
    ]
    for argv, message in refusals:
        with pytest.raises(ConfigError, match=message):
            _config(argv)


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    base = tmp_path_factory.mktemp("cde")
    roots = [str(write_synthetic_dataset(d, base / d, subjects=2, clips=3, n_frames=12)) for d in DATASETS]
    return ["--protocol", "cde", "--dataset", ",".join(DATASETS), "--root", ",".join(roots)]


def _stable(out) -> tuple[str, dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("timings"), metrics.pop("this_invocation")
    report = "\n".join(line for line in (out / "report.md").read_text().splitlines()
                       if not line.startswith("Mean seconds per clip"))
    return report, metrics


def test_template_run_scores_three_datasets_and_resumes_to_the_same_report(composite, tmp_path):
    out = tmp_path / "straight"
    assert main([*composite, "--out", str(out), "--workers", "2", *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["cde"]["table"]) == {"composite", *DATASETS}
    assert metrics["run"]["classes"] == "3" and metrics["run"]["apex_unknown"] == "middle"
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(r["fold"] == r["subject"] and "__" in r["subject"] for r in rows)
    assert all(r["true_aus"] is None for r in rows if r["key"].startswith("smic/"))  # SMIC codes no AU
    assert {r["key"].split("/")[0] for r in rows} == set(DATASETS)
    report = (out / "report.md").read_text()
    assert "MEGC 2019 composite" in report and "EMR (published)" in report and "synthetic" in report
    assert metrics["cde"]["unmapped"] and all(u["emotion_raw"] in ("fear", "sadness", "others", "")
                                              for u in metrics["cde"]["unmapped"])
    counts = metrics["counts"]
    assert counts["left_out_by_protocol"]["label outside the composite"] == len(metrics["cde"]["unmapped"])
    assert counts["sheet_rows"] == counts["skipped_by_loader"] + len(metrics["cde"]["unmapped"]) + len(rows)
    # a run cut short (its last rows lost) and resumed gives the same report and figures
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "predictions.jsonl").write_text("".join(x + "\n" for x in (out / "predictions.jsonl").read_text()
                                                   .splitlines()[:len(rows) // 2]))
    before = json.loads((out / "run_config.json").read_text())
    before.pop("apex_unknown")  # a run written before that setting existed still resumes
    (cut / "run_config.json").write_text(json.dumps(before))
    assert main([*composite, "--out", str(cut), "--resume", *FAST]) == 0
    assert _stable(cut)[1] == _stable(out)[1]
    assert _stable(cut)[0].replace(str(cut), "") == _stable(out)[0].replace(str(out), "")
    table = compare([str(out)], tmp_path / "compare")  # the composite's published rows sit beside it, no others
    assert "| composite | cde |" in table and "EMR (published)" in table and "MELLM" not in table


def test_aullm_folds_give_every_clip_the_evidence_of_the_fold_that_held_it_out(composite, tmp_path_factory):
    run = tmp_path_factory.mktemp("au") / "run"
    assert meu(["train", "au", *composite, "--out", str(run), "--backbone", str(tiny_llm(tmp_path_factory)),
                "--epochs", "1", "--batch-size", "4", "--progress", "false", "--final-model", "false"]) == 0
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["composite_aus"] == [2, 4, 7, 12] and set(trained["per_dataset"]) == {"casme2", "samm"}
    folds = sorted(p.name for p in (run / "folds").iterdir())
    assert len(folds) == 6 and all("__" in f for f in folds)
    for fold in folds:  # no fold trained on its held-out subject; SMIC clips were never trained on
        info = json.loads((run / "folds" / fold / "thresholds.json").read_text())
        seen = info["trained_on"]["subjects"]
        assert fold not in seen and all("__" in s for s in seen)
        assert {s.split("__")[0] for s in seen} == {"casme2", "samm"}
        assert {f for f in folds if not f.startswith("smic__")} - {fold} <= set(seen)  # trained or validated on
    out = tmp_path_factory.mktemp("eval") / "aullm"
    assert main([*composite, "--out", str(out), "--detector", "aullm", "--au-run", str(run), *FAST]) == 0
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] == "ok" for r in rows)
    assert all(r["evidence_fold"] == r["fold"] == r["subject"] for r in rows)
    assert any(r["key"].startswith("smic/") for r in rows)
    from eval.evidence import EvidenceSource

    with pytest.raises(ConfigError, match="pooled casme2,samm,smic"):  # a run trained on other datasets is refused
        EvidenceSource("aullm", "cde", None, au_run=str(run)).check_keys([], ["casme2", "samm"])


def test_smic_alone_with_spotted_apexes_says_so_and_scores_no_au(composite, tmp_path):
    smic_root = composite[composite.index("--root") + 1].split(",")[2]
    out = tmp_path / "smic"
    assert main(["--dataset", "smic", "--root", smic_root, "--apex-unknown", "spot", "--out", str(out), *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["classes"] == "3" and metrics["au"]["aus"] == [] and metrics["counts"]["au_scored"] == 0
    assert metrics["emotion"]["n_samples"] == metrics["counts"]["usable"] > 0
    assert "spotted between onset and offset" in (out / "report.md").read_text()


def test_fold_shards_split_the_folds_and_a_lost_fold_is_redone_alone(composite, tmp_path):
    out = tmp_path / "sharded"
    base = ["train", "au", *composite, "--out", str(out), "--model", "always_positive", "--progress", "false",
            "--final-model", "false"]
    assert meu([*base, "--fold-shard", "1/2"]) == 0
    first = sorted(p.name for p in (out / "folds").iterdir())
    assert len(first) == 3 and len(json.loads((out / "metrics.json").read_text())["folds_missing"]) == 3
    assert meu([*base, "--fold-shard", "2/2"]) == 0
    folds = sorted(p.name for p in (out / "folds").iterdir())
    assert len(folds) == 6 and "folds_missing" not in json.loads((out / "metrics.json").read_text())
    stamps = {f: (out / "folds" / f / "predictions.csv").stat().st_mtime_ns for f in folds}
    lost = first[1]
    (out / "folds" / lost / "predictions.csv").unlink()  # a fold killed before its predictions were written
    assert meu([*base, "--fold-shard", "1/2"]) == 0
    after = {f: (out / "folds" / f / "predictions.csv").stat().st_mtime_ns for f in folds}
    assert [f for f in folds if after[f] != stamps[f]] == [lost]
    from finetune.au import TrainAUConfig

    for bad in ("3/2", "0/2", "a/b"):
        with pytest.raises(ConfigError, match="I/N"):
            TrainAUConfig(fold_shard=bad)
