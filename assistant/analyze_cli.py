"""`meu analyze`: one clip to an MMC map, a landmarks overlay, the region table and a summary."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from assistant import calibration
from assistant.au.blendshapes import analysis_blendshapes
from assistant.config import add_dataclass_arguments
from assistant.files import output_folder, save_png, write_json
from assistant.motion.analyze import MotionConfig, analyze_clip
from assistant.motion.mmc import draw_landmarks, with_legend
from assistant.motion.regions import face_region_masks
from assistant.types import MotionAnalysis

DESCRIPTION = """Analyse one micro-expression clip: find the face, measure the motion between the onset and apex
frames, and write mmc_map.png, mmc_map_legend.png, landmarks.png, regions.json and summary.json into --out.
CLIP is a video file (mp4, avi, webm, mov), a folder of frames, or an onset image (then give APEX_IMAGE too).
Without --apex the apex is spotted as the frame that differs most from its local baseline (drift cancels out). The
apex face is registered onto the onset face before the flow, only pixels inside the face are measured, and every
region reports its motion in px and its signal-to-noise ratio against the clip's own noise floor. With --offset, the
share of the onset -> offset motion reached at the apex (slow drift: the expression has gone by the offset) is taken
out where that leaves the face clearly stiller."""


def summary_dict(analysis: MotionAnalysis, source: str, apex_image: str | None) -> dict:
    clip = analysis.clip
    return {
        "input": {"clip": source, "apex_image": apex_image, "n_frames": clip.n_frames, "fps": clip.fps},
        "onset": clip.onset, "apex": clip.apex, "offset": clip.offset, "apex_spotted": clip.apex_spotted,
        "apex_found": clip.apex_found,
        "motion_curve": {"frames": clip.curve_frames.tolist(),
                         "values": [round(float(v), 4) for v in clip.motion_curve]}
        if clip.motion_curve is not None else None,
        "face_box": [round(v, 1) for v in analysis.landmarks.box],
        "crop_box": [analysis.crop.x0, analysis.crop.y0, analysis.crop.x1, analysis.crop.y1, analysis.crop.size],
        "faces_found": analysis.landmarks.n_faces,
        "head_motion": {k: round(v, 4) for k, v in analysis.field.head_motion.items()},
        "registration": analysis.field.registration,
        "head_model": analysis.field.head_model,
        "drift": {k: round(v, 4) for k, v in analysis.field.drift.items()},
        "noise_floor_px": round(analysis.field.noise_px, 4), "noise_source": analysis.field.noise_source,
        "timings_s": {k: round(v, 4) for k, v in analysis.timings.items()},
        "backends": analysis.backends,
        "moving_regions": [r.label for r in analysis.moving_regions()],
        "blendshapes": analysis_blendshapes(analysis),
        "warnings": analysis.warnings,
    }


def write_outputs(analysis: MotionAnalysis, out: Path, source: str, apex_image: str | None,
                  full_scale_px: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    save_png(out / "mmc_map.png", analysis.mmc_map)
    save_png(out / "mmc_map_legend.png", with_legend(analysis.mmc_map, full_scale_px, analysis.mmc_mode))
    points = analysis.crop_landmarks.points68
    masks = face_region_masks(points, analysis.field.face_mask, analysis.onset_crop.shape[:2])
    save_png(out / "landmarks.png", draw_landmarks(analysis.onset_crop, points, masks))
    write_json(out / "regions.json", [r.to_dict() for r in analysis.regions])
    summary = summary_dict(analysis, source, apex_image)
    write_json(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meu analyze", description=DESCRIPTION)
    parser.add_argument("clip", help="video file, frame folder, or onset image")
    parser.add_argument("apex_image", nargs="?", help="apex image (when CLIP is an onset image)")
    parser.add_argument("--onset", type=int, help="onset frame index (0-based; default 0)")
    parser.add_argument("--apex", type=int, help="apex frame index (default: spotted automatically)")
    parser.add_argument("--offset", type=int, help="offset frame index, where the expression has gone: limits apex "
                        "spotting, and slow drift is cancelled with it (--drift)")
    parser.add_argument("--out", default="outputs/analyze", help="output folder (default: outputs/analyze)")
    add_dataclass_arguments(parser, MotionConfig)
    calibration.add_argument(parser)
    ns = parser.parse_args(argv)
    calibration.apply(ns)
    cfg = MotionConfig(**{k: v for k, v in vars(ns).items() if k in MotionConfig.__dataclass_fields__})
    out = output_folder(ns.out)
    t = time.perf_counter()
    analysis = analyze_clip(ns.clip, ns.apex_image, onset=ns.onset, apex=ns.apex, offset=ns.offset, config=cfg)
    summary = write_outputs(analysis, out, ns.clip, ns.apex_image, cfg.full_scale_px)
    elapsed = time.perf_counter() - t
    spotted = " (spotted)" if analysis.clip.apex_spotted else ""
    print(f"clip: {ns.clip}  onset {analysis.clip.onset} -> apex {analysis.clip.apex}{spotted}")
    print(f"backends: {', '.join(f'{k}={v}' for k, v in analysis.backends.items())}")
    moving = analysis.moving_regions()
    if moving:
        print("moving regions:")
        for r in sorted(moving, key=lambda r: -r.snr):
            print(f"  {r.label:<22} {r.direction:<10} {r.colour:<12} {r.intensity:<8} {r.dx:+.3f},{r.dy:+.3f} px  "
                  f"SNR {r.snr:.1f}")
    else:
        print("no region moved above the noise floor")
    print(f"noise floor {analysis.field.noise_px:.3f} px ({analysis.field.noise_source}); head motion removed: "
          + ", ".join(f"{k} {v:+.3f}" for k, v in analysis.field.head_motion.items()))
    drift = analysis.field.drift
    if drift:
        verdict = "cancelled" if drift["cancelled"] else "left (cancelling it did not leave the face clearly stiller)"
        print(f"drift: {drift['share']:.2f} of the onset -> offset motion {verdict}; median face motion "
              f"{drift['stillness_px']:.3f} px, {drift['cancelled_stillness_px']:.3f} px with it cancelled")
    for w in summary["warnings"]:
        print(f"note: {w}")
    print(f"wrote mmc_map.png, mmc_map_legend.png, landmarks.png, regions.json, summary.json to {out} "
          f"in {elapsed:.2f} s")
    return 0
