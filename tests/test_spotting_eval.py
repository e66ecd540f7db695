"""`meu eval --task spotting` end to end on a synthetic CAS(ME)^2 long-video set (figures here are synthetic)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from assistant import cli
from assistant.errors import ConfigError
from assistant.motion.spotting import SpotConfig
from eval.run import main
from instruction_data.loaders import load_long_dataset

FAST = ["--progress", "false"]


@pytest.fixture(scope="module")
def long_root(tmp_path_factory):
    from instruction_data.long_layouts import write_synthetic_long_dataset

    return write_synthetic_long_dataset("casme2_long", tmp_path_factory.mktemp("casme2_long"), subjects=2, videos=1,
                                        seed=3, seconds=15, size=(320, 240), quirks=True)


@pytest.fixture(scope="module")
def straight(long_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("spot_eval") / "run"
    assert main(["--task", "spotting", "--dataset", "casme2_long", "--root", str(long_root), "--out", str(out),
                 *FAST]) == 0
    return out


def _figures(out):
    m = json.loads((out / "metrics.json").read_text())
    return m["spotting"], m["counts"]


def test_outputs_and_counts_agree_with_the_sheet(straight, long_root):
    for name in ("metrics.json", "report.md", "predictions.csv", "run_config.json"):
        assert (straight / name).stat().st_size > 0
    loaded = load_long_dataset("casme2_long", long_root)
    spotting, counts = _figures(straight)
    assert counts["videos"] == len(loaded.videos) == 2 and counts["failed"] == 0
    pooled = spotting["pooled"]
    for kind in ("micro", "macro"):  # every expression the loader kept is ground truth, matched or missed
        assert pooled[kind]["n_truth"] == sum(e.kind == kind for e in loaded.expressions)
    assert pooled["overall"]["tp"] == pooled["micro"]["tp"] + pooled["macro"]["tp"]
    assert set(spotting["per_subject"]) == {v.subject for v in loaded.videos}
    with open(straight / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == pooled["overall"]["n_spotted"] + sum(r["type"] not in ("micro", "macro") for r in rows)
    for r in rows:  # frame numbers as the sheet writes them: img<N>.jpg, N = index + 1
        assert int(r["onset_frame"]) == int(r["onset_index"]) + 1
        assert r["near_threshold"] == str(float(r["score"]) < SpotConfig().near_ratio * SpotConfig().threshold)
    report = (straight / "report.md").read_text()
    assert "Synthetic data" in report and "Per subject" in report
    micro_f1 = pooled["micro"]["f1"]
    assert (f"{micro_f1:.3f}" if micro_f1 is not None else "-") in report


def test_resume_needs_the_flag_and_reruns_only_missing_videos(straight, long_root, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(straight, out)
    args = ["--task", "spotting", "--dataset", "casme2_long", "--root", str(long_root), "--out", str(out), *FAST]
    with pytest.raises(ConfigError, match="already holds a spotting run"):
        main(args)
    first = sorted((out / "videos").glob("*.json"))[0]
    first.unlink()  # as if the run had been killed before this video
    assert main([*args, "--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["this_invocation"]["videos_run"] == 1
    assert _figures(out)[0]["pooled"] == _figures(straight)[0]["pooled"]
    record = json.loads((out / "run_config.json").read_text())  # a run whose videos an older tracker measured
    (out / "run_config.json").write_text(json.dumps(record | {"motion_core": "2026-12-01"}))
    with pytest.raises(ConfigError, match="holds a run that was measured by the motion core of 2026-12-01"):
        main([*args, "--resume"])


def test_a_video_that_cannot_be_read_counts_its_expressions_as_missed(long_root, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(long_root, root)
    video = load_long_dataset("casme2_long", root).videos[0]
    for f in video.frame_dir.iterdir():
        f.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["--task", "spotting", "--dataset", "casme2_long", "--root", str(root), "--out", str(out), *FAST]) == 0
    spotting, counts = _figures(out)
    assert counts["failed"] == 1 and video.key in counts["failed_videos"]
    per_video = spotting["per_video"][video.key]["overall"]
    assert per_video["tp"] == per_video["fp"] == 0 and per_video["fn"] == len(video.expressions)
    assert "could not be spotted" in (out / "report.md").read_text()


def _error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


def test_a_truncated_video_file_is_named_on_resume(straight, long_root, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(straight, out)
    cut = sorted((out / "videos").glob("*.json"))[0]
    cut.write_text(cut.read_text()[:40])  # half written
    assert cli.main(["eval", "--task", "spotting", "--dataset", "casme2_long", "--root", str(long_root), "--out",
                     str(out), "--resume", *FAST]) == 1
    assert _error_line(capsys) == (f"error: {cut} is not valid JSON (cut short?): delete it and rerun with --resume to "
                                   "spot that video again, or run without --resume into a new --out.")


def test_a_sheet_without_data_rows_stops_the_eval(tmp_path, capsys):
    """It used to score the frame folders with no ground truth: F1 0.000 and exit 0."""
    import numpy as np

    from instruction_data.long_layouts import video_entry, write_frames, write_sheets

    video = video_entry("casme2_long", 0, 0, 5, [])
    write_frames("casme2_long", tmp_path, video, (np.full((8, 8, 3), 100, np.uint8) for _ in range(5)))
    (sheet,) = write_sheets("casme2_long", tmp_path, [video], quirks=False)
    out = tmp_path / "out"
    assert cli.main(["eval", "--task", "spotting", "--dataset", "casme2_long", "--root", str(tmp_path), "--out",
                     str(out), *FAST]) == 1
    assert _error_line(capsys) == (f"error: {sheet.name}: no data rows in sheet 'CASMEcode_final'; give the full "
                                   "annotation sheet (this one is empty or cut short).")
    assert not out.exists()


def test_duplicated_rows_are_noted_and_scored_once(straight, long_root, tmp_path):
    """51 copies of one row used to be 51 ground truths, 50 of them missed (F1 0.818 -> 0.029 on a real run)."""
    from openpyxl import load_workbook

    root = tmp_path / "dup"
    shutil.copytree(long_root, root)
    sheet = root / "CAS(ME)^2code_final(Updated).xlsx"
    wb = load_workbook(sheet)
    ws = wb["CASMEcode_final"]
    first = [c.value for c in ws[1]]
    for _ in range(50):
        ws.append(first)
    wb.save(sheet)
    out = tmp_path / "out"
    shutil.copytree(straight / "videos", out / "videos")  # the same spotted intervals, scored against the new sheet
    assert main(["--task", "spotting", "--dataset", "casme2_long", "--root", str(root), "--out", str(out), "--resume",
                 *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["this_invocation"]["videos_run"] == 0
    assert m["spotting"]["pooled"] == _figures(straight)[0]["pooled"]
    duplicates = [s for s in m["loader"]["skipped"] if s["reason"].startswith("duplicate: row 1 gives")]
    assert len(duplicates) == 50 and "50 x duplicate" in m["loader"]["summary"]
    assert "50 x duplicate" in (out / "report.md").read_text()


def test_a_sheet_whose_rows_were_all_skipped_stops_the_eval(long_root, tmp_path, capsys):
    """Every row unusable (here the naming rule's columns swapped: no participant known) used to score the videos
    against no ground truth: F1 0.000 and exit 0."""
    from openpyxl import load_workbook

    root = tmp_path / "swapped"
    shutil.copytree(long_root, root)
    sheet = root / "CAS(ME)^2code_final(Updated).xlsx"
    wb = load_workbook(sheet)
    ws = wb["naming rule1"]
    for row in ws.iter_rows():
        row[1].value, row[2].value = row[2].value, row[1].value
    wb.save(sheet)
    out = tmp_path / "out"
    assert cli.main(["eval", "--task", "spotting", "--dataset", "casme2_long", "--root", str(root), "--out", str(out),
                     *FAST]) == 1
    line = _error_line(capsys)
    assert line.startswith(f"error: No expression of the casme2_long sheet in {root} could be used, so every interval "
                           "spotted would score as a false alarm:")
    assert "x unknown participant" in line and "with --strict the evaluation stops at the first one" in line
    assert not out.exists()


def test_a_runs_own_record_given_as_config_runs_it_again_and_says_when_the_spotter_changed(straight, tmp_path, caplog):
    """`run_config.json` holds the spotter's resolved settings beside the run's, which `--config` refused as an
    unknown setting; given back, the run is set up again, and a spotter whose defaults moved since is named."""
    import logging

    from eval.spotting_run import parse

    written = json.loads((straight / "run_config.json").read_text())
    record = tmp_path / "run_config.json"
    record.write_text(json.dumps(written))
    with caplog.at_level(logging.WARNING):
        config = parse(["--config", str(record), "--out", str(tmp_path / "again")])
    assert config.root == written["root"] and not caplog.records
    record.write_text(json.dumps(written | {"spot_settings": written["spot_settings"] | {"threshold": 4.0}}))
    with caplog.at_level(logging.WARNING):
        parse(["--config", str(record), "--out", str(tmp_path / "again")])
    assert "threshold 4.0 -> " in caplog.text and "--spot-config" in caplog.text
    record.write_text(json.dumps(written | {"motion_core": "2026-12-01"}))  # measured by an older tracker
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        parse(["--config", str(record), "--out", str(tmp_path / "again")])
    assert "The run recorded in --config was measured by the motion core of 2026-12-01" in caplog.text
