"""`meu eval` end to end on synthetic datasets in the official layouts, with the template reasoner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from eval.compare import compare
from eval.run import main

REPO = Path(__file__).resolve().parent.parent
FAST = ["--flow", "dis", "--progress", "false"]


def _sheet_rows(path: Path) -> int:
    ws = load_workbook(path, read_only=True).active
    return sum(1 for row in ws.iter_rows(min_row=2, values_only=True) if any(c is not None for c in row))


def _scores(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    return {k: m[k] for k in ("counts", "emotion", "au", "emotion_per_fold")}


@pytest.fixture(scope="module")
def straight_run(synth_casme2_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "straight"
    assert main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", "--out", str(out),
                 *FAST]) == 0
    return out


def test_report_files_and_counts(straight_run, synth_casme2_root):
    for name in ("report.md", "metrics.json", "confusion.png", "au_f1.png", "predictions.jsonl"):
        assert (straight_run / name).stat().st_size > 0
    m = json.loads((straight_run / "metrics.json").read_text())
    c = m["counts"]
    assert c["sheet_rows"] == _sheet_rows(synth_casme2_root / "CASME2-coding-20140508.xlsx")
    assert c["sheet_rows"] == c["skipped_by_loader"] + c["failed"] + c["usable"]
    assert c["skipped_reasons"] == {"frames missing": 1}  # the writer's clip without frames
    rows = [json.loads(x) for x in (straight_run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == c["usable"] + c["failed"]
    e = m["emotion"]
    assert sum(map(sum, e["confusion"])) == c["emotion_scored"] == c["usable"] == e["n_samples"]
    assert c["au_excluded_unknown_label"] == 1  # the sheet's "?" AU cell
    assert set(m["au"]["detector"]["per_fold"]) == {r["fold"] for r in rows}
    assert m["run"]["synthetic"] is True
    report = (straight_run / "report.md").read_text()
    assert "Synthetic data" in report and "same computation" in report
    assert f"{e['uf1']:.3f}" in report
    coded = sum(bool(r.get("true_aus")) for r in rows if r["status"] == "ok")
    assert f"Every AU code named against the coded ones, {coded} clips with an AU" in report
    assert "Null pairs" not in report and "null_pairs" not in m


def test_null_pairs_are_read_beside_the_clips_and_left_out_of_their_scores(synth_casme2_root, tmp_path):
    """`--null-pairs`: each AU-coded clip whose apex is 8 frames or more after its onset is also read at onset ->
    next frame; the clips' own figures are those of the run without it, the report counts the pairs given an AU, a
    resumed run reads only the pairs missing, and a run with no such clip says so."""
    from assistant.errors import ConfigError
    from eval.null_pairs import NULL_PAIR
    from eval.run import EvalConfig
    from eval.samples import select_samples
    from instruction_data.layouts import write_synthetic_dataset

    root = write_synthetic_dataset("casme2", tmp_path / "data", subjects=2, clips=2, seed=1, n_frames=40)
    args = ["--dataset", "casme2", "--root", str(root), "--protocol", "loso", *FAST]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    out = tmp_path / "null"
    assert main([*args, "--out", str(out), "--null-pairs", "true"]) == 0
    assert _scores(out) == _scores(tmp_path / "plain")
    samples, _, _ = select_samples(EvalConfig(dataset="casme2", root=str(root), protocol="loso"), None)
    eligible = [s.key for s in samples if s.true_aus is not None and s.apex is not None and s.apex - s.onset >= 8]
    assert eligible
    predictions = out / "predictions.jsonl"
    rows = [json.loads(x) for x in predictions.read_text().splitlines()]
    null_rows = [r for r in rows if r.get("null_pair")]
    assert [r["clip"] for r in null_rows] == eligible and all(r["key"] == r["clip"] + NULL_PAIR for r in null_rows)
    assert [r["key"] for r in rows].index(null_rows[0]["key"]) == [r["key"] for r in rows].index(eligible[0]) + 1
    metrics = json.loads((out / "metrics.json").read_text())
    n = metrics["null_pairs"]
    assert n["pairs"] + n["failed"] == len(eligible)
    assert f"{n['given_any_au']} of {n['pairs']} null pairs given an AU" in (out / "report.md").read_text()

    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows if r is not null_rows[0]))
    (out / "metrics.json").unlink()
    assert main([*args, "--out", str(out), "--null-pairs", "true", "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["null_pairs"] == n
    assert len(predictions.read_text().splitlines()) == len(rows)

    none = tmp_path / "none"  # the fixture's clips are 20 frames: no apex lies 8 frames after its onset
    assert main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", *FAST, "--out",
                 str(none), "--null-pairs", "true"]) == 0
    assert json.loads((none / "metrics.json").read_text())["null_pairs"]["pairs"] == 0
    assert "no null pair was read" in (none / "report.md").read_text()
    with pytest.raises(ConfigError, match="--null-pairs reads the detector"):
        main([*args, "--out", str(tmp_path / "refused"), "--null-pairs", "true", "--detector", "aullm",
              "--au-run", str(tmp_path)])


def test_existing_run_needs_resume(straight_run, synth_casme2_root):
    from assistant.errors import ConfigError

    args = ["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", "--out", str(straight_run)]
    with pytest.raises(ConfigError, match="--resume"):
        main([*args, *FAST])
    with pytest.raises(ConfigError, match="different settings \\(flow\\)"):
        main([*args, "--resume", "--flow", "tvl1", "--progress", "false"])


def test_killed_run_resumes_to_the_same_metrics(straight_run, synth_casme2_root, tmp_path):
    out = tmp_path / "killed"
    args = ["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", "--out", str(out), *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "eval", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    predictions = out / "predictions.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if predictions.is_file() and predictions.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = predictions.read_text().count("\n")
    total = json.loads((straight_run / "metrics.json").read_text())["counts"]["usable"]
    assert 1 <= done < total, "the run was not interrupted part-way"
    assert not (out / "metrics.json").exists()
    # resume with two motion workers: the worker count may change between a run and its resumption
    assert main([*args, "--resume", "--workers", "2"]) == 0
    rows = [json.loads(x) for x in predictions.read_text().splitlines()]
    assert len(rows) == len({r["key"] for r in rows}) == total
    assert _scores(out) == _scores(straight_run)


def test_dfme_test_a_writes_a_submission(synth_dfme_root, tmp_path):
    out = tmp_path / "dfme"
    assert main(["--dataset", "dfme", "--root", str(synth_dfme_root), "--protocol", "dfme-test-a", "--out", str(out),
                 *FAST]) == 0
    lines = (out / "submission_test_a.csv").read_text().splitlines()
    assert lines[0] == "clip_id,label"
    assert len(lines) - 1 == _sheet_rows(synth_dfme_root / "DFME_test_A_full_with_AU.xlsx")
    m = json.loads((out / "metrics.json").read_text())
    assert m["emotion"]["classes"] == ["happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise"]
    assert {x.split(",")[1] for x in lines[1:]} <= set(m["emotion"]["classes"]) | {""}


def test_compare_puts_runs_beside_published_rows(straight_run, tmp_path):
    text = compare([str(straight_run)], tmp_path / "cmp")
    assert "MELLM (published)" in text and "| 0.485 |" in text
    assert "synthetic" in text
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_compare_says_what_differs_and_keeps_runs_apart(straight_run, tmp_path):
    """Runs of other classes or settings sat side by side without a word, a 3-class run under the 5-class published
    figure, and two runs in folders of one name (or one run given twice) were two rows that could not be told apart."""
    from assistant.errors import MEUError

    other = tmp_path / "b" / straight_run.name
    other.mkdir(parents=True)
    metrics = json.loads((straight_run / "metrics.json").read_text())
    flow = metrics["run"]["flow"]
    metrics["run"].update(classes="3", flow="tvl1" if flow == "dis" else "dis")
    (other / "metrics.json").write_text(json.dumps(metrics))
    text = compare([str(straight_run), str(other)], tmp_path / "cmp")
    assert f"| {straight_run.parent.name}/{straight_run.name} |" in text and f"| b/{straight_run.name} |" in text
    assert ("Settings that differ between the runs (in the order above): classes: 5 / 3; flow: "
            f"{flow} / {metrics['run']['flow']}.") in text
    assert "**The runs differ in classes: their figures measure different things" in text
    assert "MELLM (published)" in text  # beside the 5-class run
    older = tmp_path / "older" / "c" / straight_run.name  # from before drift, calibration and motion core were in it
    older.mkdir(parents=True)
    for key in ("drift", "calibration", "motion_core"):
        metrics["run"].pop(key, None)
    metrics["run"].update(classes="5", flow=flow)
    (older / "metrics.json").write_text(json.dumps(metrics))
    mixed = compare([str(straight_run), str(other), str(older)], tmp_path / "cmp4")
    assert "drift: offset / offset / none" in mixed and "calibration" not in mixed.split("Settings that differ")[1]
    core = json.loads((straight_run / "metrics.json").read_text())["run"]["motion_core"]
    assert f"motion_core: {core} / {core} / None" in mixed  # measured by another motion core: said
    assert f"| c/{straight_run.name} |" in mixed and f"| b/{straight_run.name} |" in mixed
    alone = compare([str(other)], tmp_path / "cmp3")
    assert "MELLM (published)" not in alone and "differ" not in alone
    with pytest.raises(MEUError, match="is given twice"):
        compare([str(straight_run), str(straight_run) + "/"], tmp_path / "cmp2")


def test_loso_uses_each_folds_held_out_predictions(straight_run, synth_casme2_root, tmp_path):
    """A real `meu train au` output (the cheap training-prior model) as AU evidence: eval's pooled detector F1 equals
    the training job's own pooled LOSO F1, and every clip gets its own fold's probabilities."""
    from finetune.au import main as train_au

    run_dir = tmp_path / "au"
    assert train_au(["--model", "prior", "--dataset", "casme2", "--root", str(synth_casme2_root), "--out",
                     str(run_dir), "--val-subjects", "0", "--final-model", "false", "--progress", "false"]) == 0
    out = tmp_path / "eval"
    assert main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", "--detector", "aullm",
                 "--au-run", str(run_dir), "--out", str(out), *FAST]) == 0
    trained = json.loads((run_dir / "metrics.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    # the clip whose AU cell is `?` is scored for emotion like every other clip: its fold's model predicted it too
    straight = json.loads((straight_run / "metrics.json").read_text())
    assert m["counts"]["failed"] == 0 and m["emotion"]["n_samples"] == straight["emotion"]["n_samples"]
    assert m["au"]["detector"]["pooled"]["mean_f1"] == pytest.approx(trained["pooled"]["mean_f1"])
    assert m["au"]["detector"]["pooled"]["f1"] == pytest.approx({str(k): v for k, v in trained["pooled"]["f1"].items()})
    rows = {r["key"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    import csv

    for line in csv.DictReader(open(run_dir / "predictions.csv")):
        row = rows[line["key"]]
        assert row["fold"] == line["fold"] == row["subject"]
        assert row["probabilities"]["4"] == pytest.approx(float(line["prob_AU4"]))


def test_au_cell_with_an_unknown_code_is_left_out_of_au_scores(synth_casme2_root, tmp_path):
    """`4+?` leaves the other AUs unknown: eval must leave the clip out of AU scores as `meu train au` does (else the
    clip is scored as AU-free and an --au-run, which has no prediction for it, is refused as another copy)."""
    import shutil

    from openpyxl import load_workbook

    from eval.run import EvalConfig, select_samples
    from finetune.au import usable_records
    from instruction_data.loaders import load_dataset

    root = tmp_path / "data"
    shutil.copytree(synth_casme2_root, root)
    sheet = root / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    ws = wb.active
    col = [c.value for c in ws[1]].index("Action Units") + 1
    ws.cell(row=2, column=col, value="4+?")
    wb.save(sheet)
    samples, _, _ = select_samples(EvalConfig(dataset="casme2", root=str(root)), None)
    trained = {r.key for r in usable_records(load_dataset("casme2", root).records)}
    assert {s.key for s in samples if s.true_aus is not None} == trained


def test_dfme_loso_scores_the_training_subjects_only(synth_dfme_root):
    """LOSO on DFME runs over its training sheet (as `meu train au` does); Test A/B have their own protocols."""
    from eval.run import EvalConfig, select_samples

    samples, _, _ = select_samples(EvalConfig(dataset="dfme", root=str(synth_dfme_root), protocol="loso"), None)
    everything, _, _ = select_samples(EvalConfig(dataset="dfme", root=str(synth_dfme_root)), None)
    assert samples and {s.split for s in samples} == {"train"}
    assert {s.split for s in everything} > {"train"}


def test_checkpoint_trained_on_the_test_subjects_is_refused(synth_casme2_root, tmp_path):
    """The final model of `meu train au` saw every subject: scoring it "zero-shot" on the same clips is leakage."""
    from assistant.errors import ConfigError
    from eval.evidence import check_unseen
    from finetune.au import main as train_au

    run_dir = tmp_path / "au"
    assert train_au(["--model", "prior", "--dataset", "casme2", "--root", str(synth_casme2_root), "--out",
                     str(run_dir), "--val-subjects", "1", "--progress", "false"]) == 0
    with pytest.raises(ConfigError, match="sub01"):
        check_unseen(run_dir / "final", "casme2", ["sub01", "sub09"])
    check_unseen(run_dir / "final", "samm", ["sub01"])  # another dataset: a true zero-shot / cross test
    check_unseen(run_dir / "final", "casme2", ["sub09"])


@pytest.mark.parametrize("protocol", ["loso", "cde"])
def test_one_vlm_adapter_is_refused_where_each_fold_needs_its_own(synth_casme2_root, tmp_path, protocol):
    """A single adapter was accepted under loso and cde, where it was trained on the test subjects too (an AU
    checkpoint is refused there)."""
    from assistant.errors import ConfigError
    from eval.run import EvalConfig

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "base"}')
    settings = dict(dataset="casme2" if protocol == "loso" else "casme2,samm", protocol=protocol, reasoner="vlm",
                    root=str(synth_casme2_root) if protocol == "loso" else f"{synth_casme2_root},{tmp_path}",
                    out=str(tmp_path / "o"))
    for given in ({"vlm_base": str(tmp_path), "vlm_adapter": str(adapter)}, {"vlm_base": str(adapter)}):
        with pytest.raises(ConfigError, match=rf"--protocol {protocol} with one adapter \(--vlm-adapter, or an adapter "
                                              r"folder as --vlm-base\) scores an adapter that was trained on the test "
                                              r"subjects too .* give --vlm-run"):
            EvalConfig(**settings, **given)


def test_resume_accepts_the_same_root_spelled_differently(straight_run, synth_casme2_root):
    before = _scores(straight_run)
    assert main(["--dataset", "casme2", "--root", str(synth_casme2_root) + "/", "--protocol", "loso", "--out",
                 str(straight_run), "--resume", *FAST]) == 0
    assert _scores(straight_run) == before


def test_dfme_submission_lists_every_sheet_clip(synth_dfme_root, tmp_path):
    """A test clip the loader had to skip (frames missing) still gets its submission row, with an empty label."""
    import shutil

    root = tmp_path / "dfme"
    shutil.copytree(synth_dfme_root, root)
    gone = sorted((root / "DFME" / "test_A").iterdir())[0]
    shutil.rmtree(gone)
    out = tmp_path / "eval"
    assert main(["--dataset", "dfme", "--root", str(root), "--protocol", "dfme-test-a", "--out", str(out), *FAST]) == 0
    lines = (out / "submission_test_a.csv").read_text().splitlines()
    assert len(lines) - 1 == _sheet_rows(root / "DFME_test_A_full_with_AU.xlsx")
    assert f"{gone.name}," in lines


def test_eval_reaches_every_detector_the_readme_names(synth_casme2_root, tmp_path, capsys):
    """rules, blendshapes and fusion need no training and run under any protocol; aullm and microau_clip need a
    checkpoint (or --au-run), and say so."""
    from assistant import cli
    from assistant.errors import ConfigError
    from assistant.motion.analyze import MotionConfig
    from eval.evidence import EvidenceSource

    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    assert "{rules,blendshapes,fusion,aullm,microau_clip}" in capsys.readouterr().out.replace("\n", "").replace(" ", "")
    for name in ("blendshapes", "fusion"):
        assert EvidenceSource(name, "loso", MotionConfig()).description.startswith(f"{name} (no training")
    with pytest.raises(ConfigError, match="--detector microau_clip needs --microau-clip-checkpoint"):
        EvidenceSource("microau_clip", "zero_shot", MotionConfig())
    out = tmp_path / "fusion"
    assert main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--detector", "fusion", "--out", str(out),
                 *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["usable"] > 0 and metrics["counts"]["failed"] == 0
    assert metrics["run"]["detector"] == "fusion"


def test_eval_cancels_drift_with_each_sheet_offset(synth_casme2_root, straight_run, tmp_path):
    """Every clip's offset reaches the motion stage, apex given or not, and drift is cancelled with its frame
    (`assistant.motion.drift`); `--drift none` reads as before; a run from before the setting cannot be resumed
    with it on."""
    import cv2

    from assistant.errors import ConfigError
    from eval.run import EvalConfig, _check_resume, _init_worker, _motion, select_samples

    config = EvalConfig(dataset="casme2", root=str(synth_casme2_root), flow="dis")
    samples, _, _ = select_samples(config, None)
    assert samples and all(s.apex is not None and s.offset is not None and s.offset > s.apex for s in samples)
    s = samples[0]
    threads = cv2.getNumThreads()
    try:
        for drift, measured in (("offset", True), ("none", False)):
            _init_worker(EvalConfig(dataset="casme2", root=str(synth_casme2_root), flow="dis", drift=drift)
                         .motion_config(), threads)
            _, analysis, error, _ = _motion((s.key, s.source, s.onset, s.apex, s.offset))
            assert error is None and bool(analysis.field.drift) == measured
            assert analysis.clip.offset_frame is None  # measured, then let go
    finally:
        cv2.setNumThreads(threads)
    assert json.loads((straight_run / "metrics.json").read_text())["run"]["drift"] == "offset"
    older = tmp_path / "older"  # a run written before the setting existed cancelled no drift: resumed, it says so
    older.mkdir()
    settings = json.loads((straight_run / "run_config.json").read_text())
    del settings["drift"], settings["calibration"]  # nor did it record its calibration: not checked then
    core = settings.pop("motion_core")  # kept in the file (the same motion core), so the check reaches the setting
    (older / "run_config.json").write_text(json.dumps(settings | {"motion_core": core}))
    resumed = dict(settings, resume=True, out=str(older))
    with pytest.raises(ConfigError, match=r"different settings \(drift\)"):
        _check_resume(EvalConfig(**resumed), older)
    _check_resume(EvalConfig(**resumed, drift="none"), older)


def test_a_resume_with_another_calibration_is_refused(straight_run, tmp_path, monkeypatch):
    """`--calibration` (or MEU_CALIBRATION) was read outside the run's settings: a run resumed with another folder
    scored its first clips with one calibration and the rest with the other, and recorded neither."""
    import shutil

    from assistant import calibration
    from assistant.errors import ConfigError
    from eval.run import EvalConfig, _check_resume

    written = json.loads((straight_run / "run_config.json").read_text())
    assert written["calibration"] == {"folder": None, "files": calibration.record(calibration.RULES_FILES)["files"]}
    other = tmp_path / "calibration"
    other.mkdir()
    for name in calibration.RULES_FILES:
        shutil.copy(calibration.SHIPPED[name], other / name)
    rules = json.loads((other / "rules_calibration.json").read_text())
    rules["parameters"]["midpoint"] = 50
    (other / "rules_calibration.json").write_text(json.dumps(rules))
    settings = {k: v for k, v in written.items() if k not in ("calibration", "motion_core")} | {"resume": True}
    _check_resume(EvalConfig(**settings), straight_run)  # the same calibration: resumes
    monkeypatch.setenv(calibration.ENV, str(other))
    with pytest.raises(ConfigError, match=r"different settings \(calibration\)"):
        _check_resume(EvalConfig(**settings), straight_run)


@pytest.mark.parametrize("recorded", [None, "2026-12-05"], ids=["unrecorded", "older"])
def test_a_run_of_another_motion_core_is_not_resumed(straight_run, tmp_path, recorded):
    """Rows measured by another motion core (a run from before it was recorded, or one that recorded an older one)
    would be mixed with this version's: refused with a sentence naming both; the same run with this motion core
    resumes."""
    from assistant.errors import ConfigError
    from assistant.motion.analyze import MOTION_CORE
    from eval.run import EvalConfig, _check_resume

    written = json.loads((straight_run / "run_config.json").read_text())
    assert written["motion_core"] == MOTION_CORE
    settings = {k: v for k, v in written.items() if k not in ("calibration", "motion_core")}
    older = tmp_path / "older"
    older.mkdir()
    config = EvalConfig(**settings | {"resume": True, "out": str(older)})
    (older / "run_config.json").write_text(json.dumps(written))
    _check_resume(config, older)
    (older / "run_config.json").write_text(json.dumps(settings | ({"motion_core": recorded} if recorded else {})))
    made = "an older motion core" if recorded is None else f"the motion core of {recorded}"
    with pytest.raises(ConfigError, match=f"was measured by {made}, and this version's \\({MOTION_CORE}\\)"):
        _check_resume(config, older)


def test_the_reports_protocol_note_names_the_detector_that_ran():
    """A Micro-AU CLIP run was called untrained, and blendshapes and fusion runs were said to use the rules detector."""
    from eval.report import protocol_note

    run = {"protocol": "loso", "reasoner": "template", "evidence": "microau_clip, held-out predictions"}
    assert protocol_note({**run, "detector": "microau_clip"}).startswith("LOSO: AU evidence from microau_clip")
    assert protocol_note({**run, "detector": "fusion"}).startswith(
        "Nothing here is trained on this dataset (template reasoner, fusion detector)")


def test_an_au_run_that_does_not_fit_the_evaluation_is_refused_before_anything_is_written(synth_casme2_root,
                                                                                           tmp_path):
    """A run trained on another copy of the data (same keys, other labels) was used with exit 0; an aullm run
    given as --detector microau_clip was reported as Micro-AU CLIP; a --source-dataset contradicting the run was
    recorded; and a refused evaluation left a run_config.json that refused the corrected --resume."""
    import shutil

    import yaml

    from assistant.errors import ConfigError
    from finetune.au import main as train_au

    run_dir = tmp_path / "au"
    assert train_au(["--model", "prior", "--dataset", "casme2", "--root", str(synth_casme2_root), "--out",
                     str(run_dir), "--val-subjects", "0", "--final-model", "false", "--progress", "false"]) == 0
    other = tmp_path / "other_copy"
    shutil.copytree(synth_casme2_root, other)
    sheet = other / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    wb.active.cell(row=2, column=8).value = "15+17"  # EP01_01 was 1+2 when the run was trained
    wb.save(sheet)
    out = tmp_path / "eval"
    args = ["--protocol", "loso", "--detector", "aullm", "--au-run", str(run_dir), "--out", str(out), *FAST]
    with pytest.raises(ConfigError, match=r"trained on other labels for 1 of \d+ clips \(first: casme2/sub01/EP01_01, "
                                          r"AUs 1\+2 there, 15\+17 here\)"):
        main(["--dataset", "casme2", "--root", str(other), *args])
    assert not (out / "run_config.json").exists()

    def with_settings(name: str, **changes) -> Path:
        folder = tmp_path / name
        shutil.copytree(run_dir, folder)
        settings = yaml.safe_load((folder / "run_config.yaml").read_text())
        (folder / "run_config.yaml").write_text(yaml.safe_dump({**settings, **changes}))
        return folder

    clip_run = with_settings("clip_run", model="microau_clip")
    with pytest.raises(ConfigError, match="holds the held-out predictions of microau_clip; give --detector "
                                          "microau_clip with it"):
        main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "loso", "--detector", "aullm",
              "--au-run", str(clip_run), "--out", str(out), *FAST])
    cross_run = with_settings("cross_run", protocol="cross", dataset="samm")
    with pytest.raises(ConfigError, match=f"--source-dataset dfme contradicts --au-run {cross_run}, trained on samm"):
        main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--protocol", "cross", "--source-dataset",
              "dfme", "--detector", "aullm", "--au-run", str(cross_run), "--out", str(out), *FAST])
    assert not (out / "run_config.json").exists()


def test_a_runs_own_record_given_as_config_runs_it_again(straight_run, tmp_path, monkeypatch, caplog):
    """`run_config.json` records the calibration a run read beside its settings, and `--config` refused it as an
    unknown setting. Given back, the run's folder is read again, and a warning says when its files changed since."""
    import logging
    import shutil

    from assistant import calibration
    from assistant.errors import ConfigError
    from eval.run import parse

    monkeypatch.setenv(calibration.ENV, "unset")  # restored after the test: parse() sets it as a flag would
    monkeypatch.delenv(calibration.ENV)
    folder = tmp_path / "calibration"
    folder.mkdir()
    for name in calibration.RULES_FILES:
        shutil.copy(calibration.SHIPPED[name], folder / name)
    written = json.loads((straight_run / "run_config.json").read_text())
    record = tmp_path / "run_config.json"
    record.write_text(json.dumps(written | {"calibration": {"folder": str(folder),
                                                          "files": written["calibration"]["files"]}}))
    again = ["--config", str(record), "--out", str(tmp_path / "again")]
    with caplog.at_level(logging.WARNING):
        config = parse(again)
    assert calibration.folder() == folder and not caplog.records
    assert config.protocol == written["protocol"] and config.out == str(tmp_path / "again")

    rules = json.loads((folder / "rules_calibration.json").read_text())
    rules["parameters"]["midpoint"] = 50
    (folder / "rules_calibration.json").write_text(json.dumps(rules))
    calibration._parse.cache_clear()  # files are read again when their mtime changes, which a coarse clock may hide
    monkeypatch.delenv(calibration.ENV)
    with caplog.at_level(logging.WARNING):
        parse(again)
    assert "holds other settings than the run given as --config read" in caplog.text

    monkeypatch.delenv(calibration.ENV)  # `calibration: DIR` written by hand is the --calibration folder
    record.write_text(json.dumps(written | {"calibration": str(tmp_path / "calibration")}))
    parse(again)
    assert calibration.folder() == folder
    record.write_text(json.dumps(written | {"calibration": {"folder": 5}}))
    with pytest.raises(ConfigError, match="calibration entry must be a folder"):
        parse(again)
    record.write_text(json.dumps(written | {"calibration": {"folder": str(folder),
                                                          "files": written["calibration"]["files"]}}))

    shutil.rmtree(folder)
    monkeypatch.delenv(calibration.ENV)
    with pytest.raises(ConfigError, match="read its calibration from .* not a folder any more; give --calibration"):
        parse(again)


@pytest.mark.parametrize("model, warned", [("microau_clip", True), ("prior", False)])
def test_held_out_predictions_of_another_motion_core_are_used_with_a_warning(tmp_path, caplog, model, warned):
    """`meu eval --au-run` reads a training run's held-out probabilities as they were made; when their inputs came from
    another motion core than the one measuring this evaluation's clips, the log says so (not for a model that reads
    no motion)."""
    import yaml

    from eval.evidence import FoldPredictions

    fold = tmp_path / "folds" / "s1"
    fold.mkdir(parents=True)
    (fold / "predictions.csv").write_text("key,fold,prob_AU1\nsub01/EP01,s1,0.9\n")
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump({"model": model, "dataset": "casme2",
                                                              "motion_core": "2026-12-01"}))
    with caplog.at_level("WARNING", logger="eval.evidence"):
        run = FoldPredictions(tmp_path)
    assert run.evidence("sub01/EP01").scores[0].probability == pytest.approx(0.9)
    assert ("held-out predictions was measured by the motion core of 2026-12-01" in caplog.text) == warned
