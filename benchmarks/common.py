"""What every benchmark prints beside its figures (the machine it ran on, the spread over seeds, the calibration it
scored with), and how every benchmark refuses bad input: argparse types and `run_main`, before any work."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata

from assistant.errors import MEUError


def machine() -> dict:
    import cv2
    import numpy as np

    info = {
        "platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(),
        "numpy": np.__version__,
    }
    try:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except ImportError:
        pass
    for name in ("mediapipe", "gradio", "transformers", "trl", "peft"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as fh:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:
        pass
    return info


def spread(values: list[float | None], digits: int = 4) -> dict | None:
    """Mean, sample standard deviation (None from a single value), range and the values themselves, for figures
    measured over several seeds. A None among `values` (a figure a seed could not measure, e.g. the null share of a
    seed without a null clip) is left out and `n` counts the rest; None when nothing is left."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"mean": round(statistics.fmean(vals), digits),
            "std": round(statistics.stdev(vals), digits) if len(vals) > 1 else None,
            "min": round(min(vals), digits), "max": round(max(vals), digits), "n": len(vals),
            "values": [round(v, digits) for v in vals]}


def determinism() -> dict:
    """What a rerun holds fixed and what it does not, as far as this process can tell."""
    info = {env: os.environ.get(env) for env in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                  "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")}
    try:
        import cv2

        info["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        pass
    try:
        import torch

        info.update(torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads(),
                    torch_deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
                    torch_blas=_torch_blas(torch), torch_cpu_capability=torch.backends.cpu.get_cpu_capability())
    except ImportError:
        pass
    return info


def _torch_blas(torch) -> str:
    config = torch.__config__.show()
    for key in ("BLAS_INFO=", "LAPACK_INFO="):
        if key in config:
            return config.split(key, 1)[1].split(",", 1)[0].strip()
    return "unknown"


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def emit(name: str, figures: dict) -> None:
    """Print the benchmark's JSON document on stdout."""
    json.dump({"benchmark": name, "machine": machine(), "figures": figures}, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ---- refusing bad input before any work (project rule: one sentence, never a traceback) ----

def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` for a whole number of at least `minimum`: the parser refuses anything else in one sentence
    ("argument --runs: must be at least 1, not 0") before the benchmark starts."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)  # also every seed: NumPy's generators refuse negative ones deep in a run


def float_in(low: float, high: float | None = None, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
    """An argparse `type` for a finite number in the interval from `low` to `high` (None: no upper limit), each end
    closed unless said open."""
    interval = (f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g}'}"
                f"{'' if high is None else ')' if high_open else ']'}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = math.isfinite(value) and (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
        if not inside:
            raise argparse.ArgumentTypeError(f"must lie in {interval}, not {text}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def refuse_repeats(parser: argparse.ArgumentParser, flag: str, values: list) -> None:
    """Refuse a list option that names a value twice (`--seeds 0 0` ran everything and then failed on the second)."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        parser.error(f"{flag} names {', '.join(map(str, repeated))} more than once; give each value once")


class BenchmarkError(MEUError):
    """A benchmark cannot run or finish as asked (a child process failed, the data under --out differ)."""


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a benchmark's `main` as `meu` runs a command (`assistant.cli.run_command`: a `MEUError`, such as a failed
    child process, is one "error: ..." line with exit status 1); argparse's own refusals keep their status 2."""
    from assistant.cli import run_command

    return run_command(main, argv)


def run_child(cmd: list[str], what: str, tail_lines: int = 12, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process with its stderr captured; when it fails, raise `BenchmarkError` with the last lines of that
    stderr (what went wrong in it) instead of a bare CalledProcessError."""
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, **kwargs)
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-tail_lines:]) or "(it wrote nothing on stderr)"
        raise BenchmarkError(f"{what} failed with exit status {proc.returncode}; the last lines of its stderr:\n{tail}")
    return proc


# the calibration files a detector reads besides the rules' (what `meu eval` records for each detector)
FUSION_READS = ("blendshapes_noise.json", "fusion_weights.json")


def calibration_record(fusion: bool = False) -> dict:
    """Which calibration the figures were scored with (`MEU_CALIBRATION` or the shipped files): its folder and a
    hash of the rules' files, and of the fusion files with `fusion`. Called before any work, so a bad folder is
    refused up front (`ConfigError`)."""
    from assistant import calibration

    return calibration.record(calibration.RULES_FILES + (FUSION_READS if fusion else ()))
