"""Explaining away (issue 21, item 4): motion that an AU named first predicts in neighbouring regions is attributed to
it before other AUs are scored there. Each "no AU" case has its positive twin; the coupling patterns here are written
by hand (the shipped ones are fitted by `meu calibrate rules`), so the tests check the mechanism, not a fit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from _au_data import region_table

from assistant import calibration
from assistant.au import explaining_away as ea
from assistant.au.rules import LANDMARK_AUS, parameters, probability, score_regions, side_score
from assistant.facs import FACS, SIDED_REGIONS, image_direction

# a lip-corner pull lifts the cheek (person's frame: outward, up) and the lower lid, per px of mouth-corner motion
SMILE_COUPLING = {12: {"cheek@same": [0.1, 0.7], "lower_eyelid@same": [0.0, 0.45]}}


def _smile(px: float, cheek_extra: float = 0.0) -> list:
    """A left lip-corner pull of `px` with the cheek and lower lid it drags along (+ `cheek_extra` px of cheek lift
    and lid rise of its own: an AU6)."""
    corner = px * image_direction(FACS[12].actions[0], "L")
    return region_table({("mouth_corner", "L"): tuple(corner),
                         ("cheek", "L"): (0.1 * px, -(0.7 * px + cheek_extra)),
                         ("lower_eyelid", "L"): (0.0, -(0.45 * px + 0.6 * cheek_extra))}, snr=60.0)


@pytest.fixture
def params():
    return dataclasses.replace(parameters(), coupling=SMILE_COUPLING, coupling_strength=1.0)


def _named(table, params) -> set[int]:
    return {s.code for s in score_regions(table, None, 256, params).active()}


def test_a_smile_drags_the_cheek_along_and_is_not_read_as_a_cheek_raiser_too(params):
    independent = _named(_smile(0.8), dataclasses.replace(params, coupling=None))
    assert 6 in independent, "the case must name AU6 without explaining away, or it tests nothing"
    named = _named(_smile(0.8), params)
    assert 12 in named and 6 not in named and 7 not in named, named


def test_a_cheek_raised_beyond_what_the_smile_drags_is_still_a_cheek_raiser(params):
    named = _named(_smile(0.8, cheek_extra=0.6), params)
    assert {6, 12} <= named, named


def test_the_evidence_says_which_au_explained_a_region_and_lists_only_what_each_au_used(params):
    evidence = score_regions(_smile(0.8, cheek_extra=0.6), None, 256, params)
    assert evidence.explained == {"left lower eyelid": 12}  # the cheek is AU12's own region: not reported
    by_code = {s.code: s for s in evidence.active()}
    assert "left mouth corner" in [src.name for src in by_code[12].sources]
    cheek_six = {src.name: src.value for src in by_code[6].sources}
    assert set(cheek_six) == {"left cheek", "left lower eyelid"}
    # AU6 read its main region (the cheek) from what AU12 left, its lesser one (the lid) as measured
    measured = {r.label: r.motion_px for r in _smile(0.8, cheek_extra=0.6)}
    assert cheek_six["left cheek"] < measured["left cheek"] - 0.4
    assert cheek_six["left lower eyelid"] == pytest.approx(measured["left lower eyelid"])


def test_fusion_keeps_what_the_flow_part_explained(params):
    from assistant.au.fusion import combine

    rules = score_regions(_smile(0.8), None, 256, params)
    blend = score_regions(_smile(0.0), None, 256, params)
    fused = combine(rules, blend, {}, {12: (1.0, 0.0, 0.0)})
    assert fused.explained == rules.explained and fused.explained


def test_explaining_away_lowers_scores_and_never_raises_one(params):
    """What a named AU leaves behind can point another AU's way better than the measured motion did (the orthogonal
    part of a mouth corner's pull); it must not name an AU the measured motion did not."""
    rng = np.random.default_rng(0)
    keys = [(r.region, r.side) for r in region_table({})]
    coupling = {code: {f"{region}@{'mid' if side is None else 'same'}": list(rng.normal(0, 0.4, 2))
                       for region, side in keys} for code in (1, 4, 12, 15, 17)}
    strong = dataclasses.replace(params, coupling=coupling, coupling_strength=1.5)
    off = dataclasses.replace(params, coupling=None)
    for _ in range(40):
        table = region_table({k: tuple(rng.normal(0, 0.3, 2)) for k in keys if rng.random() < 0.5}, snr=50.0)
        with_ea = score_regions(table, None, 256, strong)
        without = score_regions(table, None, 256, off)
        for a, b in zip(with_ea.scores, without.scores):
            assert a.probability <= b.probability + 1e-12, (a, b)


def test_take_out_removes_only_motion_along_the_prediction_and_at_most_its_length():
    table = {("cheek", "L"): np.array([0.0, -0.5]), ("nose", None): np.array([0.3, 0.0])}
    out = ea.take_out(table, {("cheek", "L"): np.array([0.0, -0.2]), ("nose", None): np.array([0.0, -0.4])})
    assert out[("cheek", "L")] == pytest.approx([0.0, -0.3])  # 0.2 of the 0.5 px lift taken, the rest left
    assert out[("nose", None)] == pytest.approx([0.3, 0.0])  # motion across the prediction is not touched


def test_the_coupling_fit_recovers_hand_made_patterns_from_mixed_clips():
    """AU1 always comes with AU2 but for a few clips; the joint fit still tells their patterns apart."""
    rng = np.random.default_rng(1)
    truth = {1: {"upper_eyelid@same": [0.0, 0.25]}, 2: {"upper_eyelid@same": [0.1, 0.05]},
             4: {"upper_eyelid@same": [-0.1, -0.2]}}
    clips = []
    for combo in [(1, 2)] * 30 + [(1,)] * 6 + [(2,)] * 6 + [(4,)] * 20:
        amps = {code: rng.uniform(0.2, 1.2) for code in combo}
        moves = {}
        for code, amp in amps.items():
            primary = FACS[code].actions[0]
            for side in ("L", "R"):
                key = (primary.region, side)
                moves[key] = tuple(np.add(moves.get(key, (0.0, 0.0)), amp * image_direction(primary, side)))
        table = {(r.region, r.side): np.array([r.dx, r.dy]) for r in region_table(moves)}
        measured = {code: ea.amplitudes(code, table) for code in amps}
        for side in ("L", "R"):
            lid = sum(measured[c][side] * ea.to_image(np.array(truth[c]["upper_eyelid@same"]), side) for c in amps)
            moves[("upper_eyelid", side)] = tuple(lid + rng.normal(0, 0.01, 2))
        clips.append(({code: None for code in combo}, _rows(moves), 256))
    fitted = ea.fit_coupling(clips)
    for code, pattern in truth.items():
        assert fitted[str(code)]["pattern"]["upper_eyelid@same"] == pytest.approx(pattern["upper_eyelid@same"],
                                                                                  abs=0.03), code


def test_a_calibration_from_before_explaining_away_scores_each_au_alone_exactly_as_before(tmp_path, monkeypatch):
    """A folder `meu calibrate rules` wrote before this change: every flow AU's probability is the independent
    formula's, p(max(S_L, S_R)) on the measured table, AU5 included."""
    for name in calibration.RULES_FILES:
        doc = json.loads(calibration.SHIPPED[name].read_text())
        doc.pop("explaining_away", None)
        doc.pop("au5_against_brow", None)
        (tmp_path / name).write_text(json.dumps(doc))
    monkeypatch.setenv(calibration.ENV, str(tmp_path))
    old = parameters()
    assert old.coupling is None and not old.lid_against_brow
    rng = np.random.default_rng(3)
    keys = [(r.region, r.side) for r in region_table({})]
    for _ in range(20):
        table = region_table({k: tuple(rng.normal(0, 0.3, 2)) for k in keys if rng.random() < 0.5}, snr=40.0)
        evidence = score_regions(table, None, 256)
        for s in evidence.scores:
            if s.code in LANDMARK_AUS:
                continue
            sides = ("L", "R") if any(a.region in SIDED_REGIONS for a in FACS[s.code].actions) else (None,)
            expected = probability(max(side_score(FACS[s.code], table, side, 256, old) for side in sides), old)
            assert s.probability == pytest.approx(expected, abs=1e-12), s.code
        assert evidence.explained == {}
    monkeypatch.delenv(calibration.ENV)
    assert parameters().coupling and parameters().lid_against_brow, "the shipped calibration explains away"


def test_the_fit_reads_the_persons_sides_and_keeps_a_one_sided_midline_au():
    """A cheek that moves outward on each side (+x on the person's left, -x on the right) has a positive lateral
    coefficient; an AU9 labelled on the right alone still teaches its nose-to-nasolabial pattern (right side only)."""
    rng = np.random.default_rng(2)
    clips = []
    for _ in range(8):
        amp = rng.uniform(0.3, 1.0)
        corner = {s: amp * image_direction(FACS[12].actions[0], s) for s in ("L", "R")}
        moves = {("mouth_corner", s): tuple(corner[s]) for s in ("L", "R")}
        moves.update({("cheek", "L"): (0.3 * amp, -0.2 * amp), ("cheek", "R"): (-0.3 * amp, -0.2 * amp)})
        clips.append(({12: None}, _rows(moves), 256))
    for _ in range(6):
        amp = rng.uniform(0.3, 1.0)
        moves = {("nose", None): (0.0, -amp), ("nasolabial", "R"): (0.1 * amp, -0.5 * amp)}
        clips.append(({9: "R"}, _rows(moves), 256))
    fitted = ea.fit_coupling(clips)
    assert fitted["12"]["pattern"]["cheek@same"] == pytest.approx([0.3, 0.2], abs=0.02)
    assert fitted["9"]["clips"] == 6
    # person's right: outward is -x in the image, so +0.1 image x is -0.1 outward
    assert fitted["9"]["pattern"]["nasolabial@same"] == pytest.approx([-0.1, 0.5], abs=0.02)


def _rows(moves: dict) -> list[dict]:
    return [{"region": r.region, "side": r.side, "dx": r.dx, "dy": r.dy} for r in region_table(moves)]
