"""Writers for the built samples: TRL JSONL, LLaVA/ShareGPT JSON, a Hugging Face `datasets` folder, a dataset card.

A sample (from `instruction_data.fgmu.make_samples`) is a flat dict; exporters only reshape it. Image paths are
relative to the output folder (`images/<name>.png`), so the folder can be moved; the `datasets` copy embeds the
PNG bytes. Split columns on every row: `subject`, `fold` (LOSO fold id: the subject's index among the sorted
subjects of its split) and `split` (DFME Test A/B kept apart as their own splits and files).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from assistant.files import atomic_write_text

META = ("id", "task", "lang", "dataset", "subject", "fold", "split", "clip_id", "row", "emotion", "emotion_raw",
        "aus", "au_codes", "scheme")
SPLIT_FILES = {"train": "train.jsonl", "test_a": "test_a.jsonl", "test_b": "test_b.jsonl"}


def assign_folds(samples: list[dict]) -> None:
    """Add `fold`: the subject's index among the sorted subjects of the same split (one LOSO fold per subject)."""
    by_split: dict[str, list[str]] = {}
    for s in samples:
        by_split.setdefault(s["split"], [])
        if s["subject"] not in by_split[s["split"]]:
            by_split[s["split"]].append(s["subject"])
    index = {split: {subj: i for i, subj in enumerate(sorted(subjects))} for split, subjects in by_split.items()}
    for s in samples:
        s["fold"] = index[s["split"]][s["subject"]]


def trl_row(sample: dict) -> dict:
    """TRL conversational format: the image placeholder is added by TRL before the first user turn."""
    return {"messages": [{"role": "user", "content": sample["prompt"]},
                         {"role": "assistant", "content": sample["answer"]}],
            "images": [sample["image"]], **{k: sample[k] for k in META}}


def llava_row(sample: dict) -> dict:
    return {"id": sample["id"], "image": sample["image"],
            "conversations": [{"from": "human", "value": "<image>\n" + sample["prompt"]},
                              {"from": "gpt", "value": sample["answer"]}],
            **{k: sample[k] for k in META if k != "id"}}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write_jsonl_splits(out: Path, samples: list[dict]) -> list[Path]:
    """`train.jsonl` always (possibly empty), plus `test_a.jsonl` / `test_b.jsonl` when those splits exist."""
    written = []
    for split, name in SPLIT_FILES.items():
        rows = [trl_row(s) for s in samples if s["split"] == split]
        if rows or split == "train":
            written.append(atomic_write_text(out / name, _jsonl(rows)))
    return written


def write_llava(out: Path, samples: list[dict]) -> Path:
    return atomic_write_text(out / "llava.json",
                             json.dumps([llava_row(s) for s in samples], ensure_ascii=False, indent=1, sort_keys=True)
                             + "\n")


def write_hf(out: Path, samples: list[dict]) -> Path:
    """A `DatasetDict` (one split per `split` value) saved under `out/hf`, images embedded as PNG bytes."""
    import datasets

    features = datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
        **{k: datasets.Value("string") for k in META if k not in ("row", "fold", "au_codes")},
        "row": datasets.Value("int64"), "fold": datasets.Value("int64"),
        "au_codes": datasets.List(datasets.Value("int64")),
    })
    splits = {}
    for split in dict.fromkeys(s["split"] for s in samples):
        rows = []
        for s in (x for x in samples if x["split"] == split):
            row = trl_row(s)
            row["images"] = [{"bytes": (out / p).read_bytes(), "path": p} for p in row["images"]]
            rows.append(row)
        splits[split] = datasets.Dataset.from_list(rows, features=features)
    target = out / "hf"
    tmp = out / ".hf.part"
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.DatasetDict(splits).save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def _table(counter: Counter, head: str) -> str:
    lines = [f"| {head} | samples |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return "\n".join(lines)


def dataset_card(out: Path, samples: list[dict], settings: dict, load_report: dict, synthetic: bool) -> Path:
    """README.md with counts per emotion, AU and subject, the build settings and the source sheets."""
    fgmu = [s for s in samples if s["task"] == "fgmu"]
    emotions = Counter(s["emotion"] for s in fgmu)
    aus = Counter(f"AU{c}" for s in fgmu for c in s["au_codes"])
    subjects = Counter(f"{s['subject']} ({s['split']})" for s in fgmu)
    tasks = Counter(f"{s['task']} / {s['lang']}" for s in samples)
    sheets = "\n".join(f"- `{Path(p).name}`" for p in load_report.get("sheets", [])) or "- (none)"
    title = f"# FGMU instruction data: {settings.get('dataset', '')}" + (" (SYNTHETIC)" if synthetic else "")
    note = ("\n**Synthetic data**: clips rendered by `meu data synth` from public-domain photos; figures measured on "
            "it are synthetic, not results on the licensed dataset.\n" if synthetic else "")
    parts = [
        title, note,
        f"{len(samples)} samples ({len(fgmu)} explanatory FGMU, {len(samples) - len(fgmu)} MER-only) from "
        f"{load_report.get('rows_used', 0)} sheet rows; {load_report.get('rows_skipped', 0)} rows skipped "
        "(see report.json).",
        "## Files\n- `train.jsonl` (and `test_a.jsonl` / `test_b.jsonl` for DFME): TRL conversational rows "
        "(`messages`, `images` relative to this folder)\n- `llava.json`: LLaVA/ShareGPT rows (`image`, "
        "`conversations` with `<image>`)\n- `hf/`: `datasets.load_from_disk`, images embedded\n- `images/`: one MMC "
        "map per clip\n- `report.json`: rows used and skipped with reasons, timings",
        "## Source sheets\n" + sheets,
        "## Build settings\n```json\n" + json.dumps(settings, indent=1, sort_keys=True) + "\n```",
        "## Tasks and languages\n" + _table(tasks, "task / lang"),
        "## Emotions (FGMU samples)\n" + _table(emotions, "emotion"),
        "## Action units (FGMU samples)\n" + _table(aus, "AU"),
        "## Subjects (FGMU samples)\n" + _table(subjects, "subject (split)"),
    ]
    return atomic_write_text(out / "README.md", "\n\n".join(p.strip("\n") for p in parts if p) + "\n")
