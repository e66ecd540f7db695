"""SAMM: `SAMM_Micro_FACS_Codes_v2.xlsx` plus `SAMM/006/006_1_2/006_05562.jpg`.

The header row sits below a block of title and licence rows (about row 13): it is found by its column names.
Subjects are written as numbers (`6` for folder `006`); AU cells look like `R12 + R15`, `R14A`, `12 or 14`.
"""

from __future__ import annotations

from pathlib import Path

from instruction_data.loaders.common import RowContext, as_int, cell_text, find_sheet, first_dir, load_rows, read_table
from instruction_data.records import LoadResult

DATASET = "samm"
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM_Micro_FACS_Codes*.xlsx", "SAMM*.xlsx", "SAMM*.csv")
ALIASES = {
    "subject": ("Subject",), "clip": ("Filename", "File name"),
    "onset": ("Onset Frame", "Onset"), "apex": ("Apex Frame", "Apex"), "offset": ("Offset Frame", "Offset"),
    "aus": ("Action Units", "AU"), "emotion": ("Estimated Emotion", "Emotion"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")
FRAME_ROOTS = ("SAMM", "SAMM_CROP", "samm", "")


def subject_id(value: object) -> str:
    """`6`, `06`, `006` -> `006`."""
    n = as_int(value)
    return f"{n:03d}" if n is not None else cell_text(value)


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None) -> LoadResult:
    sheet_path = Path(sheet) if sheet else find_sheet(Path(root), SHEET_PATTERNS, "SAMM")
    base = Path(root) if Path(root).is_dir() else sheet_path.parent
    table = read_table(sheet_path, ALIASES, REQUIRED)

    def folder(subject: str, clip: str) -> Path | None:
        return first_dir(base / r / subject / clip for r in FRAME_ROOTS)

    return load_rows(table, RowContext(DATASET, sheet_path, strict=strict), subject_id, folder)
