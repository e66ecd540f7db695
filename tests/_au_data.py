"""Shared helpers of the AU tests."""

from __future__ import annotations

import math
from pathlib import Path

from assistant.facs import REGION_NAMES, SIDED_REGIONS
from assistant.types import RegionMotion


def region_table(moves: dict, snr: float = 0.0) -> list[RegionMotion]:
    """Every region still except those in `moves`: (region, side) -> (dx, dy) image pixels at the 256 px crop;
    `snr` > 0 gives each region that SNR per pixel of motion (0: no SNR, the gate is open)."""
    out = []
    for region in REGION_NAMES:
        for side in (("L", "R") if region in SIDED_REGIONS else (None,)):
            dx, dy = moves.get((region, side), (0.0, 0.0))
            px = math.hypot(dx, dy)
            out.append(RegionMotion(region, side, dx, dy, px, px, "up", "purple", "moderate" if px else "none", 1.0,
                                    snr=snr * px))
    return out


def tiny_llm(tmp_path_factory) -> Path:
    """The tiny Qwen2 backbone, built once per test session (the folder is reused when already there)."""
    from finetune.tiny_llm import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.getbasetemp() / "tiny_llm")
