"""The `template` reasoner: the three-part explanation written from the evidence, no model needed.

It writes what the training data teaches a model to write (region inspection with colour, direction and strength;
AUs tied to the regions whose motion agrees with them; reasoning from the AU combination to the emotion; the one
parseable conclusion line), so the offline default reads like the fine-tuned VLM and both parse the same way.
Follow-up questions are matched to a small set of intents and answered only from the analysis; anything else gets
a plain "cannot answer from this clip".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from assistant.au import AU
from assistant.emotions import AU_EMOTION_RULES, SCHEME_CLASSES, SCHEMES, EmotionRule, emotion_from_aus
from assistant.facs import FACS, facs_au, image_direction, region_label, region_of_label
from assistant.prompts import (
    COLOUR_WORDS_ZH,
    DIRECTION_COLOURS,
    DIRECTION_WORDS_ZH,
    EMOTION_WORDS_ZH,
    Expression,
    emotion_word,
    expression_word,
    format_conclusion,
    legend_prior,
)
from assistant.reasoners.base import Conversation, ReasoningRequest
from assistant.types import Answer, AUScore, RegionMotion

AGREE_COS = 0.5  # a region "agrees" with an AU when its motion is within 60 degrees of the FACS direction
MAX_REGIONS = 6  # regions listed in part 1, strongest first
CHUNK_CHARS = 24  # streaming granularity

INTENSITY_ZH = {"none": "无", "weak": "弱", "moderate": "中等", "strong": "强"}
REGION_WORDS_ZH = {
    "inner_brow": "眉头", "outer_brow": "眉尾", "upper_eyelid": "上眼睑", "lower_eyelid": "下眼睑", "cheek": "脸颊",
    "nasolabial": "鼻唇沟", "mouth_corner": "嘴角", "glabella": "眉间", "nose": "鼻子", "upper_lip": "上唇",
    "lower_lip": "下唇", "chin": "下巴",
}
AU_NAMES_ZH = {
    1: "眉内侧上扬", 2: "眉外侧上扬", 4: "皱眉（眉毛下压）", 5: "上眼睑上提", 6: "脸颊上提", 7: "眼睑收紧", 9: "皱鼻",
    10: "上唇上提", 12: "嘴角上扬", 14: "酒窝（嘴角收紧）", 15: "嘴角下拉", 17: "下巴上抬", 20: "嘴唇横拉",
    23: "嘴唇收紧", 24: "嘴唇紧压", 25: "双唇分开", 26: "下颌下垂", 43: "闭眼",
}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_AU_MENTION = re.compile(r"(?<![A-Za-z])AU\s*(\d{1,2})(?!\d)|(?<![\d.])(\d{1,2})号?\s*(?:AU|动作单元)", re.IGNORECASE)
# Chinese wording of the reasons in assistant.emotions.AU_EMOTION_RULES, keyed by (emotion, AUs).
RULE_WHY_ZH = {
    ("happiness", (6, 12)): "脸颊上提且嘴角向外上扬是微笑的标志",
    ("happiness", (12,)): "嘴角向外上扬提示被抑制的微笑",
    ("surprise", (1, 2)): "眉头和眉尾同时上扬表示惊讶",
    ("surprise", (1, 2, 5)): "眉毛上扬并且睁大眼睛表示惊讶",
    ("disgust", (9,)): "皱鼻是厌恶的核心动作",
    ("disgust", (4, 10)): "皱眉并上提上唇表示厌恶",
    ("disgust", (4, 7)): "皱眉并收紧眼睑是典型的负面、类似厌恶的反应",
    ("sadness", (1, 4, 15)): "眉头上扬并且嘴角下拉传达悲伤",
    ("sadness", (15, 17)): "嘴角下拉并且下巴上抬传达悲伤",
    ("fear", (1, 2, 4, 20)): "眉毛上扬并向中间聚拢、嘴唇横拉表示恐惧",
    ("anger", (4, 7, 23)): "皱眉、收紧眼睑和嘴唇表示愤怒",
    ("anger", (4, 5)): "皱眉并瞪眼表示愤怒",
    ("contempt", (14,)): "单侧酒窝是轻蔑的标志",
    ("repression", (14, 17)): "酒窝加下巴上抬表明表情正被压制",
    ("repression", (17,)): "单独的下巴上抬常标志着被压抑的反应",
    ("repression", (24,)): "双唇紧压表明表情正被压制",
}


def region_name(r: RegionMotion | tuple[str, str | None], lang: str = "en") -> str:
    region, side = (r.region, r.side) if isinstance(r, RegionMotion) else r
    if lang == "zh":
        return {"L": "左", "R": "右"}.get(side or "", "") + REGION_WORDS_ZH.get(region, region)
    return region_label(region, side)


def au_name(code: int, lang: str = "en") -> str:
    if lang == "zh":
        return AU_NAMES_ZH.get(code, FACS[code].name if code in FACS else f"AU{code}")
    return FACS[code].name if code in FACS else f"AU{code}"


def _motion_phrase(r: RegionMotion, lang: str) -> str:
    if lang == "zh":
        return (f"{region_name(r, 'zh')}{DIRECTION_WORDS_ZH.get(r.direction, r.direction)}运动"
                f"（{COLOUR_WORDS_ZH.get(r.colour, r.colour)}，{INTENSITY_ZH.get(r.intensity, r.intensity)}，"
                f"{r.motion_px:.2f} 像素，信噪比 {r.snr:.0f}）")
    return (f"the {region_name(r)} moves {r.direction} ({r.colour}, {r.intensity}, {r.motion_px:.2f} px, "
            f"{r.snr:.0f}x the noise)")


def agreeing_regions(code: int, regions: list[RegionMotion]) -> list[RegionMotion]:
    """Moving regions whose mean motion points the way AU `code` moves that region (FACS table)."""
    out = []
    for action in facs_au(code).actions:
        for r in regions:
            if r.region != action.region or r.intensity == "none":
                continue
            v = np.array([r.dx, r.dy], dtype=np.float64)
            d = image_direction(action, r.side)
            n = float(np.linalg.norm(v)) * float(np.linalg.norm(d))
            if n > 0 and float(v @ d) / n >= AGREE_COS and r not in out:
                out.append(r)
    return out


def _source_text(score: AUScore, lang: str, limit: int = 2) -> str:
    """The measurements behind an AU other than region flow (`AUScore.sources`): the face model's expression scores
    ("blendshape mouthSmileLeft +0.08") or a landmark measure (the eye's upper lid lower by a share of its height)."""
    shapes = [s for s in score.sources if s.kind == "blendshape"][:limit]
    marks = [s for s in score.sources if s.kind == "landmarks"][:limit]
    parts = []
    if lang == "zh":
        if shapes:
            parts.append("面部模型的表情系数变化：" + "、".join(f"{s.name} {s.value:+.2f}" for s in shapes))
        if marks:
            parts.append("关键点测得" + "、".join(
                f"{'左' if s.side == 'L' else '右'}眼上睑{'降低' if s.value < 0 else '升高'}{abs(s.value):.0%}"
                for s in marks))
        return "；".join(parts)
    if shapes:
        parts.append("the face model's expression scores change: " + ", ".join(s.describe() for s in shapes))
    if marks:
        parts.append(", ".join(s.describe() for s in marks))
    return "; ".join(parts)


def fit_emotion(emotion: str, options: tuple[str, ...]) -> str:
    """The rule's emotion expressed in the requested label set (a scheme whose classes match `options`)."""
    if emotion in options:
        return emotion
    for scheme, classes in SCHEME_CLASSES.items():
        if set(classes) == set(options) and SCHEMES[scheme].get(emotion):
            return SCHEMES[scheme][emotion]
    return "others" if "others" in options else emotion


def _join(items: list[str], lang: str) -> str:
    if lang == "zh":
        return "、".join(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _label_en(code: int, score: AUScore | None) -> str:
    side = {"L": "left ", "R": "right "}.get(score.side if score else None, "")
    return f"AU{code} ({side}{au_name(code)}" + (f", probability {score.probability:.2f})" if score else ")")


def _label_zh(code: int, score: AUScore | None) -> str:
    side = {"L": "左侧", "R": "右侧"}.get(score.side if score else None, "")
    return f"AU{code}（{side}{au_name(code, 'zh')}" + (f"，概率 {score.probability:.2f}）" if score else "）")


class TemplateReasoner:
    """Explains the evidence with fixed sentence patterns, in English or Chinese."""

    name = "template"

    # ---- the first answer -------------------------------------------------------------------------------
    def decide(self, request: ReasoningRequest) -> tuple[list[AUScore], str, str, EmotionRule | None]:
        """Active AUs (strongest first), the answer's emotion, the rule's own emotion and the rule."""
        active = request.evidence.active()
        options = tuple(request.emotion_options)
        expressible = {r.emotion for r in AU_EMOTION_RULES if fit_emotion(r.emotion, options) in options}
        raw_emotion, rule = emotion_from_aus({s.code for s in active}, expressible)
        return active, fit_emotion(raw_emotion, options), raw_emotion, rule

    def compose(self, request: ReasoningRequest) -> str:
        lang = "zh" if request.lang == "zh" else "en"
        active, emotion, raw_emotion, rule = self.decide(request)
        parts = [self._part_regions(request, lang), self._part_aus(request, active, lang),
                 ("3. 表情推理：" if lang == "zh" else "3. Expression: ")
                 + self._emotion_reason(active, emotion, raw_emotion, rule, lang, request.expression),
                 format_conclusion([s.code for s in active], emotion, lang, request.expression)]
        return "\n\n".join(parts)

    def _part_regions(self, request: ReasoningRequest, lang: str) -> str:
        moving = sorted(request.analysis.moving_regions(), key=lambda r: -r.mean_magnitude)
        head = request.analysis.field.head_motion
        shift = float(np.hypot(head.get("tx", 0.0), head.get("ty", 0.0)))
        if lang == "zh":
            lines = ["1. 各区域运动分析："]
            if moving:
                lines += [f"- {_motion_phrase(r, 'zh')}。" for r in moving[:MAX_REGIONS]]
                if len(moving) > MAX_REGIONS:
                    lines.append(f"- 另有 {len(moving) - MAX_REGIONS} 个区域运动较小（见区域运动表）。")
                lines.append("其余区域呈灰色，没有明显运动。")
            else:
                lines.append("所有面部区域基本呈灰色，起始帧到顶点帧之间没有明显运动。")
            if shift >= 1.0:
                lines.append(f"读图前已去除约 {shift:.1f} 像素的头部整体运动。")
            return "\n".join(lines)
        lines = ["1. Motion by region:"]
        if moving:
            lines += [f"- {_motion_phrase(r, 'en').capitalize()}." for r in moving[:MAX_REGIONS]]
            if len(moving) > MAX_REGIONS:
                more = len(moving) - MAX_REGIONS  # less than those above, not necessarily weakly: the table says
                lines.append(f"- {more} more region{'s move' if more > 1 else ' moves'} less (see the region table).")
            lines.append("The other regions stay grey: no clear motion.")
        else:
            lines.append("Every facial region stays grey: there is no clear motion between onset and apex.")
        if shift >= 1.0:
            lines.append(f"About {shift:.1f} px of whole-head motion was removed before reading the map.")
        return "\n".join(lines)

    def _part_aus(self, request: ReasoningRequest, active: list[AUScore], lang: str) -> str:
        ev = request.evidence
        if lang == "zh":
            lines = ["2. 动作单元推断："]
            if not active:
                top = max(ev.scores, key=lambda s: s.probability, default=None)
                hint = f"最可能的是 AU{top.code}，概率仅 {top.probability:.2f}。" if top else ""
                lines.append(f"没有动作单元达到检测器（{ev.backend}）的阈值 {ev.threshold:.2f}。{hint}")
            for s in active:
                agree = agreeing_regions(s.code, request.analysis.regions) if s.code in FACS else []
                shapes = _source_text(s, "zh")
                why = (f"与{_join([region_name(r, 'zh') for r in agree], 'zh')}的运动方向一致" if agree
                       else "" if shapes else "但没有区域的运动方向与之明确一致，证据较弱")
                why = "；".join(w for w in (why, shapes) if w)
                lines.append(f"- {_label_zh(s.code, s)}：{why}。")
            return "\n".join(lines)
        lines = ["2. Action units:"]
        if not active:
            top = max(ev.scores, key=lambda s: s.probability, default=None)
            hint = f" The strongest candidate is AU{top.code} at only {top.probability:.2f}." if top else ""
            lines.append(f"No action unit reaches the {ev.backend} detector's threshold of {ev.threshold:.2f}.{hint}")
        for s in active:
            if s.code not in FACS:
                lines.append(f"- {_label_en(s.code, s)}.")
                continue
            agree = agreeing_regions(s.code, request.analysis.regions)
            shapes = _source_text(s, "en")
            why = (f"{FACS[s.code].description}, which matches the "
                   + _join([f"{region_name(r)} ({r.colour}, {r.direction})" for r in agree], "en")
                   if agree else FACS[s.code].description if shapes
                   else f"{FACS[s.code].description}; no region clearly moves that way, so this is weak evidence")
            lines.append(f"- {_label_en(s.code, s)}: {why}{'; ' + shapes if shapes else ''}.")
        return "\n".join(lines)

    def _emotion_reason(self, active: list[AUScore], emotion: str, raw_emotion: str, rule: EmotionRule | None,
                      lang: str, expression: Expression) -> str:
        combo = "+".join(f"AU{s.code}" for s in sorted(active, key=lambda s: s.code))
        if lang == "zh":
            if rule is None:
                return f"没有可靠的动作单元组合指向某种情绪，因此判断为“{emotion_word(emotion, 'zh')}”。"
            proto = "+".join(f"AU{c}" for c in rule.aus)
            text = (f"{combo} 与{emotion_word(raw_emotion, 'zh')}的典型组合 {proto} 最接近"
                    f"（{RULE_WHY_ZH.get((rule.emotion, rule.aus), rule.why)}）。")
            if emotion != raw_emotion:
                text += f"在所选类别中，{emotion_word(raw_emotion, 'zh')}归入“{emotion_word(emotion, 'zh')}”。"
            return text + f"因此这个{expression_word(expression, 'zh')}最可能是{emotion_word(emotion, 'zh')}。"
        if rule is None:
            return f"No reliable AU combination points to an emotion, so the answer is '{emotion}'."
        proto = "+".join(f"AU{c}" for c in rule.aus)
        text = f"{combo} is closest to the {raw_emotion} pattern {proto}: {rule.why}."
        if emotion != raw_emotion:
            text += f" The chosen label set files {raw_emotion} under '{emotion}'."
        return text + f" The {expression_word(expression)} is most likely {emotion}."

    def stream(self, request: ReasoningRequest) -> Iterator[str]:
        yield from _grow(self.compose(request))

    def answer(self, request: ReasoningRequest) -> Answer:
        active, emotion, _, _ = self.decide(request)
        text = self.compose(request)
        reasoning = text.rsplit("\n\n", 1)[0]
        return Answer(aus=[AU(s.code, s.side) for s in sorted(active, key=lambda s: s.code)], emotion=emotion,
                      reasoning=reasoning, text=text, backends={"reasoner": self.name})

    # ---- follow-ups ------------------------------------------------------------------------------------------
    def follow_up(self, conversation: Conversation, message: str) -> Iterator[str]:
        yield from _grow(self.reply(conversation, message))

    def reply(self, conversation: Conversation, message: str) -> str:
        """Answer one follow-up question from the analysis, in the language the question is written in."""
        if _CJK.search(message):
            lang = "zh"
        elif re.search(r"[A-Za-z]{3,}", message):
            lang = "en"
        else:
            lang = conversation.request.lang
        low = message.lower()
        au_codes = [int(a or b) for a, b in _AU_MENTION.findall(message)]
        colours = _colours_in(message)
        if colours:  # a colour named: "why is AU12 purple?" asks what the colour says
            return self._explain_colours(conversation, colours, lang)
        if au_codes and re.search(r"what|mean|explain|is au|是什么|什么意思|含义|解释|代表", low):
            return self._explain_aus(conversation, au_codes, lang)
        if re.search(r"colou?r|hue|bright|颜色|色|亮度", low):
            return self._explain_colours(conversation, colours, lang)
        if au_codes and not _EMOTION_NAMED.search(low) and re.search(r"\bwhy\b|how come|\bnot\b|n't|为什么|为何|没有",
                                                                      low):  # "why (not) AU6?": about the AU itself
            return self._explain_aus(conversation, au_codes, lang)
        if re.search(r"\bwhy\b|reason|because|\bemotion|\bfeel|expression|为什么|理由|依据|怎么判断|情绪|表情|心情|"
                     r"感受", low):
            return self._explain_emotion(conversation, lang)
        if re.search(r"which aus?|what aus?|action units?|sure|confiden|probab|certain|how likely|哪些|置信|把握|概率|"
                     r"确定|可信", low) or au_codes:
            return self._list_aus(conversation, lang)
        if re.search(r"where|which (part|region)|\bmov|\bmotion|region|哪里|哪儿|部位|区域|运动|移动|"
                     r"动了", low):
            return self._where(conversation, lang)
        return self._cannot(lang)

    def _explain_aus(self, conv: Conversation, codes: list[int], lang: str) -> str:
        out = []
        for code in dict.fromkeys(codes):
            if code not in FACS:
                known = ", ".join(f"AU{c}" for c in sorted(FACS))
                out.append(f"AU{code} 不在本系统的 FACS 表中（已知：{known}）。" if lang == "zh"
                           else f"AU{code} is not in this assistant's FACS table (known: {known}).")
                continue
            p = conv.request.evidence.probability(code)
            where = _join([region_name((a.region, None), lang) for a in FACS[code].actions], lang)
            found = _was_found(conv, code)
            if lang == "zh":
                status = "本片段中检测到了它" if found else "本片段中没有检测到它"
                out.append(f"AU{code} 是“{au_name(code, 'zh')}”（{FACS[code].name}），作用于{where}。"
                           f"{status}（概率 {p:.2f}）。")
            else:
                status = "was found in this clip" if found else "was not found in this clip"
                out.append(f"AU{code} is the {FACS[code].name}: {FACS[code].description}; it acts on the {where}. "
                           f"It {status} (probability {p:.2f}).")
            out[-1] += _region_evidence(conv, code, lang)
            if not found:
                out[-1] += _explained_text(conv, code, lang)
        return "\n\n".join(out)

    def _explain_colours(self, conv: Conversation, colours: list[str], lang: str) -> str:
        if not colours:
            return legend_prior(lang, conv.request.expression)
        lines = []
        moving = conv.request.analysis.moving_regions()
        for colour in colours:
            direction = next(d for d, c in DIRECTION_COLOURS.items() if c == colour)
            seen = [r for r in moving if r.colour == colour]
            if lang == "zh":
                where = f"本片段中{_join([region_name(r, 'zh') for r in seen], 'zh')}呈现这种颜色。" if seen \
                    else "本片段中没有区域以这种颜色为主。"
                lines.append(f"{COLOUR_WORDS_ZH[colour]}表示图像中{DIRECTION_WORDS_ZH[direction]}的运动，越亮运动越强。{where}")
            else:
                where = (f"In this clip it shows at the {_join([region_name(r) for r in seen], 'en')}." if seen
                         else "No region in this clip is mainly that colour.")
                lines.append(f"{colour.capitalize()} means motion towards the image's {direction}; brighter means "
                             f"stronger. {where}")
        return "\n\n".join(lines)

    def _explain_emotion(self, conv: Conversation, lang: str) -> str:
        active, emotion, raw_emotion, rule = self.decide(conv.request)
        reason = self._emotion_reason(active, emotion, raw_emotion, rule, lang, conv.request.expression)
        if lang == "zh":
            return f"判断依据是检测到的动作单元组合。{reason}"
        return f"The label comes from the AU combination the detector found. {reason}"

    def _list_aus(self, conv: Conversation, lang: str) -> str:
        ev = conv.request.evidence
        ranked = sorted(ev.scores, key=lambda s: -s.probability)
        active = [s for s in ranked if s.probability >= ev.threshold]
        near = [s for s in ranked if s.probability < ev.threshold][:3]
        if lang == "zh":
            head = (f"检测器（{ev.backend}）找到：{'、'.join(_label_zh(s.code, s) for s in active)}。" if active
                    else f"没有动作单元达到阈值 {ev.threshold:.2f}。")
            tail = f"低于阈值的候选：{'、'.join(f'AU{s.code} {s.probability:.2f}' for s in near)}。" if near else ""
            return head + tail + "概率越接近 1 越确定。"
        head = (f"The {ev.backend} detector found {_join([_label_en(s.code, s) for s in active], 'en')}."
                if active else f"No action unit reaches the threshold of {ev.threshold:.2f}.")
        tail = (" Below the threshold: " + ", ".join(f"AU{s.code} {s.probability:.2f}" for s in near) + ".") if near \
            else ""
        return head + tail + " Probabilities near 1 are sure; near the threshold they are a close call."

    def _where(self, conv: Conversation, lang: str) -> str:
        moving = sorted(conv.request.analysis.moving_regions(), key=lambda r: -r.mean_magnitude)
        if not moving:
            return "所有区域都没有明显运动。" if lang == "zh" else "No region moves clearly between onset and apex."
        if lang == "zh":
            return "运动最明显的区域（由强到弱）：" + "；".join(_motion_phrase(r, "zh") for r in moving) + "。"
        return "The face moved here, strongest first: " + "; ".join(_motion_phrase(r, "en") for r in moving) + "."

    @staticmethod
    def _cannot(lang: str) -> str:
        if lang == "zh":
            return ("这个问题我无法从这个片段中回答。我可以回答：检测到哪些AU及其把握、为什么是这种情绪、面部哪里动了、"
                    "某种颜色代表什么、某个AU是什么。")
        return ("I can't answer that from this clip. I can tell you which AUs were found and how sure they are, why "
                "this emotion, where the face moved, what a colour means, and what an AU is.")


def _explained_text(conv: Conversation, code: int, lang: str) -> str:
    """Why an AU whose regions moved was not named: the motion there was another AU's (explaining away). Regions the
    table shows without clear motion are left out: "no clear motion" beside "its motion was another AU's" read as a
    contradiction."""
    clear = {(r.region, r.side) for r in conv.request.analysis.regions if r.intensity != "none"}
    by: dict[int, list[tuple[str, str | None]]] = {}
    for label, other in conv.request.evidence.explained.items():
        key = region_of_label(label)
        if key[0] in FACS[code].regions and key in clear:
            by.setdefault(other, []).append(key)
    if lang == "zh":
        return "".join(f"{_join([region_name(k, 'zh') for k in keys], 'zh')}的运动已归于 AU{other}"
                       f"“{au_name(other, 'zh')}”：它带动了这片皮肤。" for other, keys in sorted(by.items()))
    return "".join(f" The motion in its {_join([region_name(k) for k in keys], 'en')} was attributed to AU{other} "
                   f"({au_name(other)}), which drags that skin along." for other, keys in sorted(by.items()))


# an emotion named in a question about an AU ("why anger with AU4?", "why happy?") asks for the emotion's reason
_EMOTION_ADJECTIVES = ("happy", "sad", "angry", "surprised", "disgusted", "afraid", "scared", "fearful", "contemptuous",
                       "repressed", "positive", "negative")
_EMOTION_NAMED = re.compile(
    r"\b(" + "|".join(sorted({e for e in EMOTION_WORDS_ZH if e != "others"} | set(_EMOTION_ADJECTIVES), key=len,
                              reverse=True)) + r")\b|"
    + "|".join(zh for e, zh in EMOTION_WORDS_ZH.items() if e != "others"))


def _region_evidence(conv: Conversation, code: int, lang: str, most: int = 6) -> str:
    """What was measured where AU `code` acts: "why (not) AU6?" is answered from the region table, not the emotion."""
    regions = sorted((r for r in conv.request.analysis.regions if r.region in FACS[code].regions),
                     key=lambda r: -r.snr)[:most]
    if not regions:
        return ""
    agree = agreeing_regions(code, conv.request.analysis.regions)
    if lang == "zh":
        parts = [_motion_phrase(r, "zh") + ("，符合它的方向" if r in agree else "") if r.intensity != "none"
                 else f"{region_name(r, 'zh')}没有明显运动（{r.motion_px:.2f} 像素，信噪比 {r.snr:.0f}）"
                 for r in regions]
        return "它作用的区域测得：" + "；".join(parts) + "。"
    parts = [_motion_phrase(r, "en") + (f", the way AU{code} moves it" if r in agree else "") if r.intensity != "none"
             else f"the {region_name(r)} shows no clear motion ({r.motion_px:.2f} px, {r.snr:.0f}x the noise)"
             for r in regions]
    return " Where it acts, " + "; ".join(parts) + "."


def _was_found(conv: Conversation, code: int) -> bool:
    return any(a.code == code for a in conv.answer.aus)


def _colour_terms() -> list[tuple[str, str]]:
    """Words for each legend colour (English and Chinese), longest first so "yellow-green" wins over "green"."""
    terms = {("pink", "magenta"), ("yellow", "orange")}  # the legend says magenta/pink and orange-yellow
    for colour in DIRECTION_COLOURS.values():
        terms |= {(colour, colour), (colour.replace("-", " "), colour)}
        terms |= {(word, colour) for word in COLOUR_WORDS_ZH[colour].split("/")}
    return sorted(terms, key=lambda t: (-len(t[0]), t[0]))


_COLOUR_TERMS = _colour_terms()


def _colours_in(message: str) -> list[str]:
    """Legend colours named in a message, in the order they appear; each word counts once."""
    text, found = message.lower(), []
    for term, colour in _COLOUR_TERMS:
        pattern = re.escape(term) if _CJK.search(term) else rf"\b{re.escape(term)}\b"
        m = re.search(pattern, text)
        if m:
            found.append((m.start(), colour))
            text = re.sub(pattern, lambda hit: " " * len(hit.group()), text)  # blank it, keep the positions
    return list(dict.fromkeys(colour for _, colour in sorted(found)))


def _grow(text: str) -> Iterator[str]:
    """The text so far, in small steps, the way a streaming model would deliver it."""
    for end in range(CHUNK_CHARS, len(text), CHUNK_CHARS):
        yield text[:end]
    yield text
