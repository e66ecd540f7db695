"""Emotion vocabularies, the explicit class schemes, and the AU-to-emotion table.

Each scheme is an explicit mapping from the raw words the datasets use to the scheme's classes; a word a scheme
does not cover maps to None (excluded from that scheme), never to a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

# Canonical raw labels (lower case) seen across CASME II, SAMM, DFME and CAS(ME)^3, with their synonyms.
SYNONYMS: dict[str, str] = {
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "afraid": "fear", "fearful": "fear",
    "anger": "anger", "angry": "anger",
    "contempt": "contempt",
    "repression": "repression", "repressed": "repression",
    "others": "others", "other": "others",
    "positive": "positive", "negative": "negative",
}

SCHEMES: dict[str, dict[str, str]] = {
    # MEGC composite (3 classes).
    "3": {
        "happiness": "positive", "positive": "positive",
        "surprise": "surprise",
        "disgust": "negative", "repression": "negative", "anger": "negative", "contempt": "negative",
        "fear": "negative", "sadness": "negative", "negative": "negative",
    },
    # CASME II 5 classes as used by the MELLM zero-shot table.
    "5": {
        "happiness": "happiness", "disgust": "disgust", "repression": "repression",
        "surprise": "surprise", "others": "others", "fear": "others", "sadness": "others",
    },
    # DFME 7 classes.
    "7": {e: e for e in ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise")},
}

SCHEME_CLASSES: dict[str, tuple[str, ...]] = {
    "3": ("negative", "positive", "surprise"),
    "5": ("happiness", "disgust", "repression", "surprise", "others"),
    "7": ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise"),
}


# MEGC 2019 composite database evaluation (CDE): each dataset's own words -> negative / positive / surprise.
# Unlike scheme "3", CASME II's fear and sadness are left out (the challenge's mapping), as are "others" everywhere.
CDE_MAPPING: dict[str, dict[str, str]] = {
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
}
CDE_CLASSES: tuple[str, ...] = SCHEME_CLASSES["3"]
# Clips the MEB toolkit drops to reach the challenge's 145 CASME II clips (moderate confidence: from MEB's
# composite data table, not from the challenge paper). (dataset, subject, clip).
CDE_EXCLUDED: dict[tuple[str, str, str], str] = {
    ("casme2", "sub04", "EP12_01f"): "dropped by MEB's composite table to reach 145 CASME II clips",
    ("casme2", "sub05", "EP12_03f"): "dropped by MEB's composite table to reach 145 CASME II clips",
    ("casme2", "sub24", "EP02_07"): "dropped by MEB's composite table to reach 145 CASME II clips",
}
# The challenge's clip counts per dataset and class (See et al., MEGC 2019), printed beside what a run finds.
CDE_EXPECTED: dict[str, dict[str, int]] = {
    "smic": {"negative": 70, "positive": 51, "surprise": 43},
    "casme2": {"negative": 88, "positive": 32, "surprise": 25},
    "samm": {"negative": 92, "positive": 26, "surprise": 15},
}
CDE_SUBJECTS: dict[str, int] = {"smic": 16, "casme2": 24, "samm": 28}


def cde_emotion(dataset: str, word: object) -> str | None:
    """A sheet's emotion word -> its CDE class, None when the challenge leaves that word out of the composite."""
    if dataset not in CDE_MAPPING:
        raise ValueError(f"the composite protocol has no mapping for {dataset!r}; use {', '.join(CDE_MAPPING)}")
    label = canonical(word)
    return CDE_MAPPING[dataset].get(label) if label else None


def canonical(word: object) -> str | None:
    """Raw sheet word -> canonical label, or None when the word is not an emotion we know."""
    if word is None:
        return None
    key = str(word).strip().lower()
    return SYNONYMS.get(key)


def map_emotion(word: object, scheme: str) -> str | None:
    """Raw word -> class of `scheme` ("3", "5", "7"), None when the scheme excludes it."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown emotion scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    label = canonical(word)
    return SCHEMES[scheme].get(label) if label else None


@dataclass(frozen=True)
class EmotionRule:
    emotion: str
    aus: tuple[int, ...]  # a prototypical AU combination
    why: str  # one sentence a reasoner can quote


# Prototypical combinations (EMFACS-style, adapted to micro-expressions where movements are partial).
# Used by the synthetic dataset writer to label clips and by the template reasoner to argue from AUs.
AU_EMOTION_RULES: tuple[EmotionRule, ...] = (
    EmotionRule("happiness", (6, 12),
                "raised cheeks with mouth corners pulled up and out are the signature of a smile"),
    EmotionRule("happiness", (12,), "mouth corners pulled up and out suggest a suppressed smile"),
    EmotionRule("surprise", (1, 2), "raised inner and outer brows signal surprise"),
    EmotionRule("surprise", (1, 2, 5), "raised brows with widened eyes signal surprise"),
    EmotionRule("disgust", (9,), "a wrinkled nose is the core of disgust"),
    EmotionRule("disgust", (4, 10), "a lowered brow with a raised upper lip indicates disgust"),
    EmotionRule("disgust", (4, 7), "lowered brows with tightened lids are typical of negative, disgust-like reactions"),
    EmotionRule("sadness", (1, 4, 15), "raised inner brows with pulled-down mouth corners convey sadness"),
    EmotionRule("sadness", (15, 17), "depressed mouth corners with a raised chin convey sadness"),
    EmotionRule("fear", (1, 2, 4, 20), "raised and drawn-together brows with stretched lips signal fear"),
    EmotionRule("anger", (4, 7, 23), "lowered brows, tightened lids and tightened lips signal anger"),
    EmotionRule("anger", (4, 5), "lowered brows with a hard stare signal anger"),
    EmotionRule("contempt", (14,), "a one-sided dimpler is the marker of contempt"),
    EmotionRule("repression", (14, 17), "a dimpler with a raised chin shows an expression being held back"),
    EmotionRule("repression", (17,), "a raised chin alone often marks a suppressed reaction"),
    EmotionRule("repression", (24,), "pressed lips show an expression being held back"),
)


def emotion_from_aus(aus: set[int] | list[int], emotions: set[str] | None = None) -> tuple[str, EmotionRule | None]:
    """Best-matching rule by overlap (Jaccard), among the rules for `emotions` when given (a label set that lacks
    some emotions); 'others' when no such rule shares an AU."""
    present = set(aus)
    best, best_score = None, 0.0
    for rule in AU_EMOTION_RULES:
        if emotions is not None and rule.emotion not in emotions:
            continue
        need = set(rule.aus)
        score = len(need & present) / len(need | present) if present else 0.0
        if score > best_score:
            best, best_score = rule, score
    return (best.emotion, best) if best else ("others", None)
