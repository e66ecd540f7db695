"""AU-LLM's motion input and region token (issue 22): one input path for training and serving, a faint AU that stands
out, mirroring that swaps sides, and checkpoints from before the input setting that serve as they always did."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from _au_data import tiny_llm

from assistant.au.aullm import AULLMConfig
from assistant.au.aullm_input import REGION_KEYS, REGION_VALUES, AULLMInput, analysis_input, mirror, model_tensor
from assistant.au.checkpoint import build_aullm, load_aullm, save_aullm
from assistant.motion.analyze import MOTION_CORE, MotionConfig, analyze_clip

MOTION = MotionConfig(flow="dis")
REGIONS = len(REGION_KEYS) * REGION_VALUES


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    return tiny_llm(tmp_path_factory)


def _config(**kw) -> AULLMConfig:
    return AULLMConfig(aus=[1, 2, 12], **kw)


@pytest.mark.parametrize("kw", [dict(input="motion"), dict(input="motion", regions=True, region_features=REGIONS),
                                dict(regions=True, region_features=REGIONS, graph=True)])
def test_the_new_inputs_run_forward_and_round_trip(llm_dir, tmp_path, kw):
    torch.manual_seed(0)
    model, _ = build_aullm(str(llm_dir), _config(**kw))
    x = torch.randn(2, 6, 2, 64, 64) if kw.get("input") == "motion" else torch.rand(2, 6, 64, 64)
    regions = torch.randn(2, REGIONS) if kw.get("regions") else None
    model.eval()
    with torch.no_grad():
        out = model(x, regions)
    assert out.shape == (2, 3)
    assert (model.led is None) == (kw.get("input") == "motion")  # motion is motion already: no LED filter
    save_aullm(model, str(llm_dir), tmp_path / "ckpt")
    again, _, _ = load_aullm(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(again(x, regions), out, atol=1e-5)
    if regions is not None:  # the region token is read, not ignored
        with torch.no_grad():
            assert not torch.allclose(again(x, regions + 1.0), out, atol=1e-4)


def test_the_direct_read_out_starts_silent_reads_its_inputs_and_round_trips(llm_dir, tmp_path):
    """The linear read-out beside the LLM adds nothing until trained (the same logits as without it), then moves an
    AU's logit by its weight times the region value or the pooled apex motion it reads, and a checkpoint keeps it."""
    x = torch.randn(2, 6, 2, 64, 64)
    regions = torch.randn(2, REGIONS)
    models = {}
    for direct in (False, True):
        torch.manual_seed(0)
        models[direct], _ = build_aullm(str(llm_dir), _config(input="motion", regions=True, region_features=REGIONS,
                                                              direct=direct))
        models[direct].eval()
    model = models[True]
    assert model.direct.in_features == 2 * 8 * 8 + REGIONS
    with torch.no_grad():
        assert torch.allclose(model(x, regions), models[False](x, regions), atol=1e-6)
        base = model(x, regions)
        model.direct.weight[2, 2 * 8 * 8 + 5] = 1.5  # AU12 <- the sixth region value
        model.direct.weight[0, 0] = 2.0  # AU1 <- x motion of the top-left cell of the apex
        out = model(x, regions)
    cell = x[:, -1, 0, :8, :8].mean(dim=(1, 2))
    assert torch.allclose(out[:, 2] - base[:, 2], 1.5 * regions[:, 5], atol=1e-5)
    assert torch.allclose(out[:, 0] - base[:, 0], 2.0 * cell, atol=1e-5)
    assert torch.allclose(out[:, 1], base[:, 1], atol=1e-6)
    save_aullm(model, str(llm_dir), tmp_path / "ckpt")
    again, _, _ = load_aullm(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(again(x, regions), out, atol=1e-5)


def test_the_direct_read_out_needs_something_to_read():
    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig

    with pytest.raises(ValueError, match="direct read-out"):
        _config(direct=True)
    with pytest.raises(ConfigError, match="--direct reads the motion input or the region token.*--input motion"):
        TrainAUConfig(direct=True)
    assert TrainAUConfig(direct=True, regions=True).direct
    with pytest.raises(ConfigError, match="--direct-lr is a learning rate and must be above 0"):
        TrainAUConfig(direct=True, regions=True, direct_lr=0)


def test_training_and_serving_give_the_same_tensors_for_one_clip(synth_casme2_root, llm_dir, tmp_path, monkeypatch):
    """`meu train au` (the adapter's cached inputs) and serving (the detector on a clip loaded as `meu eval` and the
    app load it, with and without the app's analysis) give the same motion sequence and region token. Training reads
    no offset frame, so an analysis that cancelled drift with one is analysed again without it."""
    from assistant.au.aullm_detector import AULLMDetector
    from finetune.au import TrainAUConfig
    from finetune.au_aullm import AULLMAdapter
    from instruction_data.loaders import load_dataset

    record = load_dataset("casme2", synth_casme2_root).records[0]
    cfg = TrainAUConfig(backbone=str(llm_dir), input="motion", regions=True, flow="dis",
                        cache_dir=str(tmp_path / "cache"), progress=False)
    adapter = AULLMAdapter(cfg, [1, 2, 12])
    trained = adapter.inputs([record])[0]
    assert trained.x.shape == (6, 2, 64, 64) and trained.regions.shape == (REGIONS,)
    assert np.abs(trained.x[0]).max() == 0 and np.abs(trained.x[-1]).max() > 0  # from still to the apex
    again = adapter.inputs([record])[0]  # read back from the cache
    assert np.array_equal(again.x, trained.x) and np.array_equal(again.regions, trained.regions)

    model, _ = build_aullm(cfg.backbone, adapter.model_config)
    save_aullm(model, cfg.backbone, tmp_path / "ckpt", extra={"motion": dataclasses.asdict(adapter.motion)})
    detector = AULLMDetector(tmp_path / "ckpt")
    served = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex, config=MOTION)
    for inp in (detector.clip_input(served.clip, served), detector.clip_input(served.clip)):
        assert np.array_equal(inp.x, trained.x) and np.array_equal(inp.regions, trained.regions)
    other = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex,
                         config=MotionConfig(flow="tvl1"))  # the app on other settings: analysed again
    assert np.array_equal(detector.clip_input(other.clip, other).x, trained.x)
    assert detector.motion.drift == "none"
    monkeypatch.setattr("assistant.motion.analyze.DRIFT_STILLER", float("inf"))  # the cancelled field always kept
    drifted = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex,
                           offset=record.offset, config=MOTION)
    assert drifted.field.drift["cancelled"] == 1.0
    assert np.array_equal(detector.clip_input(drifted.clip, drifted).x, trained.x)


def test_a_checkpoint_from_before_the_eye_mask_is_served_with_the_eyes_read(synth_casme2_root, llm_dir, tmp_path,
                                                                           caplog):
    """A motion-input checkpoint whose stored motion settings have no `eyes` was trained with the eyes' openings read
    as skin: the app's analysis (openings masked) is analysed again, and the network gets the tensor it was trained
    on, not the masked one. It records no motion core either, so loading it says that its inputs were measured by an
    older one; a checkpoint written now says nothing."""
    from assistant.au.aullm_detector import AULLMDetector
    from finetune.au import TrainAUConfig
    from finetune.au_aullm import AULLMAdapter
    from instruction_data.loaders import load_dataset

    record = load_dataset("casme2", synth_casme2_root).records[0]
    cfg = TrainAUConfig(backbone=str(llm_dir), input="motion", flow="dis", cache_dir=str(tmp_path / "cache"),
                        progress=False)
    adapter = AULLMAdapter(cfg, [1, 2, 12])
    masked = adapter.inputs([record])[0]
    adapter.motion = dataclasses.replace(adapter.motion, eyes="read")
    read = adapter.inputs([record])[0]
    assert not np.array_equal(masked.x, read.x)

    model, _ = build_aullm(cfg.backbone, adapter.model_config)
    stored = dataclasses.asdict(adapter.motion)
    del stored["eyes"]
    save_aullm(model, cfg.backbone, tmp_path / "ckpt", extra={"motion": stored})
    with caplog.at_level("WARNING", logger="assistant.au.checkpoint"):
        AULLMDetector(tmp_path / "ckpt")
    assert not [r for r in caplog.records if r.name == "assistant.au.checkpoint"]
    written = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del written["motion_core"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(written))
    with caplog.at_level("WARNING", logger="assistant.au.checkpoint"):
        detector = AULLMDetector(tmp_path / "ckpt")
    assert "measured by an older motion core" in caplog.text and "train it again" in caplog.text
    assert detector.motion.eyes == "read"
    served = analyze_clip(str(record.frame_paths[0].parent), onset=record.onset, apex=record.apex, config=MOTION)
    assert served.backends["eyes"] == "masked"
    assert np.array_equal(detector.clip_input(served.clip, served).x, read.x)


def test_a_faint_au_stands_out_in_the_motion_sequence():
    """A 0.2 px AU12 on a drifting, noisy, turning clip of the realistic world (v2): at the apex step of the motion
    sequence the mouth corners stand above the rest of the face, and a mouth corner is among the region token's three
    largest SNRs."""
    from assistant.au import AU
    from assistant.motion.analyze import analyze_frames
    from instruction_data.realistic import draw_spec, render_realistic
    from instruction_data.synth import AUMotion

    spec = draw_spec(1, "calibration", 0, world="v2")
    clip = render_realistic(dataclasses.replace(spec, motions=(AUMotion(AU.parse("12"), 0.2),)))
    analysis = analyze_frames(clip.frames[spec.onset], clip.frames[spec.apex], MOTION)
    inp = analysis_input(analysis, _config(input="motion", regions=True, region_features=REGIONS), MOTION)
    z = np.hypot(*inp.x[-1])
    points = analysis.crop_landmarks.points68 * 64 / 256
    corners = [z[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].mean() for x, y in points[[48, 54]]]
    face = z[z > 0]
    assert min(corners) > 1.3 * np.median(face), (corners, np.median(face))
    snr = inp.regions.reshape(len(REGION_KEYS), REGION_VALUES)[:, 2]
    top = sorted(range(len(REGION_KEYS)), key=lambda i: -snr[i])[:3]
    assert {REGION_KEYS[i][0] for i in top} & {"mouth_corner"}, [REGION_KEYS[i] for i in top]


def test_mirroring_swaps_the_sides_and_the_sign_of_x():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 8, 8)).astype(np.float32)
    regions = rng.normal(size=REGIONS).astype(np.float32)
    mx, mr = mirror(x, regions, motion=True)
    assert np.array_equal(mx[:, 0], -x[:, 0, :, ::-1]) and np.array_equal(mx[:, 1], x[:, 1, :, ::-1])
    table, mirrored = regions.reshape(-1, REGION_VALUES), mr.reshape(-1, REGION_VALUES)
    right, left = REGION_KEYS.index(("mouth_corner", "R")), REGION_KEYS.index(("mouth_corner", "L"))
    assert np.array_equal(mirrored[left], table[right] * [-1, 1, 1, -1, 1, 1])
    chin = REGION_KEYS.index(("chin", None))
    assert np.array_equal(mirrored[chin], table[chin] * [-1, 1, 1, -1, 1, 1])
    back_x, back_r = mirror(mx, mr, motion=True)
    assert np.array_equal(back_x, x) and np.array_equal(back_r, regions)


def test_a_checkpoint_from_before_the_input_setting_serves_as_before(llm_dir, tmp_path):
    """A checkpoint whose config has no `input` or `regions` is the published frames model: it loads with the LED
    filter, and serves exactly the input serving always computed (onset..apex crops in the analysis' face box, six
    evenly spaced, grey in 0..1)."""
    import cv2

    from assistant.au import get_detector
    from assistant.au.preprocess import clip_tensor, span_indices
    from assistant.motion.clip import open_source, write_video
    from assistant.motion.face import apply_crop
    from assistant.types import CropBox
    from instruction_data.synth import SynthSpec, render_clip

    torch.manual_seed(0)
    model, _ = build_aullm(str(llm_dir), _config())
    save_aullm(model, str(llm_dir), tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in ("input", "regions", "region_features", "region_hidden", "direct", "direct_grid"):
        del config["aullm"][key]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = load_aullm(tmp_path / "old")[0]
    assert loaded.config.input == "frames" and loaded.led is not None
    synth = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=12, frame_size=(320, 240), seed=3))
    path = write_video(synth.frames, tmp_path / "clip.mp4", fps=30)
    analysis = analyze_clip(str(path), onset=synth.onset, apex=synth.apex, config=MOTION)
    c = analysis.crop
    box = CropBox(c.x0, c.y0, c.x1, c.y1, 64)
    frames = open_source(str(path)).read(span_indices(synth.onset, synth.apex, 24))
    crops = np.stack([cv2.cvtColor(apply_crop(f, box), cv2.COLOR_RGB2GRAY) for f in frames])
    with torch.no_grad():
        expected = torch.sigmoid(loaded(torch.from_numpy(clip_tensor(crops, 6)[None]))).numpy()[0]
    detector = get_detector("aullm", checkpoint=tmp_path / "old")
    assert detector.motion.drift == "none"  # trained before drift cancellation existed
    inp = detector.clip_input(analysis.clip, analysis)
    assert np.array_equal(model_tensor(inp, loaded.config), clip_tensor(crops, 6))
    assert np.allclose(detector.predict_tensor(model_tensor(inp, loaded.config)[None])[0], expected, atol=1e-6)


def test_the_motion_input_trains_and_predicts_through_train_au(synth_casme2_root, llm_dir, tmp_path):
    """`meu train au --input motion --regions` runs LOSO end to end on the synthetic set, its checkpoint stores the
    motion settings, and a rerun resumes; changing `input` is refused as a different run."""
    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig, run
    from instruction_data.loaders import load_dataset

    records = load_dataset("casme2", synth_casme2_root).records
    subjects = sorted({r.subject for r in records})[:2]
    records = [r for r in records if r.subject in subjects]
    cfg = TrainAUConfig(backbone=str(llm_dir), input="motion", regions=True, direct=True, flow="dis",
                        out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), epochs=2, lr=1e-3,
                        val_subjects=0, progress=False)
    metrics = run(cfg, records)
    assert metrics["n_clips"] > 0 and metrics["n_folds"] == 2
    meta = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert meta["aullm"]["input"] == "motion" and meta["motion"]["flow"] == "dis" and meta["aullm"]["direct"]
    from safetensors.torch import load_file

    trained = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert float(trained["direct.weight"].abs().max()) > 0  # the read-out trained
    with pytest.raises(ConfigError, match="input"):
        run(dataclasses.replace(cfg, input="frames"), records)


def test_the_direct_read_out_trains_at_its_own_learning_rate(llm_dir):
    from finetune.au import TrainAUConfig
    from finetune.au_aullm import optimizer

    for direct in (False, True):
        model, _ = build_aullm(str(llm_dir), _config(input="motion", regions=True, region_features=REGIONS,
                                                     direct=direct))
        cfg = TrainAUConfig(input="motion", regions=True, direct=direct, lr=1e-3, direct_lr=0.07)
        groups = optimizer(model, cfg).param_groups
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert {id(p) for g in groups for p in g["params"]} == trainable
        assert groups[0]["lr"] == 1e-3
        if direct:
            assert len(groups) == 2 and groups[1]["lr"] == 0.07
            assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.direct.parameters()}
        else:
            assert len(groups) == 1


def test_a_fitted_read_out_is_the_logistic_fit_of_its_clips_and_their_mirrors_and_holds(synth_casme2_root, llm_dir,
                                                                                          tmp_path, monkeypatch):
    """`--direct-c`: the read-out is fitted before training (finetune.readout) on what it reads of each training clip
    and of its mirror image, and the LLM path trains around it without moving it; `--zero-head` starts the LLM head
    at zero. Refused without --direct, below 0, and with another model."""
    from assistant.errors import ConfigError
    from finetune.au import FoldData, TrainAUConfig, label_matrix, usable_records
    from finetune.au_aullm import AULLMAdapter, optimizer
    from finetune.readout import fit_readout
    from instruction_data.loaders import load_dataset

    records = usable_records(load_dataset("casme2", synth_casme2_root).records)
    cfg = TrainAUConfig(backbone=str(llm_dir), input="motion", regions=True, direct=True, direct_c=3.0, zero_head=True,
                        flow="dis", cache_dir=str(tmp_path / "cache"), epochs=2, lr=1e-3, val_subjects=0,
                        progress=False)
    import finetune.au_aullm as au_aullm

    at_start = []
    build = au_aullm.optimizer
    monkeypatch.setattr(au_aullm, "optimizer", lambda model, c: at_start.append(
        (float(model.head.weight.abs().max()), float(model.head.bias.abs().max()))) or build(model, c))
    adapter = AULLMAdapter(cfg, [1, 2, 4, 12])
    data = FoldData(records, label_matrix(records, adapter.aus))
    adapter.fit(data, None)
    assert at_start == [(0.0, 0.0)]  # the head was zero when training began
    model = adapter.model
    inputs = adapter.inputs(records)
    x = np.stack([model_tensor(i, model.config) for i in inputs])
    regions = np.stack([i.regions for i in inputs])
    flipped, flipped_regions = mirror(x, regions, True)
    with torch.no_grad():
        table = torch.cat([model.direct_inputs(torch.from_numpy(x), torch.from_numpy(regions)),
                           model.direct_inputs(torch.from_numpy(flipped), torch.from_numpy(flipped_regions))])
    assert table.shape == (2 * len(records), 2 * 8 * 8 + REGIONS)
    weight, bias = fit_readout(table.numpy(), np.concatenate([data.labels, data.labels]), 3.0)
    assert np.abs(weight).max() > 0
    assert np.allclose(model.direct.weight.numpy(), weight, atol=1e-6)
    assert np.allclose(model.direct.bias.numpy(), bias, atol=1e-6)
    assert not model.direct.weight.requires_grad
    assert not {id(p) for g in optimizer(model, cfg).param_groups for p in g["params"]} & {
        id(p) for p in model.direct.parameters()}
    assert model.head.weight.abs().max() > 0  # and trained from there
    for bad, message in ((dict(direct_c=-1.0, direct=True, regions=True), "--direct-c -1.0 fits the --direct"),
                         (dict(direct_c=3.0), "--direct-c 3.0 fits the --direct"),
                         (dict(zero_head=True, model="prior"), "--zero-head"),
                         (dict(direct=True, regions=True, direct_c=3.0, direct_lr=0.3), "--direct-lr is the rate"),
                         (dict(direct=True, regions=True, direct_grid=16), "--direct-grid and --direct-magnitude"),
                         (dict(direct=True, input="motion", direct_magnitude=True, direct_grid=4, model="aullm",
                               regions=False, direct_c=-2.0), "--direct-c -2.0")):
        with pytest.raises(ConfigError, match=message):
            TrainAUConfig(**bad)


def test_the_read_out_can_average_the_apex_motion_finer_and_with_its_magnitude(llm_dir):
    """`--direct-grid 16 --direct-magnitude`: the read-out's table holds u, v and |(u, v)| of the apex motion on a
    16x16 grid, then the region values; a cell whose motion points both ways has a mean near zero but not a zero
    magnitude."""
    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig

    model, _ = build_aullm(str(llm_dir), _config(input="motion", regions=True, region_features=REGIONS, direct=True,
                                                 direct_grid=16, direct_magnitude=True))
    assert model.direct.in_features == 3 * 16 * 16 + REGIONS
    x = torch.zeros(1, 6, 2, 64, 64)
    x[0, -1, 0, :4, :2] = 1.0  # the top-left cell (4x4 pixels): half its pixels move right, half left
    x[0, -1, 0, :4, 2:4] = -1.0
    regions = torch.arange(REGIONS, dtype=torch.float32)[None]
    table = model.direct_inputs(x, regions)[0]
    assert table[0] == 0 and table[2 * 256] == pytest.approx(1.0)  # u's mean, the magnitude's mean
    assert table[1:2 * 256].abs().sum() == 0 and table[2 * 256 + 1:3 * 256].abs().sum() == 0
    assert torch.equal(table[3 * 256:], regions[0])
    with pytest.raises(ConfigError, match="--direct-grid 0 must lie between 1 and 32"):
        TrainAUConfig(direct=True, regions=True, direct_grid=0)


@pytest.mark.parametrize("name, expected", [
    ("au_llm_realistic.yaml", dict(regions=True, direct=True, direct_c=10.0, direct_grid=16, direct_magnitude=True,
                                   zero_head=True, threshold=0.8, threshold_search=False)),
    ("au_llm_realistic_no_regions.yaml", dict(regions=False, direct=True, direct_c=10.0, direct_grid=16,
                                              direct_magnitude=True, zero_head=True, threshold=0.7)),
    ("au_microau_clip_realistic.yaml", dict(clip_input="motion", clip_direct=True, clip_direct_c=10.0,
                                            clip_zero_classifier=True, clip_mirror=True, threshold=0.8))])
def test_the_realistic_recipes_parse_into_their_run_configs(name, expected):
    """The recipes benchmarks/au.py trains in the realistic world load through `meu train au --config` as written."""
    from pathlib import Path

    from assistant.config import parse_config
    from finetune.au import TrainAUConfig
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig

    path = Path(__file__).resolve().parent.parent / "configs" / name
    cls = TrainMicroAUCLIPConfig if "microau" in name else TrainAUConfig
    config, _ = parse_config(cls, ["--config", str(path)], "t", "t")
    assert config.input == "motion" or cls is TrainMicroAUCLIPConfig
    assert {k: getattr(config, k) for k in expected} == expected


def test_inputs_of_both_kinds_have_the_shapes_the_network_takes():
    rng = np.random.default_rng(0)
    frames = AULLMInput(rng.integers(0, 255, (9, 64, 64), dtype=np.uint8), None)
    assert model_tensor(frames, _config(), True, rng).shape == (6, 64, 64)
    motion = AULLMInput(rng.normal(size=(6, 2, 64, 64)).astype(np.float32), None)
    assert model_tensor(motion, _config(input="motion")).shape == (6, 2, 64, 64)


def test_a_run_from_before_the_input_settings_resumes(tmp_path):
    """A run folder whose run_config.yaml predates `input`, `regions` and `flow` ran with their defaults: it resumes,
    while asking for another input is refused."""
    import yaml

    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig, _check_resume

    config = TrainAUConfig(out=str(tmp_path))
    old = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("input", "regions", "flow", "direct",
                                                                                "direct_lr", "direct_c", "zero_head",
                                                                                "direct_grid", "direct_magnitude")}
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(old))
    _check_resume(config, tmp_path)
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(old | {"motion_core": MOTION_CORE}))
    with pytest.raises(ConfigError, match=r"different settings \(input"):
        _check_resume(dataclasses.replace(config, input="motion"), tmp_path)


@pytest.mark.parametrize("kw", [dict(input="motion"), dict(regions=True)], ids=["motion", "region_token"])
def test_a_run_whose_inputs_another_motion_core_measured_is_not_resumed(tmp_path, kw):
    """Folds whose inputs an older motion core measured cannot be pooled with new ones: a run that reads the motion
    core is refused, one on the published frames alone (which the motion core never touches) resumes."""
    import yaml

    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig, _check_resume

    for kind, settings, refused in (("frames", {}, False), ("moving", kw, True)):
        out = tmp_path / kind
        out.mkdir()
        config = TrainAUConfig(out=str(out), **settings)
        _check_resume(config, out)
        assert yaml.safe_load((out / "run_config.yaml").read_text())["motion_core"] == MOTION_CORE
        _check_resume(config, out)  # written now: resumes
        (out / "run_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config) | {"motion_core": "2026-12-01"}))
        if refused:
            with pytest.raises(ConfigError, match="was measured by the motion core of 2026-12-01"):
                _check_resume(config, out)
        else:
            _check_resume(config, out)


def test_aullm_input_settings_with_another_model_are_refused():
    from assistant.errors import ConfigError
    from finetune.au import TrainAUConfig
    from finetune.au_microau_clip import TrainMicroAUCLIPConfig

    with pytest.raises(ConfigError, match="--input, --regions set AU-LLM's input.*--clip-input"):
        TrainMicroAUCLIPConfig(input="motion", regions=True)
    with pytest.raises(ConfigError, match="--flow set AU-LLM's input or read-out, and --model rules has neither"):
        TrainAUConfig(model="rules", flow="dis")
    assert TrainAUConfig(model="aullm", input="motion", regions=True, flow="dis").input == "motion"
