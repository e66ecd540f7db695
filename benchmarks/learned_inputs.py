"""What a 0.2 px AU leaves in each learned head's input today (issue 22, item 1): grey levels and SNR at the mouth
corners of a 0.2 px AU12, on the realistic world's calibration split.

    .venv/bin/python benchmarks/learned_inputs.py [--clips 16] [--amplitude 0.2] [--world v2] [--seed 0]

Each clip of the calibration split is rendered twice, through the same draw (subject, head drift and turns, noise,
lighting, JPEG, blinks): once with only AU12 at `--amplitude` px (both sides, at the 256 px working crop) and once
with no AU. For each head's input as it is built today:
- AU-LLM (`input: frames`): the six 64 px grey frames from onset to apex, cropped with the onset face box;
- Micro-AU CLIP (`input: flow_image`): the motion core's registered flow drawn at a fixed 2 px full scale, 224 px;
- Micro-AU CLIP's noise-normalised motion image (`input: motion`, `assistant.au.motion_input`), 224 px;
- for reference, the region table the `rules` detector reads (the motion core at 256 px, noise-normalised).
`signal` is the mean absolute difference between the AU clip's and the null clip's apex input over the two
mouth-corner patches (grey levels; px for the region table). `nuisance` is what changes there without any AU: the
null clip's apex minus onset (frames), the null clip's drawn flow (flow image), the null clip's image against a still
one (motion image), the null clip's region motion (region table). `snr` = signal / nuisance, per clip; the JSON
gives the median and quartiles. Synthetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BenchmarkError,
    calibration_record,
    emit,
    float_in,
    nonnegative_int,
    positive_int,
    run_main,
)

CORNERS = (48, 54)  # 68-point mouth corners
PATCH_FRAC = 0.035  # patch half-size as a fraction of the crop side (about 9 px at 256)


def _patch_mean(image: np.ndarray, points: np.ndarray, scale: float) -> float:
    """Mean of `image` (H, W[, C]) over square patches around the mouth corners (`points` in 256 px crop units)."""
    side = image.shape[0]
    half = max(1, round(PATCH_FRAC * side))
    vals = []
    for k in CORNERS:
        x, y = (points[k] * scale).round().astype(int)
        vals.append(image[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1].mean())
    return float(np.mean(vals))


def _quartiles(values: list[float]) -> dict:
    q = np.percentile(values, [25, 50, 75])
    return {"median": round(float(q[1]), 3), "q25": round(float(q[0]), 3), "q75": round(float(q[2]), 3)}


def one_clip(index: int, args) -> dict | None:
    from assistant.au import AU
    from assistant.au.microau_clip import FULL_SCALE_PX
    from assistant.au.microau_clip_io import flow_image
    from assistant.au.motion_input import STILL, motion_image
    from assistant.au.preprocess import clip_tensor, face_crop_grey, span_indices
    from assistant.errors import MEUError
    from assistant.motion.analyze import MotionConfig, analyze_frames
    from instruction_data.realistic import draw_spec, render_realistic
    from instruction_data.synth import AUMotion

    spec = draw_spec(index, "calibration", args.seed, world=args.world)
    au12 = dataclasses.replace(spec, motions=(AUMotion(AU.parse("12"), args.amplitude),))
    null = dataclasses.replace(spec, motions=())
    au_clip, null_clip = render_realistic(au12), render_realistic(null)
    span = span_indices(spec.onset, spec.apex)
    try:
        au_crops = face_crop_grey([au_clip.frames[i] for i in span])
        null_crops = face_crop_grey([null_clip.frames[i] for i in span])
        au_motion = analyze_frames(au_clip.frames[spec.onset], au_clip.frames[spec.apex], MotionConfig())
        null_motion = analyze_frames(null_clip.frames[spec.onset], null_clip.frames[spec.apex], MotionConfig())
    except MEUError:
        return None
    points = null_motion.crop_landmarks.points68  # onset landmarks at the 256 px crop; the 64 px box is the same one
    x_au, x_null = clip_tensor(au_crops) * 255.0, clip_tensor(null_crops) * 255.0
    frames_signal = _patch_mean(np.abs(x_au[-1] - x_null[-1]), points, 64 / 256)
    frames_nuisance = _patch_mean(np.abs(x_null[-1] - x_null[0]), points, 64 / 256)
    img_au = flow_image(au_motion.field.flow, FULL_SCALE_PX, 224).astype(np.float32)
    img_null = flow_image(null_motion.field.flow, FULL_SCALE_PX, 224).astype(np.float32)
    flow_signal = _patch_mean(np.abs(img_au - img_null), points, 224 / 256)
    flow_nuisance = _patch_mean(img_null.max(axis=2), points, 224 / 256)  # HSV value: the drawn magnitude
    mot_au = motion_image(au_motion.field, 224).astype(np.float32)
    mot_null = motion_image(null_motion.field, 224).astype(np.float32)
    motion_signal = _patch_mean(np.abs(mot_au - mot_null), points, 224 / 256)
    motion_nuisance = _patch_mean(np.abs(mot_null - np.array(STILL, np.float32)), points, 224 / 256)

    def corners(analysis) -> tuple[float, float]:
        rows = [r for r in analysis.regions if r.region == "mouth_corner"]
        return float(np.mean([r.motion_px for r in rows])), float(np.mean([r.snr for r in rows]))

    (au_px, au_snr), (null_px, null_snr) = corners(au_motion), corners(null_motion)
    return {"index": index,
            "frames": {"signal": frames_signal, "nuisance": frames_nuisance,
                       "snr": frames_signal / max(frames_nuisance, 1e-6)},
            "flow_image": {"signal": flow_signal, "nuisance": flow_nuisance,
                           "snr": flow_signal / max(flow_nuisance, 1e-6)},
            "motion_image": {"signal": motion_signal, "nuisance": motion_nuisance,
                             "snr": motion_signal / max(motion_nuisance, 1e-6)},
            "regions": {"signal_px": au_px, "nuisance_px": null_px, "snr_au": au_snr, "snr_null": null_snr}}


def main(argv: list[str] | None = None) -> int:
    from assistant.config import doc_summary

    ap = argparse.ArgumentParser(description=doc_summary(__doc__))
    ap.add_argument("--clips", type=positive_int, default=16,
                    help="calibration clips rendered as AU12 / null twins (clips 0..N-1; default 16)")
    ap.add_argument("--amplitude", type=float_in(0.0, low_open=True), default=0.2,
                    help="AU12 amplitude in px at the 256 px working crop, above 0 (default 0.2)")
    ap.add_argument("--world", default="v2", choices=["v1", "v2"], help="realistic world version (default v2)")
    ap.add_argument("--seed", type=nonnegative_int, default=0, help="the calibration split's stream seed (default 0)")
    args = ap.parse_args(argv)
    calibration = calibration_record()  # the region table's SNRs follow its noise weight; a bad folder stops here
    rows = [r for r in (one_clip(i, args) for i in range(args.clips)) if r is not None]
    if not rows:
        raise BenchmarkError(f"No face was found on any of the {args.clips} clips, so nothing was measured; use a "
                             "larger --clips.")
    summary = {}
    for head in ("frames", "flow_image", "motion_image"):
        summary[head] = {k: _quartiles([r[head][k] for r in rows]) for k in ("signal", "nuisance", "snr")}
    summary["regions"] = {k: _quartiles([r["regions"][k] for r in rows])
                          for k in ("signal_px", "nuisance_px", "snr_au", "snr_null")}
    emit("learned_inputs", {
        "data": f"synthetic, realistic world {args.world}, calibration split, seed {args.seed}, clips "
                f"0-{args.clips - 1} as AU12 {args.amplitude} px / null twins", "clips_measured": len(rows),
        "units": "frames and flow_image: grey levels (0-255) over the mouth-corner patches; regions: px at 256",
        "calibration": calibration, "summary": summary, "clips": rows})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
