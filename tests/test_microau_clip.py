"""Micro-AU CLIP: patch lookup, attention, the three losses, checkpoints, the backend and a smoke LOSO run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from assistant.au.au_sentences import au_sentences, emotion_sentences
from assistant.au.aullm_input import REGION_KEYS, REGION_VALUES
from assistant.au.microau_clip import (
    AU_LANDMARKS,
    GlobalDependencyAttention,
    MicroAUCLIPConfig,
    PatchTokenAttention,
    contrastive_label_matrix,
    dependency_loss,
    patch_indices,
)
from assistant.au.microau_clip_io import (
    analysis_regions,
    build_model,
    flow_image,
    load_microau_clip,
    recognise_emotions,
    save_microau_clip,
)
from assistant.emotions import SCHEME_CLASSES
from assistant.facs import FACS
from finetune.tiny_clip import build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def test_patch_lookup_picks_the_token_under_each_landmark():
    rng = np.random.default_rng(0)
    grid, patch = 7, 32
    rows, cols = rng.integers(0, grid, 68), rng.integers(0, grid, 68)
    # a point anywhere inside patch (row, col), including its top-left corner pixel
    off = rng.uniform(0, patch - 1e-3, size=(68, 2))
    off[0] = 0.0
    pts = np.stack([cols * patch + off[:, 0], rows * patch + off[:, 1]], axis=1)
    groups = [AU_LANDMARKS[1], AU_LANDMARKS[12], AU_LANDMARKS[17]]
    got = patch_indices(torch.tensor(pts[None], dtype=torch.float32), groups, 224, patch)
    for g, idx in zip(groups, got):
        assert idx.shape == (1, len(g))
        assert idx[0].tolist() == [int(rows[i] * grid + cols[i]) for i in g]


def test_patch_lookup_clamps_points_outside_the_image():
    pts = torch.zeros(1, 68, 2)
    pts[0, 19] = torch.tensor([224.0, 230.0])  # past the bottom-right corner
    pts[0, 20] = torch.tensor([-5.0, 40.0])  # left of the image, second patch row
    idx = patch_indices(pts, [(19, 20)], 224, 32)[0][0].tolist()
    assert idx == [6 * 7 + 6, 1 * 7 + 0]


def test_attention_weights_sum_to_one():
    torch.manual_seed(0)
    pta = PatchTokenAttention(16, 8)
    tokens = torch.randn(3, 5, 16)
    fused, w = pta(tokens)
    assert torch.allclose(w.sum(-1), torch.ones(3))
    assert torch.allclose(fused, (w.unsqueeze(-1) * tokens).sum(1), atol=1e-6)
    gda = GlobalDependencyAttention(4, 16, 8)
    h, scores, a = gda(torch.randn(3, 4, 16))
    assert torch.allclose(a.sum(-1), torch.ones(3)) and h.shape == (3, 4, 16)


def test_contrastive_label_matrix_matches_hand_computed():
    labels = torch.tensor([1, 0, 1, 1, 0])
    expected = torch.tensor([
        [1, 0, 1, 1, 0],
        [0, 1, 0, 0, 1],
        [1, 0, 1, 1, 0],
        [1, 0, 1, 1, 0],
        [0, 1, 0, 0, 1],
    ], dtype=torch.float32)
    assert torch.equal(contrastive_label_matrix(labels), expected)


def test_dependency_loss_equals_independent_computation():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(4, 5))
    labels = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]], dtype=float)
    total = 0.0
    for s, y in zip(scores, labels):
        log_a = [v - np.log(np.sum(np.exp(s))) for v in s]
        t = y / y.sum() if y.sum() > 0 else np.full(len(y), 1 / len(y))
        total += -sum(ti * li for ti, li in zip(t, log_a))
    got = dependency_loss(torch.tensor(scores), torch.tensor(labels))
    assert got.item() == pytest.approx(total / len(scores), rel=1e-6)


def test_every_facs_au_has_sentences_and_a_landmark_group():
    for code in FACS:
        pos, neg = au_sentences(code)
        assert pos and neg and pos != neg
        assert all(0 <= i < 68 for i in AU_LANDMARKS[code])
    for classes in SCHEME_CLASSES.values():
        assert len(emotion_sentences(classes)) == len(classes)


def test_flow_image_brightness_follows_magnitude_on_a_fixed_scale():
    flow = np.zeros((64, 64, 2), np.float32)
    flow[:32, :, 0] = 1.0  # half of the image moves right by half of full scale
    img = flow_image(flow, flow_max_px=2.0, size=32)
    assert img.shape == (32, 32, 3)
    assert img[20:].max() == 0 and abs(int(img[:12].max()) - 127) <= 2


def test_model_trains_the_configured_layers_and_round_trips(tiny_clip, tmp_path):
    torch.manual_seed(0)
    model, tok = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 4, 12), trainable_layers=3))
    vision_layers = model.clip.vision_model.encoder.layers
    assert not any(p.requires_grad for p in vision_layers[0].parameters())
    assert all(p.requires_grad for p in vision_layers[-1].parameters())
    assert not any(p.requires_grad for p in model.clip.text_model.embeddings.parameters())
    x, lm = torch.randn(4, 3, 224, 224), torch.rand(4, 68, 2) * 224
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    losses = model.loss(model(x, lm), labels)
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert vision_layers[0].mlp.fc1.weight.grad is None and vision_layers[-1].mlp.fc1.weight.grad is not None
    with torch.no_grad():  # as if trained: the unfrozen layer must travel in the checkpoint
        vision_layers[-1].mlp.fc1.weight.add_(0.5)
    save_microau_clip(model, tiny_clip, tmp_path / "ckpt")
    again, tok2, config = load_microau_clip(tmp_path / "ckpt")
    model.eval()
    with torch.no_grad():
        assert torch.allclose(again(x, lm).logits, model(x, lm).logits, atol=1e-5)
        classes = SCHEME_CLASSES["5"]
        got = recognise_emotions(again, tok2, again(x, lm).au_features, classes)
    assert len(got) == 4 and set(got) <= set(classes)


def test_backend_detects_and_recognises_on_a_synthetic_clip(tiny_clip, tmp_path):
    from assistant.au import get_detector
    from assistant.au.base import AUDetector
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from assistant.types import Clip
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 2, 12)))
    save_microau_clip(model, tiny_clip, tmp_path / "ckpt", extra={"motion": {"eyes": "masked"}})  # as training does
    clip_ = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=10, frame_size=(320, 240), seed=3))
    clip = Clip(source="synthetic", onset_frame=clip_.frames[clip_.onset], apex_frame=clip_.frames[clip_.apex],
                onset=clip_.onset, apex=clip_.apex)
    motion = MotionConfig(flow="dis")
    detector = get_detector("microau_clip", checkpoint=tmp_path / "ckpt", motion=motion)
    assert isinstance(detector, AUDetector)
    evidence = detector.detect(clip)
    assert evidence.backend == "microau_clip" and [s.code for s in evidence.scores] == [1, 2, 12]
    assert all(0.0 <= s.probability <= 1.0 for s in evidence.scores)
    analysis = analyze_frames(clip.onset_frame, clip.apex_frame, motion)
    again = detector.detect(clip, analysis)  # a given analysis is used as is: same input, same answer
    assert [s.probability for s in again.scores] == pytest.approx([s.probability for s in evidence.scores], abs=1e-6)
    for scheme in ("3", "5", "7"):
        assert detector.recognise_emotion(clip, analysis, scheme=scheme) in SCHEME_CLASSES[scheme]


def test_backend_reads_no_drift_cancelled_field(tiny_clip, tmp_path, monkeypatch):
    """Micro-AU CLIP is trained on onset -> apex fields with no drift cancelled: given an analysis that cancelled
    drift with the offset frame (`meu eval` and the app do when the offset is known), it analyses the clip again."""
    import dataclasses

    from assistant.au import get_detector
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from assistant.types import Clip
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 2, 12)))
    save_microau_clip(model, tiny_clip, tmp_path / "ckpt")
    synth = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=14, onset=1, apex=5, offset=11,
                                  frame_size=(320, 240), seed=3))
    clip = Clip(source="synthetic", onset_frame=synth.frames[1], apex_frame=synth.frames[5], onset=1, apex=5,
                offset=11, n_frames=14)
    monkeypatch.setattr("assistant.motion.analyze.DRIFT_STILLER", float("inf"))  # the cancelled field always kept
    cancelled = analyze_frames(clip.onset_frame, clip.apex_frame, MotionConfig(flow="dis"), clip,
                               offset_frame=synth.frames[11])
    plain = analyze_frames(clip.onset_frame, clip.apex_frame, MotionConfig(flow="dis"), clip)
    assert cancelled.field.drift["cancelled"] == 1.0 and not np.array_equal(cancelled.field.flow, plain.field.flow)
    detector = get_detector("microau_clip", checkpoint=tmp_path / "ckpt")
    served = [s.probability for s in detector.detect(dataclasses.replace(clip), cancelled).scores]
    assert served == pytest.approx([s.probability for s in detector.detect(clip, plain).scores], abs=1e-6)


def test_a_checkpoint_is_served_with_the_eyes_as_it_was_trained(tiny_clip, tmp_path):
    """A checkpoint from before the eyes' openings were masked (no `motion` in its config) was trained on them read as
    skin: handed the app's analysis (masked), the backend analyses the clip again with them read; a newer one reads
    the masked analysis as it is."""
    import dataclasses

    from assistant.au import get_detector
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from assistant.types import Clip
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 2, 12), input="motion"))
    save_microau_clip(model, tiny_clip, tmp_path / "old")
    save_microau_clip(model, tiny_clip, tmp_path / "new", extra={"motion": {"eyes": "masked"}})
    synth = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=10, frame_size=(320, 240), seed=3))
    clip = Clip(source="synthetic", onset_frame=synth.frames[synth.onset], apex_frame=synth.frames[synth.apex],
                onset=synth.onset, apex=synth.apex)
    masked, read = (analyze_frames(clip.onset_frame, clip.apex_frame, MotionConfig(flow="dis", eyes=eyes), clip)
                    for eyes in ("masked", "read"))
    assert masked.field.face_mask.sum() < read.field.face_mask.sum()

    def probabilities(checkpoint: str, analysis) -> list[float]:
        detector = get_detector("microau_clip", checkpoint=tmp_path / checkpoint)
        return [s.probability for s in detector.detect(dataclasses.replace(clip), analysis).scores]

    assert get_detector("microau_clip", checkpoint=tmp_path / "old").eyes == "read"
    assert probabilities("old", masked) == pytest.approx(probabilities("old", read), abs=1e-6)
    assert probabilities("new", masked) != pytest.approx(probabilities("old", read), abs=1e-6)
    assert probabilities("new", read) == pytest.approx(probabilities("new", masked), abs=1e-6)  # analysed again


def test_smoke_loso_with_the_tiny_clip(tiny_clip, synth_casme2_root, tmp_path):
    import json

    from finetune.au import run
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig
    from instruction_data.loaders import load_dataset

    records = load_dataset("casme2", synth_casme2_root).records
    config = TrainMicroAUCLIPConfig(dataset="casme2", out=str(tmp_path / "run"), clip_backbone=str(tiny_clip),
                                    clip_flow="dis", epochs=2, batch_size=4, progress=False, threads=1)
    threads = torch.get_num_threads()
    try:  # one thread: tiny matrices on two busy cores run many times faster without thread hand-offs
        metrics = run(config, records)
    finally:
        torch.set_num_threads(threads)
    known = [r for r in records if not r.aus.unknown]  # a "?" AU cell cannot be scored
    subjects = sorted({r.subject for r in known})
    assert metrics["n_folds"] == len(subjects) and metrics["n_clips"] == len(known)
    assert 0.0 <= metrics["pooled"]["mean_f1"] <= 1.0
    for s in subjects:
        assert (tmp_path / "run" / "folds" / s / "predictions.csv").is_file()
    saved = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert saved["model"] == "microau_clip" and saved["microau_clip"]["aus"] == [1, 2, 4, 7, 12, 14, 15, 17]
    assert saved["motion"] == {"eyes": "masked"}  # served with the eyes' openings masked, as trained
    # the "?" clip is not scored, but its fold's model predicts it (unscored.csv) for evaluation: every clip cached
    assert len(list((tmp_path / "run" / "cache" / "microau_clip").glob("*.npz"))) == len(records)
    unknown = [r for r in records if r.aus.unknown]
    assert all((tmp_path / "run" / "folds" / r.subject / "unscored.csv").is_file() for r in unknown)


def test_recipe_yaml_parses_into_the_run_config():
    from pathlib import Path

    from assistant.config import parse_config
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig, options

    path = Path(__file__).resolve().parent.parent / "configs" / "au_microau_clip_casme2.yaml"
    config, _ = parse_config(TrainMicroAUCLIPConfig, ["--config", str(path), "--clip-lr-heads", "0.02"], "t", "t")
    opts = options(config)
    assert config.model == "microau_clip" and opts.clip_lr_encoder == 0.001 and opts.clip_lr_heads == 0.02
    assert opts.clip_trainable_layers == 3


def test_contrastive_loss_equals_independent_computation():
    from assistant.au.microau_clip import au_contrastive_loss

    rng = np.random.default_rng(2)
    f = rng.normal(size=(4, 1, 3))
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    t = rng.normal(size=(1, 2, 3))
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    y = np.array([[1], [0], [1], [1]])
    scale = 10.0
    logits = np.array([[scale * f[i, 0] @ t[0, y[j, 0]] for j in range(4)] for i in range(4)])
    m = np.array([[float(y[i, 0] == y[j, 0]) for j in range(4)] for i in range(4)])

    def soft_ce(lg, target):
        logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
        return float(np.mean(-(target / target.sum(axis=1, keepdims=True) * logp).sum(axis=1)))

    expected = (soft_ce(logits, m) + soft_ce(logits.T, m.T)) / 2
    got = au_contrastive_loss(torch.tensor(f), torch.tensor(t), torch.tensor(y), torch.tensor(scale))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_train_au_help_lists_the_micro_au_clip_settings(capsys):
    from assistant import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "au", "--model", "microau_clip", "--help"])
    assert stop.value.code == 0
    assert "--clip-backbone" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "au", "--model", "aullm", "--help"])
    assert "--clip-backbone" not in capsys.readouterr().out


def test_cached_inputs_follow_a_corrected_apex(synth_casme2_root, tmp_path):
    """The input cache must not hand back the old flow image after the sheet's apex frame changes."""
    import dataclasses

    from assistant.motion.analyze import MotionConfig
    from finetune.au_microau_clip import record_inputs
    from instruction_data.loaders import load_dataset

    record = load_dataset("casme2", synth_casme2_root).records[0]
    cfg, motion = MicroAUCLIPConfig(), MotionConfig(flow="dis")
    moved = dataclasses.replace(record, apex=record.onset + 1)
    fresh, _, _ = record_inputs([moved], cfg, motion, None, progress=False)
    record_inputs([record], cfg, motion, tmp_path, progress=False)
    cached, _, _ = record_inputs([moved], cfg, motion, tmp_path, progress=False)
    assert np.array_equal(cached, fresh)


def test_backend_applies_the_thresholds_stored_in_its_checkpoint(tiny_clip, tmp_path):
    """Thresholds chosen on training subjects travel in the checkpoint; serving must use them (as `aullm` does),
    not a fixed 0.5 on the raw probabilities."""
    from assistant.au import get_detector
    from assistant.au.aullm_detector import calibrate
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 2, 12)))
    save_microau_clip(model, tiny_clip, tmp_path / "plain")
    thresholds = [0.05, 0.5, 0.95]
    save_microau_clip(model, tiny_clip, tmp_path / "tuned", thresholds=thresholds)
    clip_ = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=10, frame_size=(320, 240), seed=3))
    motion = MotionConfig(flow="dis")
    analysis = analyze_frames(clip_.frames[clip_.onset], clip_.frames[clip_.apex], motion)
    raw = np.array([s.probability for s in get_detector("microau_clip", checkpoint=tmp_path / "plain",
                                                        motion=motion).detect(analysis.clip, analysis).scores])
    tuned = get_detector("microau_clip", checkpoint=tmp_path / "tuned", motion=motion).detect(analysis.clip, analysis)
    got = np.array([s.probability for s in tuned.scores])
    assert got == pytest.approx(calibrate(raw, np.array(thresholds)), abs=1e-6)
    assert [s.code for s in tuned.active()] == [c for c, p, t in zip((1, 2, 12), raw, thresholds) if p >= t]


def test_training_and_serving_give_the_same_input_for_one_clip(synth_casme2_root, tmp_path):
    """`meu train au` and `meu eval` / the app compute the model input through one path: the same tensor, for the
    published flow image and for the motion image."""
    import dataclasses

    from assistant.au.microau_clip_io import analysis_inputs
    from assistant.motion.analyze import MotionConfig, analyze_clip
    from finetune.au_microau_clip import record_inputs
    from instruction_data.loaders import load_dataset

    record = load_dataset("casme2", synth_casme2_root).records[0]
    motion = MotionConfig(flow="dis")
    served = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex, config=motion)
    for kind in ("flow_image", "motion"):
        cfg = dataclasses.replace(MicroAUCLIPConfig(), input=kind)
        trained, points, regions = record_inputs([record], cfg, motion, tmp_path / kind, progress=False)
        image, landmarks = analysis_inputs(served, cfg)
        assert np.array_equal(trained[0], image) and np.array_equal(points[0], landmarks) and regions is None
    cfg = MicroAUCLIPConfig(input="motion", direct=True, region_features=len(REGION_KEYS) * REGION_VALUES)
    for _ in range(2):  # computed, then read back from the cache
        trained, points, regions = record_inputs([record], cfg, motion, tmp_path / "direct", progress=False)
        assert np.array_equal(regions[0], analysis_regions(served, cfg)) and np.abs(regions[0]).sum() > 0
        assert np.array_equal(trained[0], analysis_inputs(served, cfg)[0])


def test_the_direct_read_out_starts_silent_reads_the_motion_table_and_round_trips(tiny_clip, tmp_path):
    """The read-out adds nothing until trained, then moves an AU's logit by its weight times the table value it
    reads; it trains at its own learning rate and travels in the checkpoint; a model with it refuses to run without
    the table."""
    from finetune.au_microau_clip import MicroAUCLIPOptions, make_optimizer

    n = len(REGION_KEYS) * REGION_VALUES
    models = {}
    for direct in (False, True):
        torch.manual_seed(0)
        models[direct], _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 4, 12), direct=direct,
                                                                     region_features=n if direct else 0))
        models[direct].eval()
    model = models[True]
    x, lm, regions = torch.randn(2, 3, 224, 224), torch.rand(2, 68, 2) * 224, torch.randn(2, n)
    with torch.no_grad():
        assert torch.allclose(model(x, lm, regions).logits, models[False](x, lm).logits, atol=1e-6)
        base = model(x, lm, regions).logits
        model.direct.weight[1, 7] = 2.0
        out = model(x, lm, regions).logits
    assert torch.allclose(out[:, 1] - base[:, 1], 2.0 * regions[:, 7], atol=1e-5)
    assert torch.allclose(out[:, [0, 2]], base[:, [0, 2]], atol=1e-6)
    with pytest.raises(ValueError, match="motion table"):
        model(x, lm)
    from assistant.errors import ConfigError
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig

    for name in ("clip_lr_direct", "clip_lr_heads", "clip_lr_encoder"):
        with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} is a learning rate and must be above 0"):
            TrainMicroAUCLIPConfig(**{name: -1.0})
    opt, _ = make_optimizer(model, MicroAUCLIPOptions(clip_lr_direct=0.07), 0.0, 4)
    assert [g["lr"] for g in opt.param_groups][-1] == 0.07
    assert {id(p) for p in opt.param_groups[-1]["params"]} == {id(p) for p in model.direct.parameters()}
    assert not {id(p) for p in opt.param_groups[1]["params"]} & {id(p) for p in model.direct.parameters()}
    save_microau_clip(model, tiny_clip, tmp_path / "ckpt", extra={"motion": {"eyes": "masked"}})  # as training does
    again, _, _ = load_microau_clip(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(again(x, lm, regions).logits, out, atol=1e-5)
    # serving reads the table of the clip's own analysis
    from assistant.au import get_detector
    from assistant.au.microau_clip_io import analysis_inputs, pixel_values
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from instruction_data.synth import SynthSpec, render_clip

    clip_ = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=10, frame_size=(320, 240), seed=3))
    analysis = analyze_frames(clip_.frames[clip_.onset], clip_.frames[clip_.apex], MotionConfig(flow="dis"))
    detector = get_detector("microau_clip", checkpoint=tmp_path / "ckpt", motion=MotionConfig(flow="dis"))
    image, points = analysis_inputs(analysis, model.config)
    table = torch.from_numpy(analysis_regions(analysis, model.config)[None])
    with torch.no_grad():
        expected = model(pixel_values(image[None]), torch.from_numpy(points[None]), table).logits
        assert torch.allclose(detector._forward(analysis.clip, analysis).logits, expected, atol=1e-5)
        assert not torch.allclose(model(pixel_values(image[None]), torch.from_numpy(points[None]),
                                        torch.zeros_like(table)).logits, expected, atol=1e-4)


def test_a_faint_au_stands_out_in_the_motion_input():
    """A 0.2 px AU12 on a drifting, noisy, turning clip of the realistic world: in the motion input the mouth corners
    move more than the rest of the face (measured 1.6-2.1 times the face's median, in noise floors)."""
    import dataclasses

    from assistant.au import AU
    from assistant.au.motion_input import normalised_flow
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from instruction_data.realistic import draw_spec, render_realistic
    from instruction_data.synth import AUMotion

    spec = draw_spec(1, "calibration", 0, world="v2")
    clip = render_realistic(dataclasses.replace(spec, motions=(AUMotion(AU.parse("12"), 0.2),)))
    analysis = analyze_frames(clip.frames[spec.onset], clip.frames[spec.apex], MotionConfig(flow="dis"))
    z = np.hypot(*np.moveaxis(normalised_flow(analysis.field), -1, 0))
    points = analysis.crop_landmarks.points68
    corners = [z[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7].mean() for x, y in points[[48, 54]]]
    face = z[analysis.field.face_mask]
    assert min(corners) > 1.3 * np.median(face), (corners, np.median(face))


def test_a_checkpoint_from_before_the_input_setting_serves_the_published_input(tiny_clip, tmp_path):
    """A checkpoint whose config has no `input` was trained on the flow image: it loads, says so, and serves exactly
    what the same weights serve with `input: flow_image` written out."""
    import json

    from assistant.au import get_detector
    from assistant.au.microau_clip_io import load_microau_clip
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_model(tiny_clip, MicroAUCLIPConfig(aus=(1, 2, 12)))
    save_microau_clip(model, tiny_clip, tmp_path / "now")
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "now", old)
    config = json.loads((old / "config.json").read_text())
    del config["microau_clip"]["input"]
    (old / "config.json").write_text(json.dumps(config))
    assert load_microau_clip(old)[0].config.input == "flow_image"
    clip_ = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=10, frame_size=(320, 240), seed=3))
    motion = MotionConfig(flow="dis")
    analysis = analyze_frames(clip_.frames[clip_.onset], clip_.frames[clip_.apex], motion)
    scores = [[s.probability for s in get_detector("microau_clip", checkpoint=p, motion=motion)
               .detect(analysis.clip, analysis).scores] for p in (old, tmp_path / "now")]
    assert scores[0] == scores[1]


def test_a_mirrored_motion_input_is_the_motion_input_of_the_mirrored_face():
    """Training's mirror (--clip-mirror) gives what the mirrored motion field gives: a rightward motion on the image's
    left becomes a leftward one on its right (within a grey level of rounding), the landmarks and the regions follow,
    and mirroring twice gives the clip back exactly. The published flow image (hue) is refused."""
    from assistant.au.aullm_input import mirror_regions
    from assistant.au.microau_clip_io import mirror_inputs
    from assistant.au.motion_input import motion_image
    from assistant.errors import ConfigError
    from assistant.types import MotionField
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig

    rng = np.random.default_rng(0)
    flow = np.zeros((256, 256, 2), np.float32)
    flow[100:140, 40:90] = (0.6, -0.2)  # the image's left: right and up
    flow += rng.normal(0, 0.02, flow.shape).astype(np.float32)
    mask = np.zeros((256, 256), bool)
    mask[20:240, 30:200] = True  # not symmetric: the mask must flip too

    def image(f, m):
        return motion_image(MotionField(flow=f, raw_flow=f, method="dis", compensation="register",
                                        head_motion={}, face_mask=m, noise_px=0.05), 224)

    mirrored_flow = flow[:, ::-1].copy()
    mirrored_flow[..., 0] *= -1
    expected = image(mirrored_flow, mask[:, ::-1])
    points = rng.uniform(0, 223, (2, 68, 2)).astype(np.float32)
    regions = rng.normal(size=(2, len(REGION_KEYS) * REGION_VALUES)).astype(np.float32)
    images = np.stack([image(flow, mask)] * 2)
    flipped, flipped_points, flipped_regions = mirror_inputs(images, points, regions)
    assert np.abs(flipped[0].astype(int) - expected.astype(int)).max() <= 1
    assert flipped[0, 120, 224 - 1 - 70, 0] < 128 - 50 and images[0, 120, 70, 0] > 128 + 50  # u changed sign
    from assistant.au.microau_clip_io import MIRROR68

    assert sorted(MIRROR68) == list(range(68)) and [MIRROR68[i] for i in MIRROR68] == list(range(68))
    assert (MIRROR68[36], MIRROR68[48], MIRROR68[30], MIRROR68[8]) == (45, 54, 30, 8)  # eye, mouth corners; midline
    assert np.allclose(flipped_points[..., 0], 223 - points[..., MIRROR68, 0])
    assert np.array_equal(flipped_points[..., 1], points[..., MIRROR68, 1])
    assert np.array_equal(flipped_regions, mirror_regions(regions))
    back = mirror_inputs(flipped, flipped_points, flipped_regions)
    assert np.array_equal(back[0], images) and np.allclose(back[1], points) and np.array_equal(back[2], regions)
    with pytest.raises(ConfigError, match="--clip-mirror flips the motion input"):
        TrainMicroAUCLIPConfig(clip_mirror=True)
    TrainMicroAUCLIPConfig(clip_mirror=True, clip_input="motion")


def test_the_fitted_read_out_separates_what_it_can_and_treats_both_sides_alike():
    """`clip_direct_c`: the read-out fitted by logistic regression before the CLIP path trains: it reads the value that
    carries an AU, an AU with one class in training gets its log-odds and no weights, and with the mirrors added it
    gives a clip and its mirror image the same logit (AU codes carry no side)."""
    from assistant.au.aullm_input import mirror_regions
    from assistant.errors import ConfigError
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig, fit_direct

    rng = np.random.default_rng(0)
    n = len(REGION_KEYS) * REGION_VALUES
    x = rng.normal(size=(80, n)).astype(np.float32)
    carried = x[:, 7] + x[:, 7 + REGION_VALUES] + rng.normal(0, 0.5, 80)  # not separable: one optimum, well met
    y = np.stack([carried > 0.5, np.zeros(80, bool)], axis=1).astype(np.int64)
    weight, bias = fit_direct(x, y, 10.0, mirror=False)
    assert ((x @ weight[0] + bias[0] > 0) == y[:, 0]).mean() > 0.85
    assert np.argsort(-np.abs(weight[0]))[:2].tolist() in ([7, 7 + REGION_VALUES], [7 + REGION_VALUES, 7])
    assert not weight[1].any() and bias[1] == pytest.approx(np.log(0.01 / 0.99))  # finetune.readout.MIN_SHARE
    weight, bias = fit_direct(x, y, 10.0, mirror=True)
    assert np.allclose(x @ weight[0], mirror_regions(x) @ weight[0], atol=1e-3)
    with pytest.raises(ConfigError, match="--clip-direct-c -1.0 fits the --clip-direct read-out"):
        TrainMicroAUCLIPConfig(clip_direct_c=-1.0, clip_direct=True)
    with pytest.raises(ConfigError, match="--clip-direct-c 3.0 fits the --clip-direct read-out"):
        TrainMicroAUCLIPConfig(clip_direct_c=3.0)
    with pytest.raises(ConfigError, match="--clip-lr-direct is the rate of a read-out trained by SGD"):
        TrainMicroAUCLIPConfig(clip_direct=True, clip_direct_c=3.0, clip_lr_direct=0.3)
    # pooled datasets (--protocol cde) mark an AU a clip's dataset does not code with -1: those clips are left out
    from finetune.readout import fit_readout

    uncoded = y.copy()
    uncoded[:20, 0] = -1
    uncoded[20:, 1] = -1
    weight, bias = fit_readout(x, uncoded, 10.0)
    expected = fit_readout(x[20:], y[20:, :1], 10.0)
    assert np.allclose(weight[0], expected[0][0], atol=1e-4) and bias[0] == pytest.approx(expected[1][0], abs=1e-4)
    assert not weight[1].any() and bias[1] == pytest.approx(np.log(0.01 / 0.99))


def test_a_run_with_the_fitted_read_out_keeps_it_fixed_and_starts_the_classifier_silent(tiny_clip, synth_casme2_root,
                                                                                         tmp_path, monkeypatch):
    """One epoch of the realistic recipe's settings (motion input, mirrors, the read-out fitted first, classifiers
    from zero) on the small synthetic set: the final model's read-out is exactly the fit on its training clips (every
    person but the one it validated on; training never moved it), and the CLIP path's classifiers moved off zero."""
    from finetune.au import label_matrix, run, usable_records
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig, fit_direct, record_inputs
    from instruction_data.loaders import load_dataset

    records = load_dataset("casme2", synth_casme2_root).records
    config = TrainMicroAUCLIPConfig(dataset="casme2", out=str(tmp_path / "run"), clip_backbone=str(tiny_clip),
                                    clip_flow="dis", clip_input="motion", clip_direct=True, clip_direct_c=3.0,
                                    clip_mirror=True, clip_zero_classifier=True, epochs=1, batch_size=4,
                                    progress=False, threads=1)
    import finetune.au_microau_clip as adapter

    at_start = []
    build = adapter.make_optimizer
    monkeypatch.setattr(adapter, "make_optimizer", lambda model, *a: at_start.append(
        float(model.cls_weight.abs().max())) or build(model, *a))
    threads = torch.get_num_threads()
    try:
        run(config, records)
    finally:
        torch.set_num_threads(threads)
    assert at_start and set(at_start) == {0.0}  # every fold's classifiers were zero when training began
    model, _, _ = load_microau_clip(tmp_path / "run" / "final")
    known = usable_records(records)
    from assistant.motion.analyze import MotionConfig

    _, _, regions = record_inputs(known, model.config, MotionConfig(flow="dis"), tmp_path / "run" / "cache" /
                                  "microau_clip", progress=False)
    labels = label_matrix(known, list(model.config.aus))
    people = np.array([r.subject for r in known])
    fits = [fit_direct(regions[people != held], labels[people != held], 3.0, mirror=True) for held in set(people)]
    assert any(np.allclose(model.direct.weight.detach().numpy(), weight, atol=1e-6)
               and np.allclose(model.direct.bias.detach().numpy(), bias, atol=1e-6) for weight, bias in fits)
    assert model.cls_weight.abs().sum() > 0  # and trained from there
