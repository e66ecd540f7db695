"""Sentence patterns of the FGMU answers, several per slot and per language, so a model trained on them learns the
reasoning rather than one sentence. `pick` chooses deterministically from a seeded generator.

Slots are filled with `str.format`; every pattern of a slot takes the same fields.
"""

from __future__ import annotations

import random

EN: dict[str, tuple[str, ...]] = {
    "head1": ("1. Visual inspection of each region:", "1. What the colour map shows, region by region:",
              "1. Motion by region:"),
    "region": ("- The {region} shows {colour} ({direction}) motion of {intensity} strength{tag}.",
               "- {Region}: {colour} hue, so it moves {direction}; {intensity} motion{tag}.",
               "- In the {region} the map is {colour}: {intensity} motion towards the image's {direction}{tag}."),
    "unlabelled": (" (no labelled AU accounts for it)",
                   " (not explained by any labelled AU; it may be residual head motion or an uncoded movement)"),
    "more": ("- {n} more region(s) move weakly.", "- {n} further region(s) show faint motion."),
    "rest": ("The other regions stay grey.", "The remaining regions show no clear motion."),
    "still": ("Every region stays grey: no motion stands out between onset and apex.",
              "The map is almost uniformly grey; no region moves clearly."),
    "head2": ("2. Action unit inference:", "2. From the motion to action units:", "2. Which AUs explain this:"),
    "au_agree": ("- {au} ({name}{side}): {description}; this matches the {regions}.",
                 "- {au} ({name}{side}) is supported by the {regions}, as expected when {description}."),
    "au_faint": ("- {au} ({name}{side}) is labelled, but no region shows the motion it causes ({description}); "
                 "it is too faint to see on this map.",
                 "- {au} ({name}{side}) is in the label, yet the map shows no matching motion ({description}), so "
                 "the visual evidence for it is weak."),
    "au_untabled": ("- {au} is labelled; there is no motion pattern for it in the FACS table used here, so it is "
                    "taken from the annotation.",),
    "au_alternatives": ("- The coders hesitated between {first} and {alts}; {first} is used.",),
    "au_none": ("- No action unit was coded for this clip.",),
    "head3": ("3. Expression reasoning:", "3. From the AUs to the expression:", "3. Reasoning:"),
    "rule": ("{combo} fits the {emotion} pattern {proto}: {why}.",
             "The combination {combo} resembles the prototypical {emotion} pattern {proto}; {why}."),
    "no_rule": ("{combo} matches no prototypical {emotion} pattern in the AU table, so the label rests on the "
                "coders' judgement of the whole clip.",
                "No prototypical {emotion} pattern in the AU table covers {combo}; the coders' reading of the clip "
                "decides."),
    "scheme": (" In this label set {raw} counts as {label}.", " Here {raw} is filed under {label}."),
    "conclude": (" So the micro-expression is {label}.", " The expression is therefore {label}."),
    "side_L": (", person's left side",), "side_R": (", person's right side",), "side_": ("",),
    "and": (" and ",),
}

ZH: dict[str, tuple[str, ...]] = {
    "head1": ("1. 各区域的视觉观察：", "1. 运动彩色图逐区域分析：", "1. 区域运动："),
    "region": ("- {region}呈{colour}，即{direction}运动，强度{intensity}{tag}。",
               "- {region}：{colour}，表示{direction}的{intensity}运动{tag}。"),
    "unlabelled": ("（没有标注的AU能解释它）", "（标注的AU都无法解释，可能是残余的头部运动或未编码的动作）"),
    "more": ("- 另有 {n} 个区域有较弱运动。",),
    "rest": ("其余区域呈灰色。", "其他区域没有明显运动。"),
    "still": ("所有区域都呈灰色：起始帧到顶点帧之间没有明显运动。", "图像几乎全是灰色，没有区域明显运动。"),
    "head2": ("2. 动作单元推断：", "2. 从运动到动作单元："),
    "au_agree": ("- {au}（{name}{side}）：与{regions}的运动一致。",
                 "- {au}（{name}{side}）得到{regions}的支持。"),
    "au_faint": ("- {au}（{name}{side}）已被标注，但没有区域出现相应的运动，在这张图上太弱而看不出。",
                 "- 标注中有{au}（{name}{side}），但图上没有与之相符的运动，视觉证据较弱。"),
    "au_untabled": ("- 标注中有{au}；本系统的FACS表没有它的运动模式，因此以标注为准。",),
    "au_alternatives": ("- 编码者在{first}与{alts}之间犹豫；采用{first}。",),
    "au_none": ("- 这个片段没有标注动作单元。",),
    "head3": ("3. 表情推理：", "3. 从动作单元到表情："),
    "rule": ("{combo} 符合{emotion}的典型组合 {proto}：{why}。",
             "{combo} 与{emotion}的典型组合 {proto} 相近（{why}）。"),
    "no_rule": ("{combo} 不符合AU表中{emotion}的任何典型组合，标签依据编码者对整个片段的判断。",),
    "scheme": ("在当前类别体系中，{raw}归入{label}。",),
    "conclude": ("因此这个微表情是{label}。", "所以表情为{label}。"),
    "side_L": ("，人物左侧",), "side_R": ("，人物右侧",), "side_": ("",),
    "and": ("、",),
}

PHRASES = {"en": EN, "zh": ZH}


def pick(rng: random.Random, lang: str, slot: str, **fields: object) -> str:
    return rng.choice(PHRASES[lang][slot]).format(**fields)
