"""App under load (`benchmarks/app.py --load`): N concurrent `gradio_client` users against the real app.

This module has no command of its own: `benchmarks/app.py --load` is the one way to run it (it lends its clip maker and
port finder), so `make bench` runs app.py and leaves this file out. For each app concurrency (`--concurrency`, default
1, then 2; the app's own default is 2, or 1 on a one-core machine) a fresh `python app.py` is started on 127.0.0.1,
and:
1. `--users` clients each send `--requests` analyses of one synthetic clip to `/analyze`, one after the other:
   throughput, p50/p95 latency, errors;
2. a burst of `--burst` simultaneous requests against the app's queue (`--queue-size`): how many are answered and
   how many are refused with "queue is full";
3. `--large` onset/apex image pairs of `--large-mp` megapixels through the image tab's event, then a few ordinary
   clips: resident memory before, at the peak and after, to see whether memory is given back;
4. with `--long-minutes` > 0: the same users again while a long video (synthetic, `--long-minutes` long, or
   `--long-video PATH`) is spotted through `/spot`, reported beside the plain figures; then the spot is cancelled and
   the time until its worker process is gone is measured (issue 24: short p95 <= 5 s during a 5-minute spot).
Resident memory is read from /proc (VmRSS sampled every 0.2 s, VmHWM for the peak). Prints JSON.

    .venv/bin/python benchmarks/app.py --load [--users 8] [--requests 5] [--burst 24] [--large 3] [--concurrency 1 2]
        [--long-minutes 5 | --long-video PATH]
    .venv/bin/python benchmarks/app.py --load --soak-minutes 30 --max-sessions 8   (memory over time)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchmarkError, float_in, nonnegative_int, positive_int, refuse_repeats  # noqa: E402


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class MemoryWatch:
    """Samples a process's resident memory in the background; `peak()` since the last `reset()`."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.pid, self.every_s, self._peak = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._peak = max(self._peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(self.every_s)

    def reset(self) -> None:
        self._peak = rss_mb(self.pid)

    def peak(self) -> float:
        return self._peak

    def stop(self) -> None:
        self._stop.set()


def start_app(port: int, concurrency: int, queue_size: int, workdir: Path, max_upload_mb: float,
              *extra: str) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "GLOG_minloglevel": "2", "GRADIO_TEMP_DIR": str(workdir / "gradio-cache")}
    log = open(workdir / f"app_c{concurrency}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                             "--concurrency", str(concurrency), "--queue-size", str(queue_size),
                             "--max-upload-mb", str(max_upload_mb), "--examples", str(workdir / "no_examples"),
                             *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            tail = "\n".join(Path(log.name).read_text(errors="replace").strip().splitlines()[-12:])
            raise BenchmarkError(f"The app (--concurrency {concurrency}) exited with status {proc.returncode} before "
                                 f"it served; the last lines of {log.name}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise BenchmarkError(f"The app did not start within 180 s; see {log.name}.")


def large_pair(folder: Path, megapixels: float) -> tuple[Path, Path]:
    """An onset/apex pair of a synthetic face (AU12) upscaled to about `megapixels`, saved as JPEG."""
    import cv2

    from instruction_data.synth import SynthSpec, render_clip

    clip = render_clip(SynthSpec(subject=0, aus=["12"], n_frames=8, amplitude_px=2.0, frame_size=(320, 240),
                                 face_height_frac=0.7, seed=5))
    scale = (megapixels * 1e6 / (320 * 240)) ** 0.5
    paths = []
    for name, frame in (("large_onset.jpg", clip.frames[clip.onset]), ("large_apex.jpg", clip.frames[clip.apex])):
        big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / name), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(folder / name)
    return paths[0], paths[1]


def _call(url: str, args: tuple, api_name: str) -> tuple[float, str | None]:
    from gradio_client import Client

    t = time.perf_counter()
    try:
        Client(url, verbose=False).predict(*args, api_name=api_name)
        return time.perf_counter() - t, None
    except Exception as err:  # noqa: BLE001 - every failure is counted and its message kept
        return time.perf_counter() - t, f"{type(err).__name__}: {err}"


def _user(url: str, clip: Path, n: int) -> list[tuple[float, str | None]]:
    from gradio_client import Client, handle_file

    client, out = Client(url, verbose=False), []
    for _ in range(n):
        t = time.perf_counter()
        try:
            client.predict(handle_file(str(clip)), None, None, "en", api_name="/analyze")
            out.append((time.perf_counter() - t, None))
        except Exception as err:  # noqa: BLE001
            out.append((time.perf_counter() - t, f"{type(err).__name__}: {err}"))
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))], 3)


def _summary(calls: list[tuple[float, str | None]], wall_s: float) -> dict:
    ok = [t for t, e in calls if e is None]
    errors = [e for _, e in calls if e is not None]
    full = [e for e in errors if "queue is full" in e.lower()]
    return {"requests": len(calls), "answered": len(ok), "errors": len(errors) - len(full),
            "queue_full_refusals": len(full), "wall_s": round(wall_s, 2),
            "throughput_req_s": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
            "latency_s": {"p50": _pct(ok, 0.5), "p95": _pct(ok, 0.95), "max": round(max(ok), 3) if ok else None},
            "error_samples": sorted(set(e[:160] for e in errors if "queue is full" not in e.lower()))[:3]}


def run_one(concurrency: int, args, clip: Path, pair: tuple[Path, Path], workdir: Path, port: int) -> dict:
    from gradio_client import handle_file

    proc = start_app(port, concurrency, args.queue_size, workdir, args.max_upload_mb)
    url = f"http://127.0.0.1:{port}/"
    watch = MemoryWatch(proc.pid)
    report: dict = {"app_concurrency": concurrency, "queue_size": args.queue_size}
    try:
        report["rss_mb_idle_start"] = rss_mb(proc.pid)
        _user(url, clip, 1)  # first request pays for lazy imports; not timed
        report["rss_mb_after_first_request"] = rss_mb(proc.pid)

        watch.reset()
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.users) as pool:
            calls = [c for f in [pool.submit(_user, url, clip, args.requests) for _ in range(args.users)]
                     for c in f.result()]
        report["users"] = {"users": args.users, "requests_each": args.requests,
                           **_summary(calls, time.perf_counter() - t), "rss_mb_peak": watch.peak(),
                           "rss_mb_after": rss_mb(proc.pid)}

        if args.burst:
            watch.reset()
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.burst) as pool:
                calls = list(pool.map(lambda _: _call(url, (handle_file(str(clip)), None, None, "en"), "/analyze"),
                                      range(args.burst)))
            report["burst"] = {**_summary(calls, time.perf_counter() - t), "rss_mb_peak": watch.peak()}

        if args.large:
            before = rss_mb(proc.pid)
            watch.reset()
            calls = [_call(url, (None, handle_file(str(pair[0])), handle_file(str(pair[1])), None, None, "en"),
                           "/analyze_ui") for _ in range(args.large)]
            peak = watch.peak()
            after = rss_mb(proc.pid)
            _user(url, clip, 3)
            time.sleep(3)
            settled = rss_mb(proc.pid)
            report["large_images"] = {
                "pairs": args.large, "megapixels": args.large_mp, **_summary(calls, sum(t for t, _ in calls)),
                "rss_mb_before": before, "rss_mb_peak": peak, "rss_mb_after": after,
                "rss_mb_after_3_clips_and_3_s": settled, "rss_mb_kept": round(settled - before, 1)}
        if args.long_video:
            report["users_during_long_spot"] = _during_spot(url, proc.pid, clip, args)
        report["rss_mb_peak_overall"] = rss_mb(proc.pid, "VmHWM")
    finally:
        watch.stop()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return report


def _workers(pid: int) -> int:
    import psutil

    return sum(1 for c in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline()))


def _during_spot(url: str, pid: int, clip: Path, args) -> dict:
    """The users' load while `/spot` runs on the long video, then the spot cancelled."""
    from gradio_client import Client, handle_file

    job = Client(url, verbose=False).submit(handle_file(str(args.long_video)), api_name="/spot")
    deadline = time.monotonic() + 120
    while not _workers(pid) and time.monotonic() < deadline:  # the worker has started spotting
        time.sleep(0.5)
    time.sleep(5)
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.users) as pool:
        calls = [c for f in [pool.submit(_user, url, clip, args.requests) for _ in range(args.users)]
                 for c in f.result()]
    out = {"users": args.users, "requests_each": args.requests, **_summary(calls, time.perf_counter() - t),
           "long_video": str(args.long_video), "spot_still_running_at_end": not job.done()}
    t = time.perf_counter()
    job.cancel()
    while _workers(pid) and time.perf_counter() - t < 60:
        time.sleep(0.2)
    out["spot_worker_gone_after_cancel_s"] = round(time.perf_counter() - t, 2) if not _workers(pid) else None
    return out


def soak(args, clip: Path, workdir: Path, port: int) -> dict:
    """Rounds of the users' load for `--soak-minutes` against one app with `--max-sessions`: resident memory after
    each round, and its growth over the second half (issue 24: < 5 %). Every user of every round is a new client,
    so a new session: the session store fills to its capacity and then drops the oldest."""
    proc = start_app(port, 1, args.queue_size, workdir, args.max_upload_mb, "--max-sessions", str(args.max_sessions))
    url, rounds, clients = f"http://127.0.0.1:{port}/", [], 0
    try:
        _user(url, clip, 1)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.soak_minutes * 60:
            with concurrent.futures.ThreadPoolExecutor(args.users) as pool:
                calls = [c for f in [pool.submit(_user, url, clip, args.requests) for _ in range(args.users)]
                         for c in f.result()]
            clients += args.users
            rounds.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": rss_mb(proc.pid), "clients": clients,
                           "errors": sum(e is not None for _, e in calls)})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"minutes": args.soak_minutes, "max_sessions": args.max_sessions, "rounds": len(rounds),
            "clients": clients, "errors": sum(r["errors"] for r in rounds), **second_half_growth(rounds, args),
            "series": rounds}


def second_half_growth(rounds: list[dict], args) -> dict:
    """Growth over the second half of the soak, three ways. Resident memory after a round swings by about +-5 %
    (what the allocator has not handed back yet), so the largest value against the first one measures the swing as
    much as any growth; the least-squares trend over the half and the change of the median of its last five rounds
    against its first five measure growth."""
    import numpy as np

    second = [r for r in rounds if r["t_s"] >= args.soak_minutes * 60 / 2]
    if len(second) < 2:
        return {}
    t = np.array([r["t_s"] for r in second])
    y = np.array([r["rss_mb"] for r in second])
    slope = float(np.polyfit(t, y, 1)[0])
    k = min(5, len(y) // 2)
    return {"rss_mb_at_half": float(y[0]), "rss_mb_max_second_half": float(y.max()),
            "rss_growth_second_half_pct": round(float(100 * (y.max() - y[0]) / y[0]), 2),
            "rss_trend_second_half_pct": round(float(100 * slope * (t[-1] - t[0]) / y.mean()), 2),
            "rss_median_change_second_half_pct": round(float(100 * (np.median(y[-k:]) - np.median(y[:k]))
                                                             / np.median(y[:k])), 2)}


def long_video(folder: Path, minutes: float) -> Path:
    """A synthetic interview of `minutes` (480x360, 30 fps; micro- and macro-expressions, blinks, speech, head
    turns)."""
    sys.path.insert(0, str(ROOT))
    from instruction_data.long_synth import LongSpec, make_long_video, write_long_video

    seconds = minutes * 60
    video = make_long_video(LongSpec(seconds=seconds, fps=30, frame_size=(480, 360), n_micro=max(2, int(seconds / 12)),
                                     n_macro=max(1, int(seconds / 30)), n_speech=max(1, int(seconds / 40)),
                                     n_head_turns=max(1, int(seconds / 40)), seed=2024))
    return write_long_video(video, folder / f"interview_{minutes:g}min.mp4")


def main(argv: list[str] | None, make_clip: Callable[[Path], Path], free_port: Callable[[], int]) -> int:
    """Called by benchmarks/app.py --load with its clip maker and port finder."""
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(prog="benchmarks/app.py --load", description=doc_summary(__doc__))
    ap.add_argument("--users", type=positive_int, default=8, help="concurrent users (default 8)")
    ap.add_argument("--requests", type=positive_int, default=5, help="requests per user, one after the other")
    ap.add_argument("--burst", type=nonnegative_int, default=24,
                    help="simultaneous requests in the burst (0: no burst)")
    ap.add_argument("--queue-size", type=positive_int, default=16, help="the app's --queue-size (its default: 16)")
    ap.add_argument("--concurrency", type=positive_int, nargs="+", default=[1, 2],
                    help="app concurrencies to measure (default 1 2)")
    ap.add_argument("--large", type=nonnegative_int, default=3, help="large image pairs sent after the load (0: none)")
    ap.add_argument("--large-mp", type=float_in(0.0, low_open=True), default=24.0,
                    help="megapixels of each large image")
    ap.add_argument("--max-upload-mb", type=float_in(0.0, low_open=True), default=50.0,
                    help="the app's --max-upload-mb (default 50)")
    ap.add_argument("--long-minutes", type=float_in(0.0), default=5.0,
                    help="minutes of synthetic long video spotted during the users' second round (0: no such round)")
    ap.add_argument("--long-video", type=Path, default=None, help="spot this video instead of rendering one")
    ap.add_argument("--soak-minutes", type=float_in(0.0), default=0.0,
                    help="instead of the rounds above: the users' load for this many minutes, memory per round")
    ap.add_argument("--max-sessions", type=positive_int, default=8,
                    help="the app's --max-sessions during --soak-minutes")
    args = ap.parse_args(argv)
    refuse_repeats(ap, "--concurrency", args.concurrency)
    if args.long_video is not None and not args.long_video.is_file():
        ap.error(f"--long-video {args.long_video} is not a file")
    from common import machine

    workdir = Path(tempfile.mkdtemp(prefix="meu_bench_load_"))
    clip = make_clip(workdir)
    if args.soak_minutes > 0:
        print(json.dumps({"benchmark": "app soak: the users' load for minutes against python app.py",
                          "clip": {"frames": 100, "size": "640x480", "synthetic": True}, "soak": soak(
                              args, clip, workdir, free_port()), "logs": str(workdir), "machine": machine()}, indent=2))
        return 0
    pair = large_pair(workdir, args.large_mp) if args.large else (clip, clip)
    if args.long_video is None and args.long_minutes > 0:
        args.long_video = long_video(workdir, args.long_minutes)
    runs = [run_one(c, args, clip, pair, workdir, free_port()) for c in args.concurrency]
    print(json.dumps({
        "benchmark": "app under load: concurrent gradio_client users against python app.py (offline default)",
        "clip": {"frames": 100, "size": "640x480", "synthetic": True, "bytes": clip.stat().st_size},
        "runs": runs, "logs": str(workdir), "machine": machine(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "cpu_time_note": "client threads, the app and every other job on the machine share the same cores",
        "median_latency_s_by_concurrency": {r["app_concurrency"]: r["users"]["latency_s"]["p50"] for r in runs},
        "short_p95_s_during_long_spot_by_concurrency": {
            r["app_concurrency"]: r["users_during_long_spot"]["latency_s"]["p95"] for r in runs
            if "users_during_long_spot" in r},
    }, indent=2))
    return 0



if __name__ == "__main__":
    sys.exit("benchmarks/app_load.py has no command of its own; run the load benchmark as "
             "`benchmarks/app.py --load` (`--load --help` lists its options).")
