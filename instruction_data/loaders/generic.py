"""Any CSV/XLSX sheet, driven by a column map and a frame-folder template.

`columns` maps the record fields (subject, clip, onset, apex, offset, aus, emotion) to the sheet's header names;
`frames` is a folder template relative to the root such as `"{subject}/{clip}"`. Apex and offset are optional.
"""

from __future__ import annotations

from pathlib import Path

from assistant.errors import AnnotationSheetError
from instruction_data.loaders.common import FIELDS, RowContext, cell_text, load_rows, read_table
from instruction_data.records import LoadResult

REQUIRED = ("subject", "clip", "onset", "aus", "emotion")


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None,
         columns: dict[str, str] | None = None, frames: str = "{subject}/{clip}",
         dataset: str = "generic") -> LoadResult:
    if sheet is None:
        raise AnnotationSheetError("The generic loader needs the sheet path (sheet=...) and a column map.")
    columns = {f: f for f in FIELDS} | dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise AnnotationSheetError(f"Unknown column map key(s) {', '.join(unknown)}; use {', '.join(FIELDS)}.")
    root = Path(root)
    sheet_path = Path(sheet) if Path(sheet).is_absolute() else root / sheet
    table = read_table(sheet_path, {f: (h,) for f, h in columns.items()}, REQUIRED)

    def folder(subject: str, clip: str) -> Path | None:
        return root / frames.format(subject=subject, clip=clip)

    return load_rows(table, RowContext(dataset, sheet_path, strict=strict), cell_text, folder)
