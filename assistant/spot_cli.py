"""`meu spot VIDEO`: find the micro- and macro-expressions in a long video.

Writes intervals.csv (one row per interval, MEGC-style columns), curve.png (the motion curve with the intervals
shaded, and one curve per region group) and, with --analyse, one folder per micro-expression with the Assistant's
MMC map and answer. Every file is written to a temporary name and renamed, so a killed run leaves no half file.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from assistant import calibration
from assistant.config import add_dataclass_arguments
from assistant.errors import MEUError
from assistant.files import atomic_write_bytes, atomic_write_text, output_folder, save_png, write_json
from assistant.motion.spotting import SpotConfig, SpotResult, spot_video

log = logging.getLogger(__name__)

DESCRIPTION = """Spot expressions in a long face video (any length; it is streamed). Writes intervals.csv and
curve.png into --out; --analyse also runs the Assistant on each micro-expression found and writes its MMC map and
answer into a folder per interval. Blinks, speech and head moves are listed in intervals.csv with their type and
never analysed as expressions."""

CSV_COLUMNS = ("video", "onset", "apex", "offset", "type", "score", "near_threshold", "regions", "onset_s", "offset_s")
DISTRACTOR_WORDS = {"blink": ("blink", "blinks"), "speech": ("speech", "speech"), "head": ("head move", "head moves")}
COLOURS = {"micro": "tab:red", "macro": "tab:blue", "blink": "0.75", "speech": "0.6", "head": "0.45"}


def intervals_csv(result: SpotResult, video: str) -> str:
    import pandas as pd

    rows = []
    for iv in sorted(result.intervals + result.distractors, key=lambda iv: iv.onset):
        rows.append({"video": video, "onset": iv.onset, "apex": iv.apex, "offset": iv.offset, "type": iv.kind,
                     "score": iv.score, "near_threshold": iv.near_threshold, "regions": "+".join(iv.regions),
                     "onset_s": round(iv.onset / result.fps, 3),
                     "offset_s": round(iv.offset / result.fps, 3)})
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS)).to_csv(index=False)


def curve_png(result: SpotResult, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.frames / result.fps
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, height_ratios=(1, 1.2))
    axes[0].plot(t, result.curve, color="k", lw=0.8)
    axes[0].set_ylabel("motion (SNR)")
    axes[0].set_title(title)
    for name, curve in result.group_curves.items():
        axes[1].plot(t, curve, lw=0.8, label=name)
    axes[1].set_ylabel("per region group")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(loc="upper right", fontsize=8, ncols=len(result.group_curves))
    seen = set()
    for iv in result.intervals + result.distractors:
        for ax in axes:
            ax.axvspan(iv.onset / result.fps, (iv.offset + 1) / result.fps, color=COLOURS.get(iv.kind, "0.8"),
                       alpha=0.3, lw=0, label=iv.kind if ax is axes[0] and iv.kind not in seen else None)
        seen.add(iv.kind)
    if seen:
        axes[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


ANALYSIS_FOLDER = re.compile(r"micro_\d{2,}_\d+-\d+")


def remove_old_analyses(out: Path) -> int:
    """A previous run's interval folders (named as `analyse_micro` names them, holding its answer.json): left
    beside a new intervals.csv they described other intervals."""
    old = [d for d in out.iterdir()
           if d.is_dir() and ANALYSIS_FOLDER.fullmatch(d.name) and (d / "answer.json").is_file()]
    for d in old:
        shutil.rmtree(d)
    if old:
        log.info("removed %d interval folder(s) of a previous run from %s", len(old), out)
    return len(old)


def analyse_micro(result: SpotResult, video: str, out: Path) -> list[dict]:
    """The Assistant on each micro-expression; one that cannot be analysed (a face too small for the analysis, an
    interval of one frame) is said and the others still are."""
    from assistant.pipeline import Assistant

    assistant = Assistant()
    done = []
    for k, iv in enumerate(iv for iv in result.intervals if iv.kind == "micro"):
        folder = out / f"micro_{k + 1:02d}_{iv.onset}-{iv.offset}"
        item = {"folder": folder.name, "emotion": None, "aus": []}
        if iv.apex <= iv.onset:
            item["error"] = "its apex is its onset frame: no earlier frame to compare it with"
        else:
            try:
                res = assistant.analyze(video, onset=iv.onset, apex=iv.apex)
            except MEUError as err:
                item["error"] = str(err)
            else:
                save_png(folder / "mmc_map.png", res.analysis.mmc_map)
                write_json(folder / "answer.json", {"interval": asdict(iv), **res.to_dict()})
                atomic_write_text(folder / "answer.txt", res.answer.text + "\n")
                item.update(emotion=res.answer.emotion, aus=[a.label for a in res.answer.aus])
        done.append(item)
    return done


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="meu spot", description=DESCRIPTION)
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--out", default="outputs/spot", help="output folder (default: outputs/spot)")
    parser.add_argument("--analyse", action="store_true", help="run the Assistant on every micro-expression found")
    add_dataclass_arguments(parser, SpotConfig)
    calibration.add_argument(parser)
    ns = parser.parse_args(argv)
    calibration.apply(ns)
    cfg = SpotConfig(**{k: v for k, v in vars(ns).items() if k in SpotConfig.__dataclass_fields__})
    out = output_folder(ns.out)
    with tqdm(desc="spotting", unit="frame") as bar:
        def progress(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        result = spot_video(ns.video, cfg, progress=progress)
    name = Path(ns.video).name
    atomic_write_text(out / "intervals.csv", intervals_csv(result, name))
    atomic_write_bytes(out / "curve.png", curve_png(result, f"{name}: {len(result.intervals)} expressions"))
    print(f"{name}: {result.n_frames} frames at {result.fps:g} fps (frame numbers count from 0)")
    for note in result.notes():
        print(f"  note: {note}")
    for iv in result.intervals:
        print(f"  {iv.kind:<6} frames {iv.onset}-{iv.offset} (apex {iv.apex}, "
              f"{iv.onset / result.fps:.2f}-{iv.offset / result.fps:.2f} s)  {'+'.join(iv.regions)}  "
              f"score {iv.score:g}{' (near the threshold)' if iv.near_threshold else ''}")
    if not result.intervals:
        print("  no micro- or macro-expression found")
    kinds = Counter(iv.kind for iv in result.distractors)
    listed = ", ".join(f"{kinds[k]} {words[kinds[k] > 1]}" for k, words in DISTRACTOR_WORDS.items() if kinds[k])
    print(f"  {len(result.distractors)} distractors{f' ({listed})' if listed else ''} listed in intervals.csv")
    remove_old_analyses(out)
    if ns.analyse:
        for item in analyse_micro(result, ns.video, out):
            if "error" in item:
                print(f"  {item['folder']}: not analysed: {item['error']}")
            else:
                print(f"  {item['folder']}: {item['emotion']} ({', '.join(item['aus']) or 'no AU'})")
    print(f"wrote {out / 'intervals.csv'} and {out / 'curve.png'}")
    return 0
