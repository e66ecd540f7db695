"""The MEGC 2019 composite database evaluation (CDE): CASME II, SAMM and SMIC-HS pooled into negative / positive /
surprise, leave-one-subject-out over all their subjects (ids qualified by dataset, `casme2__sub01`).

UF1 (mean per-class F1) and UAR (mean per-class recall) are computed once over the predictions pooled across all
folds; a dataset's figures are the same composite predictions restricted to its clips, not separate runs. Each
dataset's words map to the three classes through `assistant.emotions.CDE_MAPPING` (CASME II's fear and sadness are
left out, unlike scheme "3"); the clips MEB drops are in `CDE_EXCLUDED`. Before a run, the clips found per dataset
and class are logged beside the challenge's counts, with a warning where they differ.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from assistant.emotions import CDE_CLASSES, CDE_EXCLUDED, CDE_EXPECTED, CDE_SUBJECTS, cde_emotion
from eval.metrics import classification_scores
from eval.predictions import score_rows
from eval.protocols import cde_folds, dataset_aus, training_load_options
from eval.references import references_for
from eval.report import OTHER, md_table
from eval.samples import Sample, sample
from instruction_data.records import key_dataset, qualified_subject

if TYPE_CHECKING:
    from eval.run import EvalConfig

log = logging.getLogger(__name__)

NAMES = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS", "composite": "Composite"}
COLUMNS = ("composite", "smic", "casme2", "samm")  # the order of the MEGC 2019 table
LIST_LIMIT = 30  # clips listed by key in the report; all of them stay in metrics.json


def cde_aus(datasets: list[str]) -> list[int]:
    """AUs scored over the pool: those every AU-coding dataset of the pool codes (SMIC codes none)."""
    lists = [set(dataset_aus(d)) for d in datasets if dataset_aus(d)]
    return sorted(set.intersection(*lists)) if lists else []


def cde_samples(config: EvalConfig) -> tuple[list[Sample], list[dict], dict]:
    """Every dataset's usable clips with a CDE class, their fold, and what was left out and why."""
    from instruction_data.loaders import load_dataset

    kept, skipped, reports, excluded, unmapped = [], [], {}, [], []
    for name, root in zip(config.datasets, config.roots, strict=True):
        loaded = load_dataset(name, root, **training_load_options(name))
        log.info("%s: %s", name, loaded.summary())
        reports[name] = loaded.report()
        skipped += [{"dataset": name, "sheet": s.sheet, "row": s.row, "clip_id": s.clip_id, "reason": s.reason}
                    for s in loaded.skipped]
        for r in loaded.records:
            if (name, r.subject, r.clip_id) in CDE_EXCLUDED:
                excluded.append({"key": r.key, "why": CDE_EXCLUDED[(name, r.subject, r.clip_id)]})
                continue
            label = cde_emotion(name, r.emotion_raw)
            if label is None:
                unmapped.append({"key": r.key, "emotion_raw": r.emotion_raw})
                continue
            kept.append((r, label))
    folds = cde_folds([r for r, _ in kept], val_subjects=0)
    fold_of = {i: f.name for f in folds for i in f.test}
    spot = config.apex_unknown == "spot"
    samples = [sample(r, fold_of[i], label, subject=qualified_subject(r.dataset, r.subject), spot_apex=spot)
               for i, (r, label) in enumerate(kept)]
    found = counts(samples, config.datasets)
    subjects = {d: len({s.subject for s in samples if key_dataset(s.key) == d}) for d in config.datasets}
    log.info("composite clips, expected (MEGC 2019) against found:\n%s", expected_table(found, subjects))
    for d in config.datasets:
        gaps = mismatches(d, found[d], subjects[d])
        if gaps:
            log.warning("%s differs from the challenge's composite set: %s", NAMES[d], "; ".join(gaps))
    if unmapped:
        log.info("%d clip(s) have a label the composite leaves out (e.g. %s: %r)", len(unmapped),
                 unmapped[0]["key"], unmapped[0]["emotion_raw"])
    report = {"datasets": reports, "found": found, "subjects": subjects, "excluded": excluded,
              "unmapped": unmapped, "folds": len(folds)}
    return samples, skipped, report


def counts(samples: list[Sample], datasets: list[str]) -> dict[str, dict[str, int]]:
    out = {d: dict.fromkeys(CDE_CLASSES, 0) for d in datasets}
    for s in samples:
        out[key_dataset(s.key)][s.true_emotion] += 1
    return out


def mismatches(dataset: str, found: dict[str, int], subjects: int) -> list[str]:
    gaps = [f"{c}: {found[c]} found, {n} expected" for c, n in CDE_EXPECTED[dataset].items() if found[c] != n]
    if subjects != CDE_SUBJECTS[dataset]:
        gaps.append(f"subjects: {subjects} found, {CDE_SUBJECTS[dataset]} expected")
    return gaps


def expected_table(found: dict[str, dict[str, int]], subjects: dict[str, int]) -> str:
    rows = []
    for d, by_class in found.items():
        cells = [f"{by_class[c]} / {CDE_EXPECTED[d][c]}" for c in CDE_CLASSES]
        rows.append([NAMES[d], f"{subjects[d]} / {CDE_SUBJECTS[d]}", *cells,
                     f"{sum(by_class.values())} / {sum(CDE_EXPECTED[d].values())}"])
    return md_table(["dataset", "subjects", *CDE_CLASSES, "total"], rows)


def _emotion(ok: list[dict], classes: list[str]) -> dict:
    return classification_scores([r["true_emotion"] for r in ok], [r["pred_emotion"] for r in ok], classes).to_dict()


def cde_scores(rows: list[dict], datasets: list[str], setup: dict) -> dict:
    """The MEGC 2019 table and its details from the pooled predictions rows (`setup`: what `cde_samples` found)."""
    classes = list(CDE_CLASSES)
    ok = [r for r in rows if r["status"] == "ok"]
    table = {"composite": _emotion(ok, classes)}
    au = {}
    for d in datasets:
        mine = [r for r in ok if key_dataset(r["key"]) == d]
        table[d] = _emotion(mine, classes)
        if dataset_aus(d):
            au[d] = score_rows(mine, classes, dataset_aus(d), per_fold=False)["au"]
    per_subject = {}
    for subject in sorted({r["subject"] for r in ok}):
        mine = [r for r in ok if r["subject"] == subject]
        present = [c for c in classes if any(r["true_emotion"] == c for r in mine)]
        s = classification_scores([r["true_emotion"] for r in mine], [r["pred_emotion"] for r in mine], present)
        per_subject[subject] = {"n": len(mine), "uf1": s.uf1, "uar": s.uar, "classes": present}
    anchors = [{"method": r.method, "dataset": r.dataset, "uf1": r.uf1, "uar": r.uar, "source": r.source}
               for r in references_for(set(COLUMNS), protocol="cde")]
    return {"datasets": datasets, "table": table, "au": au, "per_subject": per_subject, "anchors": anchors,
            "found": setup["found"], "subjects": setup["subjects"], "expected": CDE_EXPECTED,
            "expected_subjects": CDE_SUBJECTS, "excluded": setup["excluded"], "unmapped": setup["unmapped"],
            "folds": setup["folds"]}


def _f4(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _listed(items: list[dict], text) -> str:
    lines = [f"- {text(i)}" for i in items[:LIST_LIMIT]]
    if len(items) > LIST_LIMIT:
        lines.append(f"- ... and {len(items) - LIST_LIMIT} more (all in metrics.json, `cde`)")
    return "\n".join(lines) + "\n"


def cde_section(metrics: dict) -> str:
    """The report's MEGC 2019 part: the table with the published anchors, counts, confusions, per-subject UF1."""
    cde, run = metrics["cde"], metrics["run"]
    columns = [c for c in COLUMNS if c == "composite" or c in cde["datasets"]]
    head = ["Method"] + [f"{NAMES[c]} {m}" for c in columns for m in ("UF1", "UAR")]
    ours = [f"**{run['reasoner']} + {run['detector']}**" + (" (synthetic)" if run["synthetic"] else "")]
    ours += [_f4(cde["table"][c][m] if cde["table"][c]["n_samples"] else None) for c in columns
             for m in ("uf1", "uar")]
    rows = [ours]
    for method in dict.fromkeys(a["method"] for a in cde["anchors"]):
        by = {a["dataset"]: a for a in cde["anchors"] if a["method"] == method}
        rows.append([f"{method} (published)"] + [_f4(by[c][m]) if c in by else "-" for c in columns
                                                 for m in ("uf1", "uar")])
    text = "## MEGC 2019 composite database evaluation (CDE)\n\n" + md_table(head, rows)
    text += ("\nUF1 and UAR over the predictions pooled across all " f"{cde['folds']} leave-one-subject-out folds; "
             "each dataset's columns are those same predictions restricted to its clips. Unknown apexes (all of "
             f"SMIC): {run.get('apex_unknown', 'middle')} frame"
             + (" (spotted between onset and offset)" if run.get("apex_unknown") == "spot" else
                " between onset and offset, as MEB does") + ".\n\nPublished rows (licensed data, for reference):\n")
    text += _listed(cde["anchors"], lambda a: f"{a['method']}, {NAMES.get(a['dataset'], a['dataset'])}: {a['source']}")
    text += ("\nVaranka et al. (arXiv 2211.11425) found data leakage inflating many later CDE figures.\n")
    absent = [f"{NAMES[c]} has no {k} clip" for c in columns for k, v in cde["table"][c]["per_class"].items()
              if not v["support"]]
    if absent:
        text += (f"\n{'; '.join(absent)}: such a class counts F1 and recall 0 in that column's UF1 and UAR (the "
                 "scikit-learn convention, zero_division=0); the challenge's full data has every class in every "
                 "dataset.\n")
    if run["synthetic"]:
        text += ("\n**Synthetic data:** the synthetic datasets' emotions follow from the same AU-to-emotion table the "
                 "template reasoner argues with, and the three share faces, so these figures test the mechanics "
                 "only.\n")
    text += "\n### Clips found against the challenge's counts (found / expected)\n\n"
    text += expected_table(cde["found"], cde["subjects"])
    if cde["excluded"]:
        text += f"\nLeft out by the exclusion list ({len(cde['excluded'])}):\n"
        text += _listed(cde["excluded"], lambda e: f"{e['key']}: {e['why']}")
    if cde["unmapped"]:
        text += f"\nLabels the composite leaves out ({len(cde['unmapped'])} clips):\n"
        text += _listed(cde["unmapped"], lambda u: f"{u['key']}: {u['emotion_raw'] or 'empty'!r}")
    for d in cde["datasets"]:
        e = cde["table"][d]
        text += f"\n### {NAMES[d]}: confusion (rows: true class; columns: predicted), {e['n_samples']} clips\n\n"
        text += md_table(["true \\ predicted", *e["classes"], OTHER],
                         [[c, *row] for c, row in zip(e["classes"], e["confusion"])])
    text += ("\n### Per subject (held out in its own fold): UF1 and UAR over the classes that subject shows\n\n")
    text += md_table(["subject", "clips", "classes", "UF1", "UAR"],
                     [[s, v["n"], ", ".join(v["classes"]), _f4(v["uf1"]), _f4(v["uar"])]
                      for s, v in cde["per_subject"].items()])
    return text
