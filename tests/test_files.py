"""Atomic writes (temporary name, then rename) leave files with the mode a plain `open` would have given them."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from assistant.files import atomic_path, atomic_write_text, save_png, write_json


@pytest.fixture
def umask():
    """Set a umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = [atomic_write_text(tmp_path / "a.txt", "x"), write_json(tmp_path / "b.json", {"a": 1}),
               save_png(tmp_path / "c.png", np.zeros((4, 4, 3), np.uint8))]
    with atomic_path(tmp_path / "d.txt") as tmp:
        tmp.write_text("x")
    written.append(tmp_path / "d.txt")
    want = 0o666 & ~mask
    assert stat.S_IMODE(plain.stat().st_mode) == want
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == want, p.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.png", "d.txt", "plain.txt"]
