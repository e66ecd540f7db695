"""The answer parser on realistic model outputs: English, Chinese, markdown, truncation, extra prose, ambiguity."""

from __future__ import annotations

import pytest

from assistant.emotions import SCHEME_CLASSES
from assistant.parse import parse_answer
from assistant.prompts import format_conclusion

FIVE = SCHEME_CLASSES["5"]

EN_FULL = """1. Motion analysis: both cheeks show orange-yellow motion of moderate strength; the mouth corners move
up-right (magenta) on the person's left and up-left (blue) on the right.
2. AUs: the cheek raise is AU6 and the pulled mouth corners are AU12.
3. Reasoning: AU6 with AU12 is the signature of a smile, not disgust.
AUs: AU6, AU12; Micro-expression: happiness"""

ZH_FULL = """1. 运动分析：双侧脸颊有中等强度的橙黄色运动，嘴角向上。
2. 动作单元：脸颊上提为AU6，嘴角上扬为AU12。
3. 推理：AU6与AU12组合是微笑的典型特征。
动作单元: AU6, AU12; 微表情: 快乐"""

# the published MELLM model's layout: a full-width AU list that runs over a blank line
MELLM_ZH = """面部动作单元 (AUs)：AU1：眉毛抬起；AU6：脸颊上提；

AU17：嘴唇紧闭

微表情：悲伤"""

CASES = [
    # (name, text, aus, emotion, status, candidates)
    ("english full answer", EN_FULL, [6, 12], "happiness", "ok", []),
    ("chinese full answer", ZH_FULL, [6, 12], "happiness", "ok", []),
    ("bare conclusion", format_conclusion([4, 7], "disgust"), [4, 7], "disgust", "ok", []),
    ("chinese synonym", "动作单元: AU12; 微表情: 开心", [12], "happiness", "ok", []),
    ("chinese synonym gaoxing", "动作单元：AU6，AU12；微表情：高兴。", [6, 12], "happiness", "ok", []),
    ("english synonym joy", "AUs: AU12; Micro-expression: joy", [12], "happiness", "ok", []),
    ("markdown bold", "Some analysis.\n\n**AUs:** AU1, AU2; **Micro-expression:** *Surprise*.", [1, 2],
     "surprise", "ok", []),
    ("conclusion split over two lines", "Reasoning here.\nAUs: AU14\nMicro-expression: repression", [14],
     "repression", "ok", []),
    ("no AUs", "AUs: none; Micro-expression: others", [], "others", "ok", []),
    ("chinese none", "动作单元: 无; 微表情: 其他", [], "others", "ok", []),
    ("extra prose after conclusion", EN_FULL + "\n\nLet me know if you want more detail about the brows.",
     [6, 12], "happiness", "ok", []),
    ("truncated before conclusion", "1. Motion analysis: the brows rise (purple) strongly.\n2. AUs: AU1 and AU2 "
     "are active.\n3. Reasoning: raised brows signal surprise. Other regions are", [1, 2], "surprise", "inferred", []),
    ("truncated chinese", "1. 运动分析：眉毛向上（紫色）。\n2. AU1和AU2。\n3. 推理：眉毛上扬表示惊讶。其他区域", [1, 2],
     "surprise", "inferred", []),
    ("negated mention skipped", "The lowered brow (AU4) is not anger; it reads as disgust.", [4], "disgust",
     "inferred", []),
    ("two candidate labels", "AUs: AU4; Micro-expression: disgust or fear", [4], None, "unparsable",
     ["disgust", "fear"]),
    ("two candidates chinese", "动作单元: AU4; 微表情: 厌恶或恐惧", [4], None, "unparsable", ["disgust", "fear"]),
    ("no label anywhere", "The map shows weak motion around the eyes (AU7).", [7], None, "unparsable", []),
    ("empty", "", [], None, "unparsable", []),
    ("AUs on the conclusion line without a key", "Reasoning.\nFinal answer: AU6 and AU12; Micro-expression: happiness",
     [6, 12], "happiness", "ok", []),
    ("not X but Y", "AUs: AU4, AU10; Micro-expression: not happiness but disgust", [4, 10], "disgust", "ok", []),
    ("chinese AUs without a key", "分析略。\n结论：AU1、AU2；微表情：惊讶", [1, 2], "surprise", "ok", []),
    ("MELLM list over paragraphs", MELLM_ZH, [1, 6, 17], "sadness", "ok", []),
    ("MELLM list with its last item on the conclusion line",
     "面部动作单元 (AUs)：AU1：眉毛抬起；AU2：眉毛外侧抬起；\n\nAU5：上眼睑抬起；微表情：惊讶", [1, 2, 5],
     "surprise", "ok", []),
    ("MELLM list, then prose, then the label", MELLM_ZH.replace("\n\n微表情", "\n\n推理：嘴唇紧闭。\n微表情"),
     [1, 6, 17], "sadness", "ok", []),
    ("bare codes in prose before a conclusion", "R2-D2 sat on A4 paper beside an L1 cache.\nAUs: AU6, AU12; "
     "Micro-expression: happiness", [6, 12], "happiness", "ok", []),
    ("bare codes in prose without a conclusion", "R2-D2 sat on A4 paper. The L1 cache is warm. AU12 pulls the "
     "mouth corners up: happiness.", [12], "happiness", "inferred", []),
    ("AUs named, none readable", "面部动作单元 (AUs)：眉毛抬起，嘴唇紧闭\n\n微表情：惊讶", [], "surprise",
     "inferred", []),
    ("action units named, none readable", "Action units: inner brow raiser.\nMicro-expression: surprise", [],
     "surprise", "inferred", []),
    ("AUs only in the body", "Analysis: AU6 and AU12 are active.\nMicro-expression: happiness", [6, 12],
     "happiness", "inferred", []),
]


@pytest.mark.parametrize("name,text,aus,emotion,status,candidates", CASES, ids=[c[0] for c in CASES])
def test_parse_table(name, text, aus, emotion, status, candidates):
    parsed = parse_answer(text, FIVE)
    assert parsed.aus == aus
    assert parsed.emotion == emotion
    assert parsed.status == status
    assert parsed.candidates == candidates


def test_label_outside_scheme_is_kept_and_flagged():
    parsed = parse_answer("AUs: AU4, AU7, AU23; Micro-expression: anger", FIVE)
    assert parsed.emotion == "anger" and parsed.status == "ok"
    assert parsed.out_of_scheme
    assert not parse_answer("AUs: AU4; Micro-expression: anger", SCHEME_CLASSES["7"]).out_of_scheme


def test_every_conclusion_round_trips():
    """Whatever format_conclusion writes, in either language, the parser reads back exactly."""
    for lang in ("en", "zh"):
        for emotion in ("happiness", "sadness", "surprise", "disgust", "fear", "anger", "contempt", "repression",
                        "others", "positive", "negative"):
            parsed = parse_answer("Reasoning first.\n" + format_conclusion([1, 4, 15], emotion, lang))
            assert (parsed.aus, parsed.emotion, parsed.status) == ([1, 4, 15], emotion, "ok"), (lang, emotion)


def test_conclusion_without_known_label_falls_back_to_body():
    text = "Raised brows and wide eyes signal surprise.\nAUs: AU1, AU2; Micro-expression: ???"
    parsed = parse_answer(text)
    assert (parsed.emotion, parsed.status, parsed.aus) == ("surprise", "inferred", [1, 2])


@pytest.mark.parametrize("last", ["**AUs: AU6, AU12; Micro-expression: happiness**",
                                  "### AUs: AU6, AU12; Micro-expression: _happiness_"])
def test_conclusion_in_markdown_is_the_line_as_written(last):
    """Readers cut the reasoning off at `conclusion`, so it must be found verbatim in the text."""
    text = "1. The cheeks move up.\n\n3. The smile pattern suggests happiness.\n" + last
    parsed = parse_answer(text, FIVE)
    assert parsed.status == "ok" and parsed.emotion == "happiness" and parsed.aus == [6, 12]
    assert parsed.conclusion == last
    assert "Micro-expression" not in text.rsplit(parsed.conclusion, 1)[0]


@pytest.mark.parametrize("text", [
    "Reasoning.\nConclusion: AU4 and AU7 are active, together with R14. Micro-expression: contempt",
    "AU4 and AU7 are active, together with R14, which reads as contempt.",
    "AUs: AU4, AU7, R14; Micro-expression: contempt",
])
def test_sided_codes_in_an_au_list_keep_their_side(text):
    parsed = parse_answer(text)
    assert (parsed.aus, parsed.sides, parsed.emotion) == ([4, 7, 14], {14: "R"}, "contempt")


def test_sides_only_where_the_sided_mentions_agree():
    parsed = parse_answer("AUs: L12, R12, L14, AU14; Micro-expression: contempt")
    assert (parsed.aus, parsed.sides, parsed.status) == ([12, 14], {14: "L"}, "ok")


def test_bare_codes_outside_an_au_list_are_no_aus():
    parsed = parse_answer("R2-D2 sat on A4 paper; an L1 cache and R14 are here.\nMicro-expression: happiness")
    assert (parsed.aus, parsed.sides, parsed.status) == ([], {}, "ok")


def test_au_talk_without_readable_aus_is_not_ok():
    """Status "ok" says the AUs were read; an answer naming action units it does not list is flagged instead."""
    for text in ("面部动作单元 (AUs)：眉毛抬起\n微表情：惊讶",
                 "The action units are unclear.\nMicro-expression: surprise"):
        parsed = parse_answer(text)
        assert (parsed.aus, parsed.emotion) == ([], "surprise") and parsed.status != "ok", text
        assert "the answer names AUs its conclusion does not list" in parsed.notes
    assert parse_answer("AUs: none; Micro-expression: surprise").status == "ok"  # an empty list said outright
