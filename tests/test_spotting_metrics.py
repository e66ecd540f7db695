"""The MEGC spotting protocol against examples worked by hand (every expected number is derived in the comments)."""

from __future__ import annotations

import pytest

from eval.spotting import Span, VideoSpots, count, iou, match, score_videos, video_counts


def test_iou_counts_frames_with_both_ends_included():
    # [10,19] is 10 frames, [12,21] is 10 frames; shared 12..19 = 8 frames, union 10..21 = 12 frames -> 8/12
    assert iou(Span(10, 19), Span(12, 21)) == pytest.approx(8 / 12)
    # [10,19] vs [14,23]: shared 14..19 = 6, union 10..23 = 14 -> 6/14 = 0.4286 (below 0.5)
    assert iou(Span(10, 19), Span(14, 23)) == pytest.approx(6 / 14)
    # touching at one frame: [0,9] vs [9,18]: shared 1, union 19
    assert iou(Span(0, 9), Span(9, 18)) == pytest.approx(1 / 19)
    assert iou(Span(0, 9), Span(10, 19)) == 0.0
    with pytest.raises(ValueError, match="ends before it starts"):
        Span(5, 4)


def test_iou_of_exactly_one_half_is_a_true_positive():
    # [0,9] vs [0,4]: shared 5, union 10 -> IoU 0.5 exactly: TP (the rule is IoU >= 0.5)
    assert count([Span(0, 4)], [Span(0, 9)]).tp == 1
    # [0,9] vs [0,3]: shared 4, union 10 -> 0.4: one FP and one FN
    c = count([Span(0, 3)], [Span(0, 9)])
    assert (c.tp, c.fp, c.fn) == (0, 1, 1)


def test_one_video_by_hand():
    truth = [Span(10, 19, "micro"), Span(100, 109, "micro"), Span(200, 259, "macro")]
    predicted = [
        Span(12, 21, "micro"),    # vs [10,19]: 8/12 = 0.667 -> TP
        Span(11, 20, "micro"),    # vs [10,19]: 9/11 = 0.818, but [10,19] can be matched only once -> FP
        Span(104, 113, "micro"),  # vs [100,109]: shared 104..109 = 6, union 100..113 = 14 -> 0.429 -> FP
        Span(300, 305, "micro"),  # nothing there -> FP
        Span(210, 269, "macro"),  # vs [200,259]: shared 210..259 = 50, union 200..269 = 70 -> 0.714 -> TP
    ]
    c = video_counts(predicted, truth)
    # micro: TP 1, FP 3, FN 1 ([100,109] missed); F1 = 2*1 / (2*1 + 3 + 1) = 2/6
    assert (c["micro"].tp, c["micro"].fp, c["micro"].fn) == (1, 3, 1)
    assert c["micro"].f1 == pytest.approx(1 / 3)
    assert c["micro"].precision == pytest.approx(1 / 4) and c["micro"].recall == pytest.approx(1 / 2)
    # macro: TP 1, FP 0, FN 0 -> F1 1
    assert (c["macro"].tp, c["macro"].fp, c["macro"].fn) == (1, 0, 0) and c["macro"].f1 == 1.0
    # overall = micro + macro: TP 2, FP 3, FN 1 -> F1 = 4 / (4 + 3 + 1) = 0.5
    assert (c["overall"].tp, c["overall"].fp, c["overall"].fn) == (2, 3, 1)
    assert c["overall"].f1 == pytest.approx(0.5)


def test_the_kind_must_agree_except_in_any_kind():
    # a found micro-expression labelled macro: micro FN 1, macro FP 1, overall F1 = 0 / (0 + 1 + 1) = 0
    c = video_counts([Span(10, 19, "macro")], [Span(10, 19, "micro")])
    assert (c["micro"].tp, c["micro"].fp, c["micro"].fn) == (0, 0, 1)
    assert (c["macro"].tp, c["macro"].fp, c["macro"].fn) == (0, 1, 0)
    assert c["overall"].f1 == 0.0
    # ignoring the kind, it is a TP: F1 = 2 / 2 = 1
    assert c["any_kind"].f1 == 1.0


def test_matching_takes_the_most_true_positives_whatever_the_order():
    # truth A = [0,9], B = [4,13]; P1 = [1,10]: A 9/11 = 0.818, B shared 4..10 = 7 / union 1..13 = 13 = 0.538;
    # P2 = [0,8]: A 9/10 = 0.9, B shared 4..8 = 5 / union 0..13 = 14 = 0.357 (below 0.5).
    # Giving P1 its best match (A) first would leave P2 nothing: 1 TP. P1-B and P2-A is 2 TPs.
    truth = [Span(0, 9), Span(4, 13)]
    for predicted in ([Span(1, 10), Span(0, 8)], [Span(0, 8), Span(1, 10)]):
        pairs = match(predicted, truth)
        assert len(pairs) == 2
        c = count(predicted, truth)
        assert (c.tp, c.fp, c.fn) == (2, 0, 0)


def test_pooled_over_the_dataset_with_per_subject_figures_beside():
    s1_v1 = VideoSpots("s1/v1", "s1", truth=[Span(10, 19), Span(100, 109), Span(200, 259, "macro")],
                       predicted=[Span(12, 21), Span(11, 20), Span(104, 113), Span(300, 305),
                                  Span(210, 269, "macro")])  # the video above: micro TP 1 FP 3 FN 1, macro TP 1
    s1_v2 = VideoSpots("s1/v2", "s1", truth=[], predicted=[Span(5, 9)])  # micro FP 1
    s2_v1 = VideoSpots("s2/v1", "s2", truth=[Span(50, 59)], predicted=[])  # micro FN 1
    m = score_videos([s1_v1, s1_v2, s2_v1])
    assert (m["n_videos"], m["n_subjects"]) == (3, 2)
    micro = m["pooled"]["micro"]
    # pooled micro: TP 1, FP 3 + 1 = 4, FN 1 + 1 = 2 -> F1 = 2 / (2 + 4 + 2) = 0.25
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 4, 2) and micro["f1"] == pytest.approx(0.25)
    # pooled overall: TP 2, FP 4, FN 2 -> F1 = 4 / 10 = 0.4; precision 2/6, recall 2/4
    overall = m["pooled"]["overall"]
    assert overall["f1"] == pytest.approx(0.4)
    assert overall["precision"] == pytest.approx(1 / 3) and overall["recall"] == pytest.approx(0.5)
    assert m["pooled"]["macro"]["f1"] == 1.0
    # per subject: s1 micro TP 1, FP 4, FN 1 -> 2/7; s2 micro TP 0, FP 0, FN 1 -> 0.
    # Their mean (0.143) is not the pooled 0.25: the dataset figure pools counts, it does not average subjects.
    assert m["per_subject"]["s1"]["micro"]["f1"] == pytest.approx(2 / 7)
    assert m["per_subject"]["s2"]["micro"]["f1"] == 0.0
    # s2 has no macro truth and spotted none: nothing to score, F1 is None (not 0, not 1)
    assert m["per_subject"]["s2"]["macro"]["f1"] is None
    assert m["per_video"]["s1/v2"]["micro"]["precision"] == 0.0


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="blink"):
        video_counts([Span(0, 3, "blink")], [])
