"""Clip input in every form the issue names, and a clear one-line error for every bad one."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from assistant import cli
from assistant.clip import load_clip, write_video
from assistant.errors import FrameIndexError
from assistant.face import crop_box, detect_face
from assistant.files import save_png
from instruction_data.synth import SynthSpec, render_clip


@pytest.fixture(scope="module")
def synth_brow_clip():
    return render_clip(SynthSpec(subject=1, aus=["1", "2"], n_frames=14, onset=1, apex=7, offset=12,
                                 frame_size=(320, 240), amplitude_px=2.5, seed=4))


def _run_cli(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_video_round_trip_spots_the_apex(synth_brow_clip, tmp_path):
    path = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4", fps=30)
    clip = load_clip(path, onset=1)
    assert clip.apex_spotted and abs(clip.apex - synth_brow_clip.apex) <= 1
    assert clip.n_frames == 14 and len(clip.motion_curve) == 12  # frames 2..13 against onset 1
    assert int(clip.curve_frames[np.argmax(clip.motion_curve)]) == clip.apex


def test_frame_folder_uses_natural_order(synth_brow_clip, tmp_path):
    for i, frame in enumerate(synth_brow_clip.frames):
        save_png(tmp_path / f"img{i + 1}.png", frame)
    (tmp_path / "img5.png").write_bytes(b"damaged")  # with known indices only onset and apex files are read
    clip = load_clip(tmp_path, onset=0, apex=10)
    assert np.array_equal(clip.apex_frame, synth_brow_clip.frames[10])  # img11, not img2 as plain sorting gives
    with pytest.raises(FrameIndexError, match="outside"):
        load_clip(tmp_path, onset=0, apex=40)


def test_analyze_cli_writes_every_output(synth_brow_clip, tmp_path, capsys):
    video = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4", fps=30)
    out = tmp_path / "out"
    code, stdout, _ = _run_cli(["analyze", str(video), "--onset", "1", "--flow", "dis", "--out", str(out)], capsys)
    assert code == 0, stdout
    for name in ("mmc_map.png", "mmc_map_legend.png", "landmarks.png", "regions.json", "summary.json"):
        assert (out / name).stat().st_size > 0
    regions = json.loads((out / "regions.json").read_text())
    keys = {"region", "side", "dx", "dy", "mean_magnitude", "max_magnitude", "direction", "colour", "intensity"}
    assert all(keys <= set(r) for r in regions)
    brows = [r for r in regions if r["region"] in ("inner_brow", "outer_brow")]
    assert all(r["direction"] == "up" for r in brows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["apex_spotted"] and summary["backends"]["flow"] == "dis"
    assert set(summary["timings_s"]) >= {"landmarks", "flow", "map", "regions", "total"}
    assert "moving regions" in stdout


@pytest.mark.parametrize("convert", ["grey", "rgba"])
def test_grey_and_rgba_image_pairs_are_analysed(synth_brow_clip, tmp_path, capsys, convert):
    onset, apex = synth_brow_clip.frames[1], synth_brow_clip.frames[7]
    code_of = {"grey": cv2.COLOR_RGB2GRAY, "rgba": cv2.COLOR_RGB2BGRA}
    for name, img in (("on.png", onset), ("ap.png", apex)):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(img, code_of[convert]))
    code, stdout, err = _run_cli(["analyze", str(tmp_path / "on.png"), str(tmp_path / "ap.png"), "--flow", "dis",
                                  "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    regions = json.loads((tmp_path / "out" / "regions.json").read_text())
    assert {r["direction"] for r in regions if r["region"] == "inner_brow"} == {"up"}


def _bad_inputs(tmp_path, synth_brow_clip):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    write_video(synth_brow_clip.frames[:1], tmp_path / "one.mp4")
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "readme.txt").write_text("nothing here")
    blank = np.full((240, 320, 3), 120, np.uint8)
    save_png(tmp_path / "wall1.png", blank)
    save_png(tmp_path / "wall2.png", blank)
    return {
        "empty": ([str(tmp_path / "empty.mp4")], "empty"),
        "text as mp4": ([str(tmp_path / "notes.mp4")], "could not be decoded"),
        "one frame": ([str(tmp_path / "one.mp4")], "1 frame"),
        "no images": ([str(tmp_path / "no_images")], "no images"),
        "no face": ([str(tmp_path / "wall1.png"), str(tmp_path / "wall2.png")], "No face"),
        "missing": ([str(tmp_path / "nope.mp4")], "does not exist"),
        "bad apex": ([str(tmp_path / "one.mp4"), "--onset", "3", "--apex", "2"], "onset < apex"),
    }


def test_bad_input_gives_one_clear_line_and_writes_nothing(synth_brow_clip, tmp_path, capsys):
    for name, (args, words) in _bad_inputs(tmp_path, synth_brow_clip).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code, _, err = _run_cli(["analyze", *args, "--out", str(out)], capsys)
        assert code == 1, name
        assert "Traceback" not in err and err.startswith("error: "), (name, err)
        assert words in err, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert not out.exists(), name


def test_apex_spotting_ignores_a_slow_lighting_change():
    clip = render_clip(SynthSpec(subject=2, aus=["12"], n_frames=40, onset=2, apex=15, offset=30, amplitude_px=1.5,
                                 illumination_drift=-0.1, frame_size=(320, 240), seed=2))

    def face_box(frame):
        box = crop_box(detect_face(frame))
        return box.x0, box.y0, box.x1, box.y1

    spotted = load_clip(clip.frames, onset=2, face_box=face_box)
    assert abs(spotted.apex - clip.apex) <= 2  # the darkest frame (the last) must not win
