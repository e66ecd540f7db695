"""synth -> load -> build -> export -> reload: the instruction data are complete, TRL-ready, parse back to their
labels, and a killed build resumes to exactly the files of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SYNTH_BUILD_ARGS

from assistant.errors import ConfigError
from assistant.parse import parse_answer
from assistant.types import RegionMotion
from instruction_data.build import main as build_main
from instruction_data.fgmu import FGMUConfig, make_samples
from instruction_data.loaders import load_dataset
from instruction_data.synth_cli import main as synth_main

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_build_writes_every_format_and_reloads_with_datasets(synth_casme2_build, synth_casme2_root):
    import datasets

    out = synth_casme2_build
    report = json.loads((out / "report.json").read_text())
    records = load_dataset("casme2", synth_casme2_root).records
    assert report["clips"]["analysed"] == len(records) == 6 and not report["clips"]["failed"]
    assert report["load"]["rows_skipped"] == 1 and report["load"]["skipped"][0]["reason"].startswith("frames missing")
    assert report["synthetic"] is True
    spotted = report["clips"]["apex_spotted"]  # the frame file, as the sheet and the notes name frames
    assert spotted and all(name.startswith("img") and name.endswith(".jpg") for name in spotted.values())
    rows = _rows(out / "train.jsonl")
    known = [r for r in records if r.aus_coded and not r.aus.unknown]
    assert sum(r["task"] == "fgmu" for r in rows) == 2 * len(known)  # one per language
    for r in records:  # the `?` row: no AU truth, so no FGMU answer (it concluded "AUs: none"); emotion in both
        if r not in known:
            ids = sorted(x["id"] for x in rows if x["id"].startswith(r.key + "|"))
            assert ids == [f"{r.key}|mer|en", f"{r.key}|mer|zh"]
    assert len(known) == len(records) - 1
    assert {r["lang"] for r in rows} == {"en", "zh"} and any(r["task"] == "mer" for r in rows)
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == len(records) and {Path(r["images"][0]).name for r in rows} == set(images)
    llava = json.loads((out / "llava.json").read_text())
    assert [x["id"] for x in llava] == [r["id"] for r in rows]
    assert all(x["conversations"][0]["value"].startswith("<image>\n") for x in llava)

    hf = datasets.load_from_disk(str(out / "hf"))
    assert list(hf) == ["train"] and hf["train"].num_rows == len(rows)
    first = hf["train"][0]
    assert first["images"][0].size == (256, 256)
    assert first["messages"] == rows[0]["messages"]
    subjects = sorted({r["subject"] for r in rows})
    assert all(r["fold"] == subjects.index(r["subject"]) for r in rows)
    card = (out / "README.md").read_text()
    assert "SYNTHETIC" in card and "CASME2-coding-20140508.xlsx" in card and "| AU1 |" in card


def test_rows_are_trl_ready(synth_casme2_build):
    import datasets
    from trl.data_utils import prepare_multimodal_messages

    path = synth_casme2_build / "train.jsonl"
    rows = _rows(path)
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in row["messages"])
        assert len(row["images"]) == 1 and (path.parent / row["images"][0]).is_file()
    ds = datasets.Dataset.from_list([{"messages": r["messages"], "images": [str(path.parent / r["images"][0])]}
                                     for r in rows[:2]]).cast_column("images", datasets.List(datasets.Image()))
    example = ds[0]
    messages = prepare_multimodal_messages(example["messages"], images=example["images"])
    assert messages[0]["content"][0]["type"] == "image" and messages[0]["content"][0]["image"].size == (256, 256)
    assert messages[1]["content"] == [{"type": "text", "text": rows[0]["messages"][1]["content"]}]


def test_every_answer_parses_back_to_the_records_labels(synth_casme2_build, synth_casme2_root):
    records = {r.key: r for r in load_dataset("casme2", synth_casme2_root).records}
    for row in _rows(synth_casme2_build / "train.jsonl"):
        record = records[f"casme2/{row['subject']}/{row['clip_id']}"]
        answer = row["messages"][1]["content"]
        parsed = parse_answer(answer, ("happiness", "disgust", "repression", "surprise", "others"))
        assert parsed.emotion == record.emotion5 == row["emotion"], answer
        if row["task"] == "fgmu":
            assert parsed.status == "ok" and parsed.conclusion == answer.splitlines()[-1]
            assert parsed.aus == sorted({a.code for a in record.aus.aus if a.code is not None}), answer
            assert ("1." in answer and "2." in answer and "3." in answer)
        else:
            assert "\n" not in answer  # MER: the label alone


def test_answers_are_honest_about_missing_and_unexplained_motion(synth_casme2_root):
    record = next(r for r in load_dataset("casme2", synth_casme2_root).records if r.aus.codes == [12])
    still = RegionMotion("mouth_corner", "L", 0.0, 0.0, 0.02, 0.05, "up", "purple", "none", 0.1)
    brow = RegionMotion("inner_brow", "R", 0.0, -1.2, 1.3, 2.0, "up", "purple", "strong", 0.9)
    samples = make_samples(record, [still, brow], "images/x.png", FGMUConfig(lang="en", mer_ratio=0.0, scheme="5"),
                           evidence={record.key: ([(12, 0.81), (6, 0.4)], "rules")})
    assert len(samples) == 1
    text, prompt = samples[0]["answer"], samples[0]["prompt"]
    assert "right inner brow" in text and ("no labelled AU" in text or "not explained" in text)
    assert "AU12 (Lip Corner Puller" in text and ("no region shows" in text or "no matching motion" in text)
    assert "AU evidence (rules): AU12 0.81, AU6 0.40" in prompt
    assert text.splitlines()[-1] == "AUs: AU12; Micro-expression: happiness"


def test_synth_cli_then_build_refuses_to_mix_builds(tmp_path, monkeypatch):
    root = tmp_path / "samm"
    assert synth_main(["--layout", "samm", "--subjects", "1", "--clips", "1", "--frames", "8", "--out",
                       str(root)]) == 0
    assert len(load_dataset("samm", root).records) == 1
    out = tmp_path / "out"
    args = ["--dataset", "samm", "--root", str(root), "--out", str(out), "--flow", "dis", "--hf", "false"]
    assert build_main(args) == 0
    assert not (out / "hf").exists() and len(_rows(out / "train.jsonl")) >= 1
    with pytest.raises(ConfigError, match="already holds a build"):
        build_main(args)
    with pytest.raises(ConfigError, match="different settings"):
        build_main([*args[:-4], "--flow", "tvl1", "--hf", "false", "--resume"])
    stamp = out / "build_settings.json"  # a build from before drift cancellation existed cancelled none
    settings = json.loads(stamp.read_text())
    assert settings.pop("drift") == "offset"
    stamp.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"different settings \(drift\)"):
        build_main([*args, "--resume"])
    assert build_main([*args, "--drift", "none", "--resume"]) == 0
    # the calibration sets the answers' intensity words: MEU_CALIBRATION was read, unrecorded, and a resume with
    # another folder mixed two calibrations in one export
    import shutil

    from assistant import calibration

    assert json.loads(stamp.read_text())["calibration"] == calibration.record(calibration.RULES_FILES)
    other = tmp_path / "calibration"
    other.mkdir()
    for name in calibration.RULES_FILES:
        shutil.copy(calibration.SHIPPED[name], other / name)
    (other / "intensity_calibration.json").write_text(json.dumps(  # only the layout changed: the same calibration
        json.loads((other / "intensity_calibration.json").read_text()), indent=1))
    monkeypatch.setenv(calibration.ENV, str(other))
    assert calibration.record(calibration.RULES_FILES)["files"] == json.loads(stamp.read_text())["calibration"]["files"]
    words = json.loads((other / "intensity_calibration.json").read_text())
    words["thresholds_px"]["strong"] = 0.5  # other intensity words
    (other / "intensity_calibration.json").write_text(json.dumps(words))
    # --calibration sets the variable for the process: monkeypatch restores it after the test
    with pytest.raises(ConfigError, match=r"different settings \(calibration\)"):
        build_main([*args, "--drift", "none", "--resume", "--calibration", str(other)])
    monkeypatch.delenv(calibration.ENV)  # the build's own record builds it again (its calibration entry was refused)
    assert build_main(["--config", str(stamp), "--out", str(tmp_path / "again")]) == 0
    assert _rows(tmp_path / "again" / "train.jsonl") == _rows(out / "train.jsonl")
    settings = json.loads(stamp.read_text())  # a build from before the motion core was recorded: other numbers
    del settings["motion_core"]
    stamp.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match="holds a build that was measured by an older motion core"):
        build_main([*args, "--drift", "none", "--resume"])


def _run_build(root: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "assistant.cli", "data", "build", *SYNTH_BUILD_ARGS, "--root", str(root),
           "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_build_resumes_to_the_same_output(synth_casme2_root, synth_casme2_build, tmp_path):
    out = tmp_path / "out"
    proc = _run_build(synth_casme2_root, out)
    parts = out / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(parts.glob("*.json"))) < 1:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.json")))
    assert 1 <= done < 6, "the build should have been killed part-way"
    assert not (out / "train.jsonl").exists()

    resumed = _run_build(synth_casme2_root, out, "--resume", "--workers", "2")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["clips"]["resumed_from_parts"] == done
    ref = synth_casme2_build
    for name in ("train.jsonl", "llava.json", "README.md"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    for image in (ref / "images").iterdir():
        assert (out / "images" / image.name).read_bytes() == image.read_bytes(), image.name
    assert not list(out.rglob("*.part*"))


def test_bad_settings_fail_before_the_output_is_claimed(synth_casme2_root, tmp_path):
    """A build refused for its settings must leave --out free, or the corrected command is refused as a mix."""
    out = tmp_path / "out"
    args = ["--dataset", "casme2", "--root", str(synth_casme2_root), "--out", str(out), "--flow", "dis",
            "--hf", "false", "--limit", "1"]
    with pytest.raises(ConfigError, match="mer_ratio"):
        build_main([*args, "--mer-ratio", "2"])
    with pytest.raises(ConfigError, match="--limit"):  # -1 would silently drop the sheet's last clip
        build_main([*args, "--limit", "-1"])
    assert not (out / "build_settings.json").exists()
    assert build_main(args) == 0


def test_resume_and_a_fresh_run_remove_stale_temporary_files(synth_casme2_root, synth_casme2_build, tmp_path):
    """A SIGKILL during export leaves `.train.jsonl.<random>.part` (and the like); the next run into the folder
    removes what its own writers leave, and nothing else."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(synth_casme2_build, out)
    stale = [out / ".train.jsonl.k2j3h_4a.part", out / "parts" / ".casme2_sub01_EP02_01f.json.abcd1234.part",
             out / "images" / ".casme2_sub01_EP02_01f.png.zzzzzzzz.part", out / ".README.part.md"]
    for p in stale:
        p.write_text("half written")
    (out / ".hf.part").mkdir()
    (out / ".hf.part" / "data-00000-of-00001.arrow").write_text("half written")
    mine = [out / ".notes.txt", out / "parts" / "keep.part.txt"]
    for p in mine:
        p.write_text("the user's")
    assert build_main([*SYNTH_BUILD_ARGS, "--root", str(synth_casme2_root), "--out", str(out), "--resume"]) == 0
    assert [p for p in stale if p.exists()] == [] and not (out / ".hf.part").exists()
    assert all(p.exists() for p in mine)
    assert (out / "train.jsonl").read_bytes() == (synth_casme2_build / "train.jsonl").read_bytes()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".train.jsonl.aaaaaaaa.part").write_text("from a run killed before it stamped the folder")
    assert build_main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--out", str(fresh), "--flow", "dis",
                       "--hf", "false", "--limit", "1"]) == 0
    assert not list(fresh.rglob("*.part*"))


def test_codes_outside_the_facs_table_stay_out_of_answers(synth_casme2_root, tmp_path):
    import shutil

    from openpyxl import load_workbook

    root = tmp_path / "data"
    shutil.copytree(synth_casme2_root, root)
    sheet = root / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    wb.active.cell(row=2, column=8).value = "12+99"
    wb.save(sheet)
    args = ["--dataset", "casme2", "--root", str(root), "--flow", "dis", "--hf", "false", "--limit", "1",
            "--mer-ratio", "0"]
    assert build_main([*args, "--out", str(tmp_path / "out")]) == 0
    (row,) = _rows(tmp_path / "out" / "train.jsonl")
    answer = row["messages"][1]["content"]
    assert "AU99" not in answer and answer.splitlines()[-1].startswith("AUs: AU12;") and row["au_codes"] == [12]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    key = next(r.key for r in load_dataset("casme2", root).records if r.row == 2)
    assert report["clips"]["aus_outside_facs"] == {key: {"row": 2, "aus": ["AU99"], "in_answers": False}}

    assert build_main([*args, "--out", str(tmp_path / "allowed"), "--allow-unknown-aus"]) == 0
    (row,) = _rows(tmp_path / "allowed" / "train.jsonl")
    assert row["messages"][1]["content"].splitlines()[-1].startswith("AUs: AU12, AU99;") and row["au_codes"] == [12, 99]


def test_a_truncated_part_is_named_on_resume(synth_casme2_root, synth_casme2_build, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(synth_casme2_build, out)
    cut = sorted((out / "parts").glob("*.json"))[0]
    cut.write_text(cut.read_text()[:40])  # half written
    with pytest.raises(ConfigError) as err:
        build_main([*SYNTH_BUILD_ARGS, "--root", str(synth_casme2_root), "--out", str(out), "--resume"])
    assert str(err.value) == (f"{cut} is not valid JSON (cut short?): delete it and rerun with --resume to redo that "
                              "clip, or build without --resume into a new --out.")


def test_a_clip_whose_image_was_deleted_is_built_again_on_resume(synth_casme2_root, synth_casme2_build, tmp_path):
    """The part was there and its image not: the export stopped with a FileNotFoundError after rewriting the JSONL
    with rows naming the missing image."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(synth_casme2_build, out)
    gone = sorted((out / "images").glob("*.png"))[0]
    before = gone.read_bytes()
    gone.unlink()
    assert build_main([*SYNTH_BUILD_ARGS, "--root", str(synth_casme2_root), "--out", str(out), "--resume"]) == 0
    assert gone.read_bytes() == before
    assert _rows(out / "train.jsonl") == _rows(synth_casme2_build / "train.jsonl")
    clips = json.loads((out / "report.json").read_text())["clips"]
    assert clips["resumed_from_parts"] == clips["usable_rows"] - 1  # only that clip was built again


def test_evidence_lines_that_name_no_clip_are_counted_and_said(synth_casme2_root, tmp_path, caplog):
    """An evidence line of another copy or dataset was ignored without a word, and nothing said how many clips got
    their detector line."""
    from instruction_data.build import main

    records = load_dataset("casme2", synth_casme2_root).records
    lines = [{"key": records[0].key, "scores": {"12": 0.8}, "backend": "rules"},
             {"key": "casme2/sub09/NOPE", "scores": {"4": 0.9}, "backend": "rules"}]
    evidence = tmp_path / "evidence.jsonl"
    evidence.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert main(["--dataset", "casme2", "--root", str(synth_casme2_root), "--out", str(out), "--limit", "2",
                     "--flow", "dis", "--evidence", str(evidence)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["evidence"] == {"clips_with_evidence": 1, "clips": 2, "keys_not_in_the_sheet": 1,
                                  "first_keys_not_in_the_sheet": ["casme2/sub09/NOPE"]}
    assert "1 evidence line(s) name no clip of this build (first: casme2/sub09/NOPE)" in caplog.text


def test_a_row_corrected_in_the_sheet_is_built_again_on_resume(tmp_path):
    """The part was reused because its file and image were there: after the sheet's emotion and AUs for a clip were
    corrected, `--resume` exported the old labels with no warning."""
    from openpyxl import load_workbook

    from instruction_data.layouts import write_synthetic_dataset

    root = write_synthetic_dataset("casme2", tmp_path / "data", subjects=2, clips=2, n_frames=8)
    out = tmp_path / "out"
    args = [*SYNTH_BUILD_ARGS, "--root", str(root), "--out", str(out), "--lang", "en", "--mer-ratio", "0"]
    assert build_main(args) == 0
    sheet = root / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    header = [c.value for c in wb.active[1]]
    row = wb.active[2]
    clip = row[header.index("Filename")].value
    row[header.index("Action Units")].value, row[header.index("Estimated Emotion")].value = "4+7", "disgust"
    wb.save(sheet)
    assert build_main([*args, "--resume"]) == 0
    clips = json.loads((out / "report.json").read_text())["clips"]
    assert clips["resumed_from_parts"] == clips["usable_rows"] - 1  # only the corrected clip was built again
    mine = [r for r in _rows(out / "train.jsonl") if clip in json.dumps(r)]
    assert mine and all(r["emotion"] == "disgust" for r in mine), mine
