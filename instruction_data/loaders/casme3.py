"""CAS(ME)^3 part A: `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`; frames under `<root>/.../spNO.1/a/` (an optional
`color/` level inside the clip folder is accepted). Subjects are written `spNO.1` (or as bare numbers); frame numbers
are the JPEG indices in the file names.
"""

from __future__ import annotations

from pathlib import Path

from instruction_data.loaders.common import (
    RowContext,
    as_int,
    cell_text,
    find_sheet,
    folder_index,
    load_rows,
    note_folder_search,
    read_table,
)
from instruction_data.records import LoadResult

DATASET = "casme3"
SHEET_PATTERNS = ("cas(me)3_part_A*label*.xlsx", "cas(me)3_part_A*.xlsx", "casme3*.xlsx", "cas(me)3*.csv")
ALIASES = {
    "subject": ("Subject", "sub"), "clip": ("Filename", "File name", "clip"),
    "onset": ("Onset", "Onset Frame"), "apex": ("Apex", "Apex Frame"), "offset": ("Offset", "Offset Frame"),
    "aus": ("AU", "AUs", "Action Units"), "emotion": ("emotion", "Estimated Emotion", "Objective class"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")


def subject_id(value: object) -> str:
    """`1`, `spNO.1`, `spno1` -> `spNO.1`."""
    n = as_int(value)
    if n is not None:
        return f"spNO.{n}"
    text = cell_text(value)
    digits = text.lower().replace("spno", "").lstrip(".")
    return f"spNO.{int(digits)}" if text.lower().startswith("spno") and digits.isdigit() else text


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None) -> LoadResult:
    sheet_path = Path(sheet) if sheet else find_sheet(Path(root), SHEET_PATTERNS, "CAS(ME)^3 part A")
    base = Path(root) if Path(root).is_dir() else sheet_path.parent
    table = read_table(sheet_path, ALIASES, REQUIRED)
    index = folder_index(base)

    def folder(subject: str, clip: str) -> Path | None:
        for hit in index.get(clip, ()):
            if hit.parent.name == subject:
                return hit / "color" if (hit / "color").is_dir() else hit
        return None

    result = load_rows(table, RowContext(DATASET, sheet_path, strict=strict), subject_id, folder)
    note_folder_search(result, base)
    numeric = sum(as_int(cells.get("subject")) is not None for _, cells in table.rows)
    if numeric:
        result.notes.append(f"{sheet_path.name}: {numeric} subject(s) written as bare numbers, read as spNO.N")
    return result
