"""Start the real app (`python app.py`) in a subprocess on a free 127.0.0.1 port, for the browser and client tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    examples: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_examples(folder: Path) -> Path:
    """Two small synthetic clips and one onset/apex image pair (the demo's examples, smaller to keep tests quick)."""
    from assistant.demo import EXAMPLES
    from assistant.files import save_png
    from assistant.motion.clip import write_video
    from instruction_data.synth import SynthSpec, make_subjects, render_clip

    folder.mkdir(parents=True, exist_ok=True)
    subjects = make_subjects(2, seed=0)
    for ex, seed in ((EXAMPLES[0], 0), (EXAMPLES[1], 1)):
        clip = render_clip(SynthSpec(subject=subjects[ex.subject % 2], aus=list(ex.aus), n_frames=16, amplitude_px=2.0,
                                     frame_size=(320, 240), face_height_frac=0.7, seed=seed))
        write_video(clip.frames, folder / f"{ex.name}.mp4", fps=30)
        if seed == 0:
            save_png(folder / f"{ex.name}_onset.png", clip.frames[clip.onset])
            save_png(folder / f"{ex.name}_apex.png", clip.frames[clip.apex])
    return folder


@contextlib.contextmanager
def start_app(workdir: Path, *extra: str, timeout: float = 90.0) -> Iterator[AppServer]:
    examples = make_examples(workdir / "examples")
    port = free_port()
    log_path = workdir / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                 "--examples", str(examples), *extra], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    server = AppServer(url, proc, log_path, examples)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app did not start within {timeout:.0f} s:\n{server.log()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
