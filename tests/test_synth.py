"""The synthetic micro-expression generator moves what the FACS table says, where it says, and nothing else."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from assistant.au import AU
from assistant.facs import FACS, image_direction
from instruction_data.synth import SynthSpec, displacement_field, make_subjects, render_clip


def _flow(clip, a: int, b: int) -> np.ndarray:
    grey = [cv2.cvtColor(clip.frames[i], cv2.COLOR_RGB2GRAY) for i in (a, b)]
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey[0], grey[1], None)


def _motion_at(clip, flow: np.ndarray, key: tuple[str, str | None], r: int = 4) -> np.ndarray:
    """Mean measured flow around a region centre, in working-crop pixels."""
    x, y = (int(round(v)) for v in clip.region_centres[key])
    return flow[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 2).mean(axis=0) / clip.frame_px_per_crop_px


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def synth_au12_clip():
    return render_clip(SynthSpec(subject=0, aus=["12"], amplitude_px=3.0, noise_sigma=0.0, seed=3))


def test_same_seed_same_frames_other_seed_other_noise():
    spec = dict(subject=1, aus=["1", "2"], n_frames=8, head_jitter_px=0.5, noise_sigma=2.0)
    a = render_clip(SynthSpec(**spec, seed=7))
    b = render_clip(SynthSpec(**spec, seed=7))
    c = render_clip(SynthSpec(**spec, seed=8))
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    assert a.head_poses == b.head_poses
    assert not np.array_equal(a.frames[3], c.frames[3])


def test_time_course_and_frames_outside_the_expression_are_still(synth_au12_clip):
    clip = synth_au12_clip
    assert clip.strength[clip.onset] == 0 and clip.strength[clip.apex] == pytest.approx(1.0)
    assert clip.strength[clip.offset] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(clip.strength[clip.onset:clip.apex + 1]) > 0)
    assert np.array_equal(clip.frames[0], clip.frames[clip.onset])  # no noise: nothing moved before onset
    assert np.array_equal(clip.frames[0], clip.frames[-1])  # and everything is back after offset
    assert not np.array_equal(clip.frames[0], clip.frames[clip.apex])


def test_au12_mouth_corners_move_the_commanded_way_on_each_side(synth_au12_clip):
    clip = synth_au12_clip
    flow = _flow(clip, clip.onset, clip.apex)
    action = next(a for a in FACS[12].actions if a.region == "mouth_corner")
    for side in ("L", "R"):
        want = 3.0 * image_direction(action, side)
        got = _motion_at(clip, flow, ("mouth_corner", side))
        assert _cos(got, want) > 0.9, (side, got, want)
        assert 0.5 < np.linalg.norm(got) / np.linalg.norm(want) < 1.6, (side, got, want)
    # person's left corner is on the image's right and moves right (outward) and up
    left = _motion_at(clip, flow, ("mouth_corner", "L"))
    right = _motion_at(clip, flow, ("mouth_corner", "R"))
    assert left[0] > 0.5 and right[0] < -0.5 and left[1] < -0.5 and right[1] < -0.5
    for key in (("inner_brow", "L"), ("glabella", None), ("nose", None)):
        assert np.linalg.norm(_motion_at(clip, flow, key)) < 0.2, key


def test_brow_raise_moves_both_brows_up():
    clip = render_clip(SynthSpec(subject=1, aus=["1", "2"], amplitude_px=2.0, noise_sigma=0.0, n_frames=12))
    flow = _flow(clip, clip.onset, clip.apex)
    for key in (("inner_brow", "L"), ("inner_brow", "R"), ("outer_brow", "L"), ("outer_brow", "R")):
        dx, dy = _motion_at(clip, flow, key)
        assert dy < -0.8 and abs(dx) < abs(dy), (key, dx, dy)
    assert np.linalg.norm(_motion_at(clip, flow, ("mouth_corner", "L"))) < 0.2


def test_sided_au_moves_only_that_side():
    clip = render_clip(SynthSpec(subject=0, aus=[AU.parse("R12")], amplitude_px=2.5, noise_sigma=0.0, n_frames=12))
    flow = _flow(clip, clip.onset, clip.apex)
    moving = _motion_at(clip, flow, ("mouth_corner", "R"))
    still = _motion_at(clip, flow, ("mouth_corner", "L"))
    assert moving[0] < -0.8 and moving[1] < -0.5  # the person's right corner: image left (outward) and up
    assert np.linalg.norm(still) < 0.15 * np.linalg.norm(moving)


def test_head_translation_moves_the_whole_face_by_the_reported_pose():
    clip = render_clip(SynthSpec(subject=0, aus=[], head_translation_px=(3.0, -1.0), noise_sigma=0.0, n_frames=10))
    flow = _flow(clip, 0, 9)
    tx, ty, rot = clip.head_poses[9]
    assert (tx, ty) == pytest.approx((3.0 * clip.frame_px_per_crop_px, -1.0 * clip.frame_px_per_crop_px))
    for key in (("nose", None), ("inner_brow", "L"), ("chin", None)):
        got = _motion_at(clip, flow, key) * clip.frame_px_per_crop_px
        assert got == pytest.approx((tx, ty), abs=0.35), key


def test_unknown_and_unlisted_aus_add_no_motion(synth_au12_clip):
    pts = synth_au12_clip.landmarks.points68
    field = displacement_field(pts, [AU.parse("?"), AU.parse("18")], 2.0, (640, 480))
    assert not field.any()
    field = displacement_field(pts, [AU.parse("L14")], 2.0, (640, 480))
    assert field.any()
    x_mid = pts[[27, 30, 8]][:, 0].mean()
    assert np.abs(field[:, : int(x_mid) - 10]).max() < 1e-3  # the person's right half (image left) stays put


def test_subjects_are_distinct_people_with_consistent_sides():
    subjects = make_subjects(4, seed=0)
    assert len({s.id for s in subjects}) == 4
    assert {s.source for s in subjects} == {"astronaut", "grace_hopper"}
    for s in subjects:  # iBUG order: the person's right eye corner (36) is on the image left of the left one (45)
        assert s.landmarks.points68[36, 0] < s.landmarks.points68[45, 0]
    same_photo = [s for s in subjects if s.source == "astronaut"]
    a, b = (cv2.resize(s.image, (128, 128)).astype(float) for s in same_photo)
    assert np.abs(a - b).mean() > 5  # mirrored, recoloured, reshaped: not the same picture
    assert make_subjects(2, seed=0)[1].id == subjects[1].id  # asking for more keeps the first ones
    frames = [render_clip(SynthSpec(subject=s, n_frames=4, noise_sigma=0.0)).frames[0] for s in subjects[:2]]
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 10


@pytest.mark.parametrize("flags", [["--subjects", "0"], ["--clips", "0"], ["--frames", "2"]])
def test_synth_cli_refuses_impossible_sizes_in_one_line(flags, tmp_path, capsys):
    from assistant.cli import main as meu

    assert meu(["data", "synth", "--out", str(tmp_path / "s"), *flags]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and flags[0] in err
    assert not (tmp_path / "s").exists()


def test_rewriting_a_synthetic_dataset_leaves_no_stale_frames(tmp_path):
    """A second `meu data synth` into the same folder (fewer frames) must not leave the first run's frames behind:
    they would join the clip for anything that reads the whole folder (apex spotting, `meu analyze`)."""
    from instruction_data.loaders import load_dataset
    from instruction_data.synth_cli import main

    out = str(tmp_path / "s")
    assert main(["--out", out, "--subjects", "1", "--clips", "1", "--frames", "12", "--quirks", "false"]) == 0
    assert main(["--out", out, "--subjects", "1", "--clips", "1", "--frames", "6", "--quirks", "false"]) == 0
    (record,) = load_dataset("casme2", out).records
    assert len(record.frame_paths) == 6


def test_synth_refuses_a_folder_it_did_not_write(tmp_path):
    from assistant.errors import ConfigError
    from instruction_data.synth_cli import main

    (tmp_path / "CASME2-coding-20140508.xlsx").write_bytes(b"someone's real sheet")
    with pytest.raises(ConfigError, match="not empty"):
        main(["--out", str(tmp_path), "--subjects", "1", "--clips", "1", "--frames", "6"])
    assert (tmp_path / "CASME2-coding-20140508.xlsx").read_bytes() == b"someone's real sheet"
