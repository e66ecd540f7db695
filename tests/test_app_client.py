"""The documented API: `gradio_client` calls `/analyze` on the running app and gets the structured result; bad
inputs come back as clear errors and the app keeps serving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_server import ROOT

from assistant.motion.clip import write_video


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


def test_analyze_returns_the_structured_result(client, app_server):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(app_server.examples / "happiness_AU6_AU12.mp4")), None, None, "en",
                            api_name="/analyze")
    assert result["emotion"] == "happiness"
    assert "AU12" in result["aus"] and 12 in result["au_codes"]
    assert result["probabilities"]["AU12"] >= 0.5 and len(result["probabilities"]) >= 8
    assert result["text"].endswith("AUs: " + ", ".join(f"AU{c}" for c in sorted(result["au_codes"]))
                                   + "; Micro-expression: happiness")
    assert result["reasoning"].startswith("1. Motion by region")
    assert any(r["region"] == "mouth_corner" and r["intensity"] != "none" for r in result["regions"])
    assert result["backends"]["reasoner"] == "template" and result["backends"]["detector"] == "rules"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, app_server):
    d = tmp_path_factory.mktemp("bad_api")
    (d / "renamed.mp4").write_text("just text\n" * 50)
    rng = np.random.default_rng(1)
    (d / "huge.mp4").write_bytes(rng.integers(0, 255, int(1.5 * 2**20), dtype=np.uint8).tobytes())
    from instruction_data.synth import SynthSpec, render_clip

    long = render_clip(SynthSpec(subject=0, n_frames=64, frame_size=(320, 240), face_height_frac=0.7, seed=2))
    write_video(long.frames, d / "long.mp4")  # 64 frames > the app's limit of 60
    write_video([np.full((120, 160, 3), 128, np.uint8)] * 3, d / "blank.mp4")
    return d


@pytest.mark.parametrize("name,words", [
    ("renamed.mp4", "renamed.mp4"),
    ("long.mp4", "more than 60 frames"),
    ("blank.mp4", "No face"),
])
def test_bad_input_is_a_clear_error_and_the_app_stays_up(client, app_server, bad_files, name, words):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=words):
        client.predict(handle_file(str(bad_files / name)), None, None, "en", api_name="/analyze")
    assert app_server.process.poll() is None
    ok = client.predict(handle_file(str(app_server.examples / "surprise_AU1_AU2.mp4")), None, None, "en",
                        api_name="/analyze")
    assert ok["emotion"] == "surprise"


def test_help_lists_host_and_port():
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert "--host" in out and "--port" in out and "127.0.0.1" in out


def test_the_images_tab_never_analyses_a_stale_video_instead():
    """On the image tab with one image missing, the user is asked for it (the video left in the other tab is not
    analysed in its place); each tab still falls back to the other input when its own is empty."""
    from app import pick_source
    from assistant.errors import MEUError

    with pytest.raises(MEUError, match="apex image"):
        pick_source("images", "old.mp4", "onset.png", None)
    with pytest.raises(MEUError, match="onset image"):
        pick_source("images", "old.mp4", None, "apex.png")
    assert pick_source("images", "old.mp4", "on.png", "ap.png") == ("on.png", "ap.png")
    assert pick_source("images", "old.mp4", None, None) == ("old.mp4", None)
    assert pick_source("video", "clip.mp4", "on.png", "ap.png") == ("clip.mp4", None)
    assert pick_source("video", None, "on.png", "ap.png") == ("on.png", "ap.png")
    with pytest.raises(MEUError, match="Upload a video"):
        pick_source("video", None, None, None)


def test_a_refused_upload_is_removed_from_the_cache_at_once(client, app_server, bad_files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    for name in ("renamed.mp4", "blank.mp4"):
        with pytest.raises(AppError):
            client.predict(handle_file(str(bad_files / name)), None, None, "en", api_name="/analyze")
        assert not list(app_server.cache.rglob(name)), f"{name} is still in the upload cache"


def test_gradio_refuses_uploads_over_the_apps_own_limit(app_server, bad_files):
    """Gradio's own limit is the app's (1 MB in the test server), so a larger file is never stored."""
    import httpx

    with open(bad_files / "huge.mp4", "rb") as fh:
        r = httpx.post(app_server.url + "gradio_api/upload", files={"files": ("huge.mp4", fh, "video/mp4")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size of 1048576 bytes" in r.text
    assert not list(app_server.cache.rglob("huge.mp4"))


def test_an_oversized_image_on_the_image_tab_gets_the_limit_sentence(client, app_server, bomb_png):
    """Gradio's image preprocessing decoded the picture (or failed with a long message); the pipeline now refuses it
    from its header with one sentence, and the refused upload is removed."""
    from gradio_client import handle_file

    out = client.predict(None, handle_file(str(bomb_png)), handle_file(str(bomb_png)), None, None, "en",
                         api_name="/analyze_ui")
    assert out[0] == ("⚠️ **Error:** bomb.png is 900 megapixels, over the limit of 40 megapixels; downscale it or "
                      "crop it around the face.")
    assert not list(app_server.cache.rglob("bomb.png"))
    assert app_server.process.poll() is None


def test_refused_requests_log_one_line_and_no_traceback(client, app_server, bad_files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    before = app_server.log().count("refused API analysis")
    with pytest.raises(AppError, match="renamed.mp4"):
        client.predict(handle_file(str(bad_files / "renamed.mp4")), None, None, "en", api_name="/analyze")
    log = app_server.log()
    assert log.count("refused API analysis") == before + 1
    line = next(x for x in log.splitlines()[::-1] if "refused API analysis" in x)
    assert " INFO " in line and "renamed.mp4" in line
    assert "Traceback" not in log


@pytest.mark.parametrize("args,says", [
    ((-3, None, "en"), "Onset frame (optional): -3 is not accepted; give a whole frame number, 0 or more"),
    (("abc", None, "en"), "Onset frame (optional): 'abc' is not accepted"),
    ((None, 2.5, "en"), "Apex frame (optional, spotted when empty or 0): 2.5 is not accepted"),
    ((None, True, "en"), "Apex frame (optional, spotted when empty or 0): True is not accepted"),
    ((None, None, "xx"), "Language: 'xx' is not accepted; choose one of en (English), zh"),
])
def test_inputs_gradio_cannot_read_are_a_sentence_naming_the_box_and_no_traceback(client, app_server, args, says):
    """Gradio's own checks printed a full traceback per refused input and answered "Value -3 is less than minimum
    value 0." or "Could not preprocess input component at index 1"; `true` and 2.5 were read as frames 1 and 2."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    clip = handle_file(str(app_server.examples / "happiness_AU6_AU12.mp4"))
    with pytest.raises(AppError) as refused:
        client.predict(clip, *args, api_name="/analyze")
    assert str(refused.value).startswith(says), refused.value
    log = app_server.log()
    assert f"INFO meu.app: refused request: {says}" in log and "Traceback" not in log


def test_a_file_sent_as_a_bare_path_is_a_sentence_and_no_traceback(client, app_server):
    from gradio_client.exceptions import AppError

    for api, args in (("/analyze", ("/etc/hostname", None, None, "en")), ("/spot", ("/etc/hostname",))):
        with pytest.raises(AppError, match=r"not an uploaded file: upload it in the page, or send it with "
                                           r"gradio_client's handle_file\(PATH\)"):
            client.predict(*args, api_name=api)
    assert "Traceback" not in app_server.log()


def test_a_crafted_long_tab_row_names_no_other_interval():
    """Row numbers 0, -3 or past the table, or a cell that is no number, are refused with a sentence (they used to
    analyse another interval, labelled "interval -3", or send a raw exception to the client)."""
    from app import interval_number
    from assistant.errors import FrameIndexError

    assert interval_number([2, "micro"], [1, 0], 3) == 2 and interval_number(None, [2, 0], 3) == 3
    for row in ([0], [-3], [999]):
        with pytest.raises(FrameIndexError, match=rf"There is no interval {row[0]}; click one of the table's rows "
                                                  r"\(1 to 3\)"):
            interval_number(row, [0, 0], 3)
    with pytest.raises(FrameIndexError, match=r"The clicked row \['abc'\] names no interval"):
        interval_number(["abc"], [0, 0], 3)


@pytest.mark.parametrize("flag,value,says", [
    ("--concurrency", "0", "--concurrency 0 must be at least 1 (analyses run at the same time)."),
    ("--max-sessions", "0", "--max-sessions 0 must be at least 1 (sessions kept for follow-up questions)."),
    ("--queue-size", "0", "--queue-size 0 must be at least 1 (requests waiting)."),
    ("--port", "99999", "--port 99999 must lie between 1 and 65535.")])
def test_impossible_server_settings_are_one_line_before_the_server_starts(flag, value, says):
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "app", flag, value], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")] == [f"error: {says}"]


def test_a_port_in_use_or_a_host_of_another_machine_is_one_line_before_the_models_load():
    """Both ended in the web server's traceback, which blamed the port for a bad host too."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv, says in [(["--port", str(port)], f"--port {port} on 127.0.0.1 is in use by another program; choose "
                                                   "another --port or stop that program."),
                           (["--host", "host.invalid"], "--host host.invalid is not an address or a name this "
                                                        "machine can resolve"),
                           (["--host", "192.0.2.1"], "--host 192.0.2.1 is not an address of this machine")]:
            run = subprocess.run([sys.executable, "-m", "assistant.cli", "app", *argv], capture_output=True,
                                 text=True, timeout=120)
            assert run.returncode == 1
            (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
            assert line.startswith(f"error: {says}"), line
            assert "Traceback" not in run.stderr


def test_sigterm_empties_the_cache_and_a_start_sweeps_what_a_kill_left(tmp_path):
    """A SIGKILLed server's old uploads go at the next start (younger ones may be another server's, and stay);
    SIGTERM takes Ctrl+C's path, and the server removes every upload it held, its session folders, the examples'
    copies and the upload route's empty spool files."""
    import os
    import signal
    import time

    from app_server import start_app
    from gradio_client import Client, handle_file

    left = tmp_path / "gradio-cache" / "0123abcd"
    left.mkdir(parents=True)
    old, young = left / "old_upload.mp4", left / "young_upload.mp4"
    for f in (old, young):
        f.write_bytes(b"\0" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with start_app(tmp_path) as server:
        assert not old.exists() and young.exists()
        client = Client(server.url, verbose=False)
        client.predict(handle_file(str(server.examples / "happiness_AU6_AU12.mp4")), None, None, "en",
                       api_name="/analyze")
        assert any(p.is_file() and p.suffix == ".mp4" for p in server.cache.rglob("*"))
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        assert server.process.returncode == 0
    assert [p for p in server.cache.rglob("*") if p.is_file()] == [young], list(server.cache.rglob("*"))
    assert "server stopped: its uploads and session folders removed" in server.log()


def test_spot_api_returns_the_intervals_and_refuses_a_bad_file(client, tmp_path):
    """`/spot` spots a long video in the worker process and returns JSON; a file that is no video is one sentence."""
    from gradio_client import handle_file

    from instruction_data.long_synth import LongSpec, make_long_video, write_long_video

    video = make_long_video(LongSpec(seconds=4, fps=30, frame_size=(320, 240), face_height_frac=0.7, n_micro=1,
                                     n_macro=0, n_speech=0, n_head_turns=0, seed=8))
    path = write_long_video(video, tmp_path / "spot_me.mp4")
    out = client.predict(handle_file(str(path)), api_name="/spot")
    assert out["n_frames"] == 120 and out["fps"] == pytest.approx(30.0)
    for row in out["intervals"] + out["distractors"]:
        assert row["kind"] in ("micro", "macro", "blink", "speech", "head")
        assert 0 <= row["onset"] <= row["apex"] <= row["offset"] < 120 and row["regions"]
        assert row["near_threshold"] == (row["score"] < 1.4 * 9.0)  # the shipped near_ratio and threshold
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(Exception, match="notes.mp4 could not be decoded as a video"):
        client.predict(handle_file(str(bad)), api_name="/spot")


def test_a_short_request_is_answered_while_a_long_spot_runs_and_cancel_stops_it(client, app_server, tmp_path):
    """The long spot has its own lane and process: an analysis is answered while it runs, and cancelling the spot
    (what a closed tab does to its events) ends its worker process."""
    import time

    import psutil
    from gradio_client import Client, handle_file

    from instruction_data.long_synth import LongSpec, make_long_video, write_long_video

    def workers() -> int:
        return sum("spawn_main" in " ".join(c.cmdline()) for c in psutil.Process(app_server.process.pid).children())

    video = make_long_video(LongSpec(seconds=12, fps=30, frame_size=(320, 240), face_height_frac=0.7, seed=9))
    job = Client(app_server.url, verbose=False).submit(handle_file(str(write_long_video(video, tmp_path / "l.mp4"))),
                                                       api_name="/spot")
    deadline = time.monotonic() + 60
    while not workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers() == 1
    result = client.predict(handle_file(str(app_server.examples / "happiness_AU6_AU12.mp4")), None, None, "en",
                            api_name="/analyze")
    assert result["emotion"] == "happiness" and not job.done() and workers() == 1
    job.cancel()
    deadline = time.monotonic() + 30
    while workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers() == 0, "the spot's worker outlived its cancelled event"


def test_the_uploads_remembered_for_shutdown_stay_bounded(tmp_path, monkeypatch):
    """A long-running server does not remember every upload it ever held: past SEEN_PRUNE_AT, those already gone
    (Gradio's age sweep) are forgotten; those still on disk are kept for the shutdown clean-up."""
    import app

    monkeypatch.setattr(app, "SEEN_PRUNE_AT", 2)
    files = app.SessionFiles(tmp_path)
    paths = []
    for k in range(4):
        p = tmp_path / f"h{k}" / f"up{k}.mp4"
        p.parent.mkdir()
        p.write_bytes(b"x")
        paths.append(str(p))
    files.hold("s", paths[0], paths[1])
    Path(paths[0]).unlink()
    files.hold("s", paths[2])
    assert files._seen == {paths[1], paths[2]}
    files.hold("s", paths[3])
    files.close()
    assert not any(Path(p).exists() for p in paths)


def test_spool_files_go_at_the_next_session_end_not_only_at_shutdown(tmp_path):
    """The upload route's `tmp*` files: empty ones older than SPOOL_AGE_S go when a session ends, and ones with bytes
    that nothing wrote to for SPOOL_STALE_S (an upload cut off half way: 20 MB of a 50 MB upload stayed for good,
    shutdown included); a young one (an upload that may still be arriving) stays until shutdown."""
    import os
    import time

    import app

    files = app.SessionFiles(tmp_path)
    old, young, full, cut = (tmp_path / name for name in ("tmpold", "tmpyoung", "tmpfull", "tmpcut"))
    for f in (old, young):
        f.touch()
    for f in (full, cut):
        f.write_bytes(b"x" * 1000)
    for f, age in ((old, app.SPOOL_AGE_S + 5), (full, app.SPOOL_AGE_S + 5), (cut, app.SPOOL_STALE_S + 5)):
        os.utime(f, (time.time() - age, time.time() - age))
    files.end("session")
    assert [f.exists() for f in (old, young, full, cut)] == [False, True, True, False]
    writing = tmp_path / "tmpwriting"  # bytes arriving now: perhaps another server's upload, sharing the cache
    writing.write_bytes(b"x" * 1000)
    files.close()
    assert not young.exists() and not full.exists() and writing.exists()


def test_an_upload_that_has_gone_is_said_so_not_named_by_its_server_path(tmp_path):
    """Gradio stores uploads by content: a tab that closed removed the upload another tab had sent with the same
    bytes, and that tab was told the server's path "does not exist; check the path"."""
    import app
    from assistant.errors import MEUError

    files = app.SessionFiles(tmp_path)
    with pytest.raises(MEUError) as err:
        files.hold("session", str(tmp_path / "0123abcd" / "clip.mp4"))
    assert str(err.value) == app.UPLOAD_GONE and str(tmp_path) not in str(err.value)


def test_the_examples_folder_serves_its_examples_and_nothing_else(app_server):
    """`--examples DIR` opened the whole folder to the web (`--examples ~` a home directory)."""
    import urllib.error
    import urllib.request

    secret = app_server.examples / "notes.txt"
    secret.write_text("not for the web\n")
    clip = app_server.examples / "happiness_AU6_AU12.mp4"

    def status(path: Path) -> int:
        try:
            with urllib.request.urlopen(f"{app_server.url}gradio_api/file={path}", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    try:
        assert status(clip) == 200
        assert status(secret) == 403
    finally:
        secret.unlink()


def test_an_example_clip_outlives_the_sessions_that_used_it(tmp_path, monkeypatch):
    """A file box's example is copied into the cache when clicked, by its content hash, and was not kept: the first
    tab that used it and closed removed the copy, and the example failed for every user until a restart."""
    from gradio import processing_utils

    import app
    from assistant.demo import write_examples
    from assistant.pipeline import Assistant

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    clips = write_examples(tmp_path / "examples", n_frames=12)
    demo = app.build_app(Assistant(), tmp_path / "examples")
    files = demo.session_files
    for clip in clips:
        copy = files.cache_dir / processing_utils.hash_file(clip) / clip.name  # where a click puts it
        assert copy.is_file()
        files.hold("tab", str(copy))
        files.end("tab")
        assert copy.is_file()
    files.close()
    assert not any(files.cache_dir.rglob("*.mp4"))  # the server's own copies go at shutdown
