"""Evaluation figures against scikit-learn, the class-scheme mapping of answers, and the predictions file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from assistant.emotions import SCHEME_CLASSES
from assistant.errors import ConfigError
from eval.evidence import EvidenceSource, FoldPredictions
from eval.metrics import code_set_scores
from eval.predictions import PredictionLog, count_rows, score_rows
from eval.report import render_report
from eval.run import answer_fields

AUS = [1, 2, 4, 7, 12, 14, 15, 17]


def _random_rows(rng: np.random.Generator, n: int, classes: list[str]) -> list[dict]:
    rows = []
    for i in range(n):
        true_aus = [a for a in AUS if rng.random() < 0.3]
        pred = rng.choice(classes + [None])  # None: unparsable or outside the scheme
        rows.append({
            "key": f"d/s{i % 4}/c{i}", "fold": f"s{i % 4}", "status": "ok", "emotion_raw": "x",
            "true_emotion": str(rng.choice(classes)), "pred_emotion": None if pred is None else str(pred),
            "parse_status": "unparsable" if pred is None and i % 2 else "ok",
            "true_aus": true_aus, "parsed_aus": [a for a in AUS if rng.random() < 0.3],
            "probabilities": {str(a): float(rng.random()) for a in AUS},
        })
    return rows


@pytest.mark.parametrize("scheme", ["3", "5", "7"])
def test_scores_match_sklearn_on_random_labels(scheme):
    rng = np.random.default_rng(int(scheme))
    classes = list(SCHEME_CLASSES[scheme])
    rows = _random_rows(rng, 120, classes)
    m = score_rows(rows, classes, AUS, per_fold=True)
    e = m["emotion"]
    y_true = [r["true_emotion"] for r in rows]
    y_pred = [r["pred_emotion"] or "__wrong__" for r in rows]
    assert e["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    assert e["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    assert e["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    cm = confusion_matrix(y_true, y_pred, labels=classes + ["__wrong__"])
    assert np.array_equal(np.asarray(e["confusion"]), cm[: len(classes)])
    assert e["unparsable"] == sum(r["parse_status"] == "unparsable" for r in rows)
    assert e["out_of_scheme"] + e["unparsable"] == e["n_other"] == sum(r["pred_emotion"] is None for r in rows)

    truth = np.array([[a in r["true_aus"] for a in AUS] for r in rows])
    parsed = np.array([[a in r["parsed_aus"] for a in AUS] for r in rows])
    detected = np.array([[r["probabilities"][str(a)] >= 0.5 for a in AUS] for r in rows])
    for name, pred in (("parsed", parsed), ("detector", detected)):
        per_au = f1_score(truth, pred, average=None, zero_division=0)
        got = m["au"][name]["pooled"]
        assert [got["f1"][a] for a in AUS] == pytest.approx(per_au.tolist())
        assert got["mean_f1"] == pytest.approx(per_au.mean())
        fold = np.array([r["fold"] == "s1" for r in rows])
        assert m["au"][name]["per_fold"]["s1"]["mean_f1"] == pytest.approx(
            f1_score(truth[fold], pred[fold], average="macro", zero_division=0))


def test_report_shows_the_computed_figures():
    rng = np.random.default_rng(7)
    classes = list(SCHEME_CLASSES["5"])
    rows = _random_rows(rng, 40, classes)
    m = score_rows(rows, classes, AUS, per_fold=False)
    m["run"] = {"dataset": "casme2", "protocol": "zero-shot", "reasoner": "template", "detector": "rules",
                "evidence": "rules", "classes": "5", "class_names": classes, "aus": AUS, "synthetic": True,
                "landmarks": "mediapipe", "flow": "dis", "compensation": "similarity", "source_dataset": None}
    m["counts"] = count_rows(rows, [{"reason": "frames missing: x"}])
    text = render_report(m)
    y_true = [r["true_emotion"] for r in rows]
    y_pred = [r["pred_emotion"] or "__wrong__" for r in rows]
    uf1 = f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
    assert f"| {uf1:.3f} |" in text
    assert "Synthetic data" in text and "1 x frames missing" in text
    assert m["counts"]["sheet_rows"] == 41 and m["counts"]["usable"] == 40


def test_every_code_named_counts_the_false_alarms_outside_the_scored_aus():
    """A detector that names AU10 (outside CASME II's eight) on every clip keeps its per-AU F1 and loses precision
    over every code; the report says which code it named wrongly and how often."""
    coded = [{4}, {4, 7}, {12}, {1, 2}]
    named = [{4, 10}, {4, 43}, {10}, {1, 2}]
    s = code_set_scores(coded, named)
    assert (s.n_clips, s.named_per_clip, s.coded_per_clip) == (4, 1.75, 1.5)
    assert s.precision == pytest.approx(4 / 7) and s.recall == pytest.approx(4 / 6)
    assert list(s.named_not_coded.items()) == [(10, 2), (43, 1)]
    assert s.coded_not_named == {7: 1, 12: 1}

    classes = list(SCHEME_CLASSES["5"])
    rows = _random_rows(np.random.default_rng(3), 12, classes)
    clean = score_rows(rows, classes, AUS, per_fold=False)
    for r in rows:
        r["probabilities"]["10"] = 0.9
    m = score_rows(rows, classes, AUS, per_fold=False)
    assert m["au"]["detector"] == clean["au"]["detector"]
    every = m["au"]["every_code"]["detector"]
    with_au = sum(bool(r["true_aus"]) for r in rows)  # clips with no AU coded are left out, as the real set scores
    assert every["n_clips"] == with_au and every["named_not_coded"][10] == with_au
    assert every["precision"] < clean["au"]["every_code"]["detector"]["precision"]
    assert every["recall"] == clean["au"]["every_code"]["detector"]["recall"]
    m["run"] = {"dataset": "casme2", "protocol": "zero-shot", "reasoner": "template", "detector": "rules",
                "evidence": "rules", "classes": "5", "class_names": classes, "aus": AUS, "synthetic": True,
                "landmarks": "mediapipe", "flow": "dis", "compensation": "similarity", "source_dataset": None}
    m["counts"] = count_rows(rows, [])
    text = render_report(json.loads(json.dumps(m)))  # as read back from metrics.json: codes become strings
    assert f"## Every AU code named against the coded ones, {with_au} clips with an AU" in text
    assert f"| {every['precision']:.3f} |" in text and "AU10 12" in text


@pytest.mark.parametrize("text, scheme, expected", [
    ("AUs: AU6, AU12; Micro-expression: happiness", "3", "positive"),
    ("AUs: AU1, AU4, AU15; Micro-expression: sadness", "5", "others"),
    ("AUs: AU1, AU4, AU15; Micro-expression: sadness", "7", "sadness"),
    ("AUs: AU4, AU7; Micro-expression: disgust", "3", "negative"),
    ("动作单元：AU12；微表情：快乐", "7", "happiness"),
    ("The face looks surprised overall.", "5", "surprise"),
])
def test_answers_are_mapped_into_the_scheme(text, scheme, expected):
    assert answer_fields(text, scheme)["pred_emotion"] == expected


@pytest.mark.parametrize("text, scheme, status", [
    ("AUs: AU14; Micro-expression: contempt", "5", "ok"),        # DFME word, not a CASME II class
    ("AUs: AU17; Micro-expression: repression", "7", "ok"),      # CASME II word, not a DFME class
    ("AUs: none; Micro-expression: others", "3", "ok"),          # MEGC 3 has no "others"
    ("Micro-expression: happiness or disgust", "5", "unparsable"),
    ("The brows moved a little.", "5", "unparsable"),
])
def test_labels_outside_the_scheme_count_wrong(text, scheme, status):
    fields = answer_fields(text, scheme)
    assert fields["pred_emotion"] is None
    assert fields["parse_status"] == status
    classes = list(SCHEME_CLASSES[scheme])
    row = {"key": "k", "fold": "all", "status": "ok", "true_emotion": classes[0], "true_aus": [], "emotion_raw": "x",
           "probabilities": {}, **fields}
    e = score_rows([row], classes, AUS, per_fold=False)["emotion"]
    assert e["accuracy"] == 0.0 and e["n_other"] == 1
    assert e["out_of_scheme"] == (status != "unparsable")


def test_prediction_log_tolerates_a_truncated_last_line(tmp_path):
    log = PredictionLog(tmp_path / "predictions.jsonl")
    log.append({"key": "a", "v": 1})
    log.append({"key": "b", "v": 2})
    with open(log.path, "a") as fh:
        fh.write('{"key": "c", "v"')  # a run killed mid-write
    assert [r["key"] for r in log.read(repair=True)] == ["a", "b"]
    log.append({"key": "c", "v": 3})
    assert [json.loads(x)["key"] for x in log.path.read_text().splitlines()] == ["a", "b", "c"]


def test_prediction_log_drops_lines_that_are_json_but_not_rows(tmp_path):
    """`null` or `[1, 2]` appended by hand stopped `meu eval --resume` with a TypeError."""
    log = PredictionLog(tmp_path / "predictions.jsonl")
    log.append({"key": "a", "v": 1})
    with open(log.path, "a") as fh:
        fh.write('null\n[1, 2]\n{"v": 2}\n')
    log.append({"key": "b", "v": 3})
    assert [r["key"] for r in log.read(repair=True)] == ["a", "b"]
    assert [json.loads(x)["key"] for x in log.path.read_text().splitlines()] == ["a", "b"]


def test_loso_with_one_checkpoint_is_refused():
    with pytest.raises(ConfigError, match="--au-run"):
        EvidenceSource("aullm", "loso", None, aullm_checkpoint="some/checkpoint")


def test_fold_predictions_give_each_clip_its_held_out_evidence(tmp_path):
    """A `meu train au` output folder (folds/<subject>/predictions.csv + thresholds.json) as LOSO evidence."""
    (tmp_path / "run_config.yaml").write_text("protocol: loso\ndataset: casme2\n")
    for fold, p in (("sub01", 0.3), ("sub02", 0.9)):
        d = tmp_path / "folds" / fold
        d.mkdir(parents=True)
        (d / "thresholds.json").write_text(json.dumps({"thresholds": [0.3, 0.5]}))
        (d / "predictions.csv").write_text("key,subject,fold,true_AU1,true_AU2,prob_AU1,prob_AU2,pred_AU1,pred_AU2\n"
                                           f"casme2/{fold}/EP01,{fold},{fold},1,0,{p},0.25,1,0\n")
    source = EvidenceSource("aullm", "loso", None, au_run=str(tmp_path))
    ev = source.evidence("casme2/sub01/EP01", None)
    assert ev.probability(1) == pytest.approx(0.5)  # the fold's own threshold 0.3 folded onto 0.5
    assert ev.probability(2) == pytest.approx(0.25)
    assert "sub01" in ev.backend
    assert source.evidence("casme2/sub02/EP01", None).probability(1) > 0.5
    with pytest.raises(ConfigError, match="no held-out prediction"):
        source.check_keys(["casme2/sub03/EP01"])
    assert FoldPredictions(tmp_path).dataset == "casme2"
    with pytest.raises(ConfigError, match="loso training run"):
        EvidenceSource("aullm", "cross", None, au_run=str(tmp_path))


@pytest.mark.parametrize("protocol", ["zero-shot", "dfme-test-a"])
def test_held_out_fold_predictions_are_not_zero_shot(tmp_path, protocol):
    """A LOSO run's models were trained on the dataset's other subjects: its predictions are LOSO evidence, and a
    run labelled zero-shot (nothing trained on the dataset) must not use them."""
    (tmp_path / "run_config.yaml").write_text("protocol: loso\ndataset: casme2\n")
    d = tmp_path / "folds" / "sub01"
    d.mkdir(parents=True)
    (d / "predictions.csv").write_text("key,subject,fold,true_AU1,prob_AU1,pred_AU1\ncasme2/sub01/EP01,sub01,sub01,1,"
                                       "0.7,1\n")
    with pytest.raises(ConfigError, match="--protocol loso"):
        EvidenceSource("aullm", protocol, None, au_run=str(tmp_path))
