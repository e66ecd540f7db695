"""Backends are named in registries of "module:attribute" strings and imported only when chosen, so that importing
a registry never pulls in torch, transformers or any backend's dependencies."""

from __future__ import annotations

import importlib

from assistant.errors import BackendError


def lookup(registry: dict[str, str], name: str, kind: str) -> object:
    """The object registered as `name`; unknown names and backends whose dependencies are missing raise a
    `BackendError` that says what to do."""
    try:
        module_name, attr = registry[name].split(":")
    except KeyError:
        raise BackendError(f"Unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}.") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendError(f"The {name} {kind} cannot be loaded ({err}); install the training extras "
                           "(`pip install -e '.[train]'`) or choose another backend.") from None
    return getattr(module, attr)
