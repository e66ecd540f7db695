"""The benchmarks refuse bad input with one sentence before any work (no traceback, no data written, no child process
started), refuse to report settings other than those of the data they ran on, and print their spread over seeds as
the sample standard deviation. Each refusal runs in-process and stops at the parser or just after it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """Loads benchmarks/NAME.py as `bench_NAME` with their folder on the path, as the scripts run (their own imports,
    `from common import ...`, `from au import ...`, need it); afterwards the path and sys.modules are as before:
    benchmarks/app.py must not shadow the app's tests' `app`."""
    path, loaded = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(BENCHMARKS))

    def load(name: str):
        if f"bench_{name}" not in sys.modules:
            spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        return sys.modules[f"bench_{name}"]

    try:
        yield load
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - loaded:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(BENCHMARKS)):
                del sys.modules[name]


def refused(capsys, main, argv: list[str]) -> str:
    """The parser's refusal of `argv`: exit status 2 and one `error:` line, returned."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error: " in ln]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("name, argv, says", [
    ("app", ["--runs", "0"], "argument --runs: must be at least 1, not 0"),
    ("app", ["--runs", "-3"], "argument --runs: must be at least 1, not -3"),
    ("app", ["--load", "--users", "0"], "argument --users: must be at least 1, not 0"),
    ("app", ["--load", "--concurrency", "0"], "argument --concurrency: must be at least 1, not 0"),
    ("au", ["--threads", "0"], "argument --threads: must be at least 1, not 0"),
    ("au", ["--seeds", "0", "0"], "--seeds names 0 more than once; give each value once"),
    ("au", ["--clips", "0"], "argument --clips: must be at least 1, not 0"),
    ("au_realistic", ["--n", "0"], "argument --n: must be at least 1, not 0"),
    ("au_realistic", ["--n", "-2"], "argument --n: must be at least 1, not -2"),
    ("blendshape_response", ["--n", "0"], "argument --n: must be at least 1, not 0"),
    ("build", ["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    ("build", ["--flow", "nosuch"], "argument --flow: invalid choice: 'nosuch'"),
    ("cde", ["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    ("cde", ["--subjects", "5"], "--subjects 5 is more than the benchmark split's 4 people"),
    ("drift", ["--cal-clips", "0"], "argument --cal-clips: must be at least 1, not 0"),
    ("drift", ["--clips", "0"], "argument --clips: must be at least 1, not 0"),
    ("drift", ["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    ("evaluation", ["--size", "640"], "argument --size: expected WIDTHxHEIGHT in pixels such as 640x480, got '640'"),
    ("evaluation", ["--flow", "nosuch"], "argument --flow: invalid choice: 'nosuch'"),
    ("evaluation", ["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    ("gaze", ["--margins", "0.5"], "argument --margins: must lie in [0, 0.2], not 0.5"),
    ("gaze", ["--margins", "none", "0", "none", "0.0"], "--margins names 0, none more than once; give each value once"),
    ("gaze", ["--gaze-px", "0"], "argument --gaze-px: must lie in (0, 5], not 0"),
    ("head_turn", ["--ambient", "1"], "argument --ambient: must lie in [0, 1), not 1"),
    ("head_turn", ["--photos", "0"], "argument --photos: must be at least 1, not 0"),
    ("learned_inputs", ["--clips", "0"], "argument --clips: must be at least 1, not 0"),
    ("learned_inputs", ["--amplitude", "-3"], "argument --amplitude: must lie in (0, inf), not -3"),
    ("motion", ["--repeat", "0"], "argument --repeat: must be at least 1, not 0"),
    ("motion", ["--long-frames", "60"],
     "--long-frames 60 is too short to hold the 40-frame expression in its last third; give 118 or more"),
    ("realism", ["--real-only", "--repeat", "0"], "argument --repeat: must be at least 1, not 0"),
    ("realism", ["--clips", "0"], "argument --clips: must be at least 1, not 0"),
    ("realistic_synth", ["--render", "0"], "argument --render: must be at least 1, not 0"),
    ("realistic_synth", ["--specs", "0"], "argument --specs: must be at least 1, not 0"),
    ("speech_margin", ["--seeds", "-1"], "argument --seeds: must be at least 0, not -1"),
    ("spotting", ["--seconds", "0.5"], "argument --seconds: must lie in [1.5, 3600], not 0.5"),
    ("vlm", ["--steps", "0"], "argument --steps: must be at least 1, not 0"),
    ("vlm", ["--gen-repeats", "0"], "argument --gen-repeats: must be at least 1, not 0"),
    ("vlm", ["--gen-batches", "0"], "argument --gen-batches: must be at least 1, not 0"),
])
def test_bad_numbers_are_refused_by_the_parser_in_one_sentence(bench, capsys, name, argv, says):
    assert says in refused(capsys, bench(name).main, argv)


def test_au_recipes_refuses_candidates_out_of_range_naming_the_valid_ones(bench, capsys):
    """--candidates 999 trained nothing and printed an empty report."""
    recipes = bench("au_recipes")
    n_aullm, n_clip = (len(recipes.CANDIDATES[h]) for h in ("aullm", "microau_clip"))
    says = refused(capsys, recipes.main, ["--candidates", "3", "999"])
    assert (f"--candidates 999 is out of range: aullm has candidates 0-{n_aullm - 1}, microau_clip has candidates "
            f"0-{n_clip - 1}") in says
    says = refused(capsys, recipes.main, ["--heads", "aullm", "--candidates", "3", str(n_aullm)])
    assert f"--candidates {n_aullm} is out of range: aullm has candidates 0-{n_aullm - 1}" in says


def test_blendshape_response_refuses_fewer_clips_than_fusion_can_be_fitted_on(bench, capsys):
    """--n 4 measured both splits and then failed in a min() of no weights: seed 0's calibration clips first hold a
    null clip and an AU with five clips on each side at 11 (from the drawn specs, nothing rendered)."""
    says = refused(capsys, bench("blendshape_response").main, ["--n", "4"])
    assert "--n 4 is too few for --seed 0" in says and "the first 11 clips are the fewest to hold" in says


def _easy_truth(data: Path, subjects: int, clips: int, seed: int = 0, size=(640, 480)) -> None:
    data.mkdir(parents=True)
    (data / "synth_truth.json").write_text(json.dumps({
        "layout": "casme2", "seed": seed, "size": list(size), "synthetic": True,
        "clips": [{"subject_n": s + 1} for s in range(subjects) for _ in range(clips)]}))


def _realistic_truth(data: Path, split: str, clips: int, people: int = 4, seed: int = 0, world: str = "v2",
                     left_out: tuple[int, ...] = ()) -> None:
    data.mkdir(parents=True)
    (data / "synth_truth.json").write_text(json.dumps({
        "layout": "casme2", "realistic": True, "world": world, "split": split, "seed": seed, "size": [640, 480],
        "synthetic": True, "clips": [{"subject_n": s + 1, "index": s * clips + c} for s in range(people)
                                     for c in range(clips) if s * clips + c not in left_out]}))


def test_au_refuses_data_written_with_other_settings_than_asked(bench, capsys, tmp_path):
    """The data under --out were reused whatever --subjects, --clips, --size and --data-seed asked, and the report
    named the settings asked."""
    _easy_truth(tmp_path / "data", subjects=2, clips=1)
    says = refused(capsys, bench("au").main, ["--out", str(tmp_path), "--subjects", "2", "--clips", "3",
                                              "--data-seed", "1", "--size", "320", "240"])
    assert (f"{tmp_path / 'data'} holds the data of --clips 1 --size 640 480 --data-seed 0, not --clips 3 --size 320 "
            f"240 --data-seed 1 as asked; give another --out, or delete {tmp_path}") in says
    assert not (tmp_path / "world.txt").exists()  # refused before anything was written


def test_au_refuses_a_realistic_folder_of_other_clips_or_of_the_calibration_split(bench, capsys, tmp_path):
    _realistic_truth(tmp_path / "a" / "data", "benchmark", clips=40, left_out=(7, 45))
    says = refused(capsys, bench("au").main, ["--world", "realistic", "--world-version", "v2", "--out",
                                              str(tmp_path / "a"), "--clips", "8"])
    assert "holds the data of --clips 40, not --clips 8 as asked" in says
    _realistic_truth(tmp_path / "b" / "data", "calibration", clips=20)
    says = refused(capsys, bench("au").main, ["--world", "realistic", "--world-version", "v2", "--out",
                                              str(tmp_path / "b"), "--clips", "20"])
    assert "holds the realistic world's calibration split, not its benchmark split" in says


def test_au_recipes_refuses_data_written_with_other_settings_than_asked(bench, capsys, tmp_path):
    _realistic_truth(tmp_path / "data", "calibration", clips=20, world="v2")
    says = refused(capsys, bench("au_recipes").main, ["--out", str(tmp_path), "--clips", "40", "--world-version",
                                                      "v1", "--data-seed", "2"])
    assert ("holds the data of --world-version v2 --clips 20 --data-seed 0, not --world-version v1 --clips 40 "
            "--data-seed 2 as asked") in says


def test_data_settings_bound_the_clips_per_person_when_clips_were_left_out(bench, tmp_path):
    """The realistic writer numbers clip c of person s `s * clips + c` and leaves out a clip whose emotion has no word
    in the layout: the clips per person are read from those numbers, not from a count."""
    _realistic_truth(tmp_path / "data", "benchmark", clips=40, left_out=(39, 79, 80))
    held = bench("au").data_settings(tmp_path / "data")
    assert held["clips"] == (40, 40) and held["world"] == "realistic v2" and held["subjects"] == 4
    _realistic_truth(tmp_path / "one" / "data", "benchmark", clips=10, people=1, left_out=(9,))
    assert bench("au").data_settings(tmp_path / "one" / "data")["clips"] == (9, None)  # one person: no upper bound


def test_a_bad_calibration_folder_is_one_error_line_before_any_work(bench, capsys, monkeypatch, tmp_path):
    """build.py ended in a ConfigError traceback; every benchmark now runs its main through `common.run_main`."""
    monkeypatch.setenv("MEU_CALIBRATION", str(tmp_path / "nowhere"))
    common = bench("common")
    assert common.run_main(bench("build").main, ["--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: MEU_CALIBRATION {tmp_path / 'nowhere'} is not a folder; give the folder `meu calibrate "
                   "rules --out` wrote."]


def test_the_calibration_read_is_recorded_and_named_where_meu_calibration_points(bench, monkeypatch, tmp_path):
    """realism.py labelled its `rules` settings the shipped file whatever MEU_CALIBRATION said."""
    from assistant import calibration

    common, realism = bench("common"), bench("realism")
    shipped = common.calibration_record()
    assert shipped["folder"] is None and "shipped" in realism.rules_settings(shipped)
    for name in calibration.RULES_FILES:
        (tmp_path / name).write_bytes(calibration.SHIPPED[name].read_bytes())
    monkeypatch.setenv("MEU_CALIBRATION", str(tmp_path))
    chosen = common.calibration_record()
    assert chosen == {"folder": str(tmp_path.resolve()), "files": shipped["files"]}  # the same settings, elsewhere
    assert realism.rules_settings(chosen) == f"{tmp_path.resolve()}/rules_calibration.json (MEU_CALIBRATION)"
    assert common.calibration_record(fusion=True)["files"] != shipped["files"]  # the fusion files are hashed too


def test_a_failed_child_process_shows_the_end_of_its_stderr(bench):
    common = bench("common")
    with pytest.raises(common.BenchmarkError, match=r"(?s)`meu eval` failed with exit status 3; the last lines of "
                                                    r"its stderr:\nnoise\nerror: --flow nosuch$"):
        common.run_child([sys.executable, "-c", "import sys; print('noise', file=sys.stderr); "
                          "sys.exit(print('error: --flow nosuch', file=sys.stderr) or 3)"], "`meu eval`")


def test_spread_is_the_sample_sd_and_null_from_one_value(bench):
    spread = bench("common").spread
    # the six per-video micro F1 of docs/benchmarks.md: 0.22 was the population SD
    assert spread([0.89, 0.33, 0.33, 0.75, 0.75, 0.75], 3)["std"] == 0.241
    assert spread([0.7], 3)["std"] is None
    # a seed without a null clip has no null share: left out, and null when no seed has one
    assert spread([None, 0.1, 0.3], 3)["values"] == [0.1, 0.3] and spread([None], 3) is None


def test_realism_scores_a_seed_without_a_null_clip_or_a_coded_au(bench):
    """--clips 1 crashed in statistics.mean on the null share of a seed with no null clip."""
    realism = bench("realism")
    clip = SimpleNamespace(region_rows=lambda: [], size=256, codes=[], is_null=True)
    au = realism.au_figures([_changed(clip, codes=[4], is_null=False)])
    assert au["null_clips_with_any_au"] is None and au["macro_f1"] == 0.0
    assert realism.au_figures([clip])["macro_f1"] is None  # no AU coded, none named: nothing to score


def _changed(ns: SimpleNamespace, **changes) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(ns), **changes})


def test_app_load_has_no_command_of_its_own():
    """`make bench` ran benchmarks/app_load.py, which printed nothing: the load benchmark runs as app.py --load."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / "app_load.py")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert "run the load benchmark as `benchmarks/app.py --load`" in out.stderr
