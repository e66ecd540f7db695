"""The `rules` detector: the documented formula on hand-made region tables, and sense on synthetic clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _au_data import region_table as _table

from assistant.au import AU, DETECTORS, get_detector, parse_aus
from assistant.au.base import AUDetector
from assistant.au.rules import STEEPNESS, parameters, probability, score_regions, side_score
from assistant.errors import BackendError
from assistant.facs import FACS, image_direction


def test_au_type_still_imports_from_assistant_au():
    assert str(parse_aus("1+R2+25")) == "1+R2+25" and AU.parse("R12").side == "R"


def test_formula_on_a_hand_made_table():
    up = (0.0, -1.5)  # 1.5 px up in image coordinates
    regions = _table({("inner_brow", "L"): up, ("inner_brow", "R"): up, ("outer_brow", "L"): up,
                      ("outer_brow", "R"): up})
    au1 = FACS[1]
    mag = 1 - math.exp(-1.5 / parameters().mag_ref)
    outer = image_direction(au1.actions[1], "L")
    agree_outer = max(0.0, float(np.array([0.0, -1.0]) @ outer)) ** parameters().agree_power
    expected = (1.0 * mag + 0.4 * agree_outer * mag) / 1.4
    assert side_score(au1, regions, "L") == pytest.approx(expected)
    ev = score_regions(regions)
    assert ev.backend == "rules"
    assert ev.probability(1) == pytest.approx(1 / (1 + math.exp(-STEEPNESS * (expected / parameters().midpoint - 1))))
    assert ev.probability(1) > 0.9 and ev.probability(2) > 0.5
    assert ev.probability(4) < 0.05 and ev.probability(12) < 0.05  # opposite / unrelated directions
    assert probability(0.0) <= 0.0101 and probability(2 * parameters().midpoint) >= 0.9899


def test_one_sided_motion_gives_a_side():
    # the person's right mouth corner is on the image's left: outward there is -x, up is -y
    regions = _table({("mouth_corner", "R"): (-1.6, -1.2)})
    ev = score_regions(regions, [12, 14, 15])
    s12 = next(s for s in ev.scores if s.code == 12)
    assert s12.side == "R" and s12.probability > 0.5
    assert ev.probability(14) < 0.1 and ev.probability(15) < 0.1
    still = score_regions(_table({}), [12])
    assert still.scores[0].side is None and still.scores[0].probability <= 0.0101


def test_registry():
    det = get_detector("rules")
    assert isinstance(det, AUDetector) and det.name == "rules" and "aullm" in DETECTORS
    with pytest.raises(BackendError, match="Unknown AU detector"):
        get_detector("nope")


@pytest.mark.parametrize("aus,high", [(["1", "2"], {1, 2}), (["R12"], {12})])
def test_sensible_on_synthetic_clips(aus, high):
    from assistant.motion.clip import load_clip
    from instruction_data.synth import SynthSpec, render_clip

    clip = render_clip(SynthSpec(subject=0, aus=aus, n_frames=12, frame_size=(320, 240), seed=1))
    c = load_clip(clip.frames, onset=clip.onset, apex=clip.apex)
    ev = get_detector("rules").detect(c)
    active = {s.code for s in ev.active()} & {1, 2, 4, 7, 12, 14, 15, 17}
    assert active == high
    if aus == ["R12"]:
        assert next(s for s in ev.scores if s.code == 12).side == "R"


def test_scores_do_not_depend_on_the_working_size():
    """MAG_REF is in pixels of a 256 px crop: the same face motion measured on a 512 px crop is twice as many pixels
    and must score the same, or `--size` would change which AUs are found."""
    moves = {("mouth_corner", "L"): (0.3, -0.25), ("mouth_corner", "R"): (-0.3, -0.25), ("cheek", "L"): (0.05, -0.3)}
    at_256 = score_regions(_table(moves))
    at_512 = score_regions(_table({k: (2 * dx, 2 * dy) for k, (dx, dy) in moves.items()}), size=512)
    assert [s.probability for s in at_512.scores] == pytest.approx([s.probability for s in at_256.scores])
    assert at_256.probability(12) != pytest.approx(score_regions(_table({k: (2 * dx, 2 * dy) for k, (dx, dy) in
                                                                         moves.items()})).probability(12))
