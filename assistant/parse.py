"""Read the AUs and the emotion out of generated answer text (the one documented parser: an
unparsable answer counts as wrong).

The conclusion line written by `assistant.prompts.format_conclusion` is the primary source; when it is missing,
the body is searched and the result is marked "inferred". Two different labels where one is expected are reported
(`candidates`), never resolved by guessing; an answer with no label at all is "unparsable", which evaluation counts
as wrong. An answer that talks about AUs but whose conclusion lists none readable is "inferred", not "ok".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.emotions import SYNONYMS
from assistant.prompts import EMOTION_WORDS_ZH

# English words -> canonical label; base vocabulary from assistant.emotions, extended with forms models write.
EMOTION_WORDS_EN: dict[str, str] = {
    **SYNONYMS,
    "happily": "happiness", "joyful": "happiness", "smile": "happiness", "smiling": "happiness",
    "pleasure": "happiness", "amusement": "happiness",
    "sorrow": "sadness", "unhappy": "sadness", "unhappiness": "sadness",
    "astonishment": "surprise", "amazement": "surprise", "amazed": "surprise", "astonished": "surprise",
    "surprising": "surprise",
    "disgusting": "disgust", "revulsion": "disgust",
    "scared": "fear", "frightened": "fear", "terrified": "fear", "anxiety": "fear", "anxious": "fear",
    "rage": "anger", "furious": "anger", "annoyed": "anger", "annoyance": "anger", "irritation": "anger",
    "contemptuous": "contempt", "scorn": "contempt", "disdain": "contempt",
    "suppression": "repression", "suppressed": "repression",
    "tense": "others", "neutral": "others",
}

# Chinese words -> canonical label; base vocabulary from assistant.prompts, extended with common synonyms.
EMOTION_WORDS_ZH_ALL: dict[str, str] = {
    **{zh: en for en, zh in EMOTION_WORDS_ZH.items()},
    "开心": "happiness", "高兴": "happiness", "喜悦": "happiness", "愉快": "happiness", "幸福": "happiness",
    "快樂": "happiness",
    "伤心": "sadness", "难过": "sadness", "悲哀": "sadness", "忧伤": "sadness",
    "惊奇": "surprise", "吃惊": "surprise", "惊喜": "surprise",
    "恶心": "disgust", "嫌恶": "disgust", "反感": "disgust",
    "害怕": "fear", "惧怕": "fear", "恐慌": "fear",
    "生气": "anger", "恼怒": "anger",
    "鄙视": "contempt", "蔑视": "contempt", "不屑": "contempt",
    "压制": "repression", "抑制": "repression",
    "其它": "others", "其他类": "others", "中性": "others",
    "正面": "positive", "积极的": "positive", "负面": "negative", "消极的": "negative",
}

_EN_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, EMOTION_WORDS_EN), key=len, reverse=True)) + r")\b",
                    re.IGNORECASE)
_ZH_RE = re.compile("|".join(sorted(map(re.escape, EMOTION_WORDS_ZH_ALL), key=len, reverse=True)))
_AU_RE = re.compile(r"(?<![A-Za-z])AU\s*([LR])?\s*(\d{1,2})(?!\d)", re.IGNORECASE)
# SAMM-style sided codes without "AU" (R14: the person's right AU14, the sides `AU.parse` keeps; an A-E intensity
# letter may follow); "R2-D2" or "L1 cache" would match too, so they are read only inside an AU list
_SIDED_AU = re.compile(r"(?<![A-Za-z0-9])([LR])(\d{1,2})[A-E]?(?![A-Za-z0-9])")
# an AU list: what follows an "AUs:" key, run on over later lines that start with an AU code (blank lines between)
_AU_LIST = re.compile(r"(?i:AUs|action units?|动作单元)\s*(?:[(（](?i:AUs?)[)）])?\s*[:：]"
                      r"(?P<list>.*(?:\n(?:[ \t]*\n)*[ \t]*(?:[-•·]|\d+[.)、])?[ \t]*(?:AU\s*[LR]?\s*|[LR])\d.*)*)")
# the answer talks about action units, so a conclusion without readable AUs is not "ok"
_NAMES_AUS = re.compile(r"动作单元|(?i:action units?)|(?<![A-Za-z])AUs?(?![A-Za-z])")
_SENTENCE_END = re.compile(r"(?<=[\n。！？])|(?<=[.!?])(?!\d)")  # "0.85" ends no sentence
_EMOTION_KEY = re.compile(r"(micro[- ]?expression|emotion|expression|微表情|情绪|表情)\s*(?:label|类别)?\s*[:：]",
                          re.IGNORECASE)
_NONE_WORDS = re.compile(r"^\s*(none|no aus?|无|没有)\b", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>]+")
# a negation at most two words before a label; in "not X but Y" only X is negated
_NEGATION = re.compile(r"\b(not|no|rather than|instead of|unlike|without)\s+((?!but\b)\w+\s+){0,2}$"
                       r"|(不是|并非|而非|没有)$", re.IGNORECASE)


@dataclass
class ParsedAnswer:
    aus: list[int]
    emotion: str | None
    # "ok" (from the conclusion line) | "inferred" (from the body: no conclusion line, or the answer names AUs its
    # conclusion does not list) | "unparsable"
    status: str
    candidates: list[str] = field(default_factory=list)  # distinct labels found where one was expected
    out_of_scheme: bool = False  # a label was read but is not one of `scheme_classes`
    raw_label: str | None = None  # the word as written
    conclusion: str | None = None  # the conclusion line as written (markup kept), when one was found
    notes: list[str] = field(default_factory=list)
    sides: dict[int, str] = field(default_factory=dict)  # the person's side of an AU written one-sided (R14: 14 -> "R")


def _clean(text: str) -> str:
    return _MARKUP.sub("", text)


def _labels_in(segment: str, body: bool = False) -> list[tuple[str, str]]:
    """(canonical label, word as written) in order of appearance, skipping negated mentions, deduplicated.

    In free text (`body`) "other"/"其他" usually means "other regions", so "others" is only read after a label key.
    """
    found: list[tuple[int, str, str]] = []
    for rx, table in ((_EN_RE, {k.lower(): v for k, v in EMOTION_WORDS_EN.items()}), (_ZH_RE, EMOTION_WORDS_ZH_ALL)):
        for m in rx.finditer(segment):
            if _NEGATION.search(segment[max(0, m.start() - 30):m.start()]):
                continue
            word = m.group(0)
            label = table[word.lower()] if rx is _EN_RE else table[word]
            if body and label == "others":
                continue
            found.append((m.start(), label, word))
    out: list[tuple[str, str]] = []
    for _, label, word in sorted(found):
        if label not in (lab for lab, _ in out):
            out.append((label, word))
    return out


def _aus_in(segment: str, listed: bool = True) -> tuple[list[int], dict[int, str]]:
    """The AU codes, and the side of those whose sided mentions agree (L12 and R12 together name no single side).

    Bare sided codes (R14) count in a `listed` segment, else only in sentences naming an AU code and in AU lists."""
    lists = [segment] if listed else ([s for s in _SENTENCE_END.split(segment) if _AU_RE.search(s)]
                                      + [m["list"] for m in _AU_LIST.finditer(segment)])
    found = [m.groups() for m in _AU_RE.finditer(segment)] + [m.groups() for s in lists for m in _SIDED_AU.finditer(s)]
    sides: dict[int, set[str]] = {}
    for side, code in found:
        if side:
            sides.setdefault(int(code), set()).add(side.upper())
    return sorted({int(code) for _, code in found}), {c: s.pop() for c, s in sides.items() if len(s) == 1}


def _conclusion(text: str) -> tuple[str | None, str | None, str | None]:
    """The last line holding an emotion key: (line as written, AU part, emotion part); the parts are markup-free.

    The AU part is the AU list that runs up to the emotion key (`AUs: ...` on the line, or above it with its last
    items possibly on it), or, without one, the text before the key when it names AU codes ("Final answer: AU6 and
    AU12; Micro-expression: ..."); None sends the caller to an AU list elsewhere."""
    raw_lines = text.splitlines()
    lines = [_clean(x) for x in raw_lines]
    for i in reversed(range(len(lines))):
        m = _EMOTION_KEY.search(lines[i])
        if not m:
            continue
        head = "\n".join(lines[:i] + [lines[i][:m.start()]])
        au_list = _last_au_list(head)
        if au_list and not head[au_list.end():].strip():
            au_part = au_list["list"]
        else:  # AU codes on the line count even without an "AUs:" key
            au_part = lines[i][:m.start()] if _AU_RE.search(lines[i][:m.start()]) else None
        return raw_lines[i].strip(), au_part, lines[i][m.end():]
    return None, None, None


def _last_au_list(text: str) -> re.Match | None:
    matches = list(_AU_LIST.finditer(text))
    return matches[-1] if matches else None


def _in_scheme(label: str, scheme_classes: tuple[str, ...] | list[str] | None) -> bool:
    return scheme_classes is None or label in scheme_classes


def parse_answer(text: str, scheme_classes: tuple[str, ...] | list[str] | None = None) -> ParsedAnswer:
    """Parse one generated answer. `scheme_classes` flags labels outside the evaluation scheme (kept, not mapped)."""
    text = text or ""
    line, au_part, emotion_part = _conclusion(text)
    if line is not None:
        if au_part is None:
            au_list = _last_au_list(_clean(text))
            au_part = au_list["list"] if au_list else None
        none = au_part is not None and bool(_NONE_WORDS.match(au_part))
        aus, sides = ([], {}) if au_part is None or none else _aus_in(au_part)
        labels = _labels_in(emotion_part or "")
        if labels and (aus or none or not _NAMES_AUS.search(text)):
            return _result(labels, aus, sides, "ok", line, scheme_classes)
        if labels:  # "ok" would claim the AUs were read: take the body's, as without a conclusion line
            return _result(labels, *_aus_in(_clean(text), listed=False), "inferred", line, scheme_classes,
                           notes=["the answer names AUs its conclusion does not list"])
        notes = ["conclusion line names no known emotion"]
        parsed = _from_body(text, scheme_classes)
        parsed.conclusion, parsed.notes = line, notes + parsed.notes
        if au_part is not None:
            parsed.aus, parsed.sides = aus, sides
        return parsed
    return _from_body(text, scheme_classes)


def _from_body(text: str, scheme_classes) -> ParsedAnswer:
    body = _clean(text)
    aus, sides = _aus_in(body, listed=False)
    # The last sentence that names an emotion is the model's verdict; earlier mentions are reasoning steps.
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
    for sentence in reversed(sentences):
        labels = _labels_in(sentence, body=True)
        if labels:
            return _result(labels, aus, sides, "inferred", None, scheme_classes, notes=["no conclusion line"])
    return ParsedAnswer(aus=aus, emotion=None, status="unparsable", notes=["no emotion label found"], sides=sides)


def _result(labels: list[tuple[str, str]], aus: list[int], sides: dict[int, str], status: str, line: str | None,
            scheme_classes, notes: list[str] | None = None) -> ParsedAnswer:
    notes = list(notes or [])
    if len(labels) > 1:
        return ParsedAnswer(aus=aus, emotion=None, status="unparsable", candidates=[lab for lab, _ in labels],
                            conclusion=line, notes=notes + ["two or more candidate labels"], sides=sides)
    label, word = labels[0]
    out = not _in_scheme(label, scheme_classes)
    if out:
        notes.append(f"label {label!r} is outside the scheme")
    return ParsedAnswer(aus=aus, emotion=label, status=status, out_of_scheme=out, raw_label=word, conclusion=line,
                        notes=notes, sides=sides)
