"""The output folder of `meu data synth`: a dataset is built in a staging folder inside it and moved in only when
complete, so an interrupted run never destroys the earlier dataset for nothing.

`staged_dataset(out)` yields the staging folder (`out/.meu-synth-staging`: inside `out`, so moving a clip folder is a
rename on one file system even when `out` is a mount point, and nothing is written beside it). When the body
returns, the commit runs: first `out/synth_truth.json` is replaced by a listing of the old and the new dataset's
files together (so from then on the folder is recognised and a rerun removes both), then the old dataset's files go,
the new ones move in, and the new truth file replaces the listing. An interruption before the commit leaves the
earlier dataset as it was (the next run removes the staging folder); one during the commit leaves a folder the next
run recognises and replaces. Files the truth does not list are not removed, but a new dataset's file written to the
same path replaces them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assistant.errors import ConfigError
from assistant.files import write_json

TRUTH = "synth_truth.json"
STAGING = ".meu-synth-staging"  # the staging folder's name inside --out
STAGING_MARK = ".meu-synth-staging"  # a file inside the staging folder: it is ours to remove


def staging_folder(out_dir: str | Path) -> Path:
    return Path(out_dir).expanduser() / STAGING


def listed(root: Path) -> list[str]:
    """The clip folders and sheets (paths relative to `root`) the truth file in `root` lists; none without one. A
    truth file that cannot be read is refused with a sentence (checked before any rendering)."""
    truth = root / TRUTH
    if not truth.is_file():
        return []
    try:
        data = json.loads(truth.read_text())
        clips = [c["folder"] for c in data.get("clips", []) if "folder" in c]
        paths = clips + list(data.get("sheets", [])) + list(data.get("paths", []))
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ConfigError(f"{truth} cannot be read as an earlier synthetic dataset's record ({err}); delete it (and "
                          "that dataset) or choose another --out.") from None
    if not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"{truth} lists paths that are not text; delete it (and that dataset) or choose another "
                          "--out.")
    return paths


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if root.resolve() in path.parents else None


def _remove_listed(root: Path, paths: list[str]) -> None:
    """Remove the listed paths under `root`, then the folders they leave empty (up to, not including, `root`)."""
    base = root.resolve()
    for path in (p for p in (_inside(root, r) for r in paths) if p is not None):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        for parent in path.parents:
            if parent == base or base not in parent.parents or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def clear_previous(root: Path) -> None:
    """Remove the clip folders and sheets an earlier synthetic dataset listed in `root/synth_truth.json`, the folders
    that leaves empty, and the truth file; nothing outside `root` and nothing it did not list is touched."""
    _remove_listed(root, listed(root))
    (root / TRUTH).unlink(missing_ok=True)


def is_foreign(out: Path) -> bool:
    """`out` holds files and no earlier synthetic dataset (a staging folder left by an interrupted run aside): a real
    dataset's sheets must not be replaced. A truth file that cannot be read is refused here, before any work."""
    if not out.is_dir():
        return False
    if (out / TRUTH).is_file():
        listed(out)
        return False
    return any(p.name != STAGING for p in out.iterdir())


def _fresh_staging(out: Path) -> Path:
    stage = staging_folder(out)
    if stage.exists():
        if not stage.is_dir() or (any(stage.iterdir()) and not (stage / STAGING_MARK).is_file()):
            raise ConfigError(f"{stage} is in the way of --out {out}: it is not a staging folder of meu data synth; "
                              "move it, or choose another --out.")
        shutil.rmtree(stage)  # left by an interrupted run
    stage.mkdir(parents=True)
    (stage / STAGING_MARK).write_text("a dataset being written by meu data synth; removed when it is done\n")
    return stage


def _move_into(src: Path, dst: Path) -> None:
    """`src` to `dst`; into a folder that exists already (files the truth did not list), file by file."""
    if dst.is_dir() and src.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _move_into(child, dst / child.name)
        src.rmdir()
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dst)


def _commit(stage: Path, out: Path) -> None:
    old, new = listed(out), listed(stage)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / TRUTH, {"synthetic": True, "incomplete": "meu data synth was interrupted while replacing this "
                                                              "dataset; run it again",
                             "paths": list(dict.fromkeys(old + new))})
    _remove_listed(out, old)
    for relative in new:
        src = stage / relative
        if src.exists():  # a sheet may be listed as a folder that a clip folder's move already brought
            _move_into(src, out / relative)
    (stage / TRUTH).replace(out / TRUTH)
    shutil.rmtree(stage)


@contextmanager
def staged_dataset(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder to write a whole dataset into (its `synth_truth.json` last); when the block
    returns, the dataset replaces the one in `out_dir` (see the module docstring). A block that fails or is
    interrupted leaves `out_dir` untouched."""
    out = Path(out_dir).expanduser()
    stage = _fresh_staging(out)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not (stage / TRUTH).is_file():
        shutil.rmtree(stage, ignore_errors=True)
        raise RuntimeError(f"the synthetic dataset for {out} was written without its {TRUTH}")
    _commit(stage, out)
