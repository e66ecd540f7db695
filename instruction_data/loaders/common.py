"""What every sheet loader shares: find the header row, match columns by name, and turn each row into a `Record`
or a reported `SkippedRow`.

Problems come in two kinds, each written `"kind: detail"` so the summary can count them by kind:
- a *skip* (the row cannot become a usable record: no frames, no onset, frames out of order);
- a *note* (the row is kept but something was guessed or is unreadable: an apex of `/`, an AU `?`, alternatives
  joined by "or", an emotion word no scheme knows).
With `strict=True` the first problem of either kind raises `AnnotationSheetError` naming the sheet and row.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from assistant.au import parse_aus
from assistant.emotions import canonical, map_emotion
from assistant.errors import AnnotationSheetError
from assistant.facs import FACS
from assistant.motion.clip import frame_files
from instruction_data.records import LoadResult, Record, SkippedRow

log = logging.getLogger(__name__)

FIELDS = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")
HEADER_SCAN_ROWS = 40
# a frame or AU cell that says "not given"; with pandas' own NA strings, which its readers used to turn into blanks
MISSING_MARKS = {"", "/", "-", "--", "?", "n/a", "na", "nan", "none", "null", "#n/a", "#n/a n/a", "#na", "<na>", "-nan",
                 "1.#ind", "-1.#ind", "1.#qnan", "-1.#qnan"}
FOLDER_DEPTH = 8  # levels below the dataset folder that `folder_index` searches for clip folders by name


def norm(text: object) -> str:
    """Header key: lower case, letters and digits only (`Onset Frame` == `OnsetFrame` == `onset_frame`)."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


@dataclass
class SheetRows:
    path: Path
    header_row: int  # 1-based, as a spreadsheet shows it
    rows: list[tuple[int, dict[str, object]]]  # (1-based row number, field -> cell)
    notes: list[str] = field(default_factory=list)


def _column_letter(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def read_table(path: Path, aliases: dict[str, tuple[str, ...]], required: Iterable[str]) -> SheetRows:
    """Read a CSV or XLSX sheet whose header may sit below title rows; map `FIELDS` to columns by `aliases`."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationSheetError(f"Annotation sheet {path} does not exist.")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            table = pd.read_excel(path, header=None, dtype=object, engine="openpyxl", keep_default_na=False)
        else:
            table = pd.read_csv(path, header=None, dtype=object, keep_default_na=False)
    except Exception as err:  # noqa: BLE001 - any reader failure is the same problem for the user
        raise AnnotationSheetError(f"{path.name} could not be read as a spreadsheet ({type(err).__name__}: {err}).") \
            from None
    cells = table.values.tolist()
    ranks: dict[str, dict[str, int]] = {f: {} for f in aliases}  # field -> header key -> preference (0 first)
    for f, names in aliases.items():
        for rank, name in enumerate(names):
            ranks[f].setdefault(norm(name), rank)
    required = list(required)
    header_idx, columns, matches = None, {}, {}
    best: tuple[int, int, set[str]] = (0, 0, set())  # the row that matched the most required fields, for the error
    for i, row in enumerate(cells[:HEADER_SCAN_ROWS]):
        found: dict[str, list[tuple[int, int]]] = {}  # field -> (preference, column) of every header cell it matches
        for j, cell in enumerate(row):
            k = norm(cell) if not _blank(cell) else ""
            for f, rank in ranks.items():
                if k and k in rank:
                    found.setdefault(f, []).append((rank[k], j))
        if all(f in found for f in required):
            header_idx, matches = i, found
            columns = {f: min(c)[1] for f, c in found.items()}  # the most preferred alias, then the leftmost
            break
        hits = {f for f in required if f in found}
        if len(hits) > best[0]:
            best = (len(hits), i, hits)
    if header_idx is None:
        raise AnnotationSheetError(_no_header(path, cells, aliases, required, best))
    notes = []
    if header_idx > 0:
        notes.append(f"header found on row {header_idx + 1}, below {header_idx} title row(s)")
    header = cells[header_idx]
    data = cells[header_idx + 1:]
    for f, found in matches.items():
        if len(found) > 1:
            others = ", ".join(f"{_column_letter(j)} ({cell_text(header[j])})" for _, j in sorted(found)[1:])
            notes.append(f"{len(found)} columns could be {aliases[f][0]}: column {_column_letter(columns[f])} "
                         f"({cell_text(header[columns[f]])}) is read, {others} ignored")
    unnamed = [j for j, h in enumerate(header) if _blank(h)]
    empty = [j for j in unnamed if all(_blank(r[j]) for r in data)]
    if empty:
        notes.append(f"dropped {len(empty)} blank unnamed column(s): {', '.join(_column_letter(j) for j in empty)}")
    filled = [j for j in unnamed if j not in empty]
    if filled:
        notes.append(f"ignored {len(filled)} unnamed column(s) holding values: "
                     f"{', '.join(_column_letter(j) for j in filled)}")
    rows, blank_rows = [], 0
    for k, row in enumerate(data):
        if all(_blank(c) for c in row):
            blank_rows += 1
            continue
        rows.append((header_idx + 2 + k, {f: row[j] for f, j in columns.items()}))
    if blank_rows:
        notes.append(f"{blank_rows} blank row(s) ignored")
    require_rows(rows, path, f"follow the header on row {header_idx + 1}")
    return SheetRows(path=path, header_row=header_idx + 1, rows=rows, notes=notes)


def _no_header(path: Path, cells: list[list], aliases: dict[str, tuple[str, ...]], required: list[str],
               best: tuple[int, int, set[str]]) -> str:
    """The sentence for a sheet whose header was not found: which columns are missing where a row came close, and
    the usual causes (another separator, the table on another worksheet)."""
    wanted = ", ".join(aliases[f][0] for f in required)
    text = f"{path.name}: no header row with the columns {wanted} in its first {HEADER_SCAN_ROWS} rows"
    count, row, hits = best
    if count >= 2:
        present = ", ".join(aliases[f][0] for f in required if f in hits)
        missing = "; ".join(f"{aliases[f][0]} (named any of: {', '.join(aliases[f])})"
                            for f in required if f not in hits)
        text += f"; row {row + 1} has {present} but no column for {missing}"
    elif path.suffix.lower() not in (".xlsx", ".xlsm", ".xls"):
        firsts = [str(r[0]) for r in cells[:HEADER_SCAN_ROWS] if r and not _blank(r[0])]
        separator = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if any(sep in c for c in firsts)),
                         None)
        if separator:
            text += f"; its columns look separated by {separator}: save it with commas, or as .xlsx"
    else:
        try:
            with pd.ExcelFile(path, engine="openpyxl") as book:
                sheets = book.sheet_names
        except Exception:  # noqa: BLE001 - the sentence goes without the worksheet hint
            sheets = []
        if len(sheets) > 1:
            text += (f"; only its first worksheet ({sheets[0]!r} of {', '.join(map(repr, sheets))}) is read: put the "
                     "coding table first")
    return text + "; is this the right dataset's sheet?"


def require_rows(rows: list, path: Path, where: str) -> None:
    """A sheet without data rows is refused: read as empty it builds nothing, or scores every spotted interval as a
    false positive, and exits 0."""
    if not rows:
        raise AnnotationSheetError(f"{path.name}: no data rows {where}; give the full annotation sheet (this one is "
                                   "empty or cut short).")


def frame_number(value: object) -> int | None:
    """A sheet's frame cell as an int; None for the missing marks (`/`, blank); ValueError for anything else."""
    if _blank(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not a whole frame number")
    text = str(value).strip()
    if text.lower() in MISSING_MARKS:
        return None
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    raise ValueError(f"{text!r} is not a frame number")


def cell_text(value: object) -> str:
    if _blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def list_frames(folder: Path) -> tuple[tuple[Path, ...], dict[int, int]]:
    """Image files in natural order and a map from the number in each file name (its last digit run) to index."""
    files = tuple(frame_files(folder))
    numbers: dict[int, int] = {}
    for i, p in enumerate(files):
        digits = re.findall(r"\d+", p.stem)
        if digits:
            numbers.setdefault(int(digits[-1]), i)
    return files, numbers


def folder_index(root: Path, max_depth: int = FOLDER_DEPTH) -> dict[str, tuple[Path, ...]]:
    """Every folder under `root` by name, for layouts that vary between copies of a dataset."""
    index: dict[str, list[Path]] = {}
    base_depth = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if len(here.parts) - base_depth >= max_depth:
            dirnames[:] = []
        for d in dirnames:
            index.setdefault(d, []).append(here / d)
    return {k: tuple(sorted(v)) for k, v in index.items()}


class RowProblem(Exception):
    """Raised inside row parsing: the row is skipped with this reason."""


@dataclass
class RowContext:
    dataset: str
    sheet: Path
    split: str = "train"
    strict: bool = False


RowFolder = Callable[[str, str], Path | None]  # (subject, clip id) -> the clip's frame folder, None when absent


def _problem(ctx: RowContext, row: int, text: str) -> None:
    if ctx.strict:
        raise AnnotationSheetError(
            f"{ctx.sheet.name} row {row}: {text}. Run without --strict to skip or annotate such rows and list them "
            "all in the report."
        )


def row_to_record(ctx: RowContext, row: int, cells: dict[str, object], subject_fn: Callable[[object], str],
                  folder_fn: RowFolder) -> Record:
    """One sheet row -> `Record` (with notes); raises `RowProblem` when the row cannot be used."""
    notes: list[str] = []

    def note(text: str) -> None:
        _problem(ctx, row, text)
        notes.append(text)

    raw_subject = cells.get("subject")
    if _blank(raw_subject):
        raise RowProblem("no subject: the Subject cell is empty")
    subject = subject_fn(raw_subject)
    clip_id = cell_text(cells.get("clip"))
    if not clip_id:
        raise RowProblem("no clip id: the Filename cell is empty")
    if ctx.dataset != "generic" and (re.search(r"[/\\]", clip_id) or clip_id in (".", "..")):
        raise RowProblem(f"bad filename: {clip_id!r} is a path; the Filename cell names one clip folder of its subject")
    try:
        onset = frame_number(cells.get("onset"))
        apex = frame_number(cells.get("apex")) if "apex" in cells else None
        offset = frame_number(cells.get("offset")) if "offset" in cells else None
    except ValueError as err:
        raise RowProblem(f"bad frame number: {err}") from None
    if onset is None:
        raise RowProblem(f"no onset: onset cell is {cell_text(cells.get('onset')) or 'empty'!r}")

    folder = folder_fn(subject, clip_id)
    if folder is None or not folder.is_dir():
        raise RowProblem(f"frames missing: no frame folder for {subject}/{clip_id}")
    files, numbers = list_frames(folder)
    if not files:
        raise RowProblem(f"frames missing: {folder} holds no images")
    span = f"files numbered {min(numbers)}..{max(numbers)}" if numbers else "no numbered files"

    def index_of(name: str, number: int) -> int:
        if number not in numbers:
            raise RowProblem(f"frame not found: {name} frame {number} has no file in {folder} ({span})")
        return numbers[number]

    onset_i = index_of("onset", onset)
    offset_i = index_of("offset", offset) if offset is not None else None
    if offset is None and "offset" in cells:
        note(f"offset not given: offset cell is {cell_text(cells.get('offset')) or 'empty'!r}")
    apex_known = apex is not None
    if apex is None:
        end = offset_i if offset_i is not None else len(files) - 1
        apex_i = onset_i + max(1, (end - onset_i) // 2)
        if apex_i >= len(files):
            raise RowProblem("no apex: the apex cell is empty and the clip has no frame after onset")
        until = files[offset_i].name if offset_i is not None else "the last frame"
        note(f"apex not given: apex cell is {cell_text(cells.get('apex')) or 'empty'!r}; `meu data build` spots it "
             f"between {files[onset_i].name} and {until} (the frame differing most from the onset); evaluation and "
             f"AU training use the middle frame {files[apex_i].name}")
    else:
        apex_i = index_of("apex", apex)
    if not onset_i < apex_i or (offset_i is not None and apex_i > offset_i):
        raise RowProblem(f"frame order: onset {onset}, apex {apex}, offset {offset} are not increasing")

    aus_text = cell_text(cells.get("aus"))
    aus_coded = aus_text.lower() not in MISSING_MARKS - {"", "?"}  # a lone "?" stays an unknown AU code, as written
    aus = parse_aus(cells.get("aus") if aus_coded else "")
    if not aus_coded:
        note(f"AUs not given: the AU cell is {aus_text!r}; the clip is left out of AU scoring and AU training")
    elif not aus.aus and not aus.alternatives:
        note("no AUs coded: the AU cell is empty")
    for au in aus.unknown:
        note(f"unknown AU code: {au.raw!r} kept as unknown")
    for au in aus.aus:
        if au.code is not None and au.code not in FACS:
            note(f"AU outside the FACS table: {au.label} (cell {aus.raw!r}) is kept in the record but left out of "
                 "instruction answers unless --allow-unknown-aus")
    if aus.alternatives:
        alts = " or ".join("+".join(str(a) for a in alt) for alt in aus.alternatives)
        note(f"AU alternatives: {aus.raw!r}; the first ({'+'.join(str(a) for a in aus.aus)}) is used, {alts} kept")

    emotion_raw = cell_text(cells.get("emotion"))
    if canonical(emotion_raw) is None:
        note(f"unknown emotion word: {emotion_raw or 'empty'!r} maps to no scheme")
    return Record(
        dataset=ctx.dataset, subject=subject, clip_id=clip_id, frame_paths=list(files), onset=onset_i, apex=apex_i,
        offset=offset_i, aus=aus, emotion_raw=emotion_raw, emotion3=map_emotion(emotion_raw, "3"),
        emotion5=map_emotion(emotion_raw, "5"), emotion7=map_emotion(emotion_raw, "7"), row=row, split=ctx.split,
        notes=notes, apex_known=apex_known, aus_coded=aus_coded,
    )


def load_rows(table: SheetRows, ctx: RowContext, subject_fn: Callable[[object], str],
              folder_fn: RowFolder) -> LoadResult:
    """Every row of `table` as a record or a reported skip, in sheet order. A row that repeats an earlier one (the
    same clip, frames and labels) is skipped: used again, the clip would weigh twice in every score and in training.
    The same clip and frames with other labels is kept, with a note: which label is right is the user's call."""
    records, skipped = [], []
    first: dict[tuple, Record] = {}  # by clip and frames, and by clip, frames and labels
    for row, cells in table.rows:
        try:
            record = row_to_record(ctx, row, cells, subject_fn, folder_fn)
            frames = (record.subject, record.clip_id, record.onset, record.apex, record.offset)
            labels = (*frames, record.aus.raw, record.aus_coded, record.emotion_raw)
            if labels in first:
                raise RowProblem(f"duplicate: row {first[labels].row} gives the same clip, frames and labels; the "
                                 "clip is counted once")
            if frames in first:
                text = f"conflicting labels: row {first[frames].row} gives the same clip and frames with other labels"
                _problem(ctx, row, text)
                record.notes.append(text)
            first.setdefault(frames, record)
            first[labels] = record
            records.append(record)
        except RowProblem as problem:
            _problem(ctx, row, str(problem))
            skipped.append(SkippedRow(row=row, reason=str(problem), clip_id=cell_text(cells.get("clip")),
                                      sheet=table.path.name))
            log.info("%s row %d skipped: %s", table.path.name, row, problem)
    notes = [f"{table.path.name}: {n}" for n in table.notes]
    mark_repeats(records)
    return LoadResult(records=records, skipped=skipped, sheet=table.path, sheets=[table.path], notes=notes)


def mark_repeats(records: list[Record]) -> None:
    """Flag the records of clips named on several rows, so each row keeps a key of its own."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in records:
        clip = (r.dataset, r.subject, r.clip_id)
        counts[clip] = counts.get(clip, 0) + 1
    for r in records:
        if counts[(r.dataset, r.subject, r.clip_id)] > 1:
            r.repeated = True


def note_folder_search(result: LoadResult, base: Path) -> None:
    """For loaders that find clip folders by name: where they were looked for, when some were not found."""
    if any(s.reason.startswith("frames missing") for s in result.skipped):
        result.notes.append(f"clip folders were looked for by name up to {FOLDER_DEPTH} folder levels below {base}")


def merge(results: list[LoadResult]) -> LoadResult:
    out = LoadResult(records=[], skipped=[], sheet=results[0].sheet if results else None)
    for r in results:
        out.records += r.records
        out.skipped += r.skipped
        out.sheets += r.sheets
        out.notes += r.notes
    mark_repeats(out.records)
    return out


def find_sheet(root: Path, patterns: Iterable[str], what: str) -> Path:
    """The sheet under `root` (or `root` itself when it is a file) matching the first pattern that matches."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise AnnotationSheetError(f"Dataset folder {root} does not exist.")
    patterns = list(patterns)
    for pattern in patterns:
        hits = sorted(p for p in (*root.glob(pattern), *root.glob(f"*/{pattern}")) if not p.name.startswith("~$"))
        if hits:
            if len(hits) > 1:
                log.info("several %s sheets found; using %s", what, hits[-1].name)
            return hits[-1]
    raise AnnotationSheetError(
        f"No {what} annotation sheet ({' or '.join(patterns)}) in {root}; pass the dataset folder that holds it "
        "or the sheet itself."
    )


def first_dir(candidates: Iterable[Path]) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


def as_int(value: object) -> int | None:
    """A subject cell written as a number (`1`, `1.0`, `"01"`), else None."""
    text = cell_text(value)
    return int(text) if re.fullmatch(r"\d+", text) else None
