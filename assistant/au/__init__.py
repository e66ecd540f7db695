"""AU codes (re-exported from `assistant.au.codes`) and the registry of AU detector backends.

Backends are named in `DETECTORS` as "module:attribute" strings and imported only when asked for, so importing
`assistant.au` for the AU type never pulls in torch or transformers.
"""

from __future__ import annotations

from assistant.au.codes import AU, AUSet, format_aus, parse_aus
from assistant.registry import lookup

DETECTORS: dict[str, str] = {
    "rules": "assistant.au.rules:RulesDetector",
    "aullm": "assistant.au.aullm_detector:AULLMDetector",
    "microau_clip": "assistant.au.microau_clip_io:MicroAUCLIPDetector",
    "blendshapes": "assistant.au.blendshapes:BlendshapesDetector",
    "fusion": "assistant.au.fusion:FusionDetector",
}


def get_detector(name: str, **kwargs):
    """Build the detector backend called `name` (see `DETECTORS`) with backend-specific keyword arguments."""
    return lookup(DETECTORS, name, "AU detector")(**kwargs)


__all__ = ["AU", "AUSet", "DETECTORS", "format_aus", "get_detector", "parse_aus"]
