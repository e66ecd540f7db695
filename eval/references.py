"""Published figures, kept in this one place and always shown marked as published.

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
    # MEGC 2019 composite database evaluation (CDE), 3 classes, LOSO over 68 subjects. Per-dataset figures are the
    # composite predictions restricted to one dataset. Varanka et al. (arXiv 2211.11425) found leakage inflating
    # many later CDE figures.
    Reference("LBP-TOP", "composite", "cde", classes="3", uf1=0.5882, uar=0.5785,
              source="MEGC 2019 baseline (See et al., FG 2019)"),
    Reference("LBP-TOP", "smic", "cde", classes="3", uf1=0.2000, uar=0.5280,
              source="MEGC 2019 baseline, SMIC-HS part (moderate confidence)"),
    Reference("LBP-TOP", "casme2", "cde", classes="3", uf1=0.7026, uar=0.7429,
              source="MEGC 2019 baseline, CASME II part (moderate confidence)"),
    Reference("LBP-TOP", "samm", "cde", classes="3", uf1=0.3954, uar=0.4102,
              source="MEGC 2019 baseline, SAMM part (moderate confidence)"),
    Reference("STSTNet", "composite", "cde", classes="3", uf1=0.7353, uar=0.7605,
              source="Liong et al., Shallow triple stream three-dimensional CNN (STSTNet), FG 2019"),
    Reference("EMR", "composite", "cde", classes="3", uf1=0.7885, uar=0.7824,
              source="Liu et al., A neural micro-expression recognizer (EMR), FG 2019, MEGC 2019 winner "
                     "(moderate confidence)"),
)


def references_for(datasets: set[str] | None = None, protocol: str | None = None) -> list[Reference]:
    """The published rows for `datasets` (all of them when None), of `protocol` only when given."""
    return [r for r in REFERENCES if (datasets is None or r.dataset in datasets)
            and (protocol is None or r.protocol == protocol)]
