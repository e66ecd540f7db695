"""The one record type every dataset loader yields, whatever the sheet looked like."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from assistant.au import AUSet


@dataclass
class Record:
    dataset: str  # "casme2" | "samm" | "dfme" | "casme3" | "generic"
    subject: str  # normalised subject id, e.g. "sub01", "006", "spNO.1"
    clip_id: str  # the sheet's Filename (e.g. "EP02_01f")
    frame_paths: list[Path]  # the clip's frames in temporal order
    onset: int  # index into frame_paths
    apex: int  # index into frame_paths
    offset: int | None  # index into frame_paths, None when the sheet has none
    aus: AUSet  # lossless: sides, intensities, unknown codes, alternatives
    emotion_raw: str
    emotion3: str | None = None  # MEGC composite class, None when the scheme excludes the raw word
    emotion5: str | None = None  # CASME II 5-class scheme
    emotion7: str | None = None  # DFME 7-class scheme
    row: int = 0  # 1-based row number in the source sheet (as a spreadsheet shows it)
    split: str = "train"  # "train" | "test_a" | "test_b" (DFME keeps its test sets apart)
    notes: list[str] = field(default_factory=list)  # quirks met while reading this row
    apex_known: bool = True  # False when the sheet gave no usable apex and `apex` is an estimate
    repeated: bool = False  # another row names the same clip (CAS(ME)^3 lists several expressions per video)
    aus_coded: bool = True  # False when the dataset codes no AUs (SMIC): the empty AU set means unknown, not none

    @property
    def key(self) -> str:
        """Stable id across runs: dataset/subject/clip, plus `#r<row>` when several rows name the clip."""
        base = f"{self.dataset}/{self.subject}/{self.clip_id}"
        return f"{base}#r{self.row}" if self.repeated else base

    def emotion(self, scheme: str) -> str | None:
        return {"3": self.emotion3, "5": self.emotion5, "7": self.emotion7}[scheme]


def qualified_subject(dataset: str, subject: str) -> str:
    """A subject id that stays unique when datasets are pooled (`casme2__sub01`): two datasets' `s1` are two people."""
    return f"{dataset}__{subject}"


def key_dataset(key: str) -> str:
    """The dataset a `Record.key` (or a predictions row's key) belongs to."""
    return key.split("/", 1)[0]


@dataclass
class SkippedRow:
    row: int
    reason: str  # "kind: detail"; the summary counts by kind
    clip_id: str = ""
    sheet: str = ""  # file name of the sheet the row is in


def _kind(text: str) -> str:
    """The kind of a reason or note without its row-specific detail (the part after a colon)."""
    return text.split(":", 1)[0]


def count_notes(note_lists) -> dict[str, int]:
    """How many notes of each kind the rows carry, most frequent first."""
    counts: dict[str, int] = {}
    for notes in note_lists:
        for note in notes:
            counts[_kind(note)] = counts.get(_kind(note), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass
class LoadResult:
    records: list[Record]
    skipped: list[SkippedRow]
    sheet: Path | None = None
    sheets: list[Path] = field(default_factory=list)  # every sheet read (DFME has one per split)
    notes: list[str] = field(default_factory=list)  # sheet-level quirks, e.g. blank unnamed columns dropped

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[_kind(s.reason)] = reasons.get(_kind(s.reason), 0) + 1
        parts = [f"{len(self.records)} rows used", f"{len(self.skipped)} skipped"]
        parts += [f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        noted = self.note_counts()
        if noted:
            parts.append("kept with notes: " + ", ".join(f"{n} x {k}" for k, n in noted.items()))
        return "; ".join(parts)

    def note_counts(self) -> dict[str, int]:
        return count_notes(r.notes for r in self.records)

    def report(self) -> dict:
        """Everything a person needs to audit the load: per-row skips and notes, by sheet row number."""
        return {
            "sheets": [str(p) for p in self.sheets or ([self.sheet] if self.sheet else [])],
            "rows_used": len(self.records),
            "rows_skipped": len(self.skipped),
            "summary": self.summary(),
            "sheet_notes": list(self.notes),
            "skipped": [{"sheet": s.sheet, "row": s.row, "clip_id": s.clip_id, "reason": s.reason}
                        for s in self.skipped],
            "notes": [{"key": r.key, "split": r.split, "row": r.row, "clip_id": r.clip_id, "notes": list(r.notes)}
                      for r in self.records if r.notes],  # the key names the dataset where several were pooled
        }
