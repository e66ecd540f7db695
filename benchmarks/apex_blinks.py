"""Apex spotting in short clips that hold a blink (synthetic): where the apex lands with and without the eyes'
outlines given to the spotter (`assistant.motion.apex.ApexSpotter`, what `meu analyze` passes since the blink rule).

    nice .venv/bin/python benchmarks/apex_blinks.py [--clips 8 --seeds 0]

Realistic world v1, **benchmark** people (the rule's settings were chosen on the calibration people, seeds 100-101),
200 fps, 130 frames per clip: one AU from frame 50 to 105 (apex 75) with a blink over 12-37 ("blink_before"), one
from 15 to 70 (apex 40) with a blink over 88-113 ("blink_after"), the first without its blink ("no_blink"), and a
blink alone ("blink_only"). Each clip is spotted as a frame list (no frame numbers) and as a sheet's onset..offset
(the whole clip, `bounded`). An apex is on the AU within 10 frames of its apex, on the blink within 5 frames of it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, nonnegative_int, positive_int, refuse_repeats, run_main  # noqa: E402

from assistant.au import AU  # noqa: E402
from assistant.motion.apex import SpotRegion  # noqa: E402
from assistant.motion.clip import load_clip  # noqa: E402
from assistant.motion.face import crop_box, detect_face  # noqa: E402
from instruction_data.realistic import draw_spec, intensity_letter  # noqa: E402
from instruction_data.synth import AUMotion, render_clip  # noqa: E402

AUS = ((12, 0.3), (4, 0.3), (14, 0.3), (12, 1.0), (4, 1.0))
LAYOUTS = {  # frames: AU onset, apex, offset; blink first, last
    "blink_before": (50, 75, 105, (12, 37)),
    "blink_after": (15, 40, 70, (88, 113)),
    "no_blink": (50, 75, 105, None),
}
N_FRAMES = 130


def render(index: int, seed: int, code: int | None, amplitude: float, layout: str):
    onset, apex, offset, blink = LAYOUTS[layout]
    motions = ()
    if code:
        letter = intensity_letter(amplitude)
        motions = (AUMotion(AU(code=code, side=None, intensity=letter, raw=f"{code}{letter}"), amplitude, {}),)
    spec = draw_spec(index, "benchmark", seed, motions=motions, n_frames=N_FRAMES, onset=onset, apex=apex,
                     offset=offset, blinks=(blink,) if blink else ())
    return render_clip(spec.synth_spec()).frames


def place(apex: int, au_apex: int | None, blink: tuple[int, int] | None) -> str:
    if au_apex is not None and abs(apex - au_apex) <= 10:
        return "au"
    if blink is not None and blink[0] - 5 <= apex <= blink[1] + 5:
        return "blink"
    return "other"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=positive_int, default=8, help="clip draws (people and their settings) per seed")
    ap.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0], help="realistic world seeds")
    args = ap.parse_args(argv)
    refuse_repeats(ap, "--seeds", args.seeds)
    counts: dict[str, Counter] = {}
    for seed in args.seeds:
        for index in range(args.clips):
            cases = [(code, amp, layout) for code, amp in AUS for layout in LAYOUTS]
            cases.append((None, 0.0, "blink_only"))
            for code, amp, layout in cases:
                onset, au_apex, offset, blink = LAYOUTS["blink_before" if layout == "blink_only" else layout]
                au_apex = None if code is None else au_apex
                frames = render(index, seed, code, amp, layout if code else "blink_before")
                lm = detect_face(frames[0])
                b = crop_box(lm)
                region = SpotRegion((b.x0, b.y0, b.x1, b.y1), np.asarray(lm.points68)[36:48])
                for given in (region.box, region):  # the face box alone (before the rule), then with the eyes
                    for mode in ("list", "bounded"):
                        clip = load_clip(frames, offset=N_FRAMES - 1 if mode == "bounded" else None,
                                         face_box=lambda _, given=given: given)
                        key = f"{layout}/{mode}/{'eyes' if given is region else 'no_eyes'}"
                        counts.setdefault(key, Counter())[place(clip.apex, au_apex, blink)] += 1
    emit("apex_blinks", {
        "synthetic": True, "world": "v1", "split": "benchmark", "seeds": args.seeds, "clips_per_seed": args.clips,
        "aus": [f"AU{c} {a} px" for c, a in AUS],
        "apex_placed": {k: dict(v) for k, v in sorted(counts.items())},
    })


if __name__ == "__main__":
    sys.exit(run_main(main))
