"""The learned heads' per-clip input cache: arrays computed once per clip from its motion analysis (`analyze_clip`,
the path `meu eval` and the app take), one `.npz` per clip written atomically, so folds and later runs reuse them and
an interrupted pass resumes where it stopped.

A file is named by a hash of everything its arrays depend on: the cache format, the record, its onset and apex
frames (path, size and modification time, so a regenerated data set, e.g. another synthetic world written to the
same folder, is computed again), and the caller's settings (input, sizes, flow, compensation, noise method).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.files import atomic_path, file_fingerprint


def cache_name(rec, *settings) -> str:
    parts = (rec.key, file_fingerprint(rec.frame_paths[rec.onset]), file_fingerprint(rec.frame_paths[rec.apex]),
             *settings)
    return hashlib.sha1("|".join(str(v) for v in parts).encode()).hexdigest()[:20] + ".npz"


def cached_arrays(records: Sequence, cache: Path | None, settings: tuple, compute: Callable[[object], dict],
                  desc: str, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """`compute(record)` -> {name: array} for each record, read from `cache` when an earlier pass stored it."""
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    out = []
    for rec in tqdm(records, desc=desc, disable=not progress, leave=False):
        path = cache / cache_name(rec, *settings) if cache else None
        if path and path.is_file():
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = compute(rec)
            if path:
                with atomic_path(path) as tmp:
                    np.savez(tmp, **arrays)
        out.append(arrays)
    return out


def record_analysis(rec, motion):
    """The record's motion analysis as `meu eval` runs it: its frame folder, onset and apex."""
    from assistant.motion.analyze import analyze_clip

    return analyze_clip(str(Path(rec.frame_paths[0]).parent), onset=rec.onset, apex=rec.apex, config=motion)
