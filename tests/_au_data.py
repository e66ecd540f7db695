"""Shared helpers of the AU tests."""

from __future__ import annotations

from pathlib import Path


def tiny_llm(tmp_path_factory) -> Path:
    """The tiny Qwen2 backbone, built once per test session (the folder is reused when already there)."""
    from finetune.tiny_llm import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.getbasetemp() / "tiny_llm")
