"""The lossless action-unit code used everywhere (`AU`), and the sheet-string parser.

Annotation sheets write AUs as `4+L10`, `1+R2+25`, `R14A`, `R12 + R15`, `12 or 14`, `?`. Parsing keeps the side
(person's L/R), the intensity letter (A..E) and anything unreadable, so `format_aus(parse_aus(s))` loses nothing
that matters and an unknown code is reported instead of silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AU_RE = re.compile(r"^(?:AU)?\s*([LRBT])?\s*(?:AU)?\s*(\d{1,2})\s*([A-E])?$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class AU:
    """One action unit: `code` None means the sheet had something unreadable (kept in `raw`)."""

    code: int | None
    side: str | None = None  # "L" / "R" (the person's side) or None for bilateral/unknown
    intensity: str | None = None  # "A".."E" or None
    raw: str = ""

    @property
    def known(self) -> bool:
        return self.code is not None

    def __str__(self) -> str:
        if self.code is None:
            return self.raw or "?"
        return f"{self.side or ''}{self.code}{self.intensity or ''}"

    @property
    def label(self) -> str:
        """`AU12` style name used in prose and in the parseable conclusion line."""
        return f"AU{self.code}" if self.code is not None else (self.raw or "AU?")

    @classmethod
    def parse(cls, text: str) -> AU:
        token = str(text).strip()
        m = _AU_RE.match(token)
        if not m:
            return cls(code=None, raw=token)
        side, code, intensity = m.groups()
        side = side.upper() if side else None
        if side in ("B", "T"):  # "bilateral"/"trilateral" markers seen in some sheets: no single side
            side = None
        return cls(code=int(code), side=side, intensity=intensity.upper() if intensity else None, raw=token)


@dataclass(frozen=True)
class AUSet:
    """A parsed AU cell: the AUs, plus alternatives when the coder wrote `X or Y`."""

    aus: tuple[AU, ...]
    alternatives: tuple[tuple[AU, ...], ...] = ()
    raw: str = ""

    @property
    def codes(self) -> list[int]:
        return sorted({a.code for a in self.aus if a.code is not None})

    @property
    def unknown(self) -> list[AU]:
        return [a for a in self.aus if a.code is None]

    def __str__(self) -> str:
        return format_aus(self.aus)


def _split_plus(text: str) -> list[str]:
    return [t for t in (p.strip() for p in re.split(r"[+,;/]", text)) if t]


def parse_aus(cell: object) -> AUSet:
    """Parse one sheet cell. `X or Y` keeps the first alternative as the AUs and the rest in `alternatives`."""
    if cell is None:
        return AUSet(aus=(), raw="")
    if isinstance(cell, float):
        if cell != cell:  # NaN from pandas: empty cell
            return AUSet(aus=(), raw="")
        cell = str(int(cell)) if cell.is_integer() else str(cell)
    text = str(cell).strip()
    if not text:
        return AUSet(aus=(), raw="")
    options = [o.strip() for o in re.split(r"\s+or\s+", text, flags=re.IGNORECASE) if o.strip()]
    parsed = [tuple(AU.parse(t) for t in _split_plus(o)) for o in options]
    return AUSet(aus=parsed[0] if parsed else (), alternatives=tuple(parsed[1:]), raw=text)


def format_aus(aus: object) -> str:
    """Inverse of `parse_aus` for one alternative: `1+R2+25`."""
    return "+".join(str(a) for a in aus)
