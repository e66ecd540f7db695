"""AU codes (re-exported from `assistant.au.codes`) and the registry of AU detector backends.

Backends are named in `DETECTORS` as "module:attribute" strings and imported only when asked for, so importing
`assistant.au` for the AU type never pulls in torch or transformers.
"""

from __future__ import annotations

import importlib

from assistant.au.codes import AU, AUSet, format_aus, parse_aus
from assistant.errors import BackendError

DETECTORS: dict[str, str] = {
    "rules": "assistant.au.rules:RulesDetector",
    "aullm": "assistant.au.aullm_detector:AULLMDetector",
    "microau_clip": "assistant.au.microau_clip_io:MicroAUCLIPDetector",
}


def get_detector(name: str, **kwargs):
    """Build the detector backend called `name` (see `DETECTORS`) with backend-specific keyword arguments."""
    try:
        target = DETECTORS[name]
    except KeyError:
        raise BackendError(f"Unknown AU detector {name!r}; choose one of: {', '.join(sorted(DETECTORS))}.") from None
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**kwargs)


__all__ = ["AU", "AUSet", "DETECTORS", "format_aus", "get_detector", "parse_aus"]
