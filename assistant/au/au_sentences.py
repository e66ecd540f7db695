"""Sentences that give Micro-AU CLIP's text encoder something to compare motion against.

Each AU of the FACS table has a positive sentence (the movement happens) and a negative one (it does not), written
from `FacsAU.description` in the same plain words, so the text side of the contrastive loss names what the skin
does rather than an AU number the text encoder never saw. Emotion sentences cover every class of every scheme in
`assistant.emotions.SCHEME_CLASSES` and drive the emotion-label-free recogniser.
"""

from __future__ import annotations

from assistant.emotions import SCHEME_CLASSES
from assistant.errors import MEUError
from assistant.facs import FACS, facs_au

# (positive, negative) per AU code; the positive sentence is FacsAU.description.
_NEGATIVE: dict[int, str] = {
    1: "the inner ends of the eyebrows do not move up",
    2: "the outer ends of the eyebrows do not move up",
    4: "the eyebrows are not pulled down and together",
    5: "the upper eyelids do not move up and the eyes do not widen",
    6: "the cheeks do not lift and the skin below the eyes stays smooth",
    7: "the lower eyelids do not tighten or rise",
    9: "the skin of the nose does not wrinkle or pull up",
    10: "the upper lip is not raised",
    12: "the mouth corners are not pulled up and outward",
    14: "the mouth corners are not tightened or pulled inward",
    15: "the mouth corners are not pulled down",
    17: "the chin boss does not push up and the lower lip does not rise",
    20: "the lips are not stretched sideways",
    23: "the lips do not narrow or tighten",
    24: "the lips are not pressed together",
    25: "the lips stay closed",
    26: "the jaw does not drop and the chin does not move down",
    43: "the upper eyelids do not come down",
}

EMOTION_SENTENCES: dict[str, str] = {
    "happiness": "a face showing happiness",
    "sadness": "a face showing sadness",
    "surprise": "a face showing surprise",
    "disgust": "a face showing disgust",
    "fear": "a face showing fear",
    "anger": "a face showing anger",
    "contempt": "a face showing contempt",
    "repression": "a face holding an emotion back",
    "others": "a face showing some other emotion",
    "positive": "a face showing a positive emotion",
    "negative": "a face showing a negative emotion",
}


def au_sentences(code: int) -> tuple[str, str]:
    """(positive, negative) sentence for one AU; unknown codes raise UnknownAUError."""
    au = facs_au(code)
    return au.description, _NEGATIVE[au.code]


def au_sentence_table(codes: list[int] | tuple[int, ...]) -> list[tuple[str, str]]:
    return [au_sentences(c) for c in codes]


def emotion_sentences(classes: list[str] | tuple[str, ...]) -> list[str]:
    missing = [c for c in classes if c not in EMOTION_SENTENCES]
    if missing:
        raise MEUError(f"No label sentence for emotion(s) {', '.join(missing)}; known: {', '.join(EMOTION_SENTENCES)}.")
    return [EMOTION_SENTENCES[c] for c in classes]


def all_sentences() -> list[str]:
    """Every sentence this module knows (the tiny test tokenizer is trained on them)."""
    texts = [s for code in FACS for s in au_sentences(code)]
    classes = sorted({c for cs in SCHEME_CLASSES.values() for c in cs} | set(EMOTION_SENTENCES))
    return texts + emotion_sentences(classes)
