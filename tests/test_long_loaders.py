"""The long-video sheet loaders (CAS(ME)^2, SAMM Long Videos) read synthetic sheets written in the official layouts,
quirks included, and report every quirk row by row."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import AnnotationSheetError
from instruction_data.loaders import load_long_dataset
from instruction_data.long_layouts import video_entry, write_frames, write_sheets


def _e(onset, apex, offset, kind="micro", aus=("12",)):
    return {"onset": onset, "apex": apex, "offset": offset, "kind": kind, "aus": aus}


def _write(layout, root, videos, extra=()):
    for v in [*videos, *extra]:  # tiny grey frames: the loaders read file names, not pixels
        write_frames(layout, root, v, (np.full((8, 8, 3), 100, np.uint8) for _ in range(v["n_frames"])))
    write_sheets(layout, root, videos, quirks=True)


def _spans(video):
    return [(e.onset, e.apex, e.offset, e.kind) for e in video.expressions]


@pytest.fixture(scope="module")
def casme2_long_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme2_long")
    videos = [
        video_entry("casme2_long", 0, 0, 60, [_e(5, 8, 12, aus=("4", "L10")),  # sheet row 1
                                              _e(20, 30, 50, "macro", ("6", "12"))]),  # row 2: offset written 0
        video_entry("casme2_long", 0, 1, 60, [_e(10, 14, 18)]),  # row 3: apex written 0
        video_entry("casme2_long", 1, 0, 60, [_e(3, 6, 9),  # row 4: video name padded with a space
                                              _e(30, 35, 55, "macro"),  # row 5: AU "?"
                                              _e(40, 45, 57)]),  # row 6: "micro" lasting 18 frames = 0.6 s
    ]  # row 7: a video (anger9) with no frame folder
    unannotated = video_entry("casme2_long", 1, 3, 10, [])  # frames that no row names
    _write("casme2_long", root, videos, [unannotated])
    return root


def test_casme2_long_headerless_sheet_naming_rules_and_quirks(casme2_long_root):
    res = load_long_dataset("casme2_long", casme2_long_root)
    by_id = {(v.subject, v.video_id): v for v in res.videos}
    assert set(by_id) == {("s15", "15_0101disgustingteeth"), ("s15", "15_0102eatingworms"),
                          ("s16", "16_0101disgustingteeth"), ("s16", "16_0502funnyerrors")}
    assert all(v.fps == 30.0 and v.n_frames in (60, 10) for v in res.videos)
    # frame numbers (img1.jpg = frame 1) become indices from 0
    v1 = by_id[("s15", "15_0101disgustingteeth")]
    assert _spans(v1) == [(4, 7, 11, "micro"), (19, 29, 29, "macro")]
    assert v1.frame_numbers[:3] == [1, 2, 3] and v1.key == "casme2_long/s15/15_0101disgustingteeth"
    offset_zero = v1.expressions[1]  # offset 0 = unknown: the interval ends at the apex, noted
    assert not offset_zero.offset_known and offset_zero.row == 2
    assert offset_zero.notes == ["offset not given: offset cell is '0'; the interval ends at the apex"]
    apex_zero = by_id[("s15", "15_0102eatingworms")].expressions[0]
    assert (apex_zero.onset, apex_zero.apex, apex_zero.offset) == (9, None, 17)
    assert [n.split(":")[0] for n in apex_zero.notes] == ["apex not given"]
    v3 = by_id[("s16", "16_0101disgustingteeth")]
    assert _spans(v3) == [(2, 5, 8, "micro"), (29, 34, 54, "macro"), (39, 44, 56, "micro")]
    assert v3.expressions[0].clip_id == "disgust1_1"  # read without the padding
    assert [a.raw for a in v3.expressions[1].aus.unknown] == ["?"]
    assert v3.expressions[2].notes[0].startswith("type vs duration: 'micro-expression' lasts 0.57 s")
    assert str(v1.expressions[0].aus) == "4+L10"
    assert by_id[("s16", "16_0502funnyerrors")].expressions == []
    assert [(s.row, s.clip_id, s.reason.split(":")[0]) for s in res.skipped] == [(7, "anger9_1", "frames missing")]
    notes = " | ".join(res.notes)
    assert "stored as numbers without their leading zero" in notes
    assert "1 video name cell(s) padded with spaces" in notes
    assert "1 frame folder(s) with no annotated expression" in notes
    summary = res.summary()
    assert "4 videos" in summary and "6 expressions used (4 micro, 2 macro)" in summary
    assert "1 x frames missing" in summary and "1 x offset not given" in summary
    report = res.report()
    assert {n["row"] for n in report["notes"]} == {2, 3, 5, 6}


def test_casme2_long_strict_stops_at_the_first_quirk(casme2_long_root):
    with pytest.raises(AnnotationSheetError, match=r"row 2: offset not given"):
        load_long_dataset("casme2_long", casme2_long_root, strict=True)


def test_casme2_long_workbook_without_naming_rules_is_refused(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "CASMEcode_final"
    wb.active.append([1, "disgust1_1", 1, 2, 3, "12", "positive", "micro-expression", "positive"])
    wb.save(tmp_path / "CAS(ME)^2code_final.xlsx")
    with pytest.raises(AnnotationSheetError, match="no sheet 'naming rule1'"):
        load_long_dataset("casme2_long", tmp_path)


@pytest.fixture(scope="module")
def samm_long_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("samm_long")
    videos = [
        video_entry("samm_long", 0, 0, 300, [_e(10, 20, 40, aus=("R12", "R15")),  # sheet row 12
                                             _e(100, 150, 260, "macro")]),  # row 13: apex written -1
        video_entry("samm_long", 0, 1, 300, [_e(30, 45, 70)]),  # row 14: a Notes cell
        video_entry("samm_long", 1, 0, 300, [_e(5, 15, 30), _e(60, 120, 200, "macro")]),  # rows 15, 16
    ]  # row 17: onset after offset; row 18: a video (006_3, numbered past 006's videos) with no frame folder
    unannotated = video_entry("samm_long", 1, 1, 20, [])
    _write("samm_long", root, videos, [unannotated])
    return root


def test_samm_long_preamble_types_and_quirks(samm_long_root):
    res = load_long_dataset("samm_long", samm_long_root)
    assert any("header found on row 11, below 10 title row(s)" in n for n in res.notes)
    by_id = {v.video_id: v for v in res.videos}
    assert set(by_id) == {"006_1", "006_2", "007_1", "007_2"}
    assert {v.subject for v in res.videos} == {"006", "007"} and all(v.fps == 200.0 for v in res.videos)
    v = by_id["006_1"]
    assert _spans(v) == [(9, 19, 39, "micro"), (99, None, 259, "macro")]  # 006_1_0010.jpg = frame 10 = index 9
    assert v.expressions[0].type_raw == "Micro - 1/2" and v.expressions[1].type_raw == "Macro"
    assert [(a.code, a.side) for a in v.expressions[0].aus.aus] == [(12, "R"), (15, "R")]
    assert [n.split(":")[0] for n in v.expressions[1].notes] == ["apex not given"]
    assert v.expressions[1].notes[0] == "apex not given: apex cell is '-1'"
    assert _spans(by_id["006_2"]) == [(29, 44, 69, "micro")] and not by_id["006_2"].expressions[0].notes
    assert _spans(by_id["007_1"]) == [(4, 14, 29, "micro"), (59, 119, 199, "macro")]
    assert by_id["007_2"].expressions == []
    assert [(s.row, s.clip_id, s.reason.split(":")[0]) for s in res.skipped] == [
        (17, "006_1_99", "frame order"), (18, "006_3_1", "frames missing")]
    assert [e.row for e in res.expressions] == [12, 13, 14, 15, 16]


def test_samm_long_strict_and_wrong_sheet(samm_long_root, tmp_path):
    with pytest.raises(AnnotationSheetError, match=r"row 13: apex not given"):
        load_long_dataset("samm_long", samm_long_root, strict=True)
    (tmp_path / "SAMM_LongVideos_V2_Release.csv").write_text("Subject,Filename,Onset Frame\n6,006_1_1,5\n")
    with pytest.raises(AnnotationSheetError, match="no header row with the columns"):
        load_long_dataset("samm_long", tmp_path)
    with pytest.raises(AnnotationSheetError, match="Unknown long-video dataset"):
        load_long_dataset("casme2", tmp_path)


def _write_plain(layout, root, videos):
    """Sheets without the layout's quirks, so a test's rows are only the ones it lists."""
    for v in videos:
        write_frames(layout, root, v, (np.full((8, 8, 3), 100, np.uint8) for _ in range(v["n_frames"])))
    return write_sheets(layout, root, videos, quirks=False)[0]


@pytest.mark.parametrize("layout,where", [("casme2_long", "in sheet 'CASMEcode_final'"),
                                          ("samm_long", "follow the header on row 11")])
def test_a_sheet_without_data_rows_is_refused(layout, where, tmp_path):
    """Read as empty, its frame folders would be scored with no ground truth: F1 0.000 and exit 0."""
    sheet = _write_plain(layout, tmp_path, [video_entry(layout, 0, 0, 5, [])])
    with pytest.raises(AnnotationSheetError) as err:
        load_long_dataset(layout, tmp_path)
    assert str(err.value) == (f"{sheet.name}: no data rows {where}; give the full annotation sheet (this one is empty "
                              "or cut short).")


@pytest.mark.parametrize("layout,first_row", [("casme2_long", 1), ("samm_long", 12)])
def test_a_repeated_interval_is_counted_once_and_reported(layout, first_row, tmp_path):
    _write_plain(layout, tmp_path, [video_entry(layout, 0, 0, 60, [_e(5, 8, 12)] * 3 + [_e(20, 25, 30)])])
    res = load_long_dataset(layout, tmp_path)
    assert _spans(res.videos[0]) == [(4, 7, 11, "micro"), (19, 24, 29, "micro")]
    assert [(s.row, s.reason) for s in res.skipped] == [
        (first_row + k, f"duplicate: row {first_row} gives the same video, onset, apex and offset; the interval is "
                        "counted once") for k in (1, 2)]
    assert "2 expressions used" in res.summary() and "2 x duplicate" in res.summary()
    with pytest.raises(AnnotationSheetError, match=rf"row {first_row + 1}: duplicate: row {first_row} gives"):
        load_long_dataset(layout, tmp_path, strict=True)


@pytest.mark.parametrize("flags,words", [
    (["--long", "--layout", "casme2"], "use --layout casme2_long or samm_long"),
    (["--layout", "samm_long"], "add --long"),
])
def test_synth_long_refuses_a_mismatched_layout(flags, words, tmp_path):
    from assistant.errors import ConfigError
    from instruction_data.synth_cli import main

    with pytest.raises(ConfigError, match=words):
        main([*flags, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_samm_long_row_whose_subject_disagrees_with_its_filename_is_skipped(tmp_path):
    """`S006` beside `006_1_1` made a second video of the same frames under an invented subject, spotted twice."""
    from openpyxl import load_workbook

    sheet = _write_plain("samm_long", tmp_path, [video_entry("samm_long", 0, 0, 60, [_e(5, 8, 12), _e(20, 25, 30)])])
    wb = load_workbook(sheet)
    wb.active.cell(row=12, column=1).value = "S006"
    wb.save(sheet)
    res = load_long_dataset("samm_long", tmp_path)
    assert [(v.subject, v.video_id, len(v.expressions)) for v in res.videos] == [("006", "006_1", 1)]
    assert [(s.row, s.reason) for s in res.skipped] == [
        (12, "subject mismatch: the Subject cell says 'S006' but the Filename '006_1_1' is a video of subject '006'; "
             "correct one of the two cells")]


def test_two_casme2_long_folders_with_the_video_prefix_are_not_guessed_between(tmp_path):
    """A copy `15_0101a_backup` beside `15_0101disgustingteeth` used to take the annotations, whichever sorted first."""
    import shutil

    _write_plain("casme2_long", tmp_path, [video_entry("casme2_long", 0, 0, 30, [_e(5, 8, 12)])])
    (real,) = (tmp_path / "rawpic" / "s15").iterdir()
    shutil.copytree(real, real.parent / "15_0101a_backup")
    res = load_long_dataset("casme2_long", tmp_path)
    assert [s.reason.split(":")[0] for s in res.skipped] == ["ambiguous folder"]
    assert "15_0101a_backup, 15_0101disgustingteeth" in res.skipped[0].reason and not res.expressions
