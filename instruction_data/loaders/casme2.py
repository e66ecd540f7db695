"""CASME II: `CASME2-coding-20140508.xlsx` (or the updated coding sheet) plus `CASME2_RAW_selected/sub01/EP02_01f/`.

Quirks met in the real sheet and handled here: two blank unnamed columns, subjects written as numbers (`1` for
`sub01`), one ApexFrame of `/`, AU cells such as `4+L10`, `1+R2+25` and `?`. Frame numbers are the numbers in
the file names (`img46.jpg`); the cropped release (`Cropped/sub01/EP02_01f/reg_img46.jpg`) works the same way.
"""

from __future__ import annotations

from pathlib import Path

from instruction_data.loaders.common import RowContext, as_int, cell_text, find_sheet, first_dir, load_rows, read_table
from instruction_data.records import LoadResult

DATASET = "casme2"
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2-coding*.xlsx", "CASME2*.xlsx", "CASME2*.csv")
ALIASES = {
    "subject": ("Subject",), "clip": ("Filename", "File name", "Clip"),
    "onset": ("OnsetFrame", "Onset"), "apex": ("ApexFrame", "Apex"), "offset": ("OffsetFrame", "Offset"),
    "aus": ("Action Units", "AU", "AUs"), "emotion": ("Estimated Emotion", "Emotion"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")
FRAME_ROOTS = ("CASME2_RAW_selected", "CASME2_RAW", "CASME2-RAW", "Cropped", "CASME2_Cropped", "")


def subject_id(value: object) -> str:
    """`1`, `01`, `sub01` -> `sub01`."""
    n = as_int(value)
    if n is not None:
        return f"sub{n:02d}"
    text = cell_text(value)
    low = text.lower()
    return f"sub{int(low[3:]):02d}" if low.startswith("sub") and low[3:].isdigit() else text


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None) -> LoadResult:
    sheet_path = Path(sheet) if sheet else find_sheet(Path(root), SHEET_PATTERNS, "CASME II")
    base = Path(root) if Path(root).is_dir() else sheet_path.parent
    table = read_table(sheet_path, ALIASES, REQUIRED)

    def folder(subject: str, clip: str) -> Path | None:
        return first_dir(base / r / subject / clip for r in FRAME_ROOTS)

    result = load_rows(table, RowContext(DATASET, sheet_path, strict=strict), subject_id, folder)
    numeric = sum(as_int(cells.get("subject")) is not None for _, cells in table.rows)
    if numeric:
        result.notes.append(f"{sheet_path.name}: {numeric} subject(s) written as numbers, read as sub01 style")
    return result
