"""SAMM Long Videos (spotting): `SAMM_LongVideos_V3_Release.xlsx` (V2 and V1 are read too; the newest found wins)
plus `SAMM_longvideos/006_1/006_1_0001.jpg`, 200 fps.

The first 10 rows are a preamble (title, licence); the header row below it is found by its column names: Subject,
Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes. A Filename names the video and
the expression (`006_1_3` is expression 3 of video `006_1`). Type values: `Micro - 1/2`, `Macro` (any text with
micro or macro in it). Subjects are written as numbers (`6` for `006`).

Quirks handled and reported row by row: an apex of -1 means no apex (noted); rows whose frames are out of order,
missing, or outside the video's frame files are skipped with that reason; Duration and Notes are not used (the
interval is onset..offset). Frame numbers are the numbers in the file names (`006_1_0001.jpg` is frame 1). Folders
under `SAMM_longvideos/` that no row names are listed with empty ground truth (noted).
"""

from __future__ import annotations

import re
from pathlib import Path

from instruction_data.loaders.common import RowContext, RowProblem, as_int, cell_text, find_sheet, read_table
from instruction_data.loaders.long_common import LongRows, VideoRef
from instruction_data.long_records import LongLoadResult

DATASET = "samm_long"
FPS = 200.0
SHEET_PATTERNS = ("SAMM_LongVideos_V3*.xlsx", "SAMM_LongVideos_V2*.xlsx", "SAMM_LongVideos*.xlsx",
                  "SAMM_LongVideos*.csv")
ALIASES = {
    "subject": ("Subject",), "clip": ("Filename", "File name"), "inducement": ("Inducement Code",),
    "onset": ("Onset", "Onset Frame"), "apex": ("Apex", "Apex Frame"), "offset": ("Offset", "Offset Frame"),
    "duration": ("Duration",), "type": ("Type",), "aus": ("Action Units", "AU"), "notes": ("Notes",),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "type")
FRAME_ROOTS = ("SAMM_longvideos", "SAMM_LongVideos", "SAMM_Long_Videos", "")
UNKNOWN = {"onset": ("-1",), "apex": ("-1",), "offset": ("-1",)}
VIDEO = re.compile(r"(\d+_\d+)(?:_\d+)?")


def subject_id(value: object) -> str:
    """`6`, `06`, `006` -> `006`."""
    n = as_int(value)
    return f"{n:03d}" if n is not None else cell_text(value)


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None,
         include_unannotated: bool = True) -> LongLoadResult:
    sheet_path = Path(sheet) if sheet else find_sheet(Path(root), SHEET_PATTERNS, "SAMM Long Videos")
    base = Path(root) if Path(root).is_dir() else sheet_path.parent
    table = read_table(sheet_path, ALIASES, REQUIRED)
    frame_root = next((base / r for r in FRAME_ROOTS if (base / r).is_dir() and r), base)
    rows = LongRows(RowContext(DATASET, sheet_path, strict=strict), FPS, UNKNOWN)

    def locate(cells: dict) -> VideoRef:
        raw = cells.get("subject")
        subject = subject_id(raw)
        if not subject:
            raise RowProblem("no subject: the Subject cell is empty")
        clip = cell_text(cells.get("clip"))
        m = VIDEO.fullmatch(clip)
        if not m:
            raise RowProblem(f"bad filename: {clip or 'empty'!r} is not <subject>_<video>_<expression>")
        video = m.group(1)
        owner = video.split("_")[0]
        same = as_int(owner) == as_int(subject) if as_int(owner) is not None else owner == subject  # 6_1 is 006's
        if not same:
            raise RowProblem(f"subject mismatch: the Subject cell says {subject!r} but the Filename {clip!r} is a "
                             f"video of subject {owner!r}; correct one of the two cells")
        folder = frame_root / video
        return VideoRef(subject, video, folder if folder.is_dir() else None)

    for row, cells in table.rows:
        rows.add(row, cells, locate)
    unannotated = []
    if include_unannotated and frame_root.is_dir():
        unannotated = [VideoRef(m.group(1).split("_")[0], p.name, p) for p in sorted(frame_root.iterdir())
                       if p.is_dir() and (m := re.fullmatch(r"(\d{3}_\d+)", p.name))]
    return rows.result([sheet_path], list(table.notes), unannotated)
