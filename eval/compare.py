"""`meu eval compare RUN_DIR...`: several evaluation runs side by side in one table and one plot, with the
published figures (eval/references.py) as reference rows marked as such.

Published rows were measured on the licensed datasets; a run on synthetic data is marked synthetic, so the two are
never mistaken for a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from assistant.config import doc_summary
from assistant.errors import MEUError
from assistant.files import atomic_write_text, output_folder
from eval.references import references_for
from eval.report import md_table, save_figure

EMOTION_KEYS = (("uf1", "UF1"), ("uar", "UAR"), ("accuracy", "ACC"))


def load_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise MEUError(f"{run_dir} has no metrics.json; pass the --out folder of a finished `meu eval` run.")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise MEUError(f"{path} is not valid JSON (an interrupted write?); run that evaluation again.") from None
    if isinstance(metrics, dict) and isinstance(metrics.get("run"), dict) and metrics["run"].get("task") == "spotting":
        raise MEUError(f"{run_dir} is a spotting run (`meu eval --task spotting`); `meu eval compare` sets recognition "
                       f"runs side by side. Its figures are in {Path(run_dir) / 'report.md'}.")
    try:
        run, e, au = metrics["run"], metrics["emotion"], metrics["au"]
        return {
            "name": Path(run_dir).name, "path": str(Path(run_dir).resolve()), "settings": run,
            "method": f"{run['reasoner']} + {run['detector']}",
            "dataset": "composite" if run["protocol"] == "cde" else run["dataset"],
            "protocol": run["protocol"], "classes": run["classes"], "synthetic": bool(run["synthetic"]),
            "n": e["n_samples"], "uf1": e["uf1"], "uar": e["uar"], "accuracy": e["accuracy"],
            "unparsable": e["unparsable"], "au_parsed": au["parsed"]["pooled"]["mean_f1"],
            "au_detector": au["detector"]["pooled"]["mean_f1"], "n_aus": len(au["aus"]), "published": False,
        }
    except (KeyError, TypeError) as err:
        raise MEUError(f"{path} is not the metrics of a finished `meu eval` recognition run (no {err}); pass the --out "
                       "folder of one, or run that evaluation again.") from None


def reference_rows(runs: list[dict]) -> list[dict]:
    """Published rows for the runs' datasets: the composite's (MEGC 2019) beside a cde run, the others beside the
    rest, so a 3-class composite figure never sits beside a single-dataset run as if comparable."""
    wanted = {(r["dataset"], r["protocol"] == "cde", str(r["classes"])) for r in runs}
    refs = [r for r in references_for({d for d, _, _ in wanted})
            if any((r.dataset, r.protocol == "cde") == (d, cde) and r.classes in (None, classes)
                   for d, cde, classes in wanted)]  # a 3-class run never sits under a 5-class published figure
    return [{"name": r.label, "method": r.method, "dataset": r.dataset, "protocol": r.protocol,
             "classes": r.classes or "-", "synthetic": False, "n": None, "uf1": r.uf1, "uar": r.uar,
             "accuracy": r.accuracy, "unparsable": None, "au_parsed": None, "au_detector": r.au_mean_f1,
             "n_aus": r.n_aus, "published": True} for r in refs]


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def comparison_table(rows: list[dict]) -> str:
    head = ["Run", "Method", "Dataset", "Protocol", "Classes", "Clips", "UF1", "UAR", "ACC", "Unparsable",
            "AU F1 (answer)", "AU F1 (detector)", "Data"]
    body = [[r["name"], r["method"], r["dataset"], r["protocol"], r["classes"], _fmt(r["n"]), _fmt(r["uf1"]),
             _fmt(r["uar"]), _fmt(r["accuracy"]), _fmt(r["unparsable"]), _fmt(r["au_parsed"]), _fmt(r["au_detector"]),
             "published (licensed data)" if r["published"] else ("synthetic" if r["synthetic"] else "this project")]
            for r in rows]
    return md_table(head, body)


def comparison_plot(rows: list[dict], path: Path) -> None:
    """Grouped bars: UF1 / UAR / ACC / AU mean F1 per row; published rows hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [*EMOTION_KEYS, ("au_detector", "AU F1 (det.)")]
    x = np.arange(len(keys))
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(keys) + 0.4 * len(rows)), 4))
    for k, r in enumerate(rows):
        vals = [r[key] if r[key] is not None and not (isinstance(r[key], float) and math.isnan(r[key])) else 0.0
                for key, _ in keys]
        label = r["name"] + (" [synthetic]" if r["synthetic"] else "")
        ax.bar(x - 0.4 + width * (k + 0.5), vals, width, label=label, hatch="//" if r["published"] else None,
               edgecolor="black" if r["published"] else None, alpha=0.6 if r["published"] else 1.0)
    ax.set_xticks(x, [label for _, label in keys])
    ax.set_ylim(0, 1)
    ax.set_title("Evaluation runs vs published references (hatched)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)
    plt.close(fig)


# what a run's record holds that does not make it another run
_NOT_SETTINGS = {"root", "class_names", "evidence", "generation", "vlm_run"}


def _setting(run: dict, key: str):
    """A run's setting as it ran: a key its (older) record lacks is the default of then (drift cancelled none, the
    calibration went unrecorded); a calibration compares by its files, not the folder they were read from."""
    if key in run["settings"]:
        value = run["settings"][key]
    else:
        import dataclasses

        from eval.run import EvalConfig

        defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig) if f.default is not dataclasses.MISSING}
        value = {**defaults, "drift": "none"}.get(key)
    return value.get("files") if key == "calibration" and isinstance(value, dict) else value


def differences(runs: list[dict]) -> dict[str, list]:
    """The settings that differ between the runs, each with the runs' values in order."""
    keys = sorted({k for r in runs for k in r["settings"]} - _NOT_SETTINGS)
    out = {}
    for k in keys:
        values = [_setting(r, k) for r in runs]
        known = {json.dumps(v, sort_keys=True, default=str) for v in values if not (k == "calibration" and v is None)}
        if len(known) > 1:  # an unrecorded calibration may be either: not said to differ
            out[k] = values
    return out


def compare(run_dirs: list[str], out: str | Path) -> str:
    runs = [load_run(d) for d in run_dirs]
    seen: dict[str, str] = {}
    for d, r in zip(run_dirs, runs):
        if r["path"] in seen:
            raise MEUError(f"{d} is given twice (as {seen[r['path']]} too); give each run once.")
        seen[r["path"]] = d
    for depth in range(2, 64):  # runs in folders of one name: named by as many of their parents as tells them apart
        names = [r["name"] for r in runs]
        clashing = [r for r in runs if names.count(r["name"]) > 1]
        if not clashing:
            break
        for r in clashing:
            r["name"] = "/".join(Path(r["path"]).parts[1:][-depth:])  # without the root's "/"
    rows = runs + reference_rows(runs)
    text = ("# Evaluation runs side by side\n\n" + comparison_table(rows)
            + "\nRows marked *published* are the papers' figures on the licensed datasets (eval/references.py), "
              "shown for reference only. This project's AU F1 is the mean over the dataset's AU list at the fixed "
              "threshold 0.5; published AU figures are the papers' own (AU-LLM's released script chose per-AU "
              "thresholds on the pooled test predictions, eval/references.py).\n")
    if any(r["synthetic"] for r in runs):
        text += "\nRuns marked *synthetic* were measured on generated clips and are not comparable to published rows.\n"
    differ = differences(runs) if len(runs) > 1 else {}
    if differ:
        text += ("\nSettings that differ between the runs (in the order above): "
                 + "; ".join(f"{k}: {' / '.join(str(v) for v in values)}" for k, values in differ.items()) + ".\n")
        apart = [k for k in ("dataset", "protocol", "classes", "aus") if k in differ]
        if apart:
            text += (f"\n**The runs differ in {', '.join(apart)}: their figures measure different things and are "
                     "not comparable side by side.**\n")
    out = Path(out)
    atomic_write_text(out / "compare.md", text)
    comparison_plot(rows, out / "compare.png")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meu eval compare", description=doc_summary(__doc__))
    parser.add_argument("runs", nargs="+", help="output folders of `meu eval` runs")
    parser.add_argument("--out", default="outputs/eval_compare", help="folder for compare.md and compare.png")
    args = parser.parse_args(argv)
    out = output_folder(args.out)
    print(compare(args.runs, out))
    print(f"table and plot in {out}")
    return 0
