"""Synthetic datasets written in the official layouts, quirks included, so the loaders read them unchanged.

Each layout writes the dataset's frame folders and its annotation sheet with the official file name and columns,
plus the quirks the real sheets have (see each `_LAYOUTS` entry). Emotions follow from the rendered AU
combination through `assistant.emotions.emotion_from_aus` (the documented AU-to-emotion table), written in the
dataset's own vocabulary. `synth_truth.json` beside the sheet lists what was really rendered per clip (the sheet may
say `?` or give alternatives, as real coders do); figures measured on these data are synthetic.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from assistant.au import AU
from assistant.emotions import emotion_from_aus
from assistant.files import atomic_write_bytes, write_json
from instruction_data.synth import SynthSpec, make_subjects, render_clip
from instruction_data.synth_folder import staged_dataset

log = logging.getLogger(__name__)

# AU combinations the generator draws from (sheet spelling, sides included); the emotion follows from the codes.
COMBOS: tuple[tuple[str, ...], ...] = (
    ("6", "12"), ("R12",), ("1", "2"), ("9",), ("4", "L10"), ("1", "4", "15"), ("15", "17"), ("4", "7", "23"),
    ("R14",), ("14", "17"), ("1", "R2", "25"), ("1", "2", "4", "20"), ("24",), ("4", "7"), ("12",), ("1", "2", "5"),
)


@dataclass(frozen=True)
class Layout:
    name: str
    vocabulary: dict[str, str]  # canonical emotion -> the word the sheet uses; combos outside it are not drawn
    write: Callable[[Path, list[dict], bool], list[Path]]  # (root, clip rows, quirks) -> sheets written
    frame_path: Callable[[dict], Path]  # clip row -> frame folder relative to the root
    frame_name: Callable[[dict, int], str]  # (clip row, frame number) -> file name
    fps: float | None = None  # the realistic world's frame rate for this dataset (None: the world's default)
    onset_to_offset: bool = False  # write only the frames from onset to offset (clips cut as the dataset ships them)


def _au_string(aus: tuple[str, ...], joiner: str = "+") -> str:
    return joiner.join(aus)


SHEET_TIME = datetime.datetime(2000, 1, 1)  # the sheets' creation and modification time: same seed, same bytes
_ZIP_TIME = SHEET_TIME.timetuple()[:6]


def save_workbook(wb, path: Path) -> Path:
    """Save an openpyxl workbook byte for byte the same every time: fixed document times (openpyxl stamps the
    modification time on save) and fixed times on the zip entries."""
    wb.properties.created = wb.properties.modified = SHEET_TIME
    buf = io.BytesIO()
    wb.save(buf)
    stamp = SHEET_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type, entry.external_attr = zipfile.ZIP_DEFLATED, info.external_attr
            dst.writestr(entry, data)
    atomic_write_bytes(path, out.getvalue())
    return path


def _write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    return save_workbook(wb, path)


def _unrendered_clip_n(clips: list[dict], subject_n: int) -> int:
    """A clip number no rendered clip of the subject has (quirk rows and folders must never name a real clip)."""
    return max(c["clip_n"] for c in clips if c["subject_n"] == subject_n) + 1


# ---- CASME II: two blank unnamed columns, subjects as numbers, one apex "/", an AU "?", a clip with no frames.
def _casme2_write(root: Path, clips: list[dict], quirks: bool) -> list[Path]:
    rows: list[list[object]] = [["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", None, None,
                                 "Action Units", "Estimated Emotion"]]
    for k, c in enumerate(clips):
        apex: object = c["apex_n"]
        au_cell = _au_string(c["aus"])
        if quirks and k == 1:
            apex = "/"
        if quirks and k == 2:
            au_cell = "?"
        rows.append([c["subject_n"], c["clip_id"], c["onset_n"], apex, c["offset_n"], None, None, au_cell,
                     c["emotion_word"]])
    if quirks:  # a row whose frames are absent
        subject_n = clips[0]["subject_n"]
        rows.append([subject_n, f"EP{_unrendered_clip_n(clips, subject_n):02d}_{subject_n:02d}", 1, 5, 9, None, None,
                     "12", "happiness"])
    return [_write_xlsx(root / "CASME2-coding-20140508.xlsx", rows)]


# ---- SAMM: header on row 13 under title rows, intensity letters (R14A), "R1 + R2" spacing and sides, one "or".
def _samm_write(root: Path, clips: list[dict], quirks: bool) -> list[Path]:
    title = [["SAMM Micro-FACS Codes (synthetic)"], ["Generated by meu data synth: NOT the licensed dataset."],
             [None], ["Columns follow SAMM_Micro_FACS_Codes_v2.xlsx."]]
    rows: list[list[object]] = title + [[None]] * (12 - len(title))
    rows.append(["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                 "Type", "Action Units", "Notes", "Estimated Emotion"])
    for k, c in enumerate(clips):
        aus = list(c["aus"])
        if quirks and k % 3 == 1 and aus and aus[0][-1].isdigit():
            aus[0] = aus[0] + "A"  # intensity letter, as in R14A
        au_cell = _au_string(tuple(aus), " + ")
        if quirks and k == 2:
            au_cell = f"{au_cell} or 14"
        rows.append([c["subject_n"], c["clip_id"], 1, c["onset_n"], c["apex_n"], c["offset_n"],
                     c["offset_n"] - c["onset_n"] + 1, "Micro - 1/2", au_cell, None, c["emotion_word"]])
    return [_write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", rows)]


# ---- DFME: one sheet per split, subject-disjoint test sets.
DFME_SHEETS = {"train": "DFME_training_full_with_AU.xlsx", "test_a": "DFME_test_A_full_with_AU.xlsx",
               "test_b": "DFME_test_B_full_with_AU.xlsx"}
DFME_DIRS = {"train": "train", "test_a": "test_A", "test_b": "test_B"}


def _dfme_write(root: Path, clips: list[dict], quirks: bool) -> list[Path]:
    out = []
    for split, name in DFME_SHEETS.items():
        rows: list[list[object]] = [["Subject", "Filename", "Onset", "Apex", "Offset", "Estimated Emotion", "AU"]]
        rows += [[c["subject_n"], c["clip_id"], c["onset_n"], c["apex_n"], c["offset_n"], c["emotion_word"],
                  _au_string(c["aus"])] for c in clips if c["split"] == split]
        if len(rows) > 1:
            out.append(_write_xlsx(root / name, rows))
    return out


# ---- CAS(ME)^3 part A: subjects spNO.N (one written as a bare number), clips a, b, c ..., frames in color/.
def _casme3_write(root: Path, clips: list[dict], quirks: bool) -> list[Path]:
    rows: list[list[object]] = [["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion"]]
    for k, c in enumerate(clips):
        subject: object = f"spNO.{c['subject_n']}"
        if quirks and k == 1:
            subject = c["subject_n"]
        rows.append([subject, c["clip_id"], c["onset_n"], c["apex_n"], c["offset_n"], _au_string(c["aus"]),
                     c["emotion_word"]])
    return [_write_xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", rows)]


# ---- SMIC: no sheet (the class is the folder); quirks: a non_micro folder and a clip of one frame.
SMIC_CLASS_ABBR = {"negative": "ne", "positive": "po", "surprise": "sur"}


def _smic_write(root: Path, clips: list[dict], quirks: bool) -> list[Path]:
    """No sheet to write; with quirks, the folders a real copy also holds, returned so a rewrite removes them."""
    if not quirks or not clips:
        return []
    first = root / LAYOUTS["smic"].frame_path(clips[0])
    frames = sorted(first.iterdir())
    subject = first.parents[2]
    non_micro = subject / "non_micro" / "negative" / f"{subject.name}_ne_nm01"
    n = _unrendered_clip_n(clips, clips[0]["subject_n"])
    one_frame = subject / "micro" / "positive" / f"{subject.name}_po_{n:02d}"
    for folder, files in ((non_micro, frames[:3]), (one_frame, frames[:1])):
        for f in files:
            atomic_write_bytes(folder / f.name, f.read_bytes())
    return [subject / "non_micro", one_frame]


_CASME2_WORDS = {e: e for e in ("happiness", "disgust", "repression", "surprise", "sadness", "fear", "others")}
_SAMM_WORDS = {"happiness": "Happiness", "anger": "Anger", "contempt": "Contempt", "disgust": "Disgust",
               "fear": "Fear", "sadness": "Sadness", "surprise": "Surprise", "others": "Other"}
_DFME_WORDS = {e: e for e in ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise")}
_CASME3_WORDS = {"happiness": "happy", "sadness": "sad", "anger": "anger", "disgust": "disgust", "fear": "fear",
                 "surprise": "surprise", "others": "others"}
_SMIC_WORDS = {"happiness": "positive", "surprise": "surprise", **{e: "negative" for e in (
    "disgust", "sadness", "fear", "anger", "contempt", "repression")}}

LAYOUTS: dict[str, Layout] = {
    "casme2": Layout("casme2", _CASME2_WORDS, _casme2_write,
                     lambda c: Path("CASME2_RAW_selected") / f"sub{c['subject_n']:02d}" / c["clip_id"],
                     lambda c, n: f"img{n}.jpg"),
    "samm": Layout("samm", _SAMM_WORDS, _samm_write,
                   lambda c: Path("SAMM") / f"{c['subject_n']:03d}" / c["clip_id"],
                   lambda c, n: f"{c['subject_n']:03d}_{n:05d}.jpg"),
    "dfme": Layout("dfme", _DFME_WORDS, _dfme_write,
                   lambda c: Path("DFME") / DFME_DIRS[c["split"]] / c["clip_id"], lambda c, n: f"{n}.jpg"),
    "casme3": Layout("casme3", _CASME3_WORDS, _casme3_write,
                     lambda c: Path("part_A") / f"spNO.{c['subject_n']}" / c["clip_id"] / "color",
                     lambda c, n: f"{n}.jpg"),
    "smic": Layout("smic", _SMIC_WORDS, _smic_write,
                   lambda c: Path("HS") / f"s{c['subject_n']}" / "micro" / c["emotion_word"] / c["clip_id"],
                   lambda c, n: f"image{n:06d}.bmp", fps=100.0, onset_to_offset=True),
}


def _clip_id(layout: str, s: int, c: int, word: str) -> str:
    if layout == "smic":
        return f"s{s + 1}_{SMIC_CLASS_ABBR[word]}_{c + 1:02d}"
    if layout == "casme2":
        return f"EP{c + 1:02d}_{s + 1:02d}"
    if layout == "samm":
        return f"{s + 6:03d}_{c + 1}_{(s + c) % 5 + 1}"
    if layout == "dfme":
        return f"D{s + 1:03d}_{c + 1:02d}"
    return chr(ord("a") + c % 26) + (str(c // 26) if c >= 26 else "")


def plan_clips(layout: str, subjects: int, clips: int, seed: int = 0, quirks: bool = True) -> list[dict]:
    """What every clip will show: subject, AUs, emotion, frame numbers. Deterministic in the arguments."""
    spec = LAYOUTS[layout]
    combos = [(c, emotion_from_aus([AU.parse(a).code for a in c])[0]) for c in COMBOS]
    combos = [(c, e) for c, e in combos if e in spec.vocabulary]
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(combos))
    plan = []
    for s in range(subjects):
        split = "train"
        if layout == "dfme" and subjects >= 3:
            split = {subjects - 2: "test_a", subjects - 1: "test_b"}.get(s, "train")
        for c in range(clips):
            aus, emotion = combos[order[(s * clips + c) % len(order)]]
            if quirks and layout == "samm" and s == c == 0:  # one fully one-sided row, written "R1 + R2"
                aus = tuple("R" + a.lstrip("LR") for a in aus)
            r = np.random.default_rng([seed, s, c])
            start = int(r.integers(1, 200))
            subject_n = s + (6 if layout == "samm" else 1)
            plan.append({"subject": s, "subject_n": subject_n, "clip_n": c + 1,
                         "clip_id": _clip_id(layout, s, c, spec.vocabulary[emotion]), "aus": aus, "emotion": emotion,
                         "emotion_word": spec.vocabulary[emotion], "start": start,
                         "amplitude_px": round(float(r.uniform(1.2, 2.5)), 3), "seed": int(r.integers(0, 2**31)),
                         "split": split})
    return plan


def write_synthetic_dataset(layout: str, out_dir: str | Path, subjects: int, clips: int, seed: int = 0,
                            size: tuple[int, int] = (320, 240), n_frames: int = 20, quirks: bool = True,
                            noise_sigma: float = 1.0, progress: bool = False) -> Path:
    """Write `subjects` x `clips` synthetic clips and the sheet(s) of `layout` under `out_dir`; return `out_dir`.

    `size` is the frame (width, height): small by default so tests are fast; benchmarks use (640, 480). The dataset is
    built inside `out_dir` and replaces an earlier one there only when complete (`instruction_data.synth_folder`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if subjects < 1 or clips < 1:
        raise ValueError("need at least one subject and one clip")
    with staged_dataset(out_dir) as stage:
        n = _write_synthetic(stage, layout, subjects, clips, seed, size, n_frames, quirks, noise_sigma, progress)
    root = Path(out_dir).expanduser()
    log.info("wrote %d synthetic %s clips to %s", n, layout, root)
    return root


def _write_synthetic(root: Path, layout: str, subjects: int, clips: int, seed: int, size: tuple[int, int],
                     n_frames: int, quirks: bool, noise_sigma: float, progress: bool) -> int:
    spec = LAYOUTS[layout]
    people = make_subjects(subjects, seed)
    plan = plan_clips(layout, subjects, clips, seed, quirks)
    truth = []
    for c in tqdm(plan, desc=f"synth {layout}", disable=not progress):
        clip = render_clip(SynthSpec(subject=people[c["subject"]], aus=c["aus"], amplitude_px=c["amplitude_px"],
                                     n_frames=n_frames, frame_size=tuple(size), noise_sigma=noise_sigma,
                                     seed=c["seed"]))
        c.update(onset_n=c["start"] + clip.onset, apex_n=c["start"] + clip.apex, offset_n=c["start"] + clip.offset)
        first, frames = _written_span(spec, clip.frames, clip.onset, clip.offset)
        names = [spec.frame_name(c, c["start"] + first + i) for i in range(len(frames))]
        _write_frames(root / spec.frame_path(c), names, frames, 95)
        truth.append({"subject": people[c["subject"]].id, "subject_n": c["subject_n"], "clip_id": c["clip_id"],
                      "split": c["split"], "aus": list(c["aus"]), "emotion": c["emotion"],
                      "amplitude_px": c["amplitude_px"], "onset": c["onset_n"], "apex": c["apex_n"],
                      "offset": c["offset_n"], "folder": str(spec.frame_path(c))})
    sheets = spec.write(root, plan, quirks)
    write_json(root / "synth_truth.json", {"layout": layout, "seed": seed, "size": list(size), "n_frames": n_frames,
                                           "quirks": quirks, "synthetic": True,
                                           "sheets": [str(p.relative_to(root)) for p in sheets], "clips": truth})
    return len(plan)


def _written_span(spec: Layout, frames: list[np.ndarray], onset: int, offset: int) -> tuple[int, list[np.ndarray]]:
    """(index of the first frame written, the frames written): all, or onset..offset for datasets cut that way."""
    return (onset, frames[onset:offset + 1]) if spec.onset_to_offset else (0, frames)


def _write_frames(folder: Path, names: list[str], frames: list[np.ndarray], quality: int) -> None:
    """Each frame as a JPEG at `quality`; a `.bmp` name (SMIC) holds the same decoded JPEG pixels, losslessly."""
    for name, frame in zip(names, frames, strict=True):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if name.endswith(".bmp"):
            ok, buf = cv2.imencode(".bmp", cv2.imdecode(buf, cv2.IMREAD_COLOR))
        atomic_write_bytes(folder / name, buf.tobytes())


def write_realistic_dataset(layout: str, out_dir: str | Path, split: str, subjects: int | None = None,
                            clips: int = 10, seed: int = 0, size: tuple[int, int] = (640, 480), quirks: bool = False,
                            progress: bool = False, world: str = "v1") -> Path:
    """Write clips of the realistic world's `split` (`instruction_data.realistic`) in `layout` under `out_dir`.

    A dataset subject is one person of the split (its photo as shot and mirrored, clip by clip); clip c of subject
    s is clip `s * clips + c` of the split's stream for `seed`, with that subject. Each frame is written once as a
    JPEG at the clip's drawn quality, so the files read back as `realistic_clip` renders them. Null clips (no AU)
    get an empty AU cell and 'others' (layouts without 'others' leave them out). `synth_truth.json` keeps the whole
    ground truth: AUs with sides and intensities, amplitudes, blinks, head motion, noise and JPEG quality; with
    `world` "v2" (`instruction_data.world_v2`) also the out-of-plane turn, the coupled skin motion and the
    distractors' draw; "v3" (`instruction_data.world_v3`) also the light.
    """
    from instruction_data.realistic import split_subjects

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    people: dict[str, list] = {}
    for face in split_subjects(split):
        people.setdefault(face.source, []).append(face)
    persons = list(people)
    subjects = len(persons) if subjects is None else subjects
    if not 1 <= subjects <= len(persons) or clips < 1:
        raise ValueError(f"the {split} split has {len(persons)} people: ask for 1 to {len(persons)} subjects and at "
                         "least one clip each")
    with staged_dataset(out_dir) as stage:
        n = _write_realistic(stage, layout, split, people, persons, subjects, clips, seed, size, quirks, progress,
                             world)
    root = Path(out_dir).expanduser()
    log.info("wrote %d realistic synthetic %s clips (%s split) to %s", n, layout, split, root)
    return root


def _write_realistic(root: Path, layout: str, split: str, people: dict[str, list], persons: list[str], subjects: int,
                     clips: int, seed: int, size: tuple[int, int], quirks: bool, progress: bool, world: str) -> int:
    from instruction_data.realistic import draw_spec, render_realistic

    spec = LAYOUTS[layout]
    plan, truth = [], []
    todo = [(s, c) for s in range(subjects) for c in range(clips)]
    for s, c in tqdm(todo, desc=f"realistic {layout} {split}", disable=not progress):
        faces = people[persons[s]]
        index = s * clips + c
        clip_spec = draw_spec(index, split, seed, frame_size=tuple(size), world=world, subject=faces[c % len(faces)],
                              **({"fps": spec.fps} if spec.fps else {}))
        codes = [m.au.code for m in clip_spec.motions]
        emotion = emotion_from_aus(codes, set(spec.vocabulary))[0] if codes else "others"
        if emotion not in spec.vocabulary:
            log.info("clip %d of %s: %s has no word in the %s sheet; left out", index, split, emotion, layout)
            continue
        dfme_split = "train"
        if layout == "dfme" and subjects >= 3:
            dfme_split = {subjects - 2: "test_a", subjects - 1: "test_b"}.get(s, "train")
        start = int(np.random.default_rng([seed, s, c]).integers(1, 200))
        sheet_aus = tuple(str(m.au) if layout == "samm" else f"{m.au.side or ''}{m.au.code}" for m in clip_spec.motions)
        row = {"subject": s, "subject_n": s + (6 if layout == "samm" else 1), "clip_n": c + 1,
               "clip_id": _clip_id(layout, s, c, spec.vocabulary[emotion]), "aus": sheet_aus, "emotion": emotion,
               "emotion_word": spec.vocabulary[emotion], "start": start,
               "split": dfme_split, "onset_n": start + clip_spec.onset, "apex_n": start + clip_spec.apex,
               "offset_n": start + clip_spec.offset}
        clip = render_realistic(dataclasses.replace(clip_spec, jpeg_quality=None))
        first, frames = _written_span(spec, clip.frames, clip.onset, clip.offset)
        names = [spec.frame_name(row, start + first + i) for i in range(len(frames))]
        _write_frames(root / spec.frame_path(row), names, frames, clip_spec.jpeg_quality)
        plan.append(row)
        truth.append({"subject": clip.subject_id, "person": persons[s], "subject_n": row["subject_n"],
                      "clip_id": row["clip_id"], "split": dfme_split, "realistic_split": split, "index": index,
                      "aus": [str(m.au) for m in clip_spec.motions], "null": clip_spec.is_null,
                      "amplitude_px": [round(m.amplitude_px, 4) for m in clip_spec.motions], "emotion": emotion,
                      "onset": row["onset_n"], "apex": row["apex_n"], "offset": row["offset_n"],
                      "blinks": [[start + a, start + b] for a, b in clip_spec.blinks],
                      "head_translation_px": list(clip_spec.head_translation_px),
                      "head_rotation_deg": clip_spec.head_rotation_deg, "head_zoom": clip_spec.head_zoom,
                      "noise_sigma": clip_spec.noise_sigma, "jpeg_quality": clip_spec.jpeg_quality,
                      "illumination_drift": clip_spec.illumination_drift, "fps": clip_spec.fps,
                      "folder": str(spec.frame_path(row))})
        if clip_spec.v2 is not None:
            turns = clip.head_turns
            truth[-1].update(v2=dataclasses.asdict(clip_spec.v2), coupled=clip.coupled,
                             head_turn_at_apex_deg={"pitch": round(turns[clip.apex][0] - turns[clip.onset][0], 4),
                                                    "yaw": round(turns[clip.apex][1] - turns[clip.onset][1], 4)})
        if clip_spec.light is not None:
            truth[-1].update(light=dataclasses.asdict(clip_spec.light))
    if not plan:
        raise ValueError(f"no clip of the {split} split can be written in the {layout} layout")
    sheets = spec.write(root, plan, quirks)
    write_json(root / "synth_truth.json", {"layout": layout, "realistic": True, "world": world, "split": split,
                                           "seed": seed,
                                           "size": list(size), "quirks": quirks, "synthetic": True,
                                           "sheets": [str(p.relative_to(root)) for p in sheets], "clips": truth})
    return len(plan)
