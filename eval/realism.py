"""Measurements on the realistic synthetic world (`instruction_data.realistic`), shared by `meu calibrate` and
`benchmarks/realism.py`.

One clip's measurement is the motion core's region table (px and SNR) for its labelled onset and apex, with the
frame before the onset as the null pair, plus the clip's ground truth. The table does not depend on any detector
setting, so it is cached (one JSON file per clip, written atomically) and every refit or rerun of a detector reads it
back instead of rendering and running TV-L1 again. A cached table is reused only for the same world, the same
`CACHE_VERSION` and the same motion settings (`motion_settings_key`: the default `MotionConfig`, the flow's and the
head-model switch's constants). Figures computed from it are synthetic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant.files import write_json
from assistant.motion import noise
from assistant.motion.analyze import MotionConfig, analyze_frames
from assistant.types import RegionMotion
from instruction_data.realistic import draw_spec, render_realistic

log = logging.getLogger(__name__)

# bump when the tables' format changes (8: rigid3d fitted with and without the nose bridge; 9: the eyes' openings
# left out of the face mask); a change of what the motion core measures changes `MOTION_CORE`, which is in the key
CACHE_VERSION = 9


@dataclass
class ClipMeasure:
    split: str
    index: int
    seed: int
    aus: list[str]  # ground truth, sheet strings such as "L4D"
    codes: list[int]
    amplitudes_px: list[float]
    regions: list[dict]  # RegionMotion.to_dict() rows
    noise_px: float
    size: int
    head_motion: dict[str, float] = field(default_factory=dict)
    noise_estimates: dict[str, float] = field(default_factory=dict)
    world: str = "v1"
    settings: str = ""  # motion_settings_key() when measured
    version: int = CACHE_VERSION

    @property
    def is_null(self) -> bool:
        return not self.codes

    def region_rows(self) -> list[RegionMotion]:
        keys = {f.name for f in dataclasses.fields(RegionMotion)}
        return [RegionMotion(**{k: v for k, v in row.items() if k in keys}) for row in self.regions]


def motion_settings_key(config: MotionConfig | None = None, world: str = "v1") -> str:
    """A short hash of what the cached tables depend on besides the world and the code version: the motion settings
    and the source of world v2's renderer (and for world v3 its light's)."""
    from assistant.motion import analyze, flow, gaze

    root = Path(__file__).resolve().parents[1] / "instruction_data"
    motion = dataclasses.asdict(config or MotionConfig())
    motion.pop("drift")  # the pairs measured here have no offset frame, so the drift setting never acts on them
    settings = {"config": motion, "motion_core": analyze.MOTION_CORE, "tvl1": flow.TVL1_SETTINGS,
                "rigid3d_stiller": analyze.RIGID3D_STILLER,
                "eye_opening_margin": gaze.opening_margin(motion.pop("eyes")),
                "world_v2": hashlib.sha256((root / "world_v2.py").read_bytes()
                                           + (root / "head_turn.py").read_bytes()).hexdigest()}
    if world == "v3":
        settings["world_v3"] = hashlib.sha256((root / "world_v3.py").read_bytes()
                                              + (root / "shading.py").read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def measure_clip(split: str, index: int, seed: int = 0, config: MotionConfig | None = None,
                 world: str = "v1") -> ClipMeasure:
    """Render the frames the measurement needs (null, onset, apex) and run the motion core on them."""
    spec = draw_spec(index, split, seed, world=world)
    clip = render_realistic(spec, only=[spec.onset - 1, spec.onset, spec.apex] if spec.onset > 0 else
                            [spec.onset, spec.apex])
    null = clip.frames[clip.onset - 1] if clip.onset > 0 else None
    analysis = analyze_frames(clip.frames[clip.onset], clip.frames[clip.apex], config, null_frame=null)
    return ClipMeasure(split=split, index=index, seed=seed, aus=[str(a) for a in clip.aus],
                       codes=sorted({a.code for a in clip.aus if a.code is not None}),
                       amplitudes_px=[float(v) for v in clip.amplitudes_px],
                       regions=[r.to_dict() for r in analysis.regions], noise_px=float(analysis.field.noise_px),
                       size=analysis.crop.size, head_motion=dict(analysis.field.head_motion),
                       noise_estimates=dict(analysis.field.noise_estimates), world=world,
                       settings=motion_settings_key(config, world))


def with_stable_weight(measures: list[ClipMeasure], weight: float) -> list[ClipMeasure]:
    """The measurements as the motion core would give them with the noise weight `weight`: same flow, new floor,
    new region SNRs."""
    out = []
    for m in measures:
        rows, floor = regions_at_weight(m.regions, m.noise_estimates, m.noise_px, m.size, weight)
        out.append(dataclasses.replace(m, regions=rows, noise_px=floor))
    return out


def regions_at_weight(regions: list[dict], estimates: dict[str, float], noise_px: float, size: int,
                      weight: float) -> tuple[list[dict], float]:
    """A region table (`RegionMotion.to_dict` rows) and its floor with the noise weight `weight`: same flow, new
    floor, new SNRs."""
    floor, _ = noise.combine_floors(estimates, weight)
    floor = max(floor or noise_px, noise.FLOOR_MIN_PX * size / noise.REFERENCE_SIZE)
    return [{**r, "snr": math.hypot(r["dx"], r["dy"]) / floor} for r in regions], floor


def _cache_file(cache: Path, split: str, index: int, seed: int, world: str) -> Path:
    return cache / f"{split}_{world}_s{seed}_{index:04d}.json"


def split_labels(split: str, n: int, seed: int = 0, world: str = "v1") -> tuple[int, dict[int, int]]:
    """Null clips and clips per AU code among clips 0..n-1 of `split`, from the drawn specs alone (no rendering):
    what a calibration can learn from is known before anything is measured."""
    from collections import Counter

    codes = [{m.au.code for m in draw_spec(i, split, seed, world=world).motions} for i in range(n)]
    return sum(not c for c in codes), dict(Counter(code for c in codes for code in c))


def _load(path: Path, settings: str) -> ClipMeasure | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # cut short (a full disk, a killed copy): measured again and written whole
        log.warning("%s cannot be read; that clip is measured again", path)
        return None
    if data.get("version") != CACHE_VERSION or data.get("settings") != settings:
        return None
    return ClipMeasure(**data)


def _measure_to(args: tuple[str, int, int, str | None, str]) -> ClipMeasure:
    split, index, seed, cache, world = args
    m = measure_clip(split, index, seed, world=world)
    if cache:
        write_json(_cache_file(Path(cache), split, index, seed, world), dataclasses.asdict(m))
    return m


def measure_split(split: str, n: int, seed: int = 0, cache: str | Path | None = None,
                  workers: int = 1, world: str = "v1") -> list[ClipMeasure]:
    """Measurements of clips 0..n-1 of `split`, from the cache where present (progress bar; resumable). The floors
    and SNRs follow the noise weight in force (`noise.stable_weight_now`), whatever it was when a clip was measured."""
    cache_dir = Path(cache) if cache else None
    settings = motion_settings_key(world=world)
    out: dict[int, ClipMeasure] = {}
    todo = []
    for i in range(n):
        hit = _load(_cache_file(cache_dir, split, i, seed, world), settings) if cache_dir else None
        if hit is not None:
            out[i] = hit
        else:
            todo.append((split, i, seed, str(cache_dir) if cache_dir else None, world))
    log.info("%s split: %d clips cached, %d to measure", split, len(out), len(todo))
    if todo:
        bar = tqdm(total=len(todo), desc=f"measuring {split} clips", unit="clip")
        if workers > 1:
            # spawned, not forked: a fork after OpenCV's or mediapipe's thread pools started can deadlock the child
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for m in pool.map(_measure_to, todo):
                    out[m.index] = m
                    bar.update()
        else:
            for args in todo:
                m = _measure_to(args)
                out[m.index] = m
                bar.update()
        bar.close()
    return with_stable_weight([out[i] for i in range(n)], noise.stable_weight_now())
