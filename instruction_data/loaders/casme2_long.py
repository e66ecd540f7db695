"""CAS(ME)^2 long videos (spotting): `CAS(ME)^2code_final.xlsx` (or `CAS(ME)^2code_final(Updated).xlsx`, preferred
when both are there) plus `rawpic/s15/15_0101disgustingteeth/img1.jpg`, 30 fps.

The workbook has three sheets:
- `CASMEcode_final`, with **no header row**; columns A..I: participant number, video name and expression number
  (`disgust1_3`), onset, apex, offset, AUs, estimated emotion, expression type (`macro-expression` /
  `micro-expression`), self-reported emotion;
- `naming rule1`: participant numbers -> subject folder codes (column B: `15` or `s15`; column C: the participant
  number `CASMEcode_final` uses);
- `naming rule2`: video codes -> video names (column A: `0101`; column B: `disgust1`).
A video's frame folder is `rawpic/s<code>/<code>_<video code>*` (the folder name goes on with a description,
`15_0101disgustingteeth`, that no sheet holds, so the folder is found by its prefix).

Quirks handled and reported row by row: an offset of 0 means the offset is unknown (the interval then ends at the
apex, noted); an apex of 0 means no apex (noted); video codes stored as numbers lose their leading zero (`101` is read
as `0101`, noted once); names padded with spaces; a first row that turns out to be a header is skipped (noted);
rows whose video has no frame folder are skipped with that reason. Frame numbers are the numbers in the file names
(`img46.jpg` is frame 46). Folders under `rawpic/` that no row names are listed with empty ground truth (noted).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from assistant.errors import AnnotationSheetError
from instruction_data.loaders.common import RowContext, RowProblem, as_int, cell_text, find_sheet, norm, require_rows
from instruction_data.loaders.long_common import LongRows, VideoRef
from instruction_data.long_records import LongLoadResult

DATASET = "casme2_long"
FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)^2code_final*Updated*.xlsx", "CAS(ME)^2code_final*.xlsx", "CAS(ME)*code_final*.xlsx",
                  "*code_final*.xlsx")
CODE_SHEET, RULE1_SHEET, RULE2_SHEET = "CASMEcode_final", "naming rule1", "naming rule2"
COLUMNS = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion", "type", "self_report")
FRAME_ROOTS = ("rawpic", "rawpic_aligned", "")
UNKNOWN = {"onset": (), "apex": ("0",), "offset": ("0",)}  # 0 marks an unknown apex or offset


def _sheets(path: Path) -> dict[str, list[list[object]]]:
    try:
        book = pd.read_excel(path, sheet_name=None, header=None, dtype=object, engine="openpyxl")
    except Exception as err:  # noqa: BLE001 - any reader failure is the same problem for the user
        raise AnnotationSheetError(f"{path.name} could not be read as a workbook ({type(err).__name__}: {err}).") \
            from None
    return {norm(name): table.values.tolist() for name, table in book.items()}


def _subject_codes(rows: list[list[object]], notes: list[str]) -> dict[int, int]:
    """naming rule1: participant number (column C) -> subject folder code (column B, `15` or `s15`)."""
    codes, unread = {}, 0
    for row in rows:
        cells = [cell_text(c) for c in row] + ["", "", ""]
        code_text = cells[1].lower().removeprefix("s")
        participant = as_int(cells[2])
        if participant is None or not code_text.isdigit():
            unread += bool(any(cells))
            continue
        codes[participant] = int(code_text)
    if not codes:
        raise AnnotationSheetError(f"Sheet {RULE1_SHEET!r} maps no participant: expected subject folder codes (15 or "
                                   "s15) in column B and participant numbers in column C.")
    if unread:
        notes.append(f"{RULE1_SHEET}: {unread} row(s) that are not a participant mapping ignored")
    return codes


def _video_codes(rows: list[list[object]], notes: list[str]) -> dict[str, str]:
    """naming rule2: video name (column B, `disgust1`) -> four-digit video code (column A, `0101`)."""
    codes, unpadded, unread = {}, 0, 0
    for row in rows:
        cells = [cell_text(c) for c in row] + ["", ""]
        code, name = cells[0], cells[1].strip().lower()
        if not code.isdigit() or not name:
            unread += bool(any(cells))
            continue
        if len(code) < 4:
            unpadded += 1
        codes[name] = code.zfill(4)
    if not codes:
        raise AnnotationSheetError(f"Sheet {RULE2_SHEET!r} maps no video: expected video codes (0101) in column A and "
                                   "video names (disgust1) in column B.")
    if unpadded:
        notes.append(f"{RULE2_SHEET}: {unpadded} video code(s) stored as numbers without their leading zero, "
                     "read as four digits (101 -> 0101)")
    if unread:
        notes.append(f"{RULE2_SHEET}: {unread} row(s) that are not a video mapping ignored")
    return codes


def _video_name(clip: str) -> str:
    """`disgust1_3` (video disgust1, expression 3) -> `disgust1`."""
    m = re.fullmatch(r"(.+?)_\d+", clip.strip())
    return (m.group(1) if m else clip.strip()).lower()


class _Folders:
    """Frame folders by subject code, each subject folder listed once."""

    def __init__(self, base: Path):
        self.base = base
        self._listed: dict[int, list[Path]] = {}

    def subject_dirs(self, code: int) -> list[Path]:
        if code not in self._listed:
            found: list[Path] = []
            for root in FRAME_ROOTS:
                d = self.base / root / f"s{code}"
                if d.is_dir():
                    found = sorted(p for p in d.iterdir() if p.is_dir())
                    break
            self._listed[code] = found
        return self._listed[code]

    def find(self, code: int, video_code: str) -> Path | None:
        """The video's folder, named by its prefix (`15_0101` for `15_0101disgustingteeth`); two candidates are a
        problem of the row, not a guess."""
        prefix = f"{code}_{video_code}"
        hits = [p for p in self.subject_dirs(code) if p.name.startswith(prefix)]
        exact = [p for p in hits if p.name == prefix]
        if len(hits) > 1 and not exact:
            raise RowProblem(f"ambiguous folder: {', '.join(p.name for p in hits)} in {hits[0].parent} all start with "
                             f"{prefix}; move the ones that are not this video elsewhere")
        return (exact or hits or [None])[0]

    def all(self) -> list[VideoRef]:
        out = []
        for root in FRAME_ROOTS:
            top = self.base / root
            if not top.is_dir() or (root == "" and out):
                continue
            for sub in sorted(top.iterdir()):
                m = re.fullmatch(r"s(\d+)", sub.name)
                if not m or not sub.is_dir():
                    continue
                for folder in self.subject_dirs(int(m.group(1))):
                    if re.match(rf"{int(m.group(1))}_\d{{4}}", folder.name):
                        out.append(VideoRef(sub.name, folder.name, folder))
            if out:
                break
        return out


def load(root: str | Path, strict: bool = False, sheet: str | Path | None = None,
         include_unannotated: bool = True) -> LongLoadResult:
    sheet_path = Path(sheet) if sheet else find_sheet(Path(root), SHEET_PATTERNS, "CAS(ME)^2")
    base = Path(root) if Path(root).is_dir() else sheet_path.parent
    book = _sheets(sheet_path)
    notes: list[str] = []
    if norm(CODE_SHEET) in book:
        code_rows, where = book[norm(CODE_SHEET)], f"in sheet {CODE_SHEET!r}"
    else:
        code_rows, where = next(iter(book.values())), "in its first sheet"
        notes.append(f"no sheet named {CODE_SHEET!r}; the first sheet is read as the expression list")
    data, blank = [], 0
    for k, row in enumerate(code_rows):
        cells = dict(zip(COLUMNS, row))
        if all(cell_text(c) == "" for c in row):
            blank += 1
        elif k == 0 and as_int(cells.get("subject")) is None and not cell_text(cells.get("onset")).isdigit():
            notes.append("row 1 is a header row, skipped (the official sheet has none)")
        else:
            data.append((k + 1, cells))
    require_rows(data, sheet_path, where)
    for name in (RULE1_SHEET, RULE2_SHEET):
        if norm(name) not in book:
            raise AnnotationSheetError(f"{sheet_path.name} has no sheet {name!r}, which maps the sheet's names to "
                                       "frame folders; use the official CAS(ME)^2 workbook.")
    subjects = _subject_codes(book[norm(RULE1_SHEET)], notes)
    videos = _video_codes(book[norm(RULE2_SHEET)], notes)
    folders = _Folders(base)
    rows = LongRows(RowContext(DATASET, sheet_path, strict=strict), FPS, UNKNOWN)

    def locate(cells: dict) -> VideoRef:
        participant = as_int(cells.get("subject"))
        if participant is None:
            raise RowProblem(f"no subject: participant cell is {cell_text(cells.get('subject')) or 'empty'!r}")
        if participant not in subjects:
            raise RowProblem(f"unknown participant: {participant} is not in {RULE1_SHEET!r}")
        name = _video_name(cell_text(cells.get("clip")))
        if name not in videos:
            raise RowProblem(f"unknown video: {name or 'empty'!r} is not in {RULE2_SHEET!r}")
        code, video_code = subjects[participant], videos[name]
        folder = folders.find(code, video_code)
        return VideoRef(f"s{code}", folder.name if folder else f"{code}_{video_code}", folder)

    for row, cells in data:
        rows.add(row, cells, locate)
    padded = sum(1 for row in code_rows if len(row) > 1 and isinstance(row[1], str) and row[1] != row[1].strip())
    if padded:
        notes.append(f"{padded} video name cell(s) padded with spaces, read without them")
    if blank:
        notes.append(f"{blank} blank row(s) ignored")
    return rows.result([sheet_path], notes, folders.all() if include_unannotated else ())
