"""Text the model and the user see, owned here once: the colour legend prior and the conclusion line.

The conclusion line is the contract between every writer of answers (instruction data, template reasoner,
VLM) and the parser in `assistant.parse`: `AUs: AU6, AU12; Micro-expression: happiness` in English,
`动作单元: AU6, AU12; 微表情: 快乐` in Chinese. A macro-expression that a long video's spotter found is named as one
by the template reasoner (`Macro-expression: ...`, `宏表情: ...`, which the parser reads alike); the VLM keeps the
micro-expression prompt it was trained on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Expression = Literal["micro", "macro"]
EXPRESSION_WORDS = {"micro": {"en": "micro-expression", "zh": "微表情"},
                    "macro": {"en": "macro-expression", "zh": "宏表情"}}


def expression_word(kind: str, lang: str = "en") -> str:
    """`micro-expression` / `宏表情` ...: the one place the kinds are worded."""
    if kind not in EXPRESSION_WORDS:
        raise ValueError(f"expression must be one of {', '.join(EXPRESSION_WORDS)}, not {kind!r}")
    return EXPRESSION_WORDS[kind]["zh" if lang == "zh" else "en"]

# Legend in image coordinates, the order the MMC map's hue wheel runs (OpenCV angle, y down).
DIRECTIONS: tuple[str, ...] = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")
DIRECTION_COLOURS: dict[str, str] = {
    "up": "purple", "up-right": "magenta", "right": "red", "down-right": "orange",
    "down": "yellow-green", "down-left": "green", "left": "cyan", "up-left": "blue",
}
DIRECTION_WORDS_ZH: dict[str, str] = {
    "up": "向上", "up-right": "右上", "right": "向右", "down-right": "右下",
    "down": "向下", "down-left": "左下", "left": "向左", "up-left": "左上",
}
COLOUR_WORDS_ZH: dict[str, str] = {
    "purple": "紫色", "magenta": "品红/粉色", "red": "红色", "orange": "橙黄色",
    "yellow-green": "黄绿色", "green": "绿色", "cyan": "青色", "blue": "蓝色",
}
EMOTION_WORDS_ZH: dict[str, str] = {
    "happiness": "快乐", "sadness": "悲伤", "surprise": "惊讶", "disgust": "厌恶", "fear": "恐惧",
    "anger": "愤怒", "contempt": "轻蔑", "repression": "压抑", "others": "其他",
    "positive": "积极", "negative": "消极",
}

_LEGEND = {
    "en": (
        "The image is a motion-enhanced colour map: the faint facial motion between the onset and apex frames of a "
        "{expression}, drawn in colour over the grey onset frame. Hue gives the direction of motion in image "
        "coordinates: up = purple, up-right = magenta/pink, right = red, down-right = orange-yellow, "
        "down = yellow-green, down-left = green, left = cyan, up-left = blue. Brightness gives motion strength; "
        "grey areas did not move. The person's left side is on the image's right."
    ),
    "zh": (
        "这张图是运动增强彩色图：{expression}起始帧到顶点帧之间的细微面部运动，以颜色叠加在灰度起始帧上。色调表示图像坐标中的运动方向："
        "向上=紫色，右上=品红/粉色，向右=红色，右下=橙黄色，向下=黄绿色，左下=绿色，向左=青色，左上=蓝色。"
        "亮度表示运动强度；灰色区域没有运动。人物的左侧位于图像的右侧。"
    ),
}


def legend_prior(lang: str = "en", expression: Expression = "micro") -> str:
    """The colour legend, naming the kind of expression the map shows."""
    return _LEGEND["zh" if lang == "zh" else "en"].format(expression=expression_word(expression, lang))


LEGEND_PRIOR = {lang: legend_prior(lang) for lang in _LEGEND}  # what the VLM was trained on


def emotion_word(emotion: str, lang: str = "en") -> str:
    return EMOTION_WORDS_ZH.get(emotion, emotion) if lang == "zh" else emotion


def format_conclusion(au_codes: Iterable[int], emotion: str, lang: str = "en",
                      expression: Expression = "micro") -> str:
    """The one parseable final line; a macro-expression (a long video's longer interval) is named as one."""
    codes = ", ".join(f"AU{c}" for c in sorted(set(au_codes))) or ("无" if lang == "zh" else "none")
    if lang == "zh":
        return f"动作单元: {codes}; {expression_word(expression, 'zh')}: {emotion_word(emotion, 'zh')}"
    return f"AUs: {codes}; {expression_word(expression).capitalize()}: {emotion}"


TASK_STEPS = {
    "en": (
        "Analyse the micro-expression step by step:\n"
        "1. Inspect each facial region (brows, eyelids, cheeks, nose, mouth corners, lips, chin) and describe the "
        "colour, direction and strength of any motion.\n"
        "2. Infer the facial action units (AUs) that explain that motion.\n"
        "3. Reason from the AU combination to the expression.\n"
        "4. Conclude."
    ),
    "zh": (
        "请逐步分析这个微表情：\n"
        "1. 检查每个面部区域（眉毛、眼睑、脸颊、鼻子、嘴角、嘴唇、下巴），描述运动的颜色、方向和强度。\n"
        "2. 推断能解释这些运动的面部动作单元（AU）。\n"
        "3. 根据AU组合推理出表情。\n"
        "4. 给出结论。"
    ),
}


def emotion_options_line(options: Iterable[str], lang: str = "en") -> str:
    opts = list(options)
    if lang == "zh":
        return "可选的微表情类别：" + "、".join(emotion_word(o, "zh") for o in opts) + "。"
    return "Choose the micro-expression from: " + ", ".join(opts) + "."


def conclusion_instruction(lang: str = "en") -> str:
    if lang == "zh":
        return "最后一行必须严格写成：动作单元: AU…, AU…; 微表情: 类别"
    return "End with exactly one line of the form: AUs: AU…, AU…; Micro-expression: LABEL"


def build_task_prompt(lang: str, emotion_options: Iterable[str], evidence_line: str | None = None,
                      region_table: str | None = None) -> str:
    """The user prompt shared by training data and serving (the image comes separately)."""
    parts = [LEGEND_PRIOR[lang], TASK_STEPS[lang], emotion_options_line(emotion_options, lang)]
    if evidence_line:
        parts.append(evidence_line)
    if region_table:
        parts.append(region_table)
    parts.append(conclusion_instruction(lang))
    return "\n\n".join(parts)


def format_evidence_line(scores: Iterable[tuple[int, float]], backend: str, lang: str = "en") -> str:
    """`AU evidence (rules): AU12 0.81, AU6 0.55` — detector probabilities as a prompt hint."""
    items = ", ".join(f"AU{c} {p:.2f}" for c, p in sorted(scores, key=lambda cp: -cp[1]))
    if lang == "zh":
        return f"AU检测器证据（{backend}）：{items or '无'}"
    return f"AU evidence ({backend}): {items or 'none'}"


def format_region_table(regions: Iterable, lang: str = "en") -> str:
    """The moving regions (`assistant.types.RegionMotion`) as prompt text, strongest first; still ones are left out."""
    moving = sorted((r for r in regions if r.intensity != "none"), key=lambda r: -r.snr)
    if lang == "zh":
        rows = [f"- {r.label}：{DIRECTION_WORDS_ZH.get(r.direction, r.direction)}"
                f"（{COLOUR_WORDS_ZH.get(r.colour, r.colour)}），{r.intensity}，{r.motion_px:.2f} 像素，"
                f"信噪比 {r.snr:.0f}"
                for r in moving]
        return "区域运动（人物自身的左右）：\n" + ("\n".join(rows) if rows else "无明显运动")
    rows = [f"- {r.label}: {r.direction} ({r.colour}), {r.intensity}, {r.motion_px:.2f} px, SNR {r.snr:.0f}"
            for r in moving]
    return "Region motion (the person's sides):\n" + ("\n".join(rows) if rows else "no clear motion")


MER_QUESTION = {
    "en": "Which micro-expression does this map show? Answer with the label only.",
    "zh": "这张图显示的是哪种微表情？只回答类别。",
}


def build_mer_prompt(lang: str, emotion_options: Iterable[str]) -> str:
    """The bare emotion-label task (MER) that the published recipe mixes with the explanatory one."""
    return "\n\n".join([LEGEND_PRIOR[lang], MER_QUESTION[lang], emotion_options_line(emotion_options, lang)])
