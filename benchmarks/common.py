"""What every benchmark prints beside its figures: the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata


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


def spread(values: list[float], digits: int = 4) -> dict:
    """Mean, sample standard deviation, range and the values themselves, for figures measured over several seeds."""
    vals = [float(v) for v in values]
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
