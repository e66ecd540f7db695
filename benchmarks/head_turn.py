"""Still faces turned out of plane, and the same turns with an AU: 3-D head-motion compensation against the 2-D one.

Synthetic: the benchmark split's face photos (instruction_data.photos; the calibration photo chose the head-model
switch, `assistant.motion.analyze.RIGID3D_STILLER`) turned rigidly by pitch and yaw through a depth the analysis
never sees (the mesh's, scaled by 0.8 or 1.25 and bent by a smooth wave, instruction_data/head_turn.py), with a
still background. Per compensation (`register`: rigid3d when it leaves the face stiller, `register2d`: the
similarity): for still faces the worst region's residual motion (px at 256) and the share given any AU by `rules`;
for faces with one AU (0.5 px by default) under a 1-degree turn, whether the AU is named and how many other AUs
are. `rules` with the shipped settings (or a calibration folder's, MEU_CALIBRATION).

`--ambient A`: the turned apex frames also carry the shading change a turn makes under a fixed key light, with the
share A of the light ambient (instruction_data/shading.py); a warped photo keeps its shading, a real head does not.
`--split calibration` runs the calibration photos instead (what a remedy is chosen on). `--photos N` and `--turns N`
keep the split's first N photos and the grid's first N still-face turns, for a quick run (the defaults run all four
photos and all seven turns).

    .venv/bin/python benchmarks/head_turn.py [--ambient 0.7] [--split calibration] [--photos 1 --turns 2]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import calibration_record, emit, float_in, positive_int, run_main  # noqa: E402

from assistant.au import AU  # noqa: E402
from assistant.au.rules import score_analysis  # noqa: E402
from assistant.motion import face as face_mod  # noqa: E402
from assistant.motion.analyze import MotionConfig, analyze_frames  # noqa: E402
from instruction_data.head_turn import Turn, render_turn  # noqa: E402
from instruction_data.photos import load_photo, split_photos  # noqa: E402
from instruction_data.shading import shade, shading_ratio  # noqa: E402
from instruction_data.synth import AUMotion, au_moves, field_from_moves  # noqa: E402

log = logging.getLogger("benchmarks.head_turn")
ANGLES = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, -0.5), (-1.0, 0.5), (0.3, 0.0), (0.0, 0.3)]
RELIEF = [(0.8, -0.05), (1.25, 0.05)]  # depth scale and wobble (inter-ocular distances) of the rendered face
TWIN_AUS = [1, 4, 7, 9, 12, 15, 17]
COMPENSATIONS = ["register", "register2d"]


def _named(onset, apex, compensation: str) -> tuple[set[int], float, str]:
    analysis = analyze_frames(onset, apex, MotionConfig(compensation=compensation))
    named = {s.code for s in score_analysis(analysis).active()}
    return named, max(r.motion_px for r in analysis.regions), analysis.field.head_model


def _turned(image, lm, turn: Turn, ambient: float | None, motion=None):
    apex = render_turn(image, lm, turn, motion)
    return apex if ambient is None else shade(apex, shading_ratio(lm, image.shape[:2], turn, ambient))


def run(twin_px: float, ambient: float | None = None, split: str = "benchmark", photos: int | None = None,
        turns: int | None = None) -> dict:
    """The figures over the split's first `photos` photos (None: all) and the first `turns` of `ANGLES` (None: all)."""
    out: dict = {c: {"still": [], "twins": []} for c in COMPENSATIONS}
    for photo in split_photos(split)[:photos]:
        image = load_photo(photo)
        lm = face_mod.detect_face(image)
        k = 1.0 / face_mod.crop_box(lm).scale
        h, w = image.shape[:2]
        for scale, wobble in RELIEF:
            onset = render_turn(image, lm, Turn(0.0, 0.0, scale, wobble))
            for pitch, yaw in ANGLES[:turns]:
                apex = _turned(image, lm, Turn(pitch, yaw, scale, wobble), ambient)
                for c in COMPENSATIONS:
                    named, worst, model = _named(onset, apex, c)
                    out[c]["still"].append({"photo": photo.person, "pitch": pitch, "yaw": yaw, "depth_scale": scale,
                                            "worst_region_px": round(worst, 3), "aus": sorted(named),
                                            "head_model": model})
            for code in TWIN_AUS:
                motion = field_from_moves(au_moves(lm.points68, [AUMotion(AU(code), twin_px)], scale=k), (w, h))
                apex = _turned(image, lm, Turn(1.0, 0.5, scale, wobble), ambient, motion)
                for c in COMPENSATIONS:
                    named, _, model = _named(onset, apex, c)
                    out[c]["twins"].append({"photo": photo.person, "au": code, "depth_scale": scale,
                                            "named": code in named, "others": sorted(named - {code}),
                                            "head_model": model})
        log.info("%s done", photo.person)
    summary = {}
    for c, rows in out.items():
        still, twins = rows["still"], rows["twins"]
        summary[c] = {
            "still_faces": len(still),
            "still_given_any_au": round(sum(bool(r["aus"]) for r in still) / len(still), 3),
            "still_worst_region_px_median": round(statistics.median(r["worst_region_px"] for r in still), 3),
            "still_worst_region_px_max": max(r["worst_region_px"] for r in still),
            "still_worst_region_le_0.1px": round(sum(r["worst_region_px"] <= 0.1 for r in still) / len(still), 3),
            "still_rigid3d_share": round(sum(r["head_model"] == "rigid3d" for r in still) / len(still), 3),
            "still_aus_named": dict(Counter(f"AU{a}" for r in still for a in r["aus"]).most_common()),
            "twin_recall": {au: round(statistics.mean(r["named"] for r in twins if r["au"] == au), 3)
                            for au in TWIN_AUS},
            "twin_other_aus_mean": round(statistics.mean(len(r["others"]) for r in twins), 2),
            "twin_other_aus_named": dict(Counter(f"AU{a}" for r in twins for a in r["others"]).most_common()),
        }
    return {"summary": summary, "rows": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twin-px", type=float_in(0.0, low_open=True), default=0.5,
                        help="AU amplitude (px at 256) of the positive twins")
    parser.add_argument("--rows", action="store_true", help="print every pair, not only the summary")
    parser.add_argument("--ambient", type=float_in(0.0, 1.0, high_open=True), default=None,
                        help="add the shading change of the turn under a key light with this ambient share, in "
                             "[0, 1) (default: no shading change)")
    parser.add_argument("--split", default="benchmark", choices=["benchmark", "calibration"],
                        help="which photos to turn (default benchmark)")
    parser.add_argument("--photos", type=positive_int, default=None,
                        help="only the split's first N photos, for a quick run (default all four)")
    parser.add_argument("--turns", type=positive_int, default=None,
                        help=f"only the grid's first N still-face turns, for a quick run (default all {len(ANGLES)})")
    args = parser.parse_args(argv)
    calibration = calibration_record()  # `rules` reads it; a bad MEU_CALIBRATION stops here
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = run(args.twin_px, args.ambient, args.split, args.photos, args.turns)
    if not args.rows:
        figures.pop("rows")
    photos = split_photos(args.split)[:args.photos]
    emit("head_turn", {"data": f"synthetic: {args.split}-split photos turned out of plane (instruction_data."
                               "head_turn)" + ("" if args.ambient is None else
                                               f", shaded under a key light, ambient share {args.ambient}"),
                       "photos": [p.person for p in photos], "turns": [list(a) for a in ANGLES[:args.turns]],
                       "twin_px": args.twin_px, "ambient": args.ambient, "calibration": calibration, **figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
