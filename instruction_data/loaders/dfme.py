"""DFME: one sheet per split (`DFME_training_full_with_AU.xlsx`, `DFME_test_A_full_with_AU.xlsx`, Test B), kept
apart in `Record.split` ("train", "test_a", "test_b") because the test sets are subject-disjoint from training.

Clip folders are found by their Filename anywhere under the root (copies of DFME are laid out in several ways);
the expected one is `<root>/<split folder>/<Filename>/<n>.jpg`. AU cells may carry L/R prefixes.
"""

from __future__ import annotations

from pathlib import Path

from assistant.errors import AnnotationSheetError
from instruction_data.loaders.common import (
    RowContext,
    as_int,
    cell_text,
    folder_index,
    load_rows,
    merge,
    note_folder_search,
    read_table,
)
from instruction_data.records import LoadResult

DATASET = "dfme"
SPLIT_PATTERNS = {
    "train": ("DFME_training*.xlsx", "DFME_train*.xlsx", "DFME_training*.csv"),
    "test_a": ("DFME_test_A*.xlsx", "DFME_test_A*.csv"),
    "test_b": ("DFME_test_B*.xlsx", "DFME_test_B*.csv"),
}
ALIASES = {
    "subject": ("Subject",), "clip": ("Filename", "File name", "Clip"),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"), "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
    "aus": ("AU", "AUs", "Action Units"), "emotion": ("Estimated Emotion", "Emotion"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")


def subject_id(value: object) -> str:
    n = as_int(value)
    return str(n) if n is not None else cell_text(value)


def _sheets(root: Path) -> dict[str, Path]:
    found = {}
    for split, patterns in SPLIT_PATTERNS.items():
        for pattern in patterns:
            hits = sorted((*root.glob(pattern), *root.glob(f"*/{pattern}")))
            if hits:
                found[split] = hits[-1]
                break
    return found


def load(root: str | Path, strict: bool = False, splits: tuple[str, ...] = ("train", "test_a", "test_b"),
         sheet: str | Path | None = None) -> LoadResult:
    root = Path(root)
    sheets = {"train": Path(sheet)} if sheet else _sheets(root)
    if not sheets:
        raise AnnotationSheetError(
            f"No DFME annotation sheet (DFME_training_full_with_AU.xlsx, DFME_test_A_full_with_AU.xlsx, ...) in "
            f"{root}; pass the dataset folder that holds them."
        )
    base = root if root.is_dir() else Path(sheet).parent
    index = folder_index(base)  # DFME copies differ in layout: find clip folders by name
    results = []
    for split in splits:
        if split not in sheets:
            continue
        table = read_table(sheets[split], ALIASES, REQUIRED)

        def folder(subject: str, clip: str, split: str = split) -> Path | None:
            hits = index.get(clip, ())
            preferred = [h for h in hits if split.replace("_", "").lower() in str(h).replace("_", "").lower()]
            return (preferred or list(hits) or [None])[0]

        results.append(load_rows(table, RowContext(DATASET, sheets[split], split=split, strict=strict), subject_id,
                                 folder))
    missing = [s for s in splits if s not in sheets]
    if not results:
        wanted = " or ".join(p for s in missing for p in SPLIT_PATTERNS[s])
        where = (f"the sheet given ({sheet}) is read as the training sheet; give the dataset folder" if sheet else
                 f"{root} holds the sheet(s) of {', '.join(sorted(sheets))} only")
        raise AnnotationSheetError(f"No DFME sheet for {', '.join(missing)} ({wanted}): {where}.")
    result = merge(results)
    note_folder_search(result, base)
    if missing:
        result.notes.append(f"no sheet for split(s) {', '.join(missing)}")
    return result
