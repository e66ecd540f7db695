"""Bad input to the command-line jobs gets one sentence that names the option or file and what to do (issue 24), and
is refused before any work is done or anything is written."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from assistant import cli
from assistant.errors import ConfigError
from assistant.motion.clip import write_video
from assistant.motion.spotting import SpotConfig


@pytest.fixture(scope="module")
def faceless_video(tmp_path_factory):
    """Two seconds of a plain wall with sensor noise: a video with no face in it."""
    rng = np.random.default_rng(0)
    frames = [np.clip(120 + rng.normal(0, 2, (120, 160, 3)), 0, 255).astype(np.uint8) for _ in range(60)]
    return write_video(frames, tmp_path_factory.mktemp("wall") / "wall.mp4", fps=30)


def _error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("flag,value,says", [
    ("--fps", "-30", "fps=-30 must lie in (0, 10000]"), ("--fps", "0", "fps=0 must lie in"),
    ("--size", "0", "size=0 must lie between 64 and 1024"), ("--size", "8", "size=8 must lie between"),
    ("--size", "100000", "size=100000 must lie between"), ("--stride-s", "0", "stride_s=0 must be above 0"),
    ("--stride-s", "-1", "stride_s=-1 must be above 0"), ("--threshold", "-1", "threshold=-1 must be above 0"),
    ("--micro-max-s", "0", "micro_max_s=0 must be above 0"), ("--baseline-s", "0", "baseline_s=0 must be above 0"),
    ("--merge-gap-s", "-5", "merge_gap_s=-5 must be 0 or more"),
    ("--join-ratio", "0", "join_ratio=0 must lie in (0, 1]"), ("--join-ratio", "1.5", "join_ratio=1.5 must lie in"),
    ("--near-ratio", "0.5", "near_ratio=0.5 must lie in [1, 10]"), ("--near-ratio", "11", "near_ratio=11 must lie in"),
    ("--baseline-s", "1e9", "baseline_s=1e+09 must be at most 600 s"),
    ("--head-speed-window-s", "700", "head_speed_window_s=700 must be at most 600 s")])
def test_spot_settings_out_of_range_are_one_sentence(faceless_video, tmp_path, capsys, flag, value, says):
    assert cli.main(["spot", str(faceless_video), flag, value, "--out", str(tmp_path / "out")]) == 1
    assert says in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_spot_settings_from_yaml_are_checked_too():
    with pytest.raises(ConfigError, match="baseline_s=1 must be at least micro_baseline_s=1.2"):
        SpotConfig(baseline_s=1.0)
    with pytest.raises(ConfigError, match="flow='farneback' is not valid; choose one of: tvl1, dis"):
        SpotConfig(flow="farneback")


@pytest.mark.parametrize("argv", [["spot", "VIDEO", "--baseline-s", "inf"], ["spot", "VIDEO", "--stride-s", "inf"],
                                  ["analyze", "VIDEO", "--full-scale-px", "nan"],
                                  ["data", "synth", "--long", "--layout", "casme2_long", "--seconds", "nan"]])
def test_infinite_and_nan_numbers_are_refused_by_the_parser(faceless_video, tmp_path, capsys, argv):
    """`inf` overflowed into a frame count (OverflowError), `nan` passed every check written as a comparison (a black
    map, a traceback in the generator)."""
    argv = [str(faceless_video) if a == "VIDEO" else a for a in argv] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert f"expected a finite number, got {argv[argv.index('--out') - 1]!r}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_infinite_numbers_from_yaml_are_refused_too(tmp_path):
    from assistant.motion.analyze import MotionConfig
    from eval.spotting_run import SpotEvalConfig, _spot_config

    yaml_file = tmp_path / "spot.yaml"
    yaml_file.write_text("threshold: .inf\n")  # `meu eval --task spotting --spot-config`: nothing would be found
    with pytest.raises(ConfigError, match="threshold=inf must be a finite number"):
        _spot_config(SpotEvalConfig(spot_config=str(yaml_file)), 30.0)
    with pytest.raises(ConfigError, match="full_scale_px=nan must be a finite number above"):
        MotionConfig(full_scale_px=float("nan"))


@pytest.mark.parametrize("metrics,says", [
    ('{"run": {"task": "spotting", "dataset": "casme2_long"}}',
     "is a spotting run (`meu eval --task spotting`); `meu eval compare` sets recognition runs side by side"),
    ('{"run": {"task": "recogn', "is not valid JSON (an interrupted write?); run that evaluation again"),
    ('{"run": {"reasoner": "template"}, "emotion": {}, "au": {}}',
     "is not the metrics of a finished `meu eval` recognition run (no 'detector')")])
def test_eval_compare_refuses_what_is_not_a_recognition_run_with_a_sentence(tmp_path, capsys, metrics, says):
    """A spotting run, or a metrics.json cut short or from elsewhere, stopped with a KeyError traceback."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(metrics)
    assert cli.main(["eval", "compare", str(run), "--out", str(tmp_path / "cmp")]) == 1
    assert says in _error_line(capsys)
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("setting,says", [({"batch_size": 0}, "--batch-size 0 must be at least 1"),
                                           ({"epochs": 0}, "--epochs 0 must be at least 1"),
                                           ({"threshold": 1.5}, "--threshold 1.5 must lie between 0 and 1"),
                                           ({"seed": -1}, "--seed -1 must be at least 0")])
def test_training_counts_out_of_range_are_refused(setting, says):
    """A batch of 0 stopped in the batching with a ValueError; 0 epochs scored an untrained head with rc 0."""
    from finetune.au import TrainAUConfig

    with pytest.raises(ConfigError, match=says):
        TrainAUConfig(**setting)


def test_yaml_values_of_the_wrong_type_are_one_sentence(tmp_path, capsys):
    """YAML 1.1 reads `1e-3` and `nan` as strings, which reached the range checks and stopped with a TypeError."""
    from assistant.config import from_dict

    assert from_dict(SpotConfig, {"stride_s": "5e-1", "size": 512.0}).stride_s == 0.5
    with pytest.raises(ConfigError, match="threshold=nan must be a finite number"):
        from_dict(SpotConfig, {"threshold": "nan"})
    config = tmp_path / "build.yaml"
    config.write_text("workers: abc\n")
    assert cli.main(["data", "build", "--config", str(config), "--root", str(tmp_path), "--out",
                     str(tmp_path / "out")]) == 1
    assert "workers='abc' must be a whole number" in _error_line(capsys)


def test_yaml_lists_and_nulls_are_read_as_their_settings_mean():
    """`aus: 12` stopped in a TypeError, `aus: "1,2"` was split into characters, `folds: [1]` (SAMM's subjects read
    as numbers) in a join, `model: [aullm]` in a hash, and `epochs: null` in a comparison."""
    from assistant.config import from_dict
    from finetune.au import TrainAUConfig

    read = from_dict(TrainAUConfig, {"aus": "1,2", "folds": [6], "val_subjects": 1})
    assert (read.aus, read.folds) == ([1, 2], ["6"])
    assert from_dict(TrainAUConfig, {"aus": 12, "folds": None}).aus == [12]
    with pytest.raises(ConfigError, match=r"model=\['aullm'\] is not valid; choose one of: aullm, microau_clip"):
        from_dict(TrainAUConfig, {"model": ["aullm"]})
    with pytest.raises(ConfigError, match=r"epochs is empty \(null\); give it a value, or leave it out"):
        from_dict(TrainAUConfig, {"epochs": None})
    with pytest.raises(ConfigError, match="aus='x' must be a whole number"):
        from_dict(TrainAUConfig, {"aus": "4,x"})


@pytest.mark.parametrize("flag,value,says", [("--landmarks", "bogus", "invalid choice: 'bogus'"),
                                             ("--size", "0", "size=0 must lie between 64 and 1024")])
def test_data_build_checks_its_motion_settings_before_making_its_folder(tmp_path, capsys, flag, value, says):
    """A bogus landmark backend failed every clip with rc 0; a size of 0 was refused clip by clip after --out and its
    build_settings.json were written."""
    with pytest.raises(SystemExit) if flag == "--landmarks" else contextlib.nullcontext():
        assert cli.main(["data", "build", "--root", str(tmp_path), "--out", str(tmp_path / "out"), flag, value]) == 1
    assert says in capsys.readouterr().err
    config = tmp_path / "build.yaml"  # the same from a YAML file, where argparse's choices do not reach
    config.write_text(f"{flag.lstrip('-')}: {value}\n")
    assert cli.main(["data", "build", "--config", str(config), "--root", str(tmp_path), "--out",
                     str(tmp_path / "out")]) == 1
    assert ("landmarks='bogus' is not valid; choose one of: mediapipe, dlib" if flag == "--landmarks" else says) \
        in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_eval_compare_refuses_an_out_that_is_a_file(tmp_path, capsys):
    taken = tmp_path / "afile"
    taken.write_text("keep me")
    assert cli.main(["eval", "compare", str(tmp_path), "--out", str(taken)]) == 1
    assert f"--out {taken} cannot be a folder: {taken} is a file" in _error_line(capsys)
    assert taken.read_text() == "keep me"


def test_a_video_without_a_face_is_said_so_not_spotted_as_empty(faceless_video, tmp_path, capsys):
    assert cli.main(["spot", str(faceless_video), "--out", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert "No face was found in wall.mp4" in line and "60 frames" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["spot", "analyze"])
def test_out_naming_a_file_is_refused_before_the_run(faceless_video, tmp_path, capsys, command):
    """The faceless video would fail with "no face" if the job ran: the --out sentence shows the check came first."""
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    assert cli.main([command, str(faceless_video), "--out", str(taken)]) == 1
    line = _error_line(capsys)
    assert f"--out {taken} cannot be a folder: {taken} is a file" in line and "No face" not in line
    assert taken.read_text() == "keep me"
    assert cli.main([command, str(faceless_video), "--out", str(taken / "inside")]) == 1
    assert f"{taken} is a file" in _error_line(capsys)


@pytest.mark.parametrize("extra,says", [
    ([], "--world v2 is a version of the realistic world's clips; add --realistic"),
    (["--realistic", "--long"], "--world v2: long videos have no realistic world yet; leave --world out with --long")],
    ids=["easy world", "long videos"])
def test_world_v2_without_realistic_clips_is_refused(tmp_path, capsys, extra, says):
    assert cli.main(["data", "synth", "--world", "v2", *extra, "--out", str(tmp_path / "out")]) != 0
    assert says in _error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,says", [
    (["--seed", "-1"], "--seed must be 0 or more, not -1"),
    (["--width", "20000"], "--width must be at most 4096 px, not 20000."),
    (["--frames", "100000"], "--frames must lie between 3 (onset, apex and offset frames) and 2000"),
    (["--long", "--layout", "casme2_long", "--seconds", "0.01"], "--seconds 0.01 leaves no room for an expression"),
    (["--long", "--layout", "samm_long", "--seconds", "1e12"], "--seconds must be at most 3600")])
def test_synthetic_data_out_of_range_is_one_sentence(tmp_path, capsys, extra, says):
    """A negative seed stopped in numpy; 1e12 s asked for 182 TB, 20000 x 20000 frames for 6 GB a pair; 0.01 s wrote
    a long video of no frames."""
    assert cli.main(["data", "synth", *extra, "--out", str(tmp_path / "out")]) == 1
    assert says in _error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting,says", [
    ({"max_upload_mb": 1e300}, r"max_upload_mb \(--max-upload-mb\) = 1e\+300 must lie in \(0, 1e\+06\] MB\."),
    ({"max_long_upload_mb": 0}, r"max_long_upload_mb \(--max-long-upload-mb\) = 0 must lie in \(0, 1e\+06\] MB\."),
    ({"max_frames": 1}, r"max_frames \(--max-frames\) = 1 must be at least 2 \(an onset and an apex\)\."),
    ({"vlm_max_new_tokens": 0}, r"vlm_max_new_tokens \(--vlm-max-new-tokens\) = 0 must be at least 1")])
def test_the_apps_limits_are_checked_one_setting_at_a_time(setting, says):
    """An upload limit of 1e300 MB overflowed the web server's 64-bit size (HTTP 500 on every request, then a
    traceback); 0 answer tokens were accepted; one message named two settings by their field names."""
    from assistant.pipeline import AssistantConfig

    with pytest.raises(ConfigError, match=says):
        AssistantConfig(**setting)


def test_a_vlm_folder_that_does_not_exist_is_refused_at_start(tmp_path):
    """`meu app --vlm-base /nonexistent` started, then failed every request after 5 s with a hub-name message."""
    from assistant.errors import BackendError
    from assistant.pipeline import Assistant, AssistantConfig

    missing = tmp_path / "no_model"
    with pytest.raises(BackendError, match=rf"The VLM folder {missing} does not exist; give the folder of a "
                                           "Qwen2.5-VL model, or a hub name that is in the local cache"):
        Assistant(AssistantConfig(vlm_base=str(missing))).warm_up()


def test_a_sound_only_file_an_empty_long_video_and_a_config_folder_are_named_for_what_they_are(tmp_path):
    """They were "could not be decoded as a video (IndexError)", "(InvalidDataError)" where the short-clip path said
    "an empty file", and "Config file ... does not exist" for a folder that exists."""
    import av

    from assistant.config import load_yaml
    from assistant.errors import UnreadableClipError
    from assistant.long_video import probe_video
    from assistant.motion.clip import load_clip

    sound = tmp_path / "interview.mp4"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    for read in (probe_video, load_clip):
        with pytest.raises(UnreadableClipError, match=r"^interview\.mp4 has no video track \(sound only\?\); give "
                                                      "the video of the face\\.$"):
            read(str(sound))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UnreadableClipError, match=r"^empty\.mp4 is an empty file; upload the video again\.$"):
        probe_video(tmp_path / "empty.mp4")
    with pytest.raises(ConfigError, match=rf"^Config file {tmp_path} is a folder; give a YAML file\.$"):
        load_yaml(tmp_path)


def test_a_model_given_to_a_detector_that_does_not_read_it_is_refused(tmp_path):
    """`meu eval --aullm-checkpoint X` scored the rules and said nothing; `meu train au --protocol cross --folds`
    ignored the folds."""
    from eval.run import EvalConfig

    with pytest.raises(ConfigError, match=r"--aullm-checkpoint is not read by --detector rules; add the --detector"):
        EvalConfig(dataset="casme2", root=str(tmp_path), aullm_checkpoint=str(tmp_path))
    assert EvalConfig(dataset="casme2", root=str(tmp_path), detector="microau_clip", protocol="loso",
                      au_run=str(tmp_path)).au_run == str(tmp_path)
    assert cli.main(["train", "au", "--protocol", "cross", "--dataset", "casme2", "--root", str(tmp_path),
                     "--target-dataset", "samm", "--target-root", str(tmp_path), "--folds", "sub01", "--out",
                     str(tmp_path / "o")]) == 1
