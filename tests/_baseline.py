"""Run a script in a child process under OpenCV's and numpy's baseline x86-64 code paths (no dispatched SIMD, no
IPP), which every x86-64 machine runs alike: stored frame hashes are taken and checked this way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_PATHS = {"OPENCV_CPU_DISABLE": "AVX512-SKX,AVX2,FP16,AVX,SSE4.2,SSE4.1", "OPENCV_IPP": "disabled",
                  "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}


def run_on_baseline_paths(script: str) -> dict:
    """The JSON object the script prints last."""
    env = {**os.environ, **BASELINE_PATHS, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
