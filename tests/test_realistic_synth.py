"""The realistic synthetic world draws what issue 11 asks for, and renders what it records."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from assistant.facs import FACS, MIDLINE_REGIONS, image_direction
from instruction_data.photos import PHOTOS, split_photos
from instruction_data.realistic import (
    AMPLITUDE_RANGE_PX,
    COMBOS,
    draw_spec,
    intensity_letter,
    realistic_clip,
    render_realistic,
    split_subjects,
)
from instruction_data.synth import au_moves, jpeg_roundtrip

N_SPECS = 400
CASME2_AUS = {1, 2, 4, 7, 12, 14, 15, 17}
STILL = dict(noise_sigma=0.0, jpeg_quality=None, head_translation_px=(0.0, 0.0), head_rotation_deg=0.0,
             head_zoom=0.0, head_jitter_px=0.0, head_jitter_deg=0.0, head_jitter_zoom=0.0, illumination_drift=0.0)
SHORT = dict(n_frames=10, onset=1, apex=4, offset=8, blinks=(), frame_size=(320, 240))


@pytest.fixture(scope="module")
def specs():
    return [draw_spec(i, "calibration", seed=5) for i in range(N_SPECS)]


def _first_with_aus(split: str = "benchmark", seed: int = 0, start: int = 0):
    i = start
    while draw_spec(i, split, seed).is_null:
        i += 1
    return i


def test_same_split_seed_and_index_same_clip_other_seed_other_clip():
    i = _first_with_aus()
    a = realistic_clip(i, "benchmark", 0, **SHORT)
    b = realistic_clip(i, "benchmark", 0, **SHORT)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    assert a.aus == b.aus and a.amplitudes_px == b.amplitudes_px and a.head_poses == b.head_poses
    other = [draw_spec(i, "benchmark", 1) for i in range(8)]
    mine = [draw_spec(i, "benchmark", 0) for i in range(8)]
    assert [s.aus for s in other] != [s.aus for s in mine]
    assert [s.noise_sigma for s in other] != [s.noise_sigma for s in mine]


def test_amplitudes_sides_and_intensity_letters(specs):
    lo, hi = AMPLITUDE_RANGE_PX
    amplitudes = [m.amplitude_px for s in specs for m in s.motions]
    assert all(lo <= a <= hi for a in amplitudes)
    for s in specs:
        for m in s.motions:
            assert m.au.intensity == intensity_letter(m.amplitude_px)
            if all(a.region in MIDLINE_REGIONS for a in FACS[m.au.code].actions):
                assert m.au.side is None
    logs = np.log(amplitudes)  # log-uniform: quartiles at a quarter and three quarters of the log range
    span = math.log(hi) - math.log(lo)
    q1, q3 = np.quantile(logs, [0.25, 0.75])
    assert abs((q1 - math.log(lo)) / span - 0.25) < 0.07 and abs((q3 - math.log(lo)) / span - 0.75) < 0.07
    multi = [s for s in specs if len(s.motions) > 1]
    assert any(len({m.au.intensity for m in s.motions}) > 1 for s in multi)
    assert any(len({m.au.side for m in s.motions}) > 1 for s in multi)
    assert {m.au.side for s in specs for m in s.motions} == {None, "L", "R"}


def test_about_a_fifth_null_and_au_sets_like_casme2(specs):
    null_share = sum(s.is_null for s in specs) / len(specs)
    assert 0.14 <= null_share <= 0.26
    sets = [tuple(a.code for a in s.aus) for s in specs if not s.is_null]
    assert all(1 <= len(c) <= 3 for c in sets)
    assert set(sets) <= {c for c, _ in COMBOS}
    codes = [c for cs in sets for c in cs]
    assert sum(c in CASME2_AUS for c in codes) / len(codes) >= 0.8
    assert CASME2_AUS <= set(codes)


def test_timing_and_blinks_outside_the_expression(specs):
    for s in specs:
        assert 0.2 <= (s.offset - s.onset) / s.fps <= 0.5 + 1 / s.fps
        assert 0.3 - 0.05 <= (s.apex - s.onset) / (s.offset - s.onset) <= 0.6 + 0.05
        assert s.onset >= 1 and s.offset <= s.n_frames - 2
        for first, last in s.blinks:
            assert 0.1 - 1 / s.fps <= (last - first + 1) / s.fps <= 0.15 + 1 / s.fps
            assert 0 <= first and last < s.n_frames
            assert last < s.onset or first > s.offset
    assert 0.2 < sum(bool(s.blinks) for s in specs) / len(specs) < 0.5


def test_templates_are_bent_away_from_the_facs_table(specs):
    angles, offsets, sizes = [], [], []
    for s in specs[:80]:
        points = s.subject.landmarks.points68
        d = float(np.linalg.norm(points[42:48].mean(axis=0) - points[36:42].mean(axis=0)))
        plain = au_moves(points, [dataclasses.replace(m, jitter={}) for m in s.motions])
        for bent, flat in zip(au_moves(points, s.motions), plain, strict=True):
            assert (bent.region, bent.side) == (flat.region, flat.side)
            want = image_direction(next(a for a in FACS[bent.au.code].actions if a.region == bent.region), bent.side)
            v = np.array(bent.vector)
            if np.linalg.norm(want) > 0:
                angles.append(math.degrees(math.acos(np.clip(v @ want / np.linalg.norm(v), -1, 1))))
            offsets.append(float(np.linalg.norm(np.subtract(bent.centre, flat.centre))) / d)
            sizes.append(bent.sigma / flat.sigma)
    assert max(angles) <= 25.0 + 1e-6 and np.mean(np.array(angles) > 5) > 0.5
    assert max(offsets) <= 0.1 + 1e-6 and np.mean(np.array(offsets) > 0.02) > 0.5
    assert 0.7 - 1e-6 <= min(sizes) and max(sizes) <= 1.3 + 1e-6 and np.std(sizes) > 0.1


def test_calibration_and_benchmark_people_are_disjoint():
    cal, ben = split_photos("calibration"), split_photos("benchmark")
    assert len({p.person for p in cal}) >= 3 and len({p.person for p in ben}) >= 3
    assert not {p.person for p in cal} & {p.person for p in ben}
    assert len({p.person for p in PHOTOS}) >= 6
    cal_ids, ben_ids = {s.id for s in split_subjects("calibration")}, {s.id for s in split_subjects("benchmark")}
    assert not cal_ids & ben_ids
    assert {s.source for s in split_subjects("benchmark")} == {p.person for p in ben}
    assert all(draw_spec(i, "calibration").subject.id in cal_ids for i in range(20))
    with pytest.raises(ValueError, match="unknown split"):
        split_subjects("test")


def test_content_at_a_region_centre_moves_by_the_recorded_amplitude():
    """On a finely textured face the apex patch at a region centre is the onset patch moved by the recorded vector."""
    rng = np.random.default_rng(0)
    checked = 0
    for i in range(40):
        spec = draw_spec(i, "benchmark", seed=3)
        if spec.is_null:
            continue
        motion = spec.motions[0]
        if checked == 0:  # one large motion for a sharp check
            motion = dataclasses.replace(motion, amplitude_px=2.5)
        tex = cv2.GaussianBlur(rng.integers(0, 256, spec.subject.image.shape).astype(np.uint8), (0, 0), 1.5)
        face = dataclasses.replace(spec.subject, image=cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX))
        clip = render_realistic(dataclasses.replace(spec, **STILL, **{**SHORT, "frame_size": (640, 480)},
                                                   subject=face, motions=(motion,)))
        primary = clip.moves[0]  # the AU's first FACS action has weight 1: it moves by the amplitude
        assert np.hypot(*primary.vector) / clip.frame_px_per_crop_px == pytest.approx(motion.amplitude_px, rel=1e-6)
        onset, apex = (clip.frames[k][:, :, 1].astype(np.float32) for k in (clip.onset, clip.apex))
        x, y = (int(round(v)) for v in primary.centre)
        yy, xx = np.mgrid[y - 2:y + 3, x - 2:x + 3].astype(np.float32)
        ref = onset[y - 2:y + 3, x - 2:x + 3]

        def residual(scale: float, v=primary.vector, a=apex, gx=xx, gy=yy, r=ref) -> float:
            moved = cv2.remap(a, gx + np.float32(scale * v[0]), gy + np.float32(scale * v[1]), cv2.INTER_CUBIC)
            return float(np.abs(moved - r).mean())

        assert residual(1.0) < residual(0.0)
        if motion.amplitude_px > 0.5:  # the shift is right to better than 30 %
            assert residual(1.0) < min(residual(0.7), residual(1.3))
        if motion.amplitude_px > 1.5:  # ... and 15 % where uint8 rounding no longer hides it
            assert residual(1.0) < min(residual(0.85), residual(1.15))
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_jpeg_noise_head_motion_and_blinks_are_applied():
    i = _first_with_aus()
    spec = draw_spec(i, "benchmark", **SHORT)
    clean = render_realistic(dataclasses.replace(spec, jpeg_quality=None))
    coded = render_realistic(spec)
    assert 70 <= coded.jpeg_quality <= 95 and 1.0 <= coded.noise_sigma <= 3.0
    assert all(np.array_equal(c, jpeg_roundtrip(f, spec.jpeg_quality)) for c, f in zip(coded.frames, clean.frames,
                                                                                       strict=True))
    noise = clean.frames[0].astype(np.float32) - render_realistic(
        dataclasses.replace(spec, noise_sigma=0.0, jpeg_quality=None)).frames[0]
    assert float(noise.std()) == pytest.approx(spec.noise_sigma, rel=0.15)
    assert np.hypot(*coded.head_translation_px) <= 1.5 and abs(coded.head_rotation_deg) <= 0.5
    assert abs(coded.head_zoom) <= 0.01 and len(coded.head_zooms) == len(coded.frames)
    tx, ty, _ = coded.head_poses[-1]  # the drift is reached at the last frame, give or take the jitter
    px = coded.frame_px_per_crop_px
    assert np.hypot(tx / px - coded.head_translation_px[0], ty / px - coded.head_translation_px[1]) < 0.3

    blink = render_realistic(dataclasses.replace(spec, **STILL, motions=(), blinks=((2, 7),)))
    eye = blink.region_centres[("upper_eyelid", "L")]
    mouth = blink.region_centres[("mouth_corner", "L")]

    def change(k: int, at: tuple[float, float]) -> float:
        x, y = (int(round(v)) for v in at)
        return float(np.abs(blink.frames[k][y - 4:y + 5, x - 4:x + 5].astype(np.float32) -
                            blink.frames[0][y - 4:y + 5, x - 4:x + 5]).mean())

    assert change(4, eye) > 5 * max(change(4, mouth), 0.2) and change(9, eye) == 0
    assert blink.blink_strength[4] > 0.8 and blink.is_null


def test_meu_data_synth_realistic_writes_a_layout_that_reads_back_as_rendered(tmp_path):
    from assistant.motion.clip import read_image
    from instruction_data.loaders import load_dataset
    from instruction_data.synth_cli import main as synth_main

    out = tmp_path / "casme2"
    assert synth_main(["--realistic", "--split", "calibration", "--layout", "casme2", "--subjects", "1",
                       "--clips", "2", "--width", "320", "--height", "240", "--out", str(out)]) == 0
    truth = json.loads((out / "synth_truth.json").read_text())
    records = load_dataset("casme2", out).records
    assert len(records) == len(truth["clips"]) == 2 and truth["realistic"] and truth["split"] == "calibration"
    people = {p.person for p in split_photos("calibration")}
    for k, (rec, t) in enumerate(zip(sorted(records, key=lambda r: r.clip_id), truth["clips"], strict=True)):
        assert t["person"] in people and not rec.notes
        assert [a.code for a in rec.aus.aus] == [int(a.lstrip("LR").rstrip("ABCDE")) for a in t["aus"]]
        assert rec.frame_paths[rec.onset].stem == f"img{t['onset']}"
        if k:
            continue  # one clip is enough to show the files are the frames `realistic_clip` renders
        face = next(s for s in split_subjects("calibration") if s.id == t["subject"])
        clip = realistic_clip(t["index"], "calibration", 0, frame_size=(320, 240), subject=face)
        assert len(clip.frames) == len(rec.frame_paths)
        assert np.array_equal(read_image(rec.frame_paths[clip.apex]), clip.frames[clip.apex])


def test_the_head_moves_over_a_still_background():
    spec = draw_spec(0, "benchmark", **SHORT, **{**STILL, "head_translation_px": (1.5, 0.0), "head_rotation_deg": 0.5})
    clip = render_realistic(dataclasses.replace(spec, motions=()))
    first, last = (f.astype(np.float32) for f in (clip.frames[0], clip.frames[-1]))
    assert np.array_equal(first[:20, :20], last[:20, :20])  # a frame corner, far from the head
    x, y = (int(round(v)) for v in clip.region_centres[("nose", None)])
    assert np.abs(first[y - 10:y + 10, x - 10:x + 10] - last[y - 10:y + 10, x - 10:x + 10]).mean() > 1
    assert clip.head_poses[-1][0] == pytest.approx(1.5 * clip.frame_px_per_crop_px)
