"""Clip input in every form the issue names, and a clear one-line error for every bad one."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from assistant import cli
from assistant.errors import FrameIndexError, UnreadableClipError
from assistant.files import save_png
from assistant.motion.clip import load_clip, open_source, prefetched, write_video
from assistant.motion.face import crop_box, detect_face
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
    assert clip.apex_spotted and clip.apex_found and abs(clip.apex - synth_brow_clip.apex) <= 1
    assert clip.n_frames == 14 and list(clip.curve_frames) == list(range(2, 13))  # the end frames are never scored


def test_frame_folder_uses_natural_order(synth_brow_clip, tmp_path):
    for i, frame in enumerate(synth_brow_clip.frames):
        save_png(tmp_path / f"img{i + 1}.png", frame)
    (tmp_path / "img5.png").write_bytes(b"damaged")  # with known indices only onset and apex files are read
    clip = load_clip(tmp_path, onset=0, apex=10)
    assert np.array_equal(clip.apex_frame, synth_brow_clip.frames[10])  # img11, not img2 as plain sorting gives
    with pytest.raises(FrameIndexError, match="outside"):
        load_clip(tmp_path, onset=0, apex=40)


@pytest.mark.parametrize("size", [64, 128])
def test_analyze_at_a_small_crop_writes_the_legend_at_the_maps_height(synth_brow_clip, tmp_path, capsys, size):
    """Under 256 px the legend's wheel, names and scale bar did not fit one above the other: `--size 128` wrote the
    map and then stopped with a numpy broadcasting error."""
    import cv2

    video = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4", fps=30)
    out = tmp_path / "out"
    code, stdout, _ = _run_cli(["analyze", str(video), "--onset", "1", "--flow", "dis", "--size", str(size), "--out",
                                str(out)], capsys)
    assert code == 0, stdout
    legend = cv2.imread(str(out / "mmc_map_legend.png"))
    assert legend.shape[0] == size and legend.shape[1] > size  # the map, and the legend beside it
    assert np.ptp(legend[:, size:]) > 100  # the legend is drawn, not left blank


def test_float_images_in_0_1_are_read_as_their_8_bit_originals(synth_brow_clip):
    """scikit-image, PIL and torch give float images in 0-1; read as grey levels they were black and the user was told
    that no face was found. Floats in 0-255 read as before; NaN is refused with a sentence."""
    from assistant.motion.analyze import MotionConfig, analyze_clip
    from assistant.motion.clip import to_rgb

    onset, apex = synth_brow_clip.frames[0], synth_brow_clip.frames[10]
    unit = [f.astype(np.float32) / 255 for f in (onset, apex)]
    assert np.array_equal(to_rgb(unit[0]), onset) and np.array_equal(to_rgb(onset.astype(np.float64)), onset)
    cfg = MotionConfig(flow="dis")
    as_bytes, as_unit = analyze_clip(onset, apex, config=cfg), analyze_clip(unit[0], unit[1], config=cfg)
    assert [(r.region, r.side, r.dx, r.dy) for r in as_unit.regions] == [(r.region, r.side, r.dx, r.dy)
                                                                         for r in as_bytes.regions]
    with pytest.raises(UnreadableClipError, match="NaN or infinite"):
        to_rgb(np.where(np.eye(8, dtype=bool)[..., None], np.nan, unit[0][:8, :8]))
    # judged over the whole source: a float video in 0-255 fading in from black keeps its dark first frame dark
    fade = [np.full(onset.shape, 0.8, np.float32), onset.astype(np.float32)]
    first, second = (f for _, f in open_source(fade).frames())
    assert first.max() == 0 and np.array_equal(second, onset)
    stacked = [f for _, f in open_source(np.stack([onset, apex])).frames()]  # frames stacked in one array
    assert len(stacked) == 2 and np.array_equal(stacked[1], apex)


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
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    return {
        "empty": ([str(tmp_path / "empty.mp4")], "empty"),
        "text as mp4": ([str(tmp_path / "notes.mp4")], "could not be decoded"),
        "one frame": ([str(tmp_path / "one.mp4")], "1 frame"),
        "no images": ([str(tmp_path / "no_images")], "no images"),
        "no face": ([str(tmp_path / "wall1.png"), str(tmp_path / "wall2.png")], "No face"),
        "missing": ([str(tmp_path / "nope.mp4")], "does not exist"),
        "symlink loop": ([str(tmp_path / "loop.mp4")], "loop.mp4 is a symlink loop"),
        "looping image": ([str(tmp_path / "loop.mp4"), str(tmp_path / "wall2.png")], "loop.mp4 is a symlink loop"),
        "bad apex": ([str(tmp_path / "one.mp4"), "--onset", "3", "--apex", "2"], "The apex frame (2) must come after"),
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


def test_phone_video_with_a_rotation_tag_is_read_upright(tmp_path):
    """Phones store portrait clips as sideways pixels plus a display rotation; frames must come back upright."""
    import av

    rng = np.random.default_rng(0)
    upright = [rng.integers(0, 255, (64, 48, 3), dtype=np.uint8) for _ in range(3)]
    upright = [cv2.GaussianBlur(f, (9, 9), 3) for f in upright]  # smooth, so H.264 keeps it close
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(-90)  # "turn 90 degrees clockwise to show"
        for f in upright:
            sideways = np.ascontiguousarray(np.rot90(f, 1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(sideways, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = load_clip(path, onset=0, apex=2)
    assert clip.onset_frame.shape == (64, 48, 3)
    err = np.abs(clip.apex_frame.astype(int) - upright[2].astype(int)).mean()
    assert err < 12, err
    for (_, rgb), (_, decoded) in zip(open_source(path).frames(), open_source(path).decoded(), strict=True):
        assert decoded.grey.shape == (64, 48) and np.array_equal(decoded.rgb(), rgb)  # the spotter sees it upright


def test_decoded_frames_give_the_grey_of_their_rgb_without_converting_it(synth_brow_clip, tmp_path):
    """The apex spotter reads a video's frames as grey from the luma plane; it must be the grey of the RGB frame that
    is shown (but where a colour is clipped to 0 or 255 in RGB, which the luma keeps), and that RGB frame the one the
    plain reader gives."""
    path = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4", fps=30)
    pairs = list(zip(open_source(path).frames(), open_source(path).decoded(prefetch=4), strict=True))
    assert len(pairs) == 14
    for (i, rgb), (j, decoded) in pairs:
        assert i == j and decoded._rgb is None  # not converted until asked
        diff = np.abs(decoded.grey.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int))
        assert np.mean(diff <= 1) > 0.97 and diff.mean() < 0.3, (np.mean(diff <= 1), diff.mean())
        assert np.array_equal(decoded.rgb(), rgb)


@pytest.mark.parametrize("flag,value", [("--size", "0"), ("--size", "100000"), ("--margin", "-1"),
                                        ("--full-scale-px", "0")])
def test_impossible_motion_settings_are_one_clear_line(synth_brow_clip, tmp_path, capsys, flag, value):
    path = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4")
    assert cli.main(["analyze", str(path), flag, value, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag.lstrip("-").replace("-", "_") in err[0]
    assert not (tmp_path / "out").exists()


def test_assistant_config_checks_the_motion_settings_at_once():
    from assistant.errors import ConfigError
    from assistant.pipeline import AssistantConfig

    with pytest.raises(ConfigError, match="size"):
        AssistantConfig(size=8)


def test_image_pair_of_different_shapes_is_refused_and_a_rescaled_apex_is_noted(synth_brow_clip, tmp_path):
    """Stretching an apex of another aspect ratio onto the onset would be read as large facial motion."""
    from assistant.errors import UnreadableClipError

    onset, apex = synth_brow_clip.frames[synth_brow_clip.onset], synth_brow_clip.frames[synth_brow_clip.apex]
    h, w = onset.shape[:2]
    save_png(tmp_path / "onset.png", onset)
    save_png(tmp_path / "apex_cut.png", apex[: h // 2])
    save_png(tmp_path / "apex_half.png", cv2.resize(apex, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    with pytest.raises(UnreadableClipError, match="same size"):
        load_clip(tmp_path / "onset.png", tmp_path / "apex_cut.png")
    clip = load_clip(tmp_path / "onset.png", tmp_path / "apex_half.png")
    assert clip.apex_frame.shape == onset.shape
    assert any("resized" in w for w in clip.warnings)


def test_a_tiny_face_is_analysed_with_a_warning(synth_brow_clip):
    """Sub-pixel motion cannot be read off a face a few dozen pixels wide; the user must be told."""
    from assistant.motion.analyze import SMALL_FACE_PX, analyze_frames

    pair = (synth_brow_clip.frames[synth_brow_clip.onset], synth_brow_clip.frames[synth_brow_clip.apex])
    small = analyze_frames(*(cv2.resize(f, (80, 60), interpolation=cv2.INTER_AREA) for f in pair))
    x0, _, x1, _ = small.landmarks.box
    assert x1 - x0 < SMALL_FACE_PX
    assert any("px wide" in w for w in small.warnings)
    full = analyze_frames(*pair)
    assert not any("px wide" in w for w in full.warnings)


def test_an_apex_or_onset_past_the_end_says_so_and_what_to_give(synth_brow_clip, tmp_path):
    path = write_video(synth_brow_clip.frames, tmp_path / "clip.mp4", fps=30)
    with pytest.raises(FrameIndexError, match=r"Apex frame 99999 is past the end of the clip \(14 frames, numbered "
                                              r"from 0\); give an apex from 2 to 13\."):
        load_clip(path, onset=1, apex=99999)
    with pytest.raises(FrameIndexError, match=r"no frame after onset 13 .*give an earlier onset"):
        load_clip(path, onset=13)


def test_offset_at_the_onset_is_a_clear_index_error(synth_brow_clip):
    """Each order error in words (it was "Frame indices must satisfy 0 <= onset < apex <= offset", naming an offset
    the app has no box for)."""
    with pytest.raises(FrameIndexError, match=r"^The offset frame \(3\) must come after the onset frame \(3\)\.$"):
        load_clip(synth_brow_clip.frames, onset=3, offset=3)
    with pytest.raises(FrameIndexError, match=r"^The apex frame \(10\) must come after the onset frame \(20\)\.$"):
        load_clip(synth_brow_clip.frames, onset=20, apex=10)
    with pytest.raises(FrameIndexError, match=r"^The onset frame must be 0 or more \(frames count from 0\); got -3\.$"):
        load_clip(synth_brow_clip.frames, onset=-3)
    with pytest.raises(FrameIndexError, match=r"not before the apex frame \(7\)\.$"):
        load_clip(synth_brow_clip.frames, onset=2, apex=7, offset=5)


def test_a_frame_folder_of_mixed_sizes_is_refused_with_the_odd_frame_named(synth_brow_clip, tmp_path, capsys):
    for i, frame in enumerate(synth_brow_clip.frames):
        save_png(tmp_path / f"img{i + 1}.png", frame)
    save_png(tmp_path / "img8.png", cv2.resize(synth_brow_clip.frames[7], (300, 225)))  # one stray resized frame
    with pytest.raises(UnreadableClipError,
                       match=r"differ in size: img1\.png is 320x240 px and img8\.png is 300x225 px"):
        load_clip(tmp_path, onset=0, apex=7)
    with pytest.raises(UnreadableClipError, match="img8.png"):
        load_clip(tmp_path)  # apex spotting reads every frame
    code, out, err = _run_cli(["analyze", str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and "img8.png" in err and not (tmp_path / "out").exists()

def test_a_decompression_bomb_is_refused_from_its_header(bomb_png, tmp_path):
    """A 0.9 MB PNG of 30000x30000 px made `meu analyze` die inside mediapipe (exit 139, 6.3 GB resident)."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    from assistant.errors import ClipTooLargeError

    assert bomb_png.stat().st_size < 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ClipTooLargeError, match=r"bomb\.png is 900 megapixels, over the limit of 40 megapixels; "
                                                r"downscale it"):
        load_clip(bomb_png, bomb_png)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing was decoded
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "analyze", str(bomb_png), str(bomb_png), "--out",
                          str(out)], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "over the limit of 40 megapixels" in errors[0] and "Traceback" not in run.stderr
    assert not out.exists()


def test_pixel_limits_hold_for_frame_folders_videos_and_arrays(synth_brow_clip, tmp_path):
    from assistant.errors import ClipTooLargeError
    from assistant.motion.clip import ClipLimits

    small = ClipLimits(max_pixels=320 * 240 - 1)
    video = write_video(synth_brow_clip.frames[:4], tmp_path / "clip.mp4", fps=30)
    for source in (video, tmp_path / "frames", list(synth_brow_clip.frames[:4])):
        if source == tmp_path / "frames":
            for i, frame in enumerate(synth_brow_clip.frames[:4]):
                save_png(source / f"img{i}.png", frame)
        with pytest.raises(ClipTooLargeError, match=r"320x240 px \(0.0768 megapixels\), over the limit of "
                                                    r"0.076799 megapixels"):
            load_clip(source, limits=small)
    assert load_clip(video, limits=ClipLimits(max_pixels=320 * 240)).n_frames == 4


def test_large_allowed_frames_are_shrunk_for_the_landmarker(synth_brow_clip):
    """A big frame is handed to mediapipe at most LANDMARK_MAX_SIDE px wide; landmarks come back in its own pixels."""
    from assistant.motion import face

    frame = synth_brow_clip.frames[0]
    big = cv2.resize(frame, (3200, 2400), interpolation=cv2.INTER_CUBIC)  # 7.7 megapixels, under the limit
    landmarker = face.get_landmarker("mediapipe")
    seen = []
    original = landmarker.detect

    def spy(image):
        seen.append(image.shape[:2])
        return original(image)

    landmarker.detect = spy
    try:
        lm_big = detect_face(big)
    finally:
        del landmarker.detect
    assert seen and max(max(s) for s in seen) <= face.LANDMARK_MAX_SIDE
    assert lm_big.image_size == (3200, 2400)
    lm_small = detect_face(frame)
    err = np.abs(lm_big.points68 / 10 - lm_small.points68)
    assert np.median(err) < 1.5, np.median(err)  # the same face, within about a pixel of the small frame's landmarks


def test_prefetched_keeps_order_raises_the_producers_error_and_closes_an_abandoned_source():
    closed = []

    def source(fail_at: int | None = None):
        try:
            for i in range(50):
                if i == fail_at:
                    raise UnreadableClipError("clip.mp4 is damaged: decoding stopped.")
                yield i
        finally:
            closed.append(True)

    assert list(prefetched(source(), depth=3)) == list(range(50))
    with pytest.raises(UnreadableClipError, match="damaged"):
        list(prefetched(source(fail_at=20), depth=3))
    items = prefetched(source(), depth=3)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # the caller stops early: the producer stops and closes the source
    assert len(closed) == 3 and not any(t.name == "frame-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_image_stored_turned_or_mirrored_is_read_as_a_viewer_shows_it(tmp_path, orientation, suffix):
    """Phones store portrait photos sideways with an EXIF orientation tag; OpenCV's unchanged decoding ignored it, so a
    face lay on its side or mirrored (OpenCV's TIFF decoder turns it itself: not twice). PIL's `exif_transpose` is the
    reference."""
    from PIL import Image, ImageOps

    from assistant.motion.clip import read_image

    img = np.random.default_rng(orientation).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    lossless = {".jpg": {"quality": 95}, ".webp": {"lossless": True}}.get(suffix, {})
    Image.fromarray(img).save(tmp_path / f"photo{suffix}", exif=exif, **lossless)
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / f"photo{suffix}")).convert("RGB"))
    got = read_image(tmp_path / f"photo{suffix}")
    assert got.shape == viewer.shape == ((40, 60, 3) if orientation < 5 else (60, 40, 3))
    assert np.array_equal(got, viewer)


def test_a_png_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """Reading the orientation with PIL's `getexif` decodes a whole PNG without an eXIf chunk, before the limit."""
    from PIL import Image, ImageFile

    from assistant.errors import ClipTooLargeError
    from assistant.motion.clip import read_image

    Image.new("L", (3000, 2000)).save(tmp_path / "big.png")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the pixels were decoded"))
    with pytest.raises(ClipTooLargeError, match="over the limit of 1 megapixels"):
        read_image(tmp_path / "big.png", max_pixels=1_000_000)


def test_a_mirrored_phone_photo_keeps_the_persons_side(tmp_path):
    """A one-sided AU12 stored mirrored with orientation 2: read as stored, the person's right became the left."""
    from PIL import Image

    from assistant.pipeline import Assistant

    clip = render_clip(SynthSpec(subject=0, aus=["R12"], n_frames=9, onset=0, apex=4, offset=8,
                                 frame_size=(320, 240), amplitude_px=2.0, seed=3))
    exif = Image.Exif()
    exif[0x0112] = 2
    for name, frame in (("onset", clip.frames[0]), ("apex", clip.frames[4])):
        Image.fromarray(frame[:, ::-1]).save(tmp_path / f"{name}.png", exif=exif)
    answer = Assistant().analyze(tmp_path / "onset.png", tmp_path / "apex.png").answer
    assert [(a.code, a.side) for a in answer.aus if a.code == 12] == [(12, "R")], answer.aus


def test_pil_images_mixed_types_and_empty_arrays(synth_brow_clip):
    """PIL images are read as their RGB pixels; an 8-bit onset beside a float 0-1 apex reads the apex right (it was
    clipped to black); an empty array is one sentence and leaves the shared landmarker working (MediaPipe's graph
    failed on it and stayed failed for the whole process); a list of frames beside an apex image, or frame numbers
    with two images, are refused in words."""
    from PIL import Image

    from assistant.motion.face import get_landmarker

    onset, apex = synth_brow_clip.frames[1], synth_brow_clip.frames[7]
    as_arrays = load_clip(onset, apex)
    as_pil = load_clip(Image.fromarray(onset), Image.fromarray(apex).convert("P", palette=Image.Palette.ADAPTIVE))
    assert np.array_equal(as_pil.onset_frame, as_arrays.onset_frame)
    assert np.abs(as_pil.apex_frame.astype(int) - apex).mean() < 8  # a 256-colour palette, not the indices
    mixed = load_clip(onset, apex / 255.0)
    assert np.array_equal(mixed.apex_frame, apex)
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((10, 0, 3), np.uint8)):
        with pytest.raises(UnreadableClipError, match=r"holds no picture; give a grey, RGB or RGBA image"):
            load_clip(empty, empty)
    assert get_landmarker("mediapipe").detect(np.zeros((0, 0, 3), np.uint8)) == []
    assert len(get_landmarker("mediapipe").detect(onset)) == 1
    with pytest.raises(UnreadableClipError, match="The onset image is a list; give a file path"):
        load_clip([onset, apex], apex)
    with pytest.raises(FrameIndexError, match="frame numbers apply to a video or a frame folder"):
        load_clip(onset, apex, onset=0, apex=1)


def test_hidden_files_in_a_frame_folder_are_not_frames(tmp_path, synth_brow_clip):
    """macOS copies leave "._img1.jpg" metadata beside each frame; they sorted first and refused the whole folder,
    and every listing of a folder (the clip reader, the long-video probe and frame fetch, the dataset loaders) must
    agree on which files are frames or the frame numbers point at other files."""
    from assistant.long_video import frames_at, probe_video
    from instruction_data.loaders.common import list_frames

    for i, frame in enumerate(synth_brow_clip.frames, start=1):
        save_png(tmp_path / f"img{i}.png", frame)
        (tmp_path / f"._img{i}.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    n = len(synth_brow_clip.frames)
    src = open_source(tmp_path)
    assert src.n_frames == probe_video(tmp_path).n_frames == len(list_frames(tmp_path)[0]) == n
    assert np.array_equal(next(f for _, f in src.frames()), synth_brow_clip.frames[0])
    assert np.array_equal(frames_at(tmp_path, [2])[0], synth_brow_clip.frames[2])
    assert list_frames(tmp_path)[1][3] == 2


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "I8", "F"])
def test_pil_images_of_16_bits_or_floats_keep_their_picture(synth_brow_clip, mode):
    """Converted to RGB by PIL, a 16-bit grey image (as PIL opens 16-bit PNGs) came out almost white and a float one
    in 0-1 black; big-endian 16-bit (some TIFFs) and 32-bit integers holding 8-bit values need their own reading."""
    from PIL import Image

    grey = cv2.cvtColor(synth_brow_clip.frames[1], cv2.COLOR_RGB2GRAY)
    values = {"I;16": grey.astype(np.uint16) * 257, "I;16B": (grey.astype(np.uint16) * 257).astype(">u2"),
              "I": grey.astype(np.int32) * 257, "I8": grey.astype(np.int32), "F": grey.astype(np.float32) / 255}[mode]
    image = Image.fromarray(values)
    assert image.mode == mode.replace("I8", "I")
    clip = load_clip(image, image)
    assert np.abs(clip.onset_frame[..., 0].astype(int) - grey).max() <= 1
