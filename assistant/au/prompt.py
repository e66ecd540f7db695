"""The AU-LLM text prompt, the one place it is written, encoded into token ids with slot placeholders.

Plain AU-LLM: the visual token sits inside a short question. AULLM++ uses a structured prompt with a content
section (the fused visual evidence token) and a relations section (the AU graph's instruction token).
"""

from __future__ import annotations

from assistant.au.aullm import INSTRUCTION_SLOT, VISUAL_SLOT

VISUAL = "<visual>"
INSTRUCTION = "<instruction>"


def prompt_text(aus: list[int], graph: bool = False) -> str:
    names = ", ".join(f"AU{a}" for a in aus)
    question = f"Which of the facial action units {names} are active in this micro-expression? Answer:"
    if graph:
        return f"[content] facial motion evidence: {VISUAL} [relations] action unit relations: {INSTRUCTION} " \
               f"[question] {question}"
    return f"Facial motion: {VISUAL}. {question}"


def encode_prompt(tokenizer, aus: list[int], graph: bool = False) -> list[int]:
    """Token ids of the prompt, with VISUAL_SLOT / INSTRUCTION_SLOT where the learned tokens go."""
    ids: list[int] = []
    text = prompt_text(aus, graph)
    for i, chunk in enumerate(text.split(VISUAL)):
        if i:
            ids.append(VISUAL_SLOT)
        for j, part in enumerate(chunk.split(INSTRUCTION)):
            if j:
                ids.append(INSTRUCTION_SLOT)
            if part.strip():
                ids.extend(tokenizer(part, add_special_tokens=False)["input_ids"])
    return ids
