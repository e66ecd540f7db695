"""FGMU phrasing is varied but reproducible, Chinese answers parse, and exports keep DFME's test sets apart."""

from __future__ import annotations

import json

import cv2
import numpy as np

from assistant.parse import parse_answer
from assistant.types import RegionMotion
from instruction_data.export import assign_folds, write_hf, write_jsonl_splits
from instruction_data.fgmu import FGMUConfig, fgmu_answer, make_samples
from instruction_data.loaders import load_dataset

BROW_UP = [RegionMotion(r, s, 0.0, -1.1, 1.2, 2.0, "up", "purple", "strong", 0.9)
           for r in ("inner_brow", "outer_brow") for s in ("R", "L")]


def test_phrasing_varies_across_clips_and_seeds_but_not_across_runs(synth_casme2_root):
    records = load_dataset("casme2", synth_casme2_root).records
    first_lines = {fgmu_answer(r, BROW_UP, r.emotion5, "en", seed=0).splitlines()[0] for r in records}
    assert len(first_lines) > 1  # more than one phrasing of the same slot
    r = records[0]
    assert fgmu_answer(r, BROW_UP, r.emotion5, "en", 0) == fgmu_answer(r, BROW_UP, r.emotion5, "en", 0)
    assert len({fgmu_answer(r, BROW_UP, r.emotion5, "en", seed) for seed in range(6)}) > 1
    mer = [s for seed in range(20) for s in make_samples(r, BROW_UP, "i.png", FGMUConfig(mer_ratio=0.5, seed=seed))
           if s["task"] == "mer"]
    assert 2 <= len(mer) <= 18  # about half of the seeds add a MER-only sample


def test_chinese_answer_parses_to_the_label(synth_casme2_root):
    record = next(r for r in load_dataset("casme2", synth_casme2_root).records if r.aus.codes == [1, 2])
    answer = fgmu_answer(record, BROW_UP, record.emotion5, "zh")
    assert answer.splitlines()[-1] == "动作单元: AU1, AU2; 微表情: 惊讶"
    assert "眉" in answer and "紫色" in answer
    parsed = parse_answer(answer)
    assert (parsed.aus, parsed.emotion, parsed.status) == ([1, 2], "surprise", "ok")


def test_exports_keep_test_sets_apart_with_folds_per_split(tmp_path):
    import datasets

    (tmp_path / "images").mkdir()
    samples = []
    for i, (split, subject) in enumerate([("train", "s2"), ("train", "s1"), ("test_a", "s3"), ("test_b", "s4")]):
        image = f"images/{i}.png"
        cv2.imwrite(str(tmp_path / image), np.full((8, 8, 3), 40 * i, np.uint8))
        samples.append({"id": f"k{i}|fgmu|en", "task": "fgmu", "lang": "en", "dataset": "dfme", "subject": subject,
                        "split": split, "clip_id": f"c{i}", "row": i + 2, "emotion": "fear", "emotion_raw": "fear",
                        "aus": "4", "au_codes": [4], "scheme": "7", "image": image, "prompt": "p", "answer": "a"})
    assign_folds(samples)
    assert [s["fold"] for s in samples] == [1, 0, 0, 0]
    written = write_jsonl_splits(tmp_path, samples)
    assert [p.name for p in written] == ["train.jsonl", "test_a.jsonl", "test_b.jsonl"]
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["subject"] for r in train] == ["s2", "s1"]
    hf = datasets.load_from_disk(str(write_hf(tmp_path, samples)))
    assert sorted(hf) == ["test_a", "test_b", "train"] and hf["test_b"][0]["subject"] == "s4"
    assert np.asarray(hf["test_b"][0]["images"][0]).mean() == 120


def test_alternatives_keep_their_sides_and_a_hidden_au_gives_emotion_only_samples(synth_casme2_root):
    """SAMM's `R14 or 14` read "hesitated between AU14 and AU14"; an AU cell of `?` concluded "AUs: none" (teaching
    that nothing moved), and a clip with no AU truth got one language of two under --lang both."""
    import dataclasses

    from assistant.au import parse_aus

    record = load_dataset("casme2", synth_casme2_root).records[0]
    torn = dataclasses.replace(record, aus=parse_aus("R14 or 14"))
    assert "The coders hesitated between R14 and 14; R14 is used." in fgmu_answer(torn, BROW_UP, record.emotion5, "en")
    for cell in ("?", "4+?"):
        hidden = dataclasses.replace(record, aus=parse_aus(cell))
        samples = make_samples(hidden, BROW_UP, "i.png", FGMUConfig(lang="both"))
        assert [(s["task"], s["lang"], s["au_codes"]) for s in samples] == [("mer", "en", None), ("mer", "zh", None)]
