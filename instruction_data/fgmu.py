"""FGMU instruction writer: an annotated record plus its measured motion -> instruction samples.

The answer has the three published parts, written from the *measured* region motion and the *labelled* AUs, so it
never claims motion the map does not show: (1) each moving region's colour, direction and strength, with motion no
labelled AU explains marked as such; (2) each labelled AU tied to the regions whose motion agrees with its FACS
direction, or said plainly to be invisible; (3) the AU combination argued to the labelled emotion through the AU
table of `assistant.emotions`; then the one parseable conclusion line of `assistant.prompts.format_conclusion`.
MER-only samples (the label alone) are mixed in at `mer_ratio`. Choices (phrasing, MER selection, language when
"both") are seeded by the record key, so a rebuild writes the same text.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.emotions import AU_EMOTION_RULES, SCHEME_CLASSES, EmotionRule, canonical
from assistant.errors import ConfigError
from assistant.facs import FACS, MIDLINE_REGIONS
from assistant.prompts import (
    COLOUR_WORDS_ZH,
    DIRECTION_WORDS_ZH,
    build_mer_prompt,
    build_task_prompt,
    emotion_word,
    format_conclusion,
    format_evidence_line,
)
from assistant.reasoners.template import INTENSITY_ZH, RULE_WHY_ZH, agreeing_regions, au_name, region_name
from assistant.types import RegionMotion
from instruction_data.phrasings import pick
from instruction_data.records import Record

# The label set each dataset is usually reported in (MELLM: CASME II 5 classes, DFME 7; SAMM and CAS(ME)^3 3).
DATASET_SCHEMES = {"casme2": "5", "samm": "3", "dfme": "7", "casme3": "3", "smic": "3", "generic": "7"}
MAX_REGIONS = 6
LANGS = ("en", "zh", "both")


@dataclass
class FGMUConfig:
    lang: str = "en"  # "en", "zh" or "both" (one sample per language)
    mer_ratio: float = 0.25  # chance that a record also yields a MER-only sample
    seed: int = 0
    scheme: str = "5"  # emotion scheme of the answers: "3", "5" or "7"
    allow_unknown_aus: bool = False  # name AU codes outside the FACS table (e.g. a typo such as AU99) in answers

    def __post_init__(self) -> None:
        if self.lang not in LANGS:
            raise ConfigError(f"lang must be one of {', '.join(LANGS)}, not {self.lang!r}.")
        if self.scheme not in SCHEME_CLASSES:
            raise ConfigError(f"scheme must be one of {', '.join(SCHEME_CLASSES)}, not {self.scheme!r}.")
        if not 0.0 <= self.mer_ratio <= 1.0:
            raise ConfigError(f"mer_ratio must lie in 0..1, not {self.mer_ratio}.")


def seeded(seed: int, *parts: object) -> random.Random:
    """A generator that depends only on the seed and the given parts (not on process or order)."""
    digest = hashlib.sha256("|".join(str(p) for p in (seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _join(items: list[str], lang: str) -> str:
    if lang == "zh" or len(items) < 3:
        return pick(random.Random(0), lang, "and").join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _explained(record: Record) -> set[tuple[str, str | None]]:
    """(region, side) pairs a labelled AU is expected to move."""
    out = set()
    for au in record.aus.aus:
        if au.code not in FACS:
            continue
        for action in FACS[au.code].actions:
            if action.region in MIDLINE_REGIONS:
                out.add((action.region, None))
            else:
                out.update((action.region, s) for s in ([au.side] if au.side else ["L", "R"]))
    return out


def _part_regions(record: Record, regions: Sequence[RegionMotion], lang: str, rng: random.Random) -> str:
    moving = sorted((r for r in regions if r.intensity != "none"), key=lambda r: -r.snr)
    explained = _explained(record)
    lines = [pick(rng, lang, "head1")]
    for r in moving[:MAX_REGIONS]:
        tag = "" if (r.region, r.side) in explained else pick(rng, lang, "unlabelled")
        if lang == "zh":
            fields = dict(region=region_name(r, "zh"), colour=COLOUR_WORDS_ZH.get(r.colour, r.colour),
                          direction=DIRECTION_WORDS_ZH.get(r.direction, r.direction),
                          intensity=INTENSITY_ZH.get(r.intensity, r.intensity))
        else:
            fields = dict(region=region_name(r), colour=r.colour, direction=r.direction, intensity=r.intensity)
        fields["Region"] = fields["region"][:1].upper() + fields["region"][1:]
        lines.append(pick(rng, lang, "region", tag=tag, **fields))
    if len(moving) > MAX_REGIONS:
        lines.append(pick(rng, lang, "more", n=len(moving) - MAX_REGIONS))
    if not moving:
        lines.append(pick(rng, lang, "still"))
    elif len(moving) < len(regions):
        lines.append(pick(rng, lang, "rest"))
    return "\n".join(lines)


def _part_aus(record: Record, regions: Sequence[RegionMotion], lang: str, rng: random.Random,
              allow_unknown: bool = False) -> str:
    lines = [pick(rng, lang, "head2")]
    seen = set()
    for au in record.aus.aus:
        if au.code is None or (au.code, au.side) in seen or (au.code not in FACS and not allow_unknown):
            continue
        seen.add((au.code, au.side))
        if au.code not in FACS:
            lines.append(pick(rng, lang, "au_untabled", au=au.label))
            continue
        side = pick(rng, lang, f"side_{au.side or ''}")
        agree = [r for r in agreeing_regions(au.code, list(regions)) if au.side is None or r.side in (au.side, None)]
        fields = dict(au=au.label, name=au_name(au.code, lang), side=side, description=FACS[au.code].description)
        if agree:
            names = [f"{region_name(r, 'zh')}（{COLOUR_WORDS_ZH.get(r.colour, r.colour)}）" if lang == "zh"
                     else f"{region_name(r)} ({r.colour}, {r.direction})" for r in agree]
            lines.append(pick(rng, lang, "au_agree", regions=_join(names, lang), **fields))
        else:
            lines.append(pick(rng, lang, "au_faint", **fields))
    if record.aus.alternatives:  # with their sides: "R14 or 14" is two readings, not "AU14 and AU14"
        first = "+".join(str(a) for a in record.aus.aus)
        alts = " / ".join("+".join(str(a) for a in alt) for alt in record.aus.alternatives)
        lines.append(pick(rng, lang, "au_alternatives", first=first, alts=alts))
    if len(lines) == 1:
        lines.append(pick(rng, lang, "au_none"))
    return "\n".join(lines)


def _best_rule(emotion: str, codes: list[int]) -> EmotionRule | None:
    present = set(codes)
    scored = [(len(set(r.aus) & present) / len(set(r.aus) | present), r) for r in AU_EMOTION_RULES
              if r.emotion == emotion and present]
    scored = [(s, r) for s, r in scored if s > 0]
    return max(scored, key=lambda sr: sr[0])[1] if scored else None


def _part_reasoning(record: Record, codes: list[int], label: str, lang: str, rng: random.Random) -> str:
    raw = canonical(record.emotion_raw) or label
    combo = "+".join(f"AU{c}" for c in codes) or ("无编码AU" if lang == "zh" else "the absence of coded AUs")
    emotion = emotion_word(raw, lang)
    rule = _best_rule(raw, codes)
    if rule is not None:
        why = RULE_WHY_ZH.get((rule.emotion, rule.aus), rule.why) if lang == "zh" else rule.why
        text = pick(rng, lang, "rule", combo=combo, emotion=emotion, proto="+".join(f"AU{c}" for c in rule.aus),
                    why=why)
    else:
        text = pick(rng, lang, "no_rule", combo=combo, emotion=emotion)
        if lang == "en":
            text = text[:1].upper() + text[1:]
    if label != raw:
        text += pick(rng, lang, "scheme", raw=emotion, label=emotion_word(label, lang))
    text += pick(rng, lang, "conclude", label=emotion_word(label, lang))
    return pick(rng, lang, "head3") + "\n" + text


def au_codes(record: Record, allow_unknown: bool = False) -> list[int]:
    """The labelled AU codes the conclusion names (first alternative, unreadable codes left out, and codes outside
    the FACS table too unless `allow_unknown`: a sheet's typo must not teach a model an AU that does not exist)."""
    return sorted({a.code for a in record.aus.aus if a.code is not None and (allow_unknown or a.code in FACS)})


def left_out_aus(record: Record) -> list[str]:
    """Labelled AUs outside the FACS table (what `au_codes` drops by default)."""
    return [a.label for a in record.aus.aus if a.code is not None and a.code not in FACS]


def fgmu_answer(record: Record, regions: Sequence[RegionMotion], label: str, lang: str, seed: int = 0,
                allow_unknown: bool = False) -> str:
    rng = seeded(seed, record.key, "fgmu", lang)
    codes = au_codes(record, allow_unknown)
    parts = [_part_regions(record, regions, lang, rng), _part_aus(record, regions, lang, rng, allow_unknown),
             _part_reasoning(record, codes, label, lang, rng), format_conclusion(codes, label, lang)]
    return "\n\n".join(parts)


def make_samples(record: Record, regions: Sequence[RegionMotion], image: str, cfg: FGMUConfig,
                 evidence: dict[str, tuple[list[tuple[int, float]], str]] | None = None) -> list[dict]:
    """The FGMU sample(s) of one record (one per language) and, at `mer_ratio`, one MER-only sample.

    Returns [] when the record's emotion is outside `cfg.scheme` (the caller reports that). A dataset that codes no
    AUs (SMIC) gets the MER sample only.
    """
    label = record.emotion(cfg.scheme)
    if label is None:
        return []
    options = SCHEME_CLASSES[cfg.scheme]
    langs = ["en", "zh"] if cfg.lang == "both" else [cfg.lang]
    base = {"key": record.key, "image": image, "dataset": record.dataset, "subject": record.subject,
            "clip_id": record.clip_id, "split": record.split, "row": record.row, "emotion": label,
            "emotion_raw": record.emotion_raw, "aus": str(record.aus),
            "au_codes": au_codes(record, cfg.allow_unknown_aus), "scheme": cfg.scheme}
    hint = evidence.get(record.key) if evidence else None
    samples = []
    if not record.aus_coded or record.aus.unknown:
        # no AU truth (SMIC codes none; a cell of `?` or `4+?` hides some): an FGMU answer would teach "no AU moved",
        # or only part of what did; emotion only, in each language asked for, as `meu eval` and `train au` leave it
        # out of AU scores
        return [{**base, "id": f"{record.key}|mer|{lang}", "task": "mer", "lang": lang, "au_codes": None,
                 "prompt": build_mer_prompt(lang, options), "answer": emotion_word(label, lang)} for lang in langs]
    for lang in langs:
        line = format_evidence_line(hint[0], hint[1], lang) if hint else None
        samples.append({**base, "id": f"{record.key}|fgmu|{lang}", "task": "fgmu", "lang": lang,
                        "prompt": build_task_prompt(lang, options, evidence_line=line),
                        "answer": fgmu_answer(record, regions, label, lang, cfg.seed, cfg.allow_unknown_aus)})
    rng = seeded(cfg.seed, record.key, "mer")
    if rng.random() < cfg.mer_ratio:
        lang = rng.choice(langs)
        samples.append({**base, "id": f"{record.key}|mer|{lang}", "task": "mer", "lang": lang,
                        "prompt": build_mer_prompt(lang, options), "answer": emotion_word(label, lang)})
    return samples


def load_evidence(path: str | Path) -> dict[str, tuple[list[tuple[int, float]], str]]:
    """A detector's predictions as prompt hints: JSON lines (or a JSON list) of
    `{"key": "casme2/sub01/EP02_01f", "scores": {"12": 0.81, ...}, "backend": "rules"}`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Evidence file {p} does not exist.")
    text = p.read_text(encoding="utf-8").strip()
    try:
        rows = json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
        return {r["key"]: ([(int(c), float(v)) for c, v in r["scores"].items()], str(r.get("backend", "detector")))
                for r in rows}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"Evidence file {p.name} is not JSON lines of key/scores/backend ({err}).") from None
