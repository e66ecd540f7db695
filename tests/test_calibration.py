"""Calibration folders (issue 24): `meu calibrate` writes into --out, never the source tree; the jobs read a folder
given with --calibration or MEU_CALIBRATION at call time; bad folders and too few clips are one sentence."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from types import SimpleNamespace

import pytest

from assistant import calibration, cli
from assistant.au.rules import parameters, score_regions
from assistant.errors import ConfigError
from assistant.motion.regions import intensity_level
from assistant.types import RegionMotion


def _shipped_digest() -> dict[str, str]:
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in calibration.SHIPPED.items()}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A calibration folder holding copies of the shipped rules files; MEU_CALIBRATION restored afterwards."""
    monkeypatch.delenv(calibration.ENV, raising=False)
    out = tmp_path / "calib"
    out.mkdir()
    for name in calibration.RULES_FILES:
        shutil.copy(calibration.SHIPPED[name], out / name)
    yield out
    calibration.use(None)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One `meu calibrate rules --clips 40` run shared by the module's tests (its 40 clips are measured once): its
    measurement cache, its folder, the shipped files' digests before and after it, and what it logged."""
    root = tmp_path_factory.mktemp("calibrate_rules")
    cache, out = root / "cache", root / "calib"
    before = _shipped_digest()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(calibration.ENV, raising=False)
            assert cli.main(["calibrate", "rules", "--clips", "40", "--workers", "2", "--cache", str(cache), "--out",
                             str(out)]) == 0
    finally:
        logging.getLogger().removeHandler(handler)
    return SimpleNamespace(cache=cache, out=out, shipped=(before, _shipped_digest()),
                           log="\n".join(r.getMessage() for r in records))


def _brow_raise() -> list[RegionMotion]:
    """Both inner and outer brows 1.5 px up, well above the noise: AU1 and AU2 by the shipped rules."""
    return [RegionMotion(region=r, side=s, dx=0.0, dy=-1.5, mean_magnitude=1.5, max_magnitude=1.6, direction="up",
                         colour="purple", intensity="strong", coherence=1.0, n_pixels=200, snr=50.0)
            for r in ("inner_brow", "outer_brow") for s in ("L", "R")]


def test_a_folder_is_read_when_used_not_at_import(folder):
    shipped = parameters()
    assert score_regions(_brow_raise(), [1, 2]).probability(1) > 0.5
    doc = json.loads((folder / "rules_calibration.json").read_text())
    doc["parameters"]["midpoint"] = 100.0  # no motion can reach it
    (folder / "rules_calibration.json").write_text(json.dumps(doc))
    calibration.use(folder)
    assert parameters().midpoint == 100.0 and parameters().mag_ref == shipped.mag_ref
    assert score_regions(_brow_raise(), [1, 2]).probability(1) < 0.5
    calibration.use(None)
    assert parameters() == shipped


def test_the_intensity_words_follow_the_folder(folder):
    assert intensity_level(5.0, snr=50.0) == "strong"
    doc = json.loads((folder / "intensity_calibration.json").read_text())
    doc["snr_min"] = 1000.0
    (folder / "intensity_calibration.json").write_text(json.dumps(doc))
    calibration.use(folder)
    assert intensity_level(5.0, snr=50.0) == "none"


def test_a_folder_missing_a_file_is_refused_by_name(folder, capsys):
    (folder / "intensity_calibration.json").unlink()
    with pytest.raises(ConfigError, match=r"has no intensity_calibration.json; run `meu calibrate rules --out "):
        calibration.use(folder)
    assert cli.main(["analyze", "clip.mp4", "--calibration", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"--calibration {folder} has no intensity_calibration.json" in err


@pytest.mark.parametrize("name,edit,says", [
    ("intensity_calibration.json", {"stable_weight": "x"}, "stable_weight is not a number"),
    ("intensity_calibration.json", {"snr_min": None}, "snr_min is missing or not a number"),
    ("rules_calibration.json", {"parameters": {"mag_ref": 0.3}}, "parameters.snr0 is missing or not a number")])
def test_a_file_the_readers_would_trip_on_is_refused_by_name_before_any_work(folder, tmp_path, capsys, name, edit,
                                                                               says):
    """A hand-edited file stopped with a ValueError deep in the noise floor's code, after the clip was read."""
    doc = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps({**doc, **edit}))
    assert cli.main(["spot", str(tmp_path / "video.mp4"), "--calibration", str(folder), "--out",
                     str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"The calibration file {folder / name} is not what `meu calibrate` writes: {says}" in err
    assert not (tmp_path / "out").exists()


def test_a_wrong_environment_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(calibration.ENV, str(tmp_path / "nowhere"))
    assert cli.main(["spot", str(tmp_path / "video.mp4"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"MEU_CALIBRATION {tmp_path / 'nowhere'} is not a folder" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,says", [
    (["--clips", "0"], "--clips 0 is too few: the grid needs at least 40"),
    (["--clips", "-5"], "--clips -5 is too few"), (["--clips", "6"], "--clips 6 is too few"),
    (["--null-quantile", "5"], "--null-quantile 5 must lie between 0 and 1"),
    (["--seed", "-1"], "--seed -1 must be 0 or more")])
def test_calibrate_rules_refuses_bad_settings_before_measuring(tmp_path, capsys, args, says):
    before = _shipped_digest()
    assert cli.main(["calibrate", "rules", *args, "--cache", str(tmp_path / "cache"),
                     "--out", str(tmp_path / "out")]) == 1
    assert says in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    assert _shipped_digest() == before


def test_calibrate_fusion_needs_the_rules_of_its_folder(tmp_path, capsys):
    assert cli.main(["calibrate", "fusion", "--out", str(tmp_path)]) == 1
    assert f"--out {tmp_path} has no rules_calibration.json or intensity_calibration.json; run `meu calibrate " \
           f"rules --out {tmp_path}` first" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["rules", "fusion"])
def test_calibrate_refuses_a_cache_that_is_a_file_and_a_negative_seed(folder, tmp_path, capsys, command):
    """Both stopped with a traceback: FileExistsError when the cache was first written, numpy's ValueError at the
    first clip."""
    taken = tmp_path / "afile"
    taken.write_text("keep me")
    count = "--clips" if command == "rules" else "--n"
    base = ["calibrate", command, count, "160", "--out", str(folder)]
    assert cli.main([*base, "--cache", str(taken)]) == 1
    assert f"--cache {taken} cannot be a folder: {taken} is a file" in capsys.readouterr().err
    assert cli.main([*base, "--seed", "-1", "--cache", str(tmp_path / "cache")]) == 1
    assert "--seed -1 must be 0 or more" in capsys.readouterr().err
    assert taken.read_text() == "keep me" and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_calibrate_rules_writes_its_folder_and_leaves_the_shipped_files(calibrated, monkeypatch):
    monkeypatch.delenv(calibration.ENV, raising=False)  # restored afterwards: `calibration.use(None)` removes it
    before, after = calibrated.shipped
    assert after == before
    out = calibrated.out
    assert sorted(p.name for p in out.iterdir()) == sorted(calibration.RULES_FILES)
    written = json.loads((out / "rules_calibration.json").read_text())
    assert written["how"]["clips"] == 40 and "--out DIR" in written["how"]["command"]
    calibration.use(out)
    try:
        assert parameters().midpoint == written["parameters"]["midpoint"]
    finally:
        calibration.use(None)
    # 40 clips of seed 0: 8 null clips, AU7 and AU14 once each
    assert "Only 8 null clips among the 40" in calibrated.log and "AU7, AU14 have fewer than 5 clips" in calibrated.log


@pytest.mark.slow
def test_calibrate_rules_keeps_fusion_files_only_for_the_rules_they_were_fitted_on(tmp_path, monkeypatch, capsys,
                                                                                  caplog, calibrated):
    """Rules calibrated again left the folder's fusion files, fitted on the old rules, to be read without a word; a
    damaged measurement in the cache stopped the run with a traceback; --dry-run printed nothing."""
    monkeypatch.delenv(calibration.ENV, raising=False)
    out, cache = tmp_path / "calib", tmp_path / "cache"  # copies: the cache is damaged on purpose below
    shutil.copytree(calibrated.out, out)
    shutil.copytree(calibrated.cache, cache)
    run = ["calibrate", "rules", "--clips", "40", "--workers", "2", "--cache", str(cache), "--out", str(out)]
    for name in calibration.FUSION_FILES:
        (out / name).write_text("{}")
    damaged = sorted(cache.glob("*.json"))[3]
    damaged.write_text(damaged.read_text()[:50])
    assert cli.main(run) == 0  # the same rules again: their fusion files still fit them
    assert "cannot be read; that clip is measured again" in caplog.text
    assert all((out / name).is_file() for name in calibration.FUSION_FILES) and json.loads(damaged.read_text())
    rules = (out / "rules_calibration.json").read_text()
    assert cli.main([*run, "--max-null-any", "0.3", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rules_calibration.json"]["how"]["max_null_any"] == 0.3
    assert (out / "rules_calibration.json").read_text() == rules and (out / "fusion_weights.json").is_file()
    assert cli.main([*run, "--max-null-any", "0.3"]) == 0
    assert "Removed blendshapes_noise.json, fusion_calibration.json, fusion_weights.json" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == sorted(calibration.RULES_FILES)


def test_calibrate_fusion_refuses_too_few_clips_before_measuring(folder, tmp_path, capsys):
    """`--n 0` or `-5` measured first and then said "only 0 null clips among -5"; `--n 50 --seed 1` (9 null clips)
    measured for minutes before it was refused."""
    for n in ("0", "-5", "20"):
        assert cli.main(["calibrate", "fusion", "--n", n, "--out", str(folder), "--cache", str(tmp_path / "c"),
                         "--regions-cache", str(tmp_path / "r")]) == 1
        assert f"--n {n} is too few: the fusion weights need at least 50 calibration clips" in capsys.readouterr().err
    assert cli.main(["calibrate", "fusion", "--n", "50", "--seed", "1", "--out", str(folder), "--cache",
                     str(tmp_path / "c"), "--regions-cache", str(tmp_path / "r")]) == 1
    assert "Only 9 null clips among the 50 of --seed 1; the noise floors need 10" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def _feature_row(index: int) -> dict:
    """A fusion feature row as `eval.calibrate_blend.clip_features` caches it: a 0.5 px region, its noise floors."""
    return {"split": "calibration", "seed": 0, "index": index, "aus": [], "crop_size": 256, "noise_px": 0.02,
            "noise_estimates": {"null pair": 0.02, "stable area": 0.03},
            "regions": [{"region": "inner_brow", "side": "L", "dx": 0.3, "dy": -0.4, "snr": 25.0}]}


def test_a_half_written_fusion_feature_line_is_dropped_not_a_traceback(tmp_path):
    import json

    from eval.calibrate_blend import collect

    rows = [_feature_row(i) for i in range(2)]
    cache = tmp_path / "features.jsonl"
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"split": "calibration", "se')
    assert [r["index"] for r in collect("calibration", 2, 0, cache)] == [0, 1]  # nothing measured again
    assert cache.read_text() == "".join(json.dumps(r) + "\n" for r in rows)


def test_fusion_features_follow_the_noise_weight_of_the_folder_in_use(folder):
    """The fusion cache is shared by every calibration folder: rows cached while one folder's noise weight was in
    force fed another folder's fit with the first one's region SNRs."""
    import json

    from eval.calibrate_blend import collect

    cache = folder.parent / "features.jsonl"
    cache.write_text(json.dumps(_feature_row(0)) + "\n")
    calibration.use(folder)
    snr = {}
    for weight in (0.5, 1.0):
        doc = json.loads((folder / "intensity_calibration.json").read_text())
        (folder / "intensity_calibration.json").write_text(json.dumps(doc | {"stable_weight": weight}))
        calibration._parse.cache_clear()  # read again by mtime, which a coarse clock may leave unchanged
        snr[weight] = collect("calibration", 1, 0, cache)[0]["regions"][0]["snr"]
    assert snr[0.5] == pytest.approx(0.5 / 0.02) and snr[1.0] == pytest.approx(0.5 / 0.03)


def test_fusion_says_when_a_folder_lends_it_the_shipped_weights(folder, caplog):
    """A folder holding only its own rules calibration served fusion with weights fitted over the shipped rules,
    without a word."""
    from assistant.au import fusion

    calibration.use(folder)
    with caplog.at_level("WARNING"):
        assert fusion.load_weights() == fusion.load_weights(str(calibration.SHIPPED["fusion_weights.json"]))
    assert f"the calibration folder {folder} has no fusion_weights.json: fusion uses the shipped weights" in caplog.text
