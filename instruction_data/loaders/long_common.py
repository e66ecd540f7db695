"""What the long-video sheet loaders share: one sheet row -> one `Expression` of a `LongVideo`, or a reported skip.

Problems are written `"kind: detail"` like the short-clip loaders' (`common.py`): a skip drops the row (no onset,
no frames, frames out of order, a type that is neither micro nor macro, the interval of an earlier row repeated);
a note keeps it (no apex, no offset, an unreadable AU, a type at odds with the 0.5 s rule). `strict=True` raises on
the first of either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant.au import parse_aus
from instruction_data.loaders.common import RowContext, RowProblem, _problem, cell_text, frame_number, list_frames
from instruction_data.long_records import Expression, LongLoadResult, LongVideo
from instruction_data.records import SkippedRow

log = logging.getLogger(__name__)

MICRO_MAX_S = 0.5  # the field's definition: a micro-expression lasts at most 0.5 s from onset to offset


@dataclass(frozen=True)
class VideoRef:
    """Where a row's expression lives: the subject, the video's folder name and its frame folder (None: absent)."""

    subject: str
    video_id: str
    folder: Path | None


def expression_kind(text: str) -> str | None:
    """`micro-expression`, `Micro - 1/2`, `Macro` -> micro / macro; None for anything else."""
    low = text.lower()
    if "micro" in low and "macro" not in low:
        return "micro"
    if "macro" in low and "micro" not in low:
        return "macro"
    return None


@dataclass
class _Frames:
    n: int
    numbers: dict[int, int]  # number in the file name -> index
    by_index: list[int]


def _read_frames(folder: Path) -> _Frames:
    files, numbers = list_frames(folder)
    by_index = [-1] * len(files)
    for number, i in numbers.items():
        by_index[i] = number
    return _Frames(len(files), numbers, by_index)


def _frame_cell(cells: dict, name: str, unknown: Iterable[str]) -> tuple[int | None, str]:
    """(frame number or None, the cell as text); the dataset's own marks for "unknown" (`0`, `-1`) give None."""
    text = cell_text(cells.get(name))
    if text in set(unknown):
        return None, text
    try:
        return frame_number(cells.get(name)), text
    except ValueError as err:
        raise RowProblem(f"bad frame number: {name} {err}") from None


class LongRows:
    """Collects a sheet's rows into videos; each frame folder is listed once."""

    def __init__(self, ctx: RowContext, fps: float, unknown: dict[str, tuple[str, ...]]):
        self.ctx, self.fps, self.unknown = ctx, fps, unknown
        self.videos: dict[tuple[str, str], LongVideo] = {}
        self.skipped: list[SkippedRow] = []
        self._frames: dict[Path, _Frames] = {}
        self._intervals: dict[tuple, int] = {}  # (subject, video, onset, apex, offset) -> the first row giving it

    def frames(self, folder: Path) -> _Frames:
        if folder not in self._frames:
            self._frames[folder] = _read_frames(folder)
        return self._frames[folder]

    def video(self, ref: VideoRef) -> LongVideo:
        key = (ref.subject, ref.video_id)
        if key not in self.videos:
            frames = self.frames(ref.folder)
            self.videos[key] = LongVideo(dataset=self.ctx.dataset, subject=ref.subject, video_id=ref.video_id,
                                         frame_dir=ref.folder, n_frames=frames.n, fps=self.fps,
                                         frame_numbers=frames.by_index)
        return self.videos[key]

    def add(self, row: int, cells: dict, locate: Callable[[dict], VideoRef]) -> None:
        """One sheet row; a problem becomes a reported skip (or, with strict, an error). A repeated interval is
        skipped: used again, it would be ground truth once per copy, and every copy but one a false negative."""
        try:
            ref = locate(cells)
            expression = self._expression(row, cells, ref)
            first = self._intervals.setdefault(
                (ref.subject, ref.video_id, expression.onset, expression.apex, expression.offset), row)
            if first != row:
                raise RowProblem(f"duplicate: row {first} gives the same video, onset, apex and offset; the interval "
                                 "is counted once")
            self.video(ref).expressions.append(expression)
        except RowProblem as problem:
            _problem(self.ctx, row, str(problem))
            self.skipped.append(SkippedRow(row=row, reason=str(problem), clip_id=cell_text(cells.get("clip")),
                                           sheet=self.ctx.sheet.name))
            log.info("%s row %d skipped: %s", self.ctx.sheet.name, row, problem)

    def _expression(self, row: int, cells: dict, ref: VideoRef) -> Expression:
        notes: list[str] = []

        def note(text: str) -> None:
            _problem(self.ctx, row, text)
            notes.append(text)

        clip_id = cell_text(cells.get("clip"))
        type_raw = cell_text(cells.get("type"))
        kind = expression_kind(type_raw)
        if kind is None:
            raise RowProblem(f"unknown type: {type_raw or 'empty'!r} is neither micro nor macro")
        onset, onset_text = _frame_cell(cells, "onset", self.unknown.get("onset", ()))
        apex, apex_text = _frame_cell(cells, "apex", self.unknown.get("apex", ()))
        offset, offset_text = _frame_cell(cells, "offset", self.unknown.get("offset", ()))
        if onset is None:
            raise RowProblem(f"no onset: onset cell is {onset_text or 'empty'!r}")
        if ref.folder is None or not ref.folder.is_dir():
            raise RowProblem(f"frames missing: no frame folder for {ref.subject}/{ref.video_id}")
        frames = self.frames(ref.folder)
        if not frames.n:
            raise RowProblem(f"frames missing: {ref.folder} holds no images")

        def index_of(name: str, number: int) -> int:
            if number not in frames.numbers:
                span = f"{min(frames.numbers)}..{max(frames.numbers)}" if frames.numbers else "none"
                raise RowProblem(f"frame not found: {name} frame {number} has no file in {ref.folder} "
                                 f"(files numbered {span})")
            return frames.numbers[number]

        onset_i = index_of("onset", onset)
        apex_i = index_of("apex", apex) if apex is not None else None
        if apex is None:
            note(f"apex not given: apex cell is {apex_text or 'empty'!r}")
        offset_known = offset is not None
        if offset is not None:
            offset_i = index_of("offset", offset)
        elif apex_i is not None:
            offset_i = apex_i
            note(f"offset not given: offset cell is {offset_text or 'empty'!r}; the interval ends at the apex")
        else:
            raise RowProblem(f"no offset: offset cell is {offset_text or 'empty'!r} and there is no apex either")
        if not onset_i < offset_i or (apex_i is not None and not onset_i <= apex_i <= offset_i):
            raise RowProblem(f"frame order: onset {onset_text}, apex {apex_text}, offset {offset_text} are not "
                             "increasing")
        if offset_known:
            seconds = (offset_i - onset_i) / self.fps  # onset to offset, as the spotter's micro/macro split
            if (kind == "micro") != (seconds <= MICRO_MAX_S):
                note(f"type vs duration: {type_raw!r} lasts {seconds:.2f} s ({'over' if kind == 'micro' else 'within'}"
                     f" the {MICRO_MAX_S} s micro-expression limit); the sheet's type is kept")
        aus = parse_aus(cells.get("aus"))
        if not aus.aus and not aus.alternatives and not aus.unknown:
            note("no AUs coded: the AU cell is empty")
        for au in aus.unknown:
            note(f"unknown AU code: {au.raw!r} kept as unknown")
        return Expression(onset=onset_i, apex=apex_i, offset=offset_i, kind=kind, aus=aus,
                          emotion_raw=cell_text(cells.get("emotion")), type_raw=type_raw, clip_id=clip_id, row=row,
                          notes=notes, offset_known=offset_known)

    def result(self, sheets: list[Path], notes: list[str], unannotated: Iterable[VideoRef] = ()) -> LongLoadResult:
        """The videos in sheet order, then frame folders the sheet never names (evaluated with no ground truth)."""
        extra = 0
        for ref in unannotated:
            if (ref.subject, ref.video_id) not in self.videos and ref.folder is not None:
                if self.video(ref).n_frames:
                    extra += 1
                else:
                    del self.videos[(ref.subject, ref.video_id)]
        if extra:
            notes.append(f"{extra} frame folder(s) with no annotated expression: listed with empty ground truth "
                         "(every interval spotted there is a false positive)")
        for v in self.videos.values():
            v.expressions.sort(key=lambda e: (e.onset, e.offset))
        return LongLoadResult(videos=list(self.videos.values()), skipped=self.skipped, sheets=sheets,
                              notes=[f"{sheets[0].name}: {n}" for n in notes] if sheets else notes)
