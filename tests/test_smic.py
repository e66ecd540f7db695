"""The SMIC loader on hand-made trees with the real copies' quirks, and the synthetic smic layout read back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from assistant.errors import AnnotationSheetError
from instruction_data.layouts import write_synthetic_dataset
from instruction_data.loaders import load_dataset


def _frames(folder, n: int, suffix: str = ".bmp", start: int = 64125) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"image{start + i:06d}{suffix}"), np.full((8, 8, 3), 10 * i, np.uint8))


@pytest.fixture()
def tree(tmp_path):
    hs = tmp_path / "SMIC_all_raw" / "HS"
    _frames(hs / "s1" / "micro" / "negative" / "s1_ne_01", 9)
    _frames(hs / "s1" / "micro" / "positive" / "s1_po_01", 6)
    _frames(hs / "s1" / "micro" / "surprise" / "s1_sur_01", 5, ".jpg")
    _frames(hs / "s1" / "non_micro" / "negative" / "s1_ne_nm01", 4)  # not a micro-expression: never read
    _frames(hs / "s12" / "micro" / "negative" / "s12_ne_03", 7)  # s12 has no positive or surprise folder
    _frames(hs / "s12" / "micro" / "positive" / "s12_po_01", 1)  # one frame: no onset -> apex span
    _frames(hs / "s12" / "micro" / "others" / "s12_ot_01", 5)  # a class SMIC does not have
    _frames(tmp_path / "SMIC_all_raw" / "VIS" / "s3" / "micro" / "positive" / "s3_po_01", 4)
    return tmp_path


def test_loader_reads_classes_from_folders_and_reports_each_quirk(tree):
    result = load_dataset("smic", tree)
    by_clip = {r.clip_id: r for r in result.records}
    assert sorted(by_clip) == ["s12_ne_03", "s1_ne_01", "s1_po_01", "s1_sur_01"]
    assert {r.subject for r in result.records} == {"s01", "s12"}
    ne = by_clip["s1_ne_01"]
    assert (ne.onset, ne.apex, ne.offset) == (0, 4, 8)  # first, middle and last frame
    assert ne.frame_paths[0].name == "image064125.bmp" and len(ne.frame_paths) == 9
    assert (ne.emotion_raw, ne.emotion3, ne.emotion5) == ("negative", "negative", None)
    assert not ne.apex_known and not ne.aus_coded and not ne.aus.codes
    assert any(n.startswith("apex not given") for n in ne.notes)
    assert by_clip["s1_sur_01"].frame_paths[0].suffix == ".jpg"
    reasons = {s.clip_id: s.reason for s in result.skipped}
    assert set(reasons) == {"s12_po_01", "s12_ot_01"}  # non_micro is neither read nor counted as a skip
    assert reasons["s12_po_01"].startswith("too few frames") and reasons["s12_ot_01"].startswith("unknown class")
    assert any("100 fps" in n for n in result.notes) and any("non_micro" in n for n in result.notes)


def test_variants_and_a_variant_folder_given_as_root(tree):
    vis = load_dataset("smic", tree, variant="VIS")
    assert [r.clip_id for r in vis.records] == ["s3_po_01"] and any("25 fps" in n for n in vis.notes)
    direct = load_dataset("smic", tree / "SMIC_all_raw" / "HS")
    assert len(direct.records) == 4


def test_strict_stops_at_the_first_problem_and_a_wrong_folder_is_named(tree, tmp_path):
    with pytest.raises(AnnotationSheetError, match="s12_ot_01|s12_po_01"):
        load_dataset("smic", tree, strict=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnotationSheetError, match="No SMIC HS folder"):
        load_dataset("smic", tmp_path / "empty")
    with pytest.raises(AnnotationSheetError, match="variant"):
        load_dataset("smic", tree, variant="IR")


def test_synthetic_smic_layout_reads_back_as_written(tmp_path):
    root = write_synthetic_dataset("smic", tmp_path / "smic", subjects=2, clips=3, n_frames=12)
    truth = json.loads((root / "synth_truth.json").read_text())
    result = load_dataset("smic", root)
    assert len(result.records) == len(truth["clips"]) == 6
    assert [s.reason.split(":")[0] for s in result.skipped] == ["too few frames"]  # the one-frame quirk
    by_clip = {r.clip_id: r for r in result.records}
    for clip in truth["clips"]:
        record = by_clip[clip["clip_id"]]
        # clips are cut from onset to offset, as SMIC ships them, in bmp files numbered by frame
        assert len(record.frame_paths) == clip["offset"] - clip["onset"] + 1
        assert record.frame_paths[0].name == f"image{clip['onset']:06d}.bmp"
        assert record.emotion3 == {"happiness": "positive", "surprise": "surprise"}.get(clip["emotion"], "negative")
    rewritten = write_synthetic_dataset("smic", root, subjects=1, clips=2, n_frames=12)
    assert not (rewritten / "HS" / "s2").exists() or not any((rewritten / "HS" / "s2").rglob("*.bmp"))


def test_instruction_data_never_teaches_that_a_smic_clip_moved_no_au(tree):
    from instruction_data.fgmu import FGMUConfig, make_samples

    record = load_dataset("smic", tree).records[0]
    samples = make_samples(record, [], "x.png", FGMUConfig(lang="en", mer_ratio=0.0, scheme="3"))
    assert [s["task"] for s in samples] == ["mer"] and samples[0]["answer"] == "negative"
    assert samples[0]["au_codes"] is None


def test_a_micro_folder_spelled_in_capitals_is_read_and_a_subject_without_one_is_noted(tree):
    hs = tree / "SMIC_all_raw" / "HS"
    (hs / "s12" / "micro").rename(hs / "s12" / "Micro")
    (hs / "s20" / "non_micro").mkdir(parents=True)
    result = load_dataset("smic", tree)
    assert sorted(r.clip_id for r in result.records) == ["s12_ne_03", "s1_ne_01", "s1_po_01", "s1_sur_01"]
    assert "HS: 1 folder(s) with no micro folder, nothing read there: s20" in result.notes


def test_a_variant_folder_given_itself_is_read_at_its_own_frame_rate(tree, monkeypatch):
    vis = load_dataset("smic", tree / "SMIC_all_raw" / "VIS")
    assert [r.clip_id for r in vis.records] == ["s3_po_01"]
    assert any("SMIC VIS, 25 fps" in n for n in vis.notes) and not any("100 fps" in n for n in vis.notes)
    monkeypatch.chdir(tree / "SMIC_all_raw" / "VIS")  # `--root .` from inside it
    assert any("SMIC VIS, 25 fps" in n for n in load_dataset("smic", ".").notes)
