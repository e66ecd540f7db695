"""The AU-LLM text prompt, the one place it is written, encoded into token ids with slot placeholders.

Plain AU-LLM: the visual token sits inside a short question. AULLM++ uses a structured prompt with a content
section (the fused visual evidence token) and a relations section (the AU graph's instruction token). With the
regions option the motion table's token follows the visual one.
"""

from __future__ import annotations

import re

from assistant.au.aullm import INSTRUCTION_SLOT, REGION_SLOT, VISUAL_SLOT

VISUAL = "<visual>"
INSTRUCTION = "<instruction>"
REGIONS = "<regions>"
SLOTS = {VISUAL: VISUAL_SLOT, INSTRUCTION: INSTRUCTION_SLOT, REGIONS: REGION_SLOT}


def prompt_text(aus: list[int], graph: bool = False, regions: bool = False) -> str:
    names = ", ".join(f"AU{a}" for a in aus)
    question = f"Which of the facial action units {names} are active in this micro-expression? Answer:"
    table = f" region motion: {REGIONS}" if regions else ""
    if graph:
        return f"[content] facial motion evidence: {VISUAL}{table} [relations] action unit relations: " \
               f"{INSTRUCTION} [question] {question}"
    return f"Facial motion: {VISUAL}.{table + '.' if table else ''} {question}"


def encode_prompt(tokenizer, aus: list[int], graph: bool = False, regions: bool = False) -> list[int]:
    """Token ids of the prompt, with the slot ids (VISUAL_SLOT, ...) where the learned tokens go."""
    ids: list[int] = []
    for part in re.split("(" + "|".join(map(re.escape, SLOTS)) + ")", prompt_text(aus, graph, regions)):
        if part in SLOTS:
            ids.append(SLOTS[part])
        elif part.strip():
            ids.extend(tokenizer(part, add_special_tokens=False)["input_ids"])
    return ids
