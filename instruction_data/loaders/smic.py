"""SMIC (Li et al., FG 2013): no annotation sheet; the class is the folder a clip sits in.

Layout: `<root>/HS/s1/micro/negative/s1_ne_01/image064125.bmp` (likewise `VIS/` and `NIR/`, or the variant folder
itself given as the root). A `non_micro` folder beside `micro` holds the non-micro clips and is ignored. HS was
filmed at 100 fps (16 subjects, 164 clips), VIS and NIR at 25 fps (8 subjects, 71 clips each).

Plain SMIC clips are cut from onset to offset and code no apex and no AU: onset is the first frame, offset the last,
and the apex the middle frame (as the MEB toolkit does; `meu eval --smic-apex spot` spots it instead). Every clip
carries the note "apex not given", and the AU set is empty with `Record.aus_coded` False, so no AU score and no AU
training target is ever read from SMIC.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from assistant.au import parse_aus
from assistant.emotions import map_emotion
from assistant.errors import AnnotationSheetError
from instruction_data.loaders.common import list_frames
from instruction_data.records import LoadResult, Record, SkippedRow

log = logging.getLogger(__name__)

DATASET = "smic"
VARIANTS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}  # variant folder -> frame rate
CLASSES = ("negative", "positive", "surprise")
IGNORED = "non_micro"


def subject_id(folder: str) -> str:
    """`s1`, `s01`, `S1` -> `s01`."""
    m = re.fullmatch(r"[sS]0*(\d+)", folder)
    return f"s{int(m.group(1)):02d}" if m else folder


def _micro_folder(subject_dir: Path) -> Path | None:
    """The subject's `micro` folder, in whatever case the copy spells it (`Micro` on some)."""
    return next((p for p in sorted(subject_dir.iterdir()) if p.name.lower() == "micro" and p.is_dir()), None)


def _is_variant_folder(path: Path) -> bool:
    return any(_micro_folder(s) is not None for s in path.iterdir() if s.is_dir())


def variant_folder(root: Path, variant: str) -> Path:
    """The folder holding the subject folders of `variant`: `root` itself, or a folder named `variant` below it."""
    if not root.is_dir():
        raise AnnotationSheetError(f"Dataset folder {root} does not exist.")
    if _is_variant_folder(root):
        return root
    hits = sorted(p for depth in ("*", "*/*", "*/*/*") for p in root.glob(depth)
                  if p.is_dir() and p.name.upper() == variant and _is_variant_folder(p))
    if not hits:
        raise AnnotationSheetError(
            f"No SMIC {variant} folder (subject folders s1, s2, ... each holding micro/negative|positive|surprise) in "
            f"{root}; pass the SMIC folder that holds HS/, VIS/ or NIR/, or the variant folder itself.")
    return hits[0]


def load(root: str | Path, strict: bool = False, variant: str = "HS") -> LoadResult:
    variant = variant.upper()
    if variant not in VARIANTS:
        raise AnnotationSheetError(f"Unknown SMIC variant {variant!r}; use one of {', '.join(VARIANTS)}.")
    base = variant_folder(Path(root), variant)
    given = Path(root).resolve().name.upper()  # `.` inside VIS/ is VIS too
    if base == Path(root) and given in VARIANTS:  # the variant folder itself was given: its name says which
        variant = given
    records: list[Record] = []
    skipped: list[SkippedRow] = []
    ignored = 0

    def problem(n: int, where: Path, text: str) -> None:
        if strict:
            raise AnnotationSheetError(f"SMIC {where.relative_to(base)}: {text}. Run without --strict to skip such "
                                       "clips and list them all in the report.")
        skipped.append(SkippedRow(row=n, reason=text, clip_id=where.name, sheet=str(where.relative_to(base))))
        log.info("SMIC %s skipped: %s", where.relative_to(base), text)

    n = 0
    without_micro: list[str] = []
    for subject_dir in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: subject_id(p.name)):
        ignored += (subject_dir / IGNORED).is_dir()
        micro = _micro_folder(subject_dir)
        if micro is None:
            without_micro.append(subject_dir.name)
            continue
        for class_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            for clip_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
                n += 1
                if class_dir.name.lower() not in CLASSES:
                    problem(n, clip_dir, f"unknown class: folder {class_dir.name!r} is not one of {', '.join(CLASSES)}")
                    continue
                files, _ = list_frames(clip_dir)
                if len(files) < 2:
                    problem(n, clip_dir, f"too few frames: {len(files)} image(s); a clip needs an onset and a later "
                                         "frame")
                    continue
                word = class_dir.name.lower()
                apex = max(1, (len(files) - 1) // 2)
                records.append(Record(
                    dataset=DATASET, subject=subject_id(subject_dir.name), clip_id=clip_dir.name,
                    frame_paths=list(files), onset=0, apex=apex, offset=len(files) - 1, aus=parse_aus(""),
                    emotion_raw=word, emotion3=map_emotion(word, "3"), emotion5=map_emotion(word, "5"),
                    emotion7=map_emotion(word, "7"), row=n, split="train", apex_known=False, aus_coded=False,
                    notes=[f"apex not given: SMIC codes no apex; evaluation and AU training use the middle frame "
                           f"{files[apex].name}"]))
    if not records and not skipped:
        raise AnnotationSheetError(f"No SMIC clip under {base}: expected s1/micro/negative/<clip>/<frames>.")
    notes = [f"{base.name}: SMIC {variant}, {VARIANTS[variant]:g} fps; no annotation sheet: classes from folder "
             "names, onset and offset from the first and last frame; no AUs coded"]
    if without_micro:
        notes.append(f"{base.name}: {len(without_micro)} folder(s) with no micro folder, nothing read there: "
                     f"{', '.join(without_micro)}")
    if ignored:
        notes.append(f"{base.name}: {ignored} {IGNORED} folder(s) ignored (not micro-expressions)")
    return LoadResult(records=records, skipped=skipped, sheet=None, sheets=[], notes=notes)
