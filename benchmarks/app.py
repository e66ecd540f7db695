"""App latency on the offline default: upload -> first complete answer, and time per follow-up answer.

A 100-frame 640x480 synthetic clip (AU6+AU12, H.264) is sent to the running app through `gradio_client`, several
times: to `/analyze` (the documented JSON endpoint: upload, apex spotting, landmarks, TV-L1, rules, template) and to
the UI's own streaming event (the same plus the map, overlay, table and chart the browser receives); the stage
timings come from the server. Follow-ups are timed on the `Assistant` the app serves. Prints JSON.

    .venv/bin/python benchmarks/app.py [--runs 5]
    .venv/bin/python benchmarks/app.py --load [--users 8 --requests 5 --burst 24 --concurrency 1 2]  (app_load.py)

`--load` is the one way to run the load benchmark (benchmarks/app_load.py holds it and has no command of its own).
"""

from __future__ import annotations

import os

for _key, _value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                     "GLOG_minloglevel": "2"}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import calibration_record, machine, positive_int, run_main  # noqa: E402

FOLLOW_UPS = ("Which AUs did you find, and how sure are you?", "Why this emotion?", "Where did the face move?",
              "What does magenta mean?", "What is AU12?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(folder: Path) -> Path:
    from assistant.motion.clip import write_video
    from instruction_data.synth import SynthSpec, render_clip

    clip = render_clip(SynthSpec(subject=0, aus=["6", "12"], n_frames=100, onset=10, apex=40, offset=80,
                                 amplitude_px=1.5, frame_size=(640, 480), seed=0))
    return write_video(clip.frames, folder / "bench_100x640x480.mp4", fps=30)


def time_requests(url: str, clip: Path, runs: int) -> tuple[list[float], list[dict], list[float], dict]:
    """Wall time per request through `gradio_client`: the JSON endpoint, then the UI's streaming event."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    totals, stages, ui_totals = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        result = client.predict(handle_file(str(clip)), None, None, "en", api_name="/analyze")
        totals.append(time.perf_counter() - t)
        stages.append(result["timings"])
    for _ in range(runs):  # map, overlay, table and streamed reasoning, all post-processed as for a browser
        t = time.perf_counter()
        outputs = client.predict(handle_file(str(clip)), None, None, None, None, "en", api_name="/analyze_ui")
        ui_totals.append(time.perf_counter() - t)
        if outputs[5] != result["emotion"]:
            raise RuntimeError(f"the UI answered {outputs[5]!r}, the API {result['emotion']!r}")
    return totals, stages, ui_totals, result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--load" in argv:  # concurrent users against a served app: benchmarks/app_load.py
        from app_load import main as load_main

        return load_main([a for a in argv if a != "--load"], make_clip, free_port)
    from assistant.config import doc_summary

    parser = argparse.ArgumentParser(description=doc_summary(__doc__))
    parser.add_argument("--runs", type=positive_int, default=5,
                        help="requests timed per path (the JSON endpoint, then the UI's event; default 5)")
    parser.add_argument("--load", action="store_true",
                        help="concurrent users against a served app instead (benchmarks/app_load.py; "
                             "`--load --help` lists its options)")
    args = parser.parse_args(argv)
    calibration = calibration_record()  # the answer's AUs are scored with it; a bad MEU_CALIBRATION stops here

    import app
    from assistant.pipeline import Assistant

    t = time.perf_counter()
    assistant = Assistant()
    if assistant.config.detector_name in ("blendshapes", "fusion"):  # these read the fusion files too
        calibration = calibration_record(fusion=True)
    assistant.warm_up()
    warm_up_s = time.perf_counter() - t
    clip = make_clip(Path(tempfile.mkdtemp(prefix="meu_bench_app_")))
    demo = app.build_app(assistant)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON only
        demo.launch(server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True)
        try:
            totals, stages, ui_totals, result = time_requests(f"http://127.0.0.1:{port}/", clip, args.runs)
        finally:
            demo.close()
    follow, analysed = [], assistant.analyze(clip)
    for q in FOLLOW_UPS:
        t = time.perf_counter()
        assistant.chat([], q, analysed)
        follow.append(time.perf_counter() - t)
    stage_median = {k: round(statistics.median(s[k] for s in stages), 4) for k in stages[0]}
    report = {
        "benchmark": "app: upload -> first complete answer (offline default), synthetic clip",
        "clip": {"frames": 100, "size": "640x480", "codec": "h264", "bytes": clip.stat().st_size,
                 "aus_rendered": "AU6+AU12", "synthetic": True},
        "backends": assistant.backends(), "calibration": calibration,
        "answer": {"aus": result["aus"], "emotion": result["emotion"], "apex": result["apex"]},
        "upload_to_answer_s": {"path": "UI streaming event (what the browser gets)",
                               "median": round(statistics.median(ui_totals), 3), "min": round(min(ui_totals), 3),
                               "max": round(max(ui_totals), 3), "runs": [round(x, 3) for x in ui_totals],
                               "target": 3.0, "meets_target": statistics.median(ui_totals) <= 3.0},
        "api_upload_to_answer_s": {"path": "/analyze (JSON)", "median": round(statistics.median(totals), 3),
                                   "runs": [round(x, 3) for x in totals]},
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "server_stage_median_s": stage_median,
        "follow_up_s": {"median": round(statistics.median(follow), 5), "max": round(max(follow), 5),
                        "questions": len(follow)},
        "warm_up_s": round(warm_up_s, 3),
        "machine": machine(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
