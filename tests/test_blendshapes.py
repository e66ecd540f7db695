"""Blendshape scores from the landmarker call, their sides, the `blendshapes` detector and the `fusion` weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from assistant.au import DETECTORS, fusion, get_detector
from assistant.au import blendshapes as bs
from assistant.types import AUEvidence, AUScore, Clip, EvidenceSource


def _mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


@pytest.fixture(scope="module")
def astronaut_landmarks():
    from skimage import data

    from assistant.motion.face import detect_face

    image = data.astronaut()
    return detect_face(image), detect_face(_mirror(image))


@pytest.fixture(scope="module")
def one_sided_smile():
    """Grace Hopper (not smiling at onset) smiling with her left mouth corner only, 6 px at the working crop."""
    from instruction_data.synth import SynthSpec, render_clip

    c = render_clip(SynthSpec(subject=1, aus=["L12"], amplitude_px=6.0, n_frames=20, seed=3))
    return c.frames[c.onset], c.frames[c.apex]


@pytest.fixture(scope="module")
def null_pair():
    from instruction_data.synth import SynthSpec, render_clip

    c = render_clip(SynthSpec(subject=1, aus=[], n_frames=20, seed=3))
    return c.frames[c.onset], c.frames[c.apex]


def test_astronaut_smiles_on_both_sides(astronaut_landmarks):
    lm, _ = astronaut_landmarks
    assert lm.blendshapes is not None and len(lm.blendshapes) == 52
    assert lm.blendshapes["mouthSmileLeft"] > 0.5 and lm.blendshapes["mouthSmileRight"] > 0.5
    assert lm.blendshapes["mouthFrownLeft"] < 0.2  # the scores tell expressions apart, not all high
    # kept through the crop transform the motion core applies
    assert lm.scaled(0.5, 0.5, 10, 10).blendshapes == lm.blendshapes


def test_mediapipe_left_is_the_persons_left_on_a_one_sided_smile(one_sided_smile):
    from assistant.motion.face import detect_face

    onset, apex = one_sided_smile
    for mirrored, expected in ((False, "L"), (True, "R")):
        f = _mirror if mirrored else (lambda im: im)
        a, b = detect_face(f(onset)).blendshapes, detect_face(f(apex)).blendshapes
        by_side = {side: b["mouthSmile" + suffix] - a["mouthSmile" + suffix] for suffix, side in bs.MP_SIDE.items()}
        other = "R" if expected == "L" else "L"
        assert by_side[expected] > 1.4 * by_side[other] > 0, (mirrored, by_side)
        sig = {s.code: s for s in bs.signals(a, b, [12])}[12]
        assert (sig.z_left > sig.z_right) == (expected == "L")
        assert sig.sources[0].side == expected  # the strongest source is on the moved side


def test_detector_on_a_synthetic_smile_and_a_null_clip(one_sided_smile, null_pair):
    assert "blendshapes" in DETECTORS and "fusion" in DETECTORS
    det = get_detector("blendshapes")
    smile = det.detect(Clip("smile", *one_sided_smile, onset=0, apex=1))
    null = det.detect(Clip("null", *null_pair, onset=0, apex=1))
    assert smile.backend == "blendshapes"
    assert smile.probability(12) > 0.5
    assert null.active() == [], [(s.code, s.probability) for s in null.active()]
    au12 = next(s for s in smile.scores if s.code == 12)
    assert au12.sources and au12.sources[0].kind == "blendshape" and au12.sources[0].name == "mouthSmileLeft"
    assert au12.sources[0].describe().startswith("blendshape mouthSmileLeft +")


def test_z_is_the_change_over_the_noise_floor():
    onset = {"browInnerUp": 0.10, "browOuterUpLeft": 0.2, "browOuterUpRight": 0.2}
    apex = {"browInnerUp": 0.16, "browOuterUpLeft": 0.2, "browOuterUpRight": 0.3}
    sig = {s.code: s for s in bs.signals(onset, apex, [1, 2], floors={"browInnerUp": 0.02, "browOuterUpRight": 0.01})}
    assert sig[1].z == pytest.approx(3.0) and sig[1].side is None
    assert sig[2].z == pytest.approx(10.0) and sig[2].side == "R" and sig[2].z_left == pytest.approx(0.0)
    assert bs.probability(bs.Z_MID) == pytest.approx(0.5)


def test_noise_floors_were_measured_and_say_how():
    data = json.loads(bs.NOISE_FILE.read_text())
    assert data["command"].startswith("meu calibrate fusion") and data["n_null_pairs"] >= 10
    floors = bs.load_floors()
    assert {"mouthSmileLeft", "browInnerUp", "browDownRight"} <= set(floors)
    assert all(v >= 0 for v in floors.values()) and floors["browInnerUp"] > bs.MIN_FLOOR  # a moving score was measured
    # a score that never moved on the null pairs is floored, so a rounding-sized change stays below one noise unit
    sig = bs.signals({"browInnerUp": 0.1}, {"browInnerUp": 0.1 + bs.MIN_FLOOR / 2}, [1], {"browInnerUp": 0.0})
    assert sig[0].z == pytest.approx(0.5)


def test_fusion_weights_load_and_refit_deterministically():
    weights = fusion.load_weights()
    stored = json.loads(fusion.WEIGHTS_FILE.read_text())
    assert set(weights) >= {1, 2, 4, 12} and stored["command"].startswith("meu calibrate fusion")
    assert stored["fitted_on"]["split"] == "calibration"
    refit = fusion.refit_from_file()
    assert refit == stored["weights"]  # the committed weights are what the committed calibration features give
    assert fusion.refit_from_file() == refit


def test_fusion_combines_by_the_documented_formula():
    rules = AUEvidence([AUScore(12, 0.3, "L", (EvidenceSource("flow", "left mouth corner", 0.3, "L"),)),
                        AUScore(4, 0.9)], "rules")
    blend = AUEvidence([AUScore(12, 0.9, "L", (EvidenceSource("blendshape", "mouthSmileLeft", 0.08, "L"),)),
                        AUScore(4, 0.1)], "blendshapes")
    w = {12: (1.0, 0.5, -1.0)}
    ev = fusion.combine(rules, blend, {12: 6.0, 4: 0.0}, w)
    x_r = math.log(0.3 / 0.7)
    assert ev.probability(12) == pytest.approx(1 / (1 + math.exp(-(x_r + 0.5 * 6.0 - 1.0))))
    assert ev.probability(4) == pytest.approx(0.9)  # no weights for AU4: the rules probability stands
    au12 = next(s for s in ev.scores if s.code == 12)
    assert au12.side == "L" and [s.kind for s in au12.sources] == ["blendshape", "flow"]


def test_reasoner_and_sources_name_where_evidence_came_from():
    from test_template_reasoner import analysis_for

    from assistant.au.sources import flow_sources, with_flow_sources
    from assistant.reasoners.base import ReasoningRequest
    from assistant.reasoners.template import TemplateReasoner

    analysis = analysis_for([12])
    flow = flow_sources(12, analysis.regions, "L")
    assert flow and all(s.kind == "flow" and s.side == "L" for s in flow)
    assert {s.region for s in flow} <= {"mouth_corner", "nasolabial", "cheek"}
    assert flow_sources(4, analysis.regions) == ()  # nothing moves the brows
    rules = with_flow_sources(AUEvidence([AUScore(12, 0.9, "L"), AUScore(4, 0.1)], "rules"), analysis.regions)
    assert rules.scores[0].sources == flow
    shape = EvidenceSource("blendshape", "mouthSmileLeft", 0.08, "L")
    still = analysis_for([])  # no region moves: the blendshape score is the only evidence
    for lang, word in (("en", "blendshape mouthSmileLeft +0.08"), ("zh", "mouthSmileLeft +0.08")):
        request = ReasoningRequest(still, AUEvidence([AUScore(12, 0.9, "L", (shape,))], "blendshapes"), lang=lang,
                                   emotion_options=("happiness", "disgust", "repression", "surprise", "others"))
        text = TemplateReasoner().compose(request)
        assert word in text and "weak evidence" not in text


@pytest.fixture(scope="module")
def smile_images(tmp_path_factory):
    from assistant.files import save_png
    from instruction_data.synth import SynthSpec, render_clip

    tmp = tmp_path_factory.mktemp("smile")
    c = render_clip(SynthSpec(subject=1, aus=["6", "12"], n_frames=12, amplitude_px=2.0, frame_size=(320, 240),
                              face_height_frac=0.7, seed=3))
    return save_png(tmp / "onset.png", c.frames[c.onset]), save_png(tmp / "apex.png", c.frames[c.apex])


@pytest.mark.parametrize("detector", ["rules", "fusion"])
def test_api_result_carries_blendshapes_and_evidence_sources(smile_images, detector):
    from assistant.pipeline import Assistant, AssistantConfig

    result = Assistant(AssistantConfig(detector=detector)).analyze(*smile_images)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["backends"]["detector"] == detector
    assert len(d["blendshapes"]["onset"]) == 52 and d["blendshapes"]["onset"]["mouthSmileLeft"] >= 0
    assert 12 in d["au_codes"]
    kinds = {src["kind"] for src in d["evidence_sources"]["AU12"]}
    assert "flow" in kinds and (detector == "rules") == ("blendshape" not in kinds)
    assert all(region in {r["label"] for r in d["regions"]} and au.startswith("AU")
               for region, au in d["explained_away"].items())


def test_magnification_benchmark_moves_pixels_k_times_the_flow():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "blendshape_response", Path(__file__).resolve().parents[1] / "benchmarks" / "blendshape_response.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ramp = np.tile(np.arange(64, dtype=np.float32) * 3, (64, 1))
    image = np.dstack([ramp] * 3)
    flow = np.zeros((64, 64, 2), np.float32)
    flow[..., 0] = 0.5
    out = bench.magnify(image, flow, 4)
    # a ramp moved right by 4 * 0.5 = 2 px reads 2 px further left: 3 * 2 = 6 grey levels lower
    assert np.allclose(out[:, 8:56] - image[:, 8:56], -6.0, atol=0.05)
