"""Writes that never leave a half-written file: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

# The temporary names the writers below use: `.<name>.<8 random>.part` (atomic_write_bytes) and
# `.<stem>.part<suffix>` (atomic_path). Only a killed process leaves one behind.
STALE_PART = re.compile(r"^\..+\.(?:[A-Za-z0-9_]{8}\.part|part(?:\.[A-Za-z0-9]+)?)$")


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (`os.umask` must set one to read one, which
    races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_fingerprint(path: str | Path) -> str:
    """Path, size and modification time: a cache entry keyed by it is not read for a file written again since (a
    dataset made again, a frame replaced) under the same name."""
    st = Path(path).stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """The folder a command writes into, checked before any work: a path that names a file would otherwise fail with
    a traceback when the first output is written, after the whole run. `~` is expanded: `--out=~/x` and a YAML
    `out: ~/x` reach the program unexpanded by the shell, and made a folder named `~`."""
    out = Path(path).expanduser()
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{option} {out} cannot be a folder: {p} is a file. Give a folder (it is created when "
                              "missing).")
    return out


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """`mkstemp` makes its file 0600 whatever the umask; the file gets the mode a plain `open` would give it
    (0666 less the umask), so outputs built by one user or container stay readable by the others."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, for writers that check it) and rename it into place
    when the block succeeds; a file or folder left by a failed block is removed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.part{out.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        _remove(tmp)


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders a killed writer of this module left in `folder` (not below it).
    Call it only on a folder one job owns, before that job writes: another writer's live temporary file would go."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.iterdir() if STALE_PART.match(p.name))
    for p in stale:
        _remove(p)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run in %s: %s", len(stale), folder,
                 ", ".join(p.name for p in stale))
    return stale


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: object) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())
