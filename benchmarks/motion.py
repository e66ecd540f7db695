"""Motion core speed and memory: per-stage times per onset/apex pair, the published recipe side by side, and a
3,000-frame video with apex spotting.

    .venv/bin/python benchmarks/motion.py [--repeat 5] [--long-frames 3000]

Targets on the 2-core build machine: total with TV-L1 <= 0.333 s median for a 640x480 pair (the release before
registration), with DIS <= 0.1 s; a 3,000-frame 640x480 video with apex spotting: peak resident memory <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, median_time, positive_int, run_child, run_main  # noqa: E402

from assistant.motion.analyze import MotionConfig, analyze_frames  # noqa: E402
from assistant.motion.clip import write_video  # noqa: E402
from assistant.motion.depth import depth_map  # noqa: E402
from assistant.motion.face import crop_box, detect_face, landmarks_in_crop  # noqa: E402
from assistant.motion.flow import compensate, compute_flow  # noqa: E402
from assistant.motion.gaze import eye_openings  # noqa: E402
from assistant.motion.mmc import mmc_map  # noqa: E402
from assistant.motion.noise import noise_from_stable  # noqa: E402
from assistant.motion.regions import face_region_masks, region_motion  # noqa: E402
from assistant.motion.register import face_mask, register_pair, stable_mask  # noqa: E402
from instruction_data.synth import SynthSpec, render_clip  # noqa: E402


def synthetic_pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    clip = render_clip(SynthSpec(aus=["6", "12"], n_frames=12, onset=0, apex=6, offset=11,
                                 frame_size=(width, height), face_height_frac=0.55, seed=1))
    return clip.frames[clip.onset], clip.frames[clip.apex]


def stage_times(onset: np.ndarray, apex: np.ndarray, repeat: int) -> dict:
    lm = detect_face(onset)
    box = crop_box(lm)
    crop_lm = landmarks_in_crop(lm, box)
    shape = (box.size, box.size)
    stable = stable_mask(crop_lm.points68, shape, crop_lm.points)
    face = face_mask(crop_lm.points68, shape, crop_lm.points) & ~eye_openings(crop_lm.points68, shape)
    apex_lm = detect_face(apex)
    depth = depth_map(crop_lm, shape)
    on_c, ap_c, _ = register_pair(onset, apex, lm, apex_lm, box, stable, depth)
    flow = compute_flow(on_c, ap_c, "tvl1")
    comp, _ = compensate(flow, crop_lm.points68, "register", stable, depth)
    masks = face_region_masks(crop_lm.points68, face)
    figures = {
        "landmarks_both_frames_s": median_time(lambda: (detect_face(onset), detect_face(apex)), repeat),
        "masks_s": median_time(lambda: (stable_mask(crop_lm.points68, shape, crop_lm.points),
                                        face_mask(crop_lm.points68, shape, crop_lm.points)
                                        & ~eye_openings(crop_lm.points68, shape)), repeat),
        "depth_map_s": median_time(lambda: depth_map(crop_lm, shape), repeat),
        "register_s": median_time(lambda: register_pair(onset, apex, lm, apex_lm, box, stable, depth), repeat),
        "register2d_s": median_time(lambda: register_pair(onset, apex, lm, apex_lm, box, stable), repeat),
        "flow_tvl1_s": median_time(lambda: compute_flow(on_c, ap_c, "tvl1"), repeat),
        "flow_dis_s": median_time(lambda: compute_flow(on_c, ap_c, "dis"), repeat),
        "residual_compensation_s": median_time(
            lambda: compensate(flow, crop_lm.points68, "register", stable, depth), repeat),
        "noise_floor_stable_area_s": median_time(lambda: noise_from_stable(comp, stable, crop_lm.points68), repeat),
        "map_s": median_time(lambda: mmc_map(on_c, comp, mask=face), repeat),
        "regions_s": median_time(lambda: region_motion(comp, crop_lm.points68, masks, 0.02), repeat),
        "total_tvl1_s": median_time(lambda: analyze_frames(onset, apex, MotionConfig(flow="tvl1")), repeat),
        "total_dis_s": median_time(lambda: analyze_frames(onset, apex, MotionConfig(flow="dis")), repeat),
    }
    return {k: round(v, 4) for k, v in figures.items()}


def published_recipe(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """MELLM as published: TV-L1 on the whole grey frame, nose-window compensation, min-max map."""
    lm = detect_face(onset)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (onset, apex)]
    flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(*grey, None)  # OpenCV's defaults, as published
    flow, _ = compensate(flow, lm.points68, "nose")
    return mmc_map(onset, flow, "mellm")


def long_video_child(path: str) -> None:
    """Runs in a fresh process so that its peak resident memory is the analysis's alone."""
    from assistant.motion.analyze import analyze_clip

    t = time.perf_counter()
    analysis = analyze_clip(path)
    elapsed = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": round(elapsed, 2), "peak_rss_mb": round(peak_kib / 1024, 1),
                      "apex_found": analysis.clip.apex, "n_frames": analysis.clip.n_frames}))


EXPRESSION_FRAMES = 40  # the AU1+AU2 clip of the long video, placed from two thirds of the way in


def expression_start(n_frames: int) -> int:
    return n_frames * 2 // 3


def fewest_long_frames() -> int:
    """The shortest long video whose last third holds the whole expression (a shorter one cut it, and reported a
    true apex at or past the video's end)."""
    return next(n for n in range(1, 10 * EXPRESSION_FRAMES) if n - expression_start(n) >= EXPRESSION_FRAMES)


def long_video(n_frames: int, folder: Path) -> dict:
    clip = render_clip(SynthSpec(aus=["1", "2"], n_frames=EXPRESSION_FRAMES, onset=0, apex=20,
                                 offset=EXPRESSION_FRAMES - 1, amplitude_px=2.0, frame_size=(640, 480), seed=3))
    start = expression_start(n_frames)
    rng = np.random.default_rng(0)
    noise = [rng.integers(-1, 2, clip.frames[0].shape, dtype=np.int16) for _ in range(7)]  # sensor noise, cycled

    def frames():
        for i in range(n_frames):
            k = i - start
            base = clip.frames[k] if 0 <= k < len(clip.frames) else clip.frames[0]
            yield np.clip(base + noise[i % len(noise)], 0, 255).astype(np.uint8)

    path = folder / "long.mp4"
    t = time.perf_counter()
    write_video(frames(), path, fps=200)
    write_s = time.perf_counter() - t
    out = run_child([sys.executable, __file__, "--child", str(path)], "the long video's analysis",
                    stdout=subprocess.PIPE)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(true_apex=start + clip.apex, video_mb=round(path.stat().st_size / 2**20, 1),
                  write_s=round(write_s, 1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=positive_int, default=5,
                        help="timed runs per stage, the median reported (one warm-up run before; default 5)")
    parser.add_argument("--long-frames", type=positive_int, default=3000,
                        help=f"frames of the long 640x480 video with apex spotting (at least {fewest_long_frames()}, "
                             "room for its expression; default 3000)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        long_video_child(args.child)
        return 0
    if args.long_frames < fewest_long_frames():
        parser.error(f"--long-frames {args.long_frames} is too short to hold the {EXPRESSION_FRAMES}-frame expression "
                     f"in its last third; give {fewest_long_frames()} or more")
    cv2.setNumThreads(2)
    figures: dict = {"data": "synthetic clips (instruction_data.synth), AU6+AU12"}
    for w, h in ((640, 480), (256, 256)):
        onset, apex = synthetic_pair(w, h)
        figures[f"pair_{w}x{h}"] = stage_times(onset, apex, args.repeat)
    onset, apex = synthetic_pair(640, 480)
    published = median_time(lambda: published_recipe(onset, apex), args.repeat)
    ours = figures["pair_640x480"]["total_tvl1_s"]
    figures["published_vs_crop_first_640x480"] = {
        "published_whole_frame_s": round(published, 4), "crop_first_s": ours,
        "speedup": round(published / ours, 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures[f"long_video_{args.long_frames}_frames_640x480"] = long_video(args.long_frames, Path(tmp))
    figures["targets"] = {"total_tvl1_640x480_s": 0.333, "total_dis_640x480_s": 0.1, "long_video_peak_rss_mb": 1536}
    emit("motion", figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
