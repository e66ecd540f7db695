"""The template reasoner on hand-built analyses: three parts, agreeing regions, a final line that parses back,
both languages, and follow-up answers grounded in the analysis."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import BackendError
from assistant.facs import FACS, image_direction
from assistant.motion.regions import direction_word
from assistant.parse import parse_answer
from assistant.prompts import DIRECTION_COLOURS
from assistant.reasoners import get_reasoner
from assistant.reasoners.base import Conversation, ReasoningRequest
from assistant.reasoners.template import TemplateReasoner, agreeing_regions, fit_emotion
from assistant.types import AUEvidence, AUScore, Clip, CropBox, FaceLandmarks, MotionAnalysis, MotionField, RegionMotion

FIVE = ("happiness", "disgust", "repression", "surprise", "others")
SEVEN = ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise")


def _region(region: str, side: str | None, v: np.ndarray) -> RegionMotion:
    mag = float(np.linalg.norm(v))
    direction = direction_word(float(v[0]), float(v[1]))
    intensity = "strong" if mag >= 1.0 else "moderate" if mag >= 0.4 else "weak" if mag >= 0.15 else "none"
    return RegionMotion(region, side, float(v[0]), float(v[1]), mag, mag * 1.3, direction, DIRECTION_COLOURS[direction],
                        intensity, 0.95, 100)


def analysis_for(codes: list[int], px: float = 1.5) -> MotionAnalysis:
    """An analysis whose regions move the way the FACS table says `codes` move them (both sides)."""
    vectors: dict[tuple[str, str | None], np.ndarray] = {}
    for code in codes:
        for action in FACS[code].actions:
            sides = ("L", "R") if action.region in ("inner_brow", "outer_brow", "upper_eyelid", "lower_eyelid",
                                                     "cheek", "nasolabial", "mouth_corner") else (None,)
            for side in sides:
                key = (action.region, side)
                vectors[key] = vectors.get(key, np.zeros(2)) + px * action.weight * image_direction(action, side)
    regions = [_region(r, s, v) for (r, s), v in vectors.items()]
    grey = np.zeros((256, 256, 3), np.uint8)
    lm = FaceLandmarks(np.zeros((68, 2)), np.zeros((68, 2)), (0, 0, 1, 1), (256, 256), "test")
    flow = np.zeros((256, 256, 2), np.float32)
    return MotionAnalysis(
        clip=Clip("<test>", grey, grey, 0, 1), landmarks=lm, crop=CropBox(0, 0, 256, 256, 256), crop_landmarks=lm,
        onset_crop=grey, apex_crop=grey, field=MotionField(flow, flow, "tvl1", "similarity", {"tx": 0.0, "ty": 0.0}),
        mmc_map=grey, mmc_mode="default", regions=regions)


def evidence_for(probs: dict[int, float]) -> AUEvidence:
    return AUEvidence([AUScore(c, probs.get(c, 0.02)) for c in sorted(FACS)], backend="rules")


def request_for(codes: list[int], lang: str = "en", options: tuple[str, ...] = FIVE,
                probs: dict[int, float] | None = None) -> ReasoningRequest:
    probs = probs if probs is not None else {c: 0.9 - 0.05 * i for i, c in enumerate(codes)}
    return ReasoningRequest(analysis_for(codes), evidence_for(probs), lang=lang, emotion_options=options)


CASES = [  # AUs, label set, expected emotion (from the AU-to-emotion table in assistant/emotions.py)
    ([6, 12], FIVE, "happiness"),
    ([1, 2], FIVE, "surprise"),
    ([4, 10], FIVE, "disgust"),
    ([15, 17], FIVE, "others"),  # sadness is not a CASME II 5-class label
    ([15, 17], SEVEN, "sadness"),
    ([17], SEVEN, "sadness"),  # the closer repression rule has no DFME label: the best rule the label set can say
    ([], FIVE, "others"),
]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("codes,options,emotion", CASES)
def test_final_line_parses_back_to_its_own_aus_and_emotion(codes, options, emotion, lang):
    answer = TemplateReasoner().answer(request_for(codes, lang, options))
    assert answer.emotion == emotion
    assert sorted(a.code for a in answer.aus) == sorted(codes)
    parsed = parse_answer(answer.text, options)
    assert parsed.status == "ok", parsed
    assert parsed.emotion == emotion
    assert sorted(parsed.aus) == sorted(codes)
    assert answer.text.startswith(answer.reasoning)
    assert answer.text.count("\n\n") == 3  # regions / AUs / expression / conclusion


def test_regions_are_described_with_colour_direction_and_strength():
    text = TemplateReasoner().compose(request_for([6, 12]))
    # The person's left mouth corner moves up and outward = up and to the image's right = magenta.
    assert "left mouth corner moves up-right (magenta, strong" in text
    assert "right mouth corner moves up-left (blue, strong" in text
    zh = TemplateReasoner().compose(request_for([6, 12], "zh"))
    assert "左嘴角右上运动（品红/粉色，强" in zh


def test_au_lines_name_the_agreeing_regions_and_flag_unsupported_aus():
    req = request_for([12], probs={12: 0.9, 4: 0.7})  # AU4 is in the evidence but no brow moved
    text = TemplateReasoner().compose(req)
    au12 = next(line for line in text.splitlines() if line.startswith("- AU12"))
    au4 = next(line for line in text.splitlines() if line.startswith("- AU4"))
    assert "left mouth corner" in au12 and "right mouth corner" in au12
    assert "weak evidence" in au4
    assert [r.region for r in agreeing_regions(4, req.analysis.regions)] == []


def test_stream_grows_to_the_full_text():
    req = request_for([1, 2])
    chunks = list(TemplateReasoner().stream(req))
    assert len(chunks) > 3
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(chunks, chunks[1:]))
    assert chunks[-1] == TemplateReasoner().compose(req)


FOLLOW_UPS = [
    ("Which AUs did you find, and how sure are you?", ["AU6", "AU12", "0.90", "Below the threshold"]),
    ("Why happiness?", ["AU6+AU12", "smile"]),
    ("Where did the face move?", ["left mouth corner", "left cheek"]),
    ("What does magenta mean?", ["up-right", "left mouth corner"]),
    ("What does the colour green mean?", ["down-left", "No region"]),
    ("What does yellow-green mean?", ["towards the image's down;"]),
    ("And pink, and blue?", ["Magenta means motion towards the image's up-right", "Blue means motion towards the "
                             "image's up-left", "right mouth corner"]),
    ("What is AU4?", ["Brow Lowerer", "not found"]),
    ("Explain AU12 please", ["Lip Corner Puller", "was found"]),
    ("What's the weather like today?", ["can't answer that from this clip"]),
    ("为什么是快乐？", ["AU6+AU12", "微笑"]),
    ("AU12是什么意思？", ["嘴角上扬", "检测到了"]),
    ("紫色代表什么？", ["向上"]),
    ("检测到哪些AU？有多大把握？", ["AU6", "AU12", "0.90"]),
    ("今天天气怎么样？", ["无法从这个片段中回答"]),
    ("What emotion is it?", ["most likely happiness"]),  # "emotion" holds "motion": not a where-question
    ("What is the micro-expression?", ["most likely happiness"]),
    ("How does this person feel?", ["most likely happiness"]),
    ("这是什么情绪？", ["最可能是快乐"]),
    ("他是什么表情？", ["最可能是快乐"]),
    ("Which movement is the strongest?", ["left mouth corner", "left cheek"]),
    # an AU named in a why-question is answered from its regions (it got the emotion's reason before)
    ("Why not AU12?", ["Lip Corner Puller", "was found", "Where it acts, the", "the way AU12 moves it"]),
    ("Why is AU12 purple?", ["Purple means motion towards the image's up"]),  # a colour named: what it says
    ("Why happiness with AU12?", ["AU6+AU12", "smile"]),  # an emotion named: its reason
    ("Why happy with AU12?", ["AU6+AU12", "smile"]),
    ("Why not AU4 when others moved?", ["Brow Lowerer", "was not found"]),  # "others" is no emotion named here
]


@pytest.mark.parametrize("question,expected", FOLLOW_UPS)
def test_follow_ups_are_grounded_in_the_analysis(question, expected):
    reasoner = TemplateReasoner()
    req = request_for([6, 12])
    conv = Conversation(request=req, answer=reasoner.answer(req))
    replies = list(reasoner.follow_up(conv, question))
    for word in expected:
        assert word in replies[-1], (question, replies[-1])


def test_emotion_is_fitted_to_the_label_set():
    assert fit_emotion("sadness", FIVE) == "others"
    assert fit_emotion("sadness", ("negative", "positive", "surprise")) == "negative"
    assert fit_emotion("happiness", ("negative", "positive", "surprise")) == "positive"
    assert fit_emotion("surprise", SEVEN) == "surprise"


def test_registry():
    assert isinstance(get_reasoner("template"), TemplateReasoner)
    with pytest.raises(BackendError, match="Unknown reasoner"):
        get_reasoner("oracle")


@pytest.mark.parametrize("lang,micro,macro", [("en", "micro-expression", "macro-expression"),
                                               ("zh", "微表情", "宏表情")])
def test_a_macro_expression_is_not_called_a_micro_expression(lang, micro, macro):
    """A long video's spotter also finds macro-expressions; their analysis names them so, and still parses."""
    reasoner = TemplateReasoner()
    req = request_for([6, 12], lang=lang)
    req.expression = "macro"
    text = reasoner.compose(req)
    assert macro in text.lower() and micro not in text.lower()
    parsed = parse_answer(text, FIVE)
    assert (sorted(parsed.aus), parsed.emotion, parsed.status) == ([6, 12], "happiness", "ok")
    conv = Conversation(request=req, answer=reasoner.answer(req))
    why = list(reasoner.follow_up(conv, "Why happiness?" if lang == "en" else "为什么是快乐？"))[-1]
    assert macro in why.lower() and micro not in why.lower()
    req.expression = "micro"
    assert micro in reasoner.compose(req).lower()


@pytest.mark.parametrize("lang,question,expected", [
    ("en", "What is AU7?", "The motion in its left upper eyelid and right upper eyelid was attributed to AU4 "
                           "(Brow Lowerer), which drags that skin along."),
    ("zh", "AU7是什么意思？", "左上眼睑、右上眼睑的运动已归于 AU4"),
])
def test_an_au_not_named_says_which_au_its_regions_motion_was_given_to(lang, question, expected):
    """Explaining away, told to the user: the lids moved, AU7 was not named, because AU4 drags that skin."""
    reasoner = TemplateReasoner()
    req = request_for([4], lang=lang)
    req.analysis.regions += [_region("upper_eyelid", side, np.array([0.0, 0.5])) for side in ("L", "R")]
    req.analysis.regions.append(_region("lower_eyelid", "L", np.array([0.0, 0.05])))  # no clear motion: not told
    req.evidence.explained = {"left upper eyelid": 4, "right upper eyelid": 4, "left cheek": 12,
                              "left lower eyelid": 4}
    conv = Conversation(request=req, answer=reasoner.answer(req))
    reply = list(reasoner.follow_up(conv, question))[-1]
    assert expected in reply, reply
    assert "cheek" not in reply and "AU12" not in reply  # AU7 does not act on the cheek
    found = list(reasoner.follow_up(conv, "What is AU4?"))[-1]
    assert "attributed" not in found and "归于" not in found


@pytest.mark.parametrize("lang,question,expected", [
    ("en", "Why wasn't AU4 found?", ["Brow Lowerer", "was not found", "Where it acts, the left inner brow shows no "
                                     "clear motion (0.02 px"]),
    ("zh", "为什么没有AU4？", ["没有检测到", "它作用的区域测得：左眉头没有明显运动（0.02 像素"]),
])
def test_why_an_au_was_not_found_is_answered_from_its_regions(lang, question, expected):
    """"Why not AU4?" got the emotion's reasoning ("most likely happiness"): it asks about the AU's regions."""
    reasoner = TemplateReasoner()
    req = request_for([6, 12], lang=lang)
    req.analysis.regions.append(_region("inner_brow", "L", np.array([0.02, 0.0])))
    conv = Conversation(request=req, answer=reasoner.answer(req))
    reply = list(reasoner.follow_up(conv, question))[-1]
    for words in expected:
        assert words in reply, reply
    assert "happiness" not in reply and "快乐" not in reply
