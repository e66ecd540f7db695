"""Reasoner backends by name: `template` (offline, from the evidence) and `vlm` (Qwen2.5-VL reading the map).

Backends are "module:attribute" strings imported on first use, so choosing the template reasoner never imports
torch or transformers.
"""

from __future__ import annotations

import importlib

from assistant.errors import BackendError

REASONERS: dict[str, str] = {
    "template": "assistant.reasoners.template:TemplateReasoner",
    "vlm": "assistant.reasoners.vlm:VLMReasoner",
}


def get_reasoner(name: str, **kwargs):
    """Build the reasoner backend called `name` with backend-specific keyword arguments."""
    try:
        target = REASONERS[name]
    except KeyError:
        raise BackendError(f"Unknown reasoner {name!r}; choose one of: {', '.join(sorted(REASONERS))}.") from None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendError(f"The {name} reasoner cannot be loaded ({err}); install the training extras "
                           "(`pip install -e '.[train]'`) or use --reasoner template.") from None
    return getattr(module, attr)(**kwargs)


__all__ = ["REASONERS", "get_reasoner"]
