"""Gaze shifts between onset and apex: the eyes move under still lids, and the lids' own actions beside them.

Synthetic: the split's face photos (instruction_data.photos), still, with the contents of both eyes' openings (the
polygons of their six landmarks) slid by a gaze shift of `--gaze-px` px at the 256 px crop in eight directions, the
lids and the rest of the face unmoved: a saccade of about 4 degrees moves the iris by 1 px there. No camera noise,
so the noise floor is low and a tenth of a pixel already reads as motion: the hard case for false alarms. For each
pair, the AUs `rules` names (shipped settings, or MEU_CALIBRATION's) and the largest eyelid region's motion. Twins:
the lid AUs (AU5, AU6, AU7) at `--twin-px`, alone and while the eyes look 1 px aside, named or not (an upward shift
would add to their own upward lid motion).

`--margins` measures the eye-opening mask (`assistant.motion.gaze.OPENING_MARGIN`, inter-ocular distances) at each
value, `none` for no mask (the analysis before it). The margin is chosen on the calibration split, with margin 0 among
those measured, by a rule: among the margins whose twins alone are named at least as often as with no widening
(margin 0), the fewest gaze shifts of up to 2 px given any AU, then the smaller margin. The benchmark split reports.

    .venv/bin/python benchmarks/gaze.py [--split calibration --margins none 0 0.025 0.0375 0.05]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import calibration_record, emit, float_in, positive_int, refuse_repeats, run_main  # noqa: E402

from assistant.au import AU  # noqa: E402
from assistant.au.rules import score_analysis  # noqa: E402
from assistant.motion import analyze, gaze  # noqa: E402
from assistant.motion import face as face_mod  # noqa: E402
from instruction_data.head_turn import render_turn  # noqa: E402
from instruction_data.photos import load_photo, split_photos  # noqa: E402
from instruction_data.synth import AUMotion, au_moves, field_from_moves, gaze_field  # noqa: E402

log = logging.getLogger("benchmarks.gaze")
DIRECTIONS = 8
TWIN_AUS = [5, 6, 7]
TWIN_GAZE_PX = 1.0  # the sideways gaze shift the twins are measured under, px at 256
LID_REGIONS = ("upper_eyelid", "lower_eyelid")


def _named(onset: np.ndarray, apex: np.ndarray, config: analyze.MotionConfig) -> tuple[set[int], float]:
    analysis = analyze.analyze_frames(onset, apex, config)
    lids = max(r.motion_px for r in analysis.regions if r.region in LID_REGIONS)
    return {s.code for s in score_analysis(analysis).active()}, lids


def _config(margin: float | None) -> analyze.MotionConfig:
    """`None`: the eyes' openings read as skin (the analysis before the mask); else masked at this margin."""
    if margin is not None:
        gaze.OPENING_MARGIN = margin
    return analyze.MotionConfig(eyes="read" if margin is None else "masked")


def run(split: str, gaze_px: list[float], margins: list[float | None], twin_px: float,
        photos: int | None = None) -> dict:
    faces = []
    for photo in split_photos(split)[:photos]:
        image = load_photo(photo)
        lm = face_mod.detect_face(image)
        faces.append((photo.person, image, lm, 1.0 / face_mod.crop_box(lm).scale, render_turn(image, lm)))
    shipped = gaze.OPENING_MARGIN
    out = {}
    try:
        for margin in margins:
            config = _config(margin)
            shifts, twins = [], []
            for person, image, lm, k, onset in faces:
                shape = image.shape[:2]
                for px in gaze_px:
                    for i in range(DIRECTIONS):
                        angle = 2 * math.pi * i / DIRECTIONS
                        vector = (px * k * math.cos(angle), px * k * math.sin(angle))
                        apex = render_turn(image, lm, motion=gaze_field(lm.points68, shape[::-1], vector))
                        named, lids = _named(onset, apex, config)
                        shifts.append({"photo": person, "gaze_px": px, "direction_deg": round(math.degrees(angle)),
                                       "aus": sorted(named), "lid_px": round(lids, 3)})
                for code in TWIN_AUS:
                    au = field_from_moves(au_moves(lm.points68, [AUMotion(AU(code), twin_px)], scale=k),
                                          shape[::-1])
                    for under in (0.0, TWIN_GAZE_PX):
                        motion = au + gaze_field(lm.points68, shape[::-1], (under * k, 0.0))
                        named, _ = _named(onset, render_turn(image, lm, motion=motion), config)
                        twins.append({"photo": person, "au": code, "gaze_px": under, "named": code in named,
                                      "others": sorted(named - {code})})
            log.info("margin %s done", margin)
            out["none" if margin is None else str(margin)] = _summary(shifts, twins, gaze_px)
    finally:
        gaze.OPENING_MARGIN = shipped
    return out


def _summary(shifts: list[dict], twins: list[dict], gaze_px: list[float]) -> dict:
    return {
        "gaze_pairs": len(shifts),
        "gaze_given_any_au": {str(px): round(statistics.mean(bool(r["aus"]) for r in shifts if r["gaze_px"] == px), 3)
                              for px in gaze_px},
        "gaze_lid_px_median": {str(px): round(statistics.median(r["lid_px"] for r in shifts if r["gaze_px"] == px),
                                              3) for px in gaze_px},
        "gaze_aus_named": dict(Counter(f"AU{a}" for r in shifts for a in r["aus"]).most_common()),
        "twins_named": {f"AU{au}": {str(g): sum(r["named"] for r in twins if r["au"] == au and r["gaze_px"] == g)
                                    for g in (0.0, TWIN_GAZE_PX)} for au in TWIN_AUS},
        "twins_per_cell": len(twins) // (2 * len(TWIN_AUS)),
        "twin_other_aus": dict(Counter(f"AU{a}" for r in twins for a in r["others"]).most_common()),
        "rows": {"gaze": shifts, "twins": twins},
    }


def choose(figures: dict) -> str | None:
    """The rule in the module's docstring over the margins measured; None without margin 0 (its twins set the floor)."""
    if "0.0" not in figures:
        return None

    def named_twins(f: dict) -> int:
        return sum(v["0.0"] for v in f["twins_named"].values())

    def gaze_named(f: dict) -> int:
        return sum(bool(r["aus"]) for r in f["rows"]["gaze"] if r["gaze_px"] <= 2.0)

    floor = named_twins(figures["0.0"])
    keep = {m: f for m, f in figures.items() if m != "none" and named_twins(f) >= floor}
    return min(keep, key=lambda m: (gaze_named(keep[m]), float(m)))


def _margin(text: str) -> float | None:
    return None if text == "none" else float_in(0.0, 0.2)(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="benchmark", choices=["benchmark", "calibration"],
                        help="which photos (default benchmark; the margin is chosen on calibration)")
    parser.add_argument("--gaze-px", nargs="+", type=float_in(0.0, 5.0, low_open=True), default=[0.5, 1.0, 2.0, 3.0],
                        help="gaze shifts, px at the 256 px crop (default 0.5 1 2 3)")
    parser.add_argument("--margins", nargs="+", type=_margin, default=[None, gaze.OPENING_MARGIN],
                        help="eye-opening mask margins to measure, inter-ocular distances in [0, 0.2], or none "
                             f"(default: none and the shipped {gaze.OPENING_MARGIN})")
    parser.add_argument("--twin-px", type=float_in(0.0, low_open=True), default=0.5,
                        help="lid AU amplitude (px at 256) of the twins (default 0.5)")
    parser.add_argument("--photos", type=positive_int, default=None,
                        help="only the split's first N photos, for a quick run (default all four)")
    parser.add_argument("--rows", action="store_true", help="print every pair, not only the summaries")
    args = parser.parse_args(argv)
    refuse_repeats(parser, "--margins", ["none" if m is None else f"{m:g}" for m in args.margins])
    refuse_repeats(parser, "--gaze-px", args.gaze_px)
    calibration = calibration_record()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = run(args.split, args.gaze_px, args.margins, args.twin_px, args.photos)
    chosen = choose(figures) if args.split == "calibration" else None  # the benchmark split reports, never chooses
    if not args.rows:
        for f in figures.values():
            f.pop("rows")
    emit("gaze", {"data": f"synthetic: {args.split}-split photos, eye contents shifted under still lids",
                  "photos": [p.person for p in split_photos(args.split)[:args.photos]], "gaze_px": args.gaze_px,
                  "twin_px": args.twin_px, "shipped_margin": gaze.OPENING_MARGIN, "chosen_by_rule": chosen,
                  "calibration": calibration, "margins": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
