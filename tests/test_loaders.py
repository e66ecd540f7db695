"""Each loader reads its official sheet layout, quirks included, reports every problem row, and keeps AUs lossless."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.au import AU, format_aus, parse_aus
from assistant.emotions import map_emotion
from assistant.errors import AnnotationSheetError
from instruction_data.loaders import load_dataset


def _truth(root) -> dict[str, dict]:
    return {c["clip_id"]: c for c in json.loads((root / "synth_truth.json").read_text())["clips"]}


def _kinds(notes: list[str]) -> set[str]:
    return {n.split(":", 1)[0] for n in notes}


def test_casme2_quirks_are_handled_and_reported_row_by_row(synth_casme2_root):
    res = load_dataset("casme2", synth_casme2_root)
    truth = _truth(synth_casme2_root)
    assert len(res.records) == 6 and len(res.skipped) == 1
    skip = res.skipped[0]
    assert (skip.row, skip.clip_id) == (8, "EP03_01") and skip.reason.startswith("frames missing")  # past EP02_01
    assert any("dropped 2 blank unnamed column(s): F, G" in n for n in res.notes)
    by_row = {r.row: r for r in res.records}
    slash = by_row[3]  # the sheet's ApexFrame is "/": kept, apex estimated between onset and offset
    assert not slash.apex_known and _kinds(slash.notes) == {"apex not given"}
    assert slash.onset < slash.apex < slash.offset
    unknown = by_row[4]  # AU cell "?": kept as an unknown AU, never dropped
    assert [a.raw for a in unknown.aus.unknown] == ["?"] and _kinds(unknown.notes) == {"unknown AU code"}
    for r in res.records:
        t = truth[r.clip_id]
        assert r.subject == f"sub{t['subject_n']:02d}"
        assert r.frame_paths[r.onset].name == f"img{t['onset']}.jpg"
        assert r.frame_paths[r.offset].name == f"img{t['offset']}.jpg"
        if r.apex_known:
            assert r.frame_paths[r.apex].name == f"img{t['apex']}.jpg"
        if not r.aus.unknown:
            assert str(r.aus) == "+".join(t["aus"])
        assert (r.emotion3, r.emotion5, r.emotion7) == tuple(map_emotion(t["emotion"], s) for s in "357")
    summary = res.summary()
    assert "1 x frames missing" in summary and "1 x apex not given" in summary and "1 x unknown AU code" in summary
    report = res.report()
    assert report["skipped"][0]["row"] == 8 and {n["row"] for n in report["notes"]} == {3, 4}
    assert {n["key"] for n in report["notes"]} == {r.key for r in res.records if r.row in (3, 4)}  # pooled: the dataset


def test_strict_fails_on_the_first_problem_row(synth_casme2_root):
    with pytest.raises(AnnotationSheetError, match=r"row 3: apex not given"):
        load_dataset("casme2", synth_casme2_root, strict=True)


def test_missing_frame_file_skips_the_row_with_its_reason(synth_casme2_root, tmp_path):
    root = tmp_path / "casme2"
    shutil.copytree(synth_casme2_root, root)
    record = next(r for r in load_dataset("casme2", root).records if r.row == 2)
    apex_file = record.frame_paths[record.apex]
    apex_file.unlink()
    res = load_dataset("casme2", root)
    skip = next(s for s in res.skipped if s.row == 2)
    assert skip.reason.startswith(f"frame not found: apex frame {apex_file.stem[3:]}")
    assert len(res.records) == 5


def test_samm_header_below_title_rows_sides_intensity_and_or(synth_samm_root):
    res = load_dataset("samm", synth_samm_root)
    truth = _truth(synth_samm_root)
    assert len(res.records) == 6 and not res.skipped
    assert any("header found on row 13" in n for n in res.notes)
    assert [r.row for r in res.records] == list(range(14, 20))
    assert {r.subject for r in res.records} == {"006", "007", "008"}
    first = res.records[0]  # written "R1 + R2" (one-sided)
    assert [(a.code, a.side) for a in first.aus.aus] == [(1, "R"), (2, "R")]
    with_intensity = [a for r in res.records for a in r.aus.aus if a.intensity]
    assert with_intensity and all(a.intensity == "A" for a in with_intensity)
    alt = next(r for r in res.records if r.aus.alternatives)
    assert _kinds(alt.notes) == {"AU alternatives"} and [a.code for a in alt.aus.alternatives[0]] == [14]
    for r in res.records:
        t = truth[r.clip_id]
        assert [(a.code, a.side) for a in r.aus.aus] == [(AU.parse(x).code, AU.parse(x).side) for x in t["aus"]]
        assert r.frame_paths[r.apex].name == f"{t['subject_n']:03d}_{t['apex']:05d}.jpg"
        assert r.emotion7 == map_emotion(t["emotion"], "7")


def test_dfme_keeps_test_sets_apart_and_subject_disjoint(synth_dfme_root):
    res = load_dataset("dfme", synth_dfme_root)
    assert len(res.records) == 6 and len(res.sheets) == 3
    splits: dict[str, set[str]] = {}
    for r in res.records:
        splits.setdefault(r.split, set()).add(r.subject)
    assert set(splits) == {"train", "test_a", "test_b"}
    assert not (splits["train"] & splits["test_a"]) and not (splits["train"] & splits["test_b"])
    truth = _truth(synth_dfme_root)
    for r in res.records:
        assert r.split == truth[r.clip_id]["split"]
        assert f"/{ {'train': 'train', 'test_a': 'test_A', 'test_b': 'test_B'}[r.split]}/".replace(" ", "") in \
            r.frame_paths[0].as_posix()
    only_a = load_dataset("dfme", synth_dfme_root, splits=("test_a",))
    assert {r.split for r in only_a.records} == {"test_a"}


def test_casme3_subject_forms_and_colour_folder(synth_casme3_root):
    res = load_dataset("casme3", synth_casme3_root)
    assert len(res.records) == 6 and not res.skipped
    assert {r.subject for r in res.records} == {"spNO.1", "spNO.2", "spNO.3"}  # row 3 wrote the subject as "1"
    assert any("written as bare numbers" in n for n in res.notes)
    assert all(r.frame_paths[0].parent.name == "color" for r in res.records)


def test_generic_loader_with_a_column_map(tmp_path, synth_casme2_root):
    src = load_dataset("casme2", synth_casme2_root).records[0]
    frames = tmp_path / "clips" / "p1" / "c1"
    frames.mkdir(parents=True)
    for p in src.frame_paths:
        shutil.copy(p, frames / p.name)
    n = [int(src.frame_paths[i].stem[3:]) for i in (src.onset, src.apex, src.offset)]
    (tmp_path / "labels.csv").write_text(
        "who,clip,start,peak,end,codes,feeling\n"
        f"p1,c1,{n[0]},{n[1]},{n[2]},L12+6,Happy\n"
        f"p1,c1,{n[2]},{n[1]},{n[0]},12,happy\n"  # frames out of order
        f"p1,c2,{n[0]},{n[1]},{n[2]},12,happy\n"  # no such folder
        f"p1,c1,{n[0]},{n[1]},{n[2]},4,bewildered\n")  # an emotion word no scheme knows, row 2's frames relabelled
    res = load_dataset("generic", tmp_path / "clips", sheet=tmp_path / "labels.csv", frames="{subject}/{clip}",
                       columns={"subject": "who", "clip": "clip", "onset": "start", "apex": "peak", "offset": "end",
                                "aus": "codes", "emotion": "feeling"})
    assert [r.row for r in res.records] == [2, 5]
    assert [(s.row, s.reason.split(":")[0]) for s in res.skipped] == [(3, "frame order"), (4, "frames missing")]
    first, odd = res.records
    assert [(a.code, a.side) for a in first.aus.aus] == [(12, "L"), (6, None)]
    assert first.emotion7 == "happiness" and (first.onset, first.apex) == (src.onset, src.apex)
    assert odd.emotion3 is None and _kinds(odd.notes) == {"unknown emotion word", "conflicting labels"}


def test_wrong_sheet_is_a_clear_error(tmp_path):
    (tmp_path / "CASME2-coding-20140508.csv").write_text("Name,Score\nsub01,3\n")
    with pytest.raises(AnnotationSheetError, match="no header row with the columns"):
        load_dataset("casme2", tmp_path)
    with pytest.raises(AnnotationSheetError, match="No CAS"):
        load_dataset("casme3", tmp_path)


@pytest.mark.parametrize("cell", ["4+L10", "1+R2+25", "R12", "?", "R14A", "R12 + R15", "12 or 14", "L1+2B or 4"])
def test_au_strings_round_trip(cell):
    parsed = parse_aus(cell)
    again = parse_aus(" or ".join([format_aus(parsed.aus), *(format_aus(a) for a in parsed.alternatives)]))
    assert again.aus == tuple(AU.parse(str(a)) for a in parsed.aus)
    assert [(a.code, a.side, a.intensity) for a in again.aus] == [(a.code, a.side, a.intensity) for a in parsed.aus]
    assert len(again.alternatives) == len(parsed.alternatives)
    assert format_aus(parsed.aus).replace(" ", "") == cell.split(" or ")[0].replace(" ", "")


def test_a_clip_listed_twice_gives_two_records_with_distinct_keys(synth_casme2_root, tmp_path):
    """CAS(ME)^3 lists several micro-expressions of one video on rows with the same Filename: each row is its own
    sample, so keys (which eval and `meu train au` match predictions by) must differ."""
    import shutil

    from openpyxl import load_workbook

    root = tmp_path / "data"
    shutil.copytree(synth_casme2_root, root)
    sheet = root / "CASME2-coding-20140508.xlsx"
    wb = load_workbook(sheet)
    ws = wb.active
    first = [c.value for c in ws[2]]
    ws.append([first[0], first[1], first[2] + 1, first[3] + 1, first[4], None, None, "12", "happiness"])
    wb.save(sheet)
    records = [r for r in load_dataset("casme2", root).records if r.clip_id == first[1] and r.subject == "sub01"]
    assert len(records) == 2
    assert len({r.key for r in records}) == 2
    again = load_dataset("casme2", root).records
    assert [r.key for r in records] == [r.key for r in again if r.clip_id == first[1] and r.subject == "sub01"]
    assert len({r.key for r in again}) == len(again)


def _sheet_copy(synth_casme2_root, tmp_path):
    from openpyxl import load_workbook

    root = tmp_path / "data"
    shutil.copytree(synth_casme2_root, root)
    sheet = root / "CASME2-coding-20140508.xlsx"
    return root, sheet, load_workbook(sheet)


def test_a_sheet_with_a_header_and_no_rows_is_an_error_naming_it(synth_casme2_root, tmp_path):
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    ws = wb.active
    ws.delete_rows(2, ws.max_row)
    wb.save(sheet)
    with pytest.raises(AnnotationSheetError, match=r"CASME2-coding-20140508\.xlsx: no data rows follow the header on "
                                                   r"row 1; give the full annotation sheet"):
        load_dataset("casme2", root)


def test_codes_outside_the_facs_table_are_noted_per_row(synth_casme2_root, tmp_path):
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    wb.active.cell(row=2, column=8).value = "12+99"
    wb.save(sheet)
    res = load_dataset("casme2", root)
    row2 = next(r for r in res.records if r.row == 2)
    assert [a.code for a in row2.aus.aus] == [12, 99]  # the record stays lossless
    assert _kinds(row2.notes) == {"AU outside the FACS table"} and "AU99" in row2.notes[0]
    assert all("AU outside" not in n for r in res.records if r.row != 2 for n in r.notes)
    assert "1 x AU outside the FACS table" in res.summary()
    with pytest.raises(AnnotationSheetError, match="row 2: AU outside the FACS table: AU99"):
        load_dataset("casme2", root, strict=True)


def test_the_apex_note_says_what_is_done(synth_casme2_root):
    record = next(r for r in load_dataset("casme2", synth_casme2_root).records if r.row == 3)
    files = record.frame_paths
    note = record.notes[0]
    assert f"`meu data build` spots it between {files[record.onset].name} and {files[record.offset].name}" in note
    assert f"use the middle frame {files[record.apex].name}" in note


def test_two_columns_for_one_field_read_the_preferred_name_and_say_so(synth_casme2_root, tmp_path):
    """An `Emotion` column left of `Estimated Emotion` used to be read instead of it, every row, with no note."""
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    ws = wb.active
    ws.insert_cols(9)
    for row in range(1, ws.max_row + 1):
        ws.cell(row=row, column=9).value = "Emotion" if row == 1 else "fear"
    wb.save(sheet)
    res = load_dataset("casme2", root)
    truth = _truth(root)
    assert [r.emotion_raw for r in res.records] == [truth[r.clip_id]["emotion"] for r in res.records]
    assert "CASME2-coding-20140508.xlsx: 2 columns could be Estimated Emotion: column J (Estimated Emotion) is read, " \
           "I (Emotion) ignored" in res.notes


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_an_au_cell_marked_not_available_leaves_the_clip_out_of_au_scoring(synth_casme2_root, tmp_path, suffix):
    """The xlsx reader turned `N/A` into an empty cell (no AU moved) and the CSV reader into unknown codes N and A."""
    import pandas as pd

    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    wb.active.cell(row=2, column=8).value = "N/A"
    wb.save(sheet)
    if suffix == ".csv":
        pd.read_excel(sheet, header=None, keep_default_na=False).to_csv(sheet.with_suffix(".csv"), header=False,
                                                                        index=False)
        sheet.unlink()
    row2 = next(r for r in load_dataset("casme2", root).records if r.row == 2)
    assert not row2.aus_coded and not row2.aus.aus and not row2.aus.unknown
    assert row2.notes == ["AUs not given: the AU cell is 'N/A'; the clip is left out of AU scoring and AU training"]


def test_a_filename_holding_a_path_is_skipped(synth_casme2_root, tmp_path):
    """`../sub02/EP01_02` on a sub01 row read sub02's frames as sub01's (a held-out subject's frames in training)."""
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    wb.active.cell(row=2, column=2).value = "../sub02/EP01_02"
    wb.save(sheet)
    res = load_dataset("casme2", root)
    assert [(s.row, s.reason) for s in res.skipped if s.row == 2] == [
        (2, "bad filename: '../sub02/EP01_02' is a path; the Filename cell names one clip folder of its subject")]


def test_a_missing_column_is_named_and_other_separators_and_worksheets_are_hinted(synth_casme2_root, tmp_path):
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    wb.active.cell(row=1, column=8).value = "Action Unit"
    wb.save(sheet)
    with pytest.raises(AnnotationSheetError, match=r"row 1 has Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, "
                                                   r"Estimated Emotion but no column for Action Units \(named any of: "
                                                   r"Action Units, AU, AUs\)"):
        load_dataset("casme2", root)
    wb.active.cell(row=1, column=8).value = "Action Units"
    wb.active.title = "coding"
    wb.create_sheet("notes", 0)
    wb.save(sheet)
    with pytest.raises(AnnotationSheetError, match=r"only its first worksheet \('notes' of 'notes', 'coding'\) is "
                                                   "read: put the coding table first"):
        load_dataset("casme2", root)
    sheet.unlink()
    (root / "CASME2-coding.csv").write_text("Subject;Filename;OnsetFrame;ApexFrame;OffsetFrame;Action Units;"
                                            "Estimated Emotion\n1;EP01_01;172;178;185;1+2;surprise\n")
    with pytest.raises(AnnotationSheetError, match="its columns look separated by semicolons: save it with commas"):
        load_dataset("casme2", root)


def test_a_dfme_test_protocol_without_its_sheet_names_the_sheet(synth_dfme_root, tmp_path):
    root = tmp_path / "dfme"
    shutil.copytree(synth_dfme_root, root)
    (root / "DFME_test_A_full_with_AU.xlsx").unlink()
    with pytest.raises(AnnotationSheetError, match=r"No DFME sheet for test_a \(DFME_test_A\*\.xlsx or "
                                                   r"DFME_test_A\*\.csv\): .*dfme holds the sheet\(s\) of test_b, "
                                                   r"train only\."):
        load_dataset("dfme", root, splits=("test_a",))
    with pytest.raises(AnnotationSheetError, match=r"the sheet given \(.*DFME_training_full_with_AU\.xlsx\) is read "
                                                   "as the training sheet; give the dataset folder"):
        load_dataset("dfme", root, splits=("test_a",), sheet=root / "DFME_training_full_with_AU.xlsx")


def test_clip_folders_nested_deep_are_found_and_the_search_depth_is_said_when_they_are_not(synth_casme3_root, tmp_path):
    root = tmp_path / "casme3"
    shutil.copytree(synth_casme3_root, root)
    deeper = root / "CAS(ME)3" / "Part_A" / "data" / "part_A"
    shutil.move(root / "part_A", deeper)  # six levels down to a clip's frames: refused at five before
    assert len(load_dataset("casme3", root).records) == len(load_dataset("casme3", synth_casme3_root).records)
    shutil.move(deeper, root / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "part_A")
    res = load_dataset("casme3", root)
    assert not res.records and {s.reason.split(":")[0] for s in res.skipped} == {"frames missing"}
    assert f"clip folders were looked for by name up to 8 folder levels below {root}" in res.notes


def test_a_row_repeated_with_the_same_frames_is_counted_once_and_reported(synth_casme2_root, tmp_path):
    root, sheet, wb = _sheet_copy(synth_casme2_root, tmp_path)
    ws = wb.active
    first = [c.value for c in ws[2]]
    for _ in range(2):
        ws.append(first)
    wb.save(sheet)
    res = load_dataset("casme2", root)
    assert [r.key for r in res.records] == [r.key for r in load_dataset("casme2", synth_casme2_root).records]
    dups = [(s.row, s.reason) for s in res.skipped if s.reason.startswith("duplicate")]
    assert dups == [(row, "duplicate: row 2 gives the same clip, frames and labels; the clip is counted once")
                    for row in (ws.max_row - 1, ws.max_row)]
    assert "2 x duplicate" in res.summary()
    ws.cell(row=ws.max_row, column=9).value = "disgust"  # the same frames, another emotion: kept, and said
    ws.append([c.value for c in ws[ws.max_row]])  # and that relabelled row once more: a duplicate of it
    wb.save(sheet)
    res = load_dataset("casme2", root)
    conflict = next(r for r in res.records if r.row == ws.max_row - 1)
    assert conflict.notes == ["conflicting labels: row 2 gives the same clip and frames with other labels"]
    assert [(s.row, s.reason.split(";")[0]) for s in res.skipped if s.reason.startswith("duplicate")] == [
        (ws.max_row - 2, "duplicate: row 2 gives the same clip, frames and labels"),
        (ws.max_row, f"duplicate: row {ws.max_row - 1} gives the same clip, frames and labels")]
