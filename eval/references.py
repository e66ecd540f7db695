"""Published figures (DESIGN.md section 6), kept in this one place and always shown marked as published.

They come from the papers, on the real licensed datasets; they are reference rows beside this project's runs, never
inputs to any computation. Emotion figures are fractions (UF1, UAR, ACC); AU figures are mean F1 as a fraction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    method: str
    dataset: str
    protocol: str
    classes: str | None = None  # emotion scheme of the emotion figures
    uf1: float | None = None
    uar: float | None = None
    accuracy: float | None = None
    au_mean_f1: float | None = None
    n_aus: int | None = None
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.method} (published)"


REFERENCES: tuple[Reference, ...] = (
    Reference("MELLM", "casme2", "zero-shot", classes="5", uf1=0.485, uar=0.534, accuracy=0.643,
              source="MELLM paper, zero-shot CASME II, 5 classes"),
    Reference("MELLM", "dfme", "dfme-test-a", classes="7", uf1=0.358, uar=0.373, accuracy=0.464,
              source="MELLM paper, DFME Test A, 7 classes"),
    Reference("AU-LLM", "casme2", "loso", au_mean_f1=0.814, n_aus=8, source="AU-LLM paper, LOSO, 8 AUs"),
    Reference("AU-LLM", "samm", "loso", au_mean_f1=0.619, n_aus=4, source="AU-LLM paper, LOSO, 4 AUs"),
    Reference("Micro-AU CLIP", "casme2", "loso", au_mean_f1=0.782, n_aus=8, source="Micro-AU CLIP paper, LOSO"),
    Reference("Micro-AU CLIP", "samm", "loso", au_mean_f1=0.730, n_aus=4, source="Micro-AU CLIP paper, LOSO"),
)


def references_for(datasets: set[str] | None = None) -> list[Reference]:
    """The published rows for `datasets` (all of them when None)."""
    return [r for r in REFERENCES if datasets is None or r.dataset in datasets]
