"""The offline default on the realistic synthetic world: a null clip gets no AU, a clear one is read.

Clips come from the benchmark split (people the rules settings were not chosen on); these are behaviour checks, the
figures are in benchmarks/realism.py.
"""

from __future__ import annotations

import pytest

from assistant.au.rules import score_regions
from assistant.motion.analyze import analyze_frames
from instruction_data.realistic import draw_spec, render_realistic


def _first(predicate, seed: int = 7, limit: int = 200):
    for index in range(limit):
        spec = draw_spec(index, "benchmark", seed)
        if predicate(spec):
            return spec
    raise AssertionError("no such clip drawn")


def _read(spec):
    clip = render_realistic(spec, only=[spec.onset - 1, spec.onset, spec.apex])
    analysis = analyze_frames(clip.frames[clip.onset], clip.frames[clip.apex], null_frame=clip.frames[clip.onset - 1])
    return analysis, score_regions(analysis.regions, None, analysis.crop.size)


@pytest.mark.parametrize("nth", [0, 1])
def test_a_null_clip_gets_no_au_despite_drift_noise_and_jpeg(nth):
    seen = []
    spec = _first(lambda s: not s.aus and (seen.append(s) or len(seen) > nth))
    analysis, evidence = _read(spec)
    assert evidence.active() == [], [(s.code, round(s.probability, 2)) for s in evidence.active()]
    # the intensity words let about 1 % of null regions through (calibrated that way): one stray region at most
    assert len(analysis.moving_regions()) <= 1, [r.to_dict() for r in analysis.moving_regions()]
    assert analysis.field.noise_source in ("null pair", "stable area")


def test_a_clear_smile_is_read_on_a_drifting_noisy_clip():
    spec = _first(lambda s: [a.code for a in s.aus] == [12] and s.motions[0].amplitude_px > 0.5)
    analysis, evidence = _read(spec)
    assert 12 in {s.code for s in evidence.active()}
    strongest = max(analysis.regions, key=lambda r: r.snr)
    assert strongest.region in ("mouth_corner", "nasolabial", "cheek"), strongest


def test_the_measurement_cache_key_follows_what_the_motion_core_measures(monkeypatch):
    """Cached region tables are reused only for the same measurement: another motion core or the eyes read as skin
    give another key; the drift setting, which never acts on the cached pairs, does not."""
    from assistant.motion import analyze
    from eval.realism import motion_settings_key

    shipped = motion_settings_key(analyze.MotionConfig(), "v2")
    assert motion_settings_key(analyze.MotionConfig(drift="none"), "v2") == shipped
    assert motion_settings_key(analyze.MotionConfig(eyes="read"), "v2") != shipped
    assert motion_settings_key(analyze.MotionConfig(), "v3") != shipped
    monkeypatch.setattr(analyze, "MOTION_CORE", analyze.MOTION_CORE + ".2")
    assert motion_settings_key(analyze.MotionConfig(), "v2") != shipped
