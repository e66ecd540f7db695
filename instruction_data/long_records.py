"""What the long-video (spotting) loaders yield: videos with their annotated expressions, plus every skipped row.

A long video is a frame folder of minutes of footage; the sheet lists the expressions in it, one row each. Frame
positions here are indices into the folder's frames in natural order (what `assistant.motion.clip` reads), never the
sheet's frame numbers; `LongVideo.frame_numbers` maps them back for reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from assistant.au import AUSet
from instruction_data.records import SkippedRow, _kind, count_notes

KINDS = ("micro", "macro")


@dataclass
class Expression:
    onset: int  # index into the video's frames
    apex: int | None  # None when the sheet gives no usable apex
    offset: int  # the apex when the sheet gives no offset (noted)
    kind: str  # "micro" | "macro", from the sheet's type column
    aus: AUSet
    emotion_raw: str = ""
    type_raw: str = ""  # the type cell as written ("micro-expression", "Micro - 1/2", "Macro")
    clip_id: str = ""  # the sheet's expression id ("disgust1_3", "006_1_3")
    row: int = 0  # 1-based sheet row
    notes: list[str] = field(default_factory=list)
    offset_known: bool = True


@dataclass
class LongVideo:
    dataset: str  # "casme2_long" | "samm_long"
    subject: str  # "s15", "006"
    video_id: str  # the frame folder's name ("15_0101disgustingteeth", "006_1")
    frame_dir: Path
    n_frames: int
    fps: float
    frame_numbers: list[int]  # the number in each frame's file name, by index (-1 when it has none)
    expressions: list[Expression] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.video_id}"

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


@dataclass
class LongLoadResult:
    videos: list[LongVideo]
    skipped: list[SkippedRow]
    sheets: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sheet-level quirks

    @property
    def expressions(self) -> list[Expression]:
        return [e for v in self.videos for e in v.expressions]

    def note_counts(self) -> dict[str, int]:
        return count_notes(e.notes for e in self.expressions)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[_kind(s.reason)] = reasons.get(_kind(s.reason), 0) + 1
        kinds = {k: sum(e.kind == k for e in self.expressions) for k in KINDS}
        parts = [f"{len(self.videos)} videos", f"{len(self.expressions)} expressions used "
                 f"({kinds['micro']} micro, {kinds['macro']} macro)", f"{len(self.skipped)} rows skipped"]
        parts += [f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        noted = self.note_counts()
        if noted:
            parts.append("kept with notes: " + ", ".join(f"{n} x {k}" for k, n in noted.items()))
        return "; ".join(parts)

    def report(self) -> dict:
        """Everything a person needs to audit the load, by sheet row number."""
        return {
            "sheets": [str(p) for p in self.sheets],
            "videos": len(self.videos),
            "rows_used": len(self.expressions),
            "rows_skipped": len(self.skipped),
            "summary": self.summary(),
            "sheet_notes": list(self.notes),
            "skipped": [{"sheet": s.sheet, "row": s.row, "clip_id": s.clip_id, "reason": s.reason}
                        for s in self.skipped],
            "notes": [{"row": e.row, "clip_id": e.clip_id, "notes": list(e.notes)}
                      for e in self.expressions if e.notes],
        }
