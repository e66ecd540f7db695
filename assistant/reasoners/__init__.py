"""Reasoner backends by name: `template` (offline, from the evidence) and `vlm` (Qwen2.5-VL reading the map).

Backends are "module:attribute" strings imported on first use, so choosing the template reasoner never imports
torch or transformers.
"""

from __future__ import annotations

from assistant.registry import lookup

REASONERS: dict[str, str] = {
    "template": "assistant.reasoners.template:TemplateReasoner",
    "vlm": "assistant.reasoners.vlm:VLMReasoner",
}


def get_reasoner(name: str, **kwargs):
    """Build the reasoner backend called `name` with backend-specific keyword arguments."""
    return lookup(REASONERS, name, "reasoner")(**kwargs)


__all__ = ["REASONERS", "get_reasoner"]
