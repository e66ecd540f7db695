"""`meu data synth` end to end: a rerun replaces an earlier dataset only when the new one is complete, quirk rows and
folders never name a rendered clip, the truth numbers frames as the sheet does, the sheets are byte for byte the same
for the same seed, and flags that cannot work are refused with a sentence before any work."""

from __future__ import annotations

import json
import logging
import zipfile

import numpy as np
import pytest

from assistant import cli
from assistant.errors import ConfigError
from instruction_data.layouts import SHEET_TIME, write_synthetic_dataset
from instruction_data.loaders import load_dataset, load_long_dataset
from instruction_data.long_layouts import video_entry, write_frames, write_sheets, write_synthetic_long_dataset
from instruction_data.synth_cli import main
from instruction_data.synth_folder import STAGING_MARK, staging_folder

SMALL = ["--subjects", "1", "--clips", "2", "--frames", "4"]
SHEET = "CASME2-coding-20140508.xlsx"


def _error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


def _snapshot(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_interrupted_rewrite_leaves_the_earlier_dataset_and_the_next_run_replaces_it(tmp_path, monkeypatch):
    """Ctrl-C during a rewrite used to leave partial frames, no sheet and no truth: the next run refused the folder
    ("not empty and holds no earlier synthetic dataset")."""
    import instruction_data.layouts as layouts

    out = tmp_path / "D"
    assert main(["--out", str(out), *SMALL]) == 0
    before = _snapshot(out)
    real_render, calls = layouts.render_clip, []

    def interrupted(spec):  # Ctrl-C while the second clip of the new dataset renders
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_render(spec)

    monkeypatch.setattr(layouts, "render_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--out", str(out), "--subjects", "2", "--clips", "2", "--frames", "6", "--seed", "5"])
    monkeypatch.undo()
    assert _snapshot(out) == before and not staging_folder(out).exists()
    assert len(load_dataset("casme2", out).records) == 2
    assert main(["--out", str(out), "--subjects", "2", "--clips", "1", "--frames", "6", "--seed", "5"]) == 0
    assert {r.clip_id for r in load_dataset("casme2", out).records} == {"EP01_01", "EP01_02"}
    assert all(len(r.frame_paths) == 6 for r in load_dataset("casme2", out).records)


def test_a_killed_run_or_an_interrupted_commit_leaves_a_folder_the_next_run_replaces(tmp_path, monkeypatch):
    import instruction_data.synth_folder as synth_folder

    out = tmp_path / "D"
    assert main(["--out", str(out), *SMALL]) == 0
    stage = staging_folder(out)  # what a run killed (SIGKILL) while rendering leaves beside the dataset
    stage.mkdir()
    (stage / STAGING_MARK).write_text("")
    (stage / "CASME2_RAW_selected" / "sub01" / "EP01_01").mkdir(parents=True)
    (stage / "CASME2_RAW_selected" / "sub01" / "EP01_01" / "img1.jpg").write_bytes(b"half")
    real_move, moves = synth_folder.shutil.move, []

    def interrupted(src, dst):  # Ctrl-C after the first clip folder of the new dataset moved in
        moves.append(src)
        if len(moves) == 2:
            raise KeyboardInterrupt
        return real_move(src, dst)

    monkeypatch.setattr(synth_folder.shutil, "move", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--out", str(out), "--layout", "samm", *SMALL])
    monkeypatch.undo()
    assert json.loads((out / "synth_truth.json").read_text())["incomplete"]  # recognised: old and new listed
    assert main(["--out", str(out), "--layout", "samm", "--subjects", "1", "--clips", "1", "--frames", "5"]) == 0
    assert {p.name for p in out.iterdir()} == {"SAMM", "SAMM_Micro_FACS_Codes_v2.xlsx", "synth_truth.json"}
    assert [len(r.frame_paths) for r in load_dataset("samm", out).records] == [5]
    assert not stage.exists()
    stage.mkdir()  # a folder of that name that is not ours is not removed
    (stage / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is in the way of --out"):
        main(["--out", str(out), *SMALL])
    assert (stage / "mine.txt").read_text() == "keep me"


def test_switching_layout_leaves_no_empty_folders_and_keeps_files_it_did_not_write(tmp_path):
    out = tmp_path / "D"
    assert main(["--out", str(out), "--layout", "samm", *SMALL]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["--out", str(out), *SMALL]) == 0
    assert {p.name for p in out.iterdir()} == {"CASME2_RAW_selected", SHEET, "notes.txt", "synth_truth.json"}
    (out / "CASME2_RAW_selected" / "sub01" / "mine.txt").write_text("mine")
    assert main(["--out", str(out), "--layout", "dfme", *SMALL]) == 0
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if "DFME" not in p.parts} == {
        "CASME2_RAW_selected", "CASME2_RAW_selected/sub01", "CASME2_RAW_selected/sub01/mine.txt",
        "DFME_training_full_with_AU.xlsx", "notes.txt", "synth_truth.json"}


def test_same_seed_same_sheet_bytes(tmp_path):
    """openpyxl stamped the save time into docProps/core.xml (and zip entries carry their write time)."""
    a, b = (write_synthetic_dataset("casme2", tmp_path / k, 1, 1, seed=2, size=(160, 120), n_frames=3) for k in "ab")
    assert (a / SHEET).read_bytes() == (b / SHEET).read_bytes()
    video = video_entry("casme2_long", 0, 0, 2, [{"onset": 1, "apex": 1, "offset": 2, "kind": "micro", "aus": ["12"]}])
    sheets = [write_sheets(layout, tmp_path / layout, [video_entry(layout, 0, 0, 2, video["expressions"])])[0]
              for layout in ("casme2_long", "samm_long")]
    for sheet in (a / SHEET, *sheets):
        with zipfile.ZipFile(sheet) as z:
            assert {i.date_time for i in z.infolist()} == {SHEET_TIME.timetuple()[:6]}
            core = z.read("docProps/core.xml").decode()
        stamp = SHEET_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f">{stamp}</dcterms:created>" in core and f">{stamp}</dcterms:modified>" in core


def test_a_samm_long_quirk_row_never_names_a_rendered_video(tmp_path):
    """With 9 videos a subject, the "video with no frames" row 006_9_1 named the real 006_9: a phantom expression."""
    expression = {"onset": 2, "apex": 3, "offset": 4, "kind": "micro", "aus": ["12"]}
    videos = [video_entry("samm_long", 0, v, 5, [expression]) for v in range(9)]
    for v in videos:
        write_frames("samm_long", tmp_path, v, (np.full((8, 8, 3), 100, np.uint8) for _ in range(5)))
    write_sheets("samm_long", tmp_path, videos, quirks=True)
    res = load_long_dataset("samm_long", tmp_path)
    assert {v.video_id: len(v.expressions) for v in res.videos} == {f"006_{k}": 1 for k in range(1, 10)}
    assert ("006_10_1", "frames missing") in [(s.clip_id, s.reason.split(":")[0]) for s in res.skipped]


def test_a_smic_quirk_folder_never_lands_in_a_rendered_clip(tmp_path):
    """With --clips 99 the one-frame quirk wrote into the real clip s1_po_99 and listed it for deletion."""
    root = write_synthetic_dataset("smic", tmp_path / "smic", subjects=1, clips=99, n_frames=3, size=(160, 120))
    truth = json.loads((root / "synth_truth.json").read_text())
    rendered = {c["folder"] for c in truth["clips"]}
    assert len(rendered) == 99 and not rendered & set(truth["sheets"])
    assert "HS/s1/micro/positive/s1_po_100" in truth["sheets"]
    for clip in truth["clips"]:  # every rendered clip holds only its own frames, onset to offset
        assert len(list((root / clip["folder"]).iterdir())) == clip["offset"] - clip["onset"] + 1


def test_long_truth_numbers_frames_as_the_sheet_and_the_file_names(tmp_path, caplog):
    """The truth said "frames_numbered_from": 1 but listed indices from 0 (truth 244 against sheet 245)."""
    root = write_synthetic_long_dataset("casme2_long", tmp_path / "long", subjects=1, videos=1, seed=1, seconds=3,
                                        size=(160, 120), quirks=False)
    truth = json.loads((root / "synth_truth.json").read_text())
    assert truth["frames_numbered_from"] == 1
    (clip,) = truth["clips"]
    (video,) = load_long_dataset("casme2_long", root).videos
    expressions = [(e["onset"], e["apex"], e["offset"]) for e in clip["events"] if e["kind"] in ("micro", "macro")]
    assert expressions and expressions == [(e.onset + 1, e.apex + 1, e.offset + 1) for e in video.expressions]
    assert video.frame_numbers == list(range(1, clip["n_frames"] + 1))
    for e in clip["events"]:
        assert 1 <= e["onset"] <= e["apex"] <= e["offset"] <= clip["n_frames"]
        assert (root / clip["folder"] / f"img{e['offset']}.jpg").is_file()
    with caplog.at_level(logging.WARNING, logger="instruction_data.long_layouts"):
        write_synthetic_long_dataset("casme2_long", tmp_path / "short", 1, 1, seconds=1, size=(160, 120))
    assert "has no room for an expression" in caplog.text


def test_out_naming_a_file_is_refused_before_any_work_and_a_tilde_is_expanded(tmp_path, monkeypatch, capsys):
    taken = tmp_path / "afile"
    taken.write_text("keep me")
    for extra in ([], ["--long", "--layout", "casme2_long", "--seconds", "2"]):
        assert cli.main(["data", "synth", "--out", str(taken), *extra]) == 1
        assert f"--out {taken} cannot be a folder: {taken} is a file" in _error_line(capsys)
        assert taken.read_text() == "keep me"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["--out=~/flag", "--subjects", "1", "--clips", "1", "--frames", "3"]) == 0
    (tmp_path / "synth.yaml").write_text('out: "~/yaml"\nsubjects: 1\nclips: 1\nframes: 3\n')
    assert main(["--config", str(tmp_path / "synth.yaml")]) == 0
    assert all((tmp_path / "home" / name / "synth_truth.json").is_file() for name in ("flag", "yaml"))
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("flags,says", [
    (["--realistic", "--long", "--layout", "casme2_long"],
     "--realistic: long videos have no realistic world yet; leave --realistic out with --long."),
    (["--split", "calibration"], "--split calibration chooses the realistic world's faces; add --realistic"),
    (["--width", "8", "--height", "8"], "--height must be at least 240 px, not 8"),
    (["--realistic", "--width", "40", "--height", "30"], "--height must be at least 240 px, not 30"),
    (["--long", "--layout", "samm_long", "--height", "100"], "--height must be at least 240 px, not 100"),
    (["--width", "100"], "--width must be at least 144 px with a height of 240 px, not 100"),
    (["--subjects", "100000"], "--subjects must be at most 1000 and --clips at most 100"),
    (["--clips", "101"], "--subjects must be at most 1000 and --clips at most 100"),
    (["--long", "--layout", "casme2_long", "--seconds", "1"], "--seconds 1 leaves no room for an expression"),
], ids=["realistic long", "split easy", "tiny", "tiny realistic", "tiny long", "narrow", "subjects", "clips",
        "seconds"])
def test_flags_that_cannot_work_are_one_sentence_before_any_work(flags, says, tmp_path, capsys):
    """They were ignored (--realistic with --long, --split without --realistic), wrote faceless frames (8 x 8), built
    100000 subjects before the first frame, or wrote long videos with no expression."""
    assert cli.main(["data", "synth", *flags, "--out", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert says in line and line.endswith(".")
    assert not (tmp_path / "out").exists()


def test_a_damaged_earlier_record_is_refused_before_any_rendering(tmp_path, monkeypatch):
    """A truncated synth_truth.json let the run render everything and then stop with a JSONDecodeError traceback."""
    import instruction_data.layouts as layouts
    from assistant.errors import ConfigError

    out = tmp_path / "D"
    out.mkdir()
    for damaged in ('{"clips": [', "[1, 2]", '{"sheets": [3]}'):
        (out / "synth_truth.json").write_text(damaged)
        monkeypatch.setattr(layouts, "render_clip", lambda spec: pytest.fail("rendered before the refusal"))
        with pytest.raises(ConfigError, match="cannot be read as an earlier synthetic dataset's record|not text"):
            main(["--out", str(out), *SMALL])
