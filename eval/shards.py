"""One evaluation run split over processes: `accelerate launch -m assistant.cli eval ...` (one process per GPU).

Process i of n takes every n-th clip (`samples[i::n]`, so the split depends only on the clip list), runs it on its
own device and appends its rows to its own predictions file, `predictions.shard-I-of-N.jsonl` (one fsynced row at a
time, as `PredictionLog` writes). A process that has finished writes a small done marker; the main process waits for
every marker, merges all rows into `predictions.jsonl` (in clip order, written atomically), removes the shard files
and scores once. Resuming skips every clip found in any predictions file of the folder, so a killed run resumes per
shard, and even with another number of processes. A lone process (no launcher) writes `predictions.jsonl` directly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.files import atomic_write_text, write_json
from eval.predictions import PredictionLog

log = logging.getLogger(__name__)

MERGED = "predictions.jsonl"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    device: str  # "auto" for a lone process, else the launcher's device for this process ("cuda:3", "cpu")
    state: object | None = None  # accelerate's PartialState when launched with several processes

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def log(self, out: Path) -> PredictionLog:
        name = MERGED if self.count == 1 else f"predictions.shard-{self.index:02d}-of-{self.count:02d}.jsonl"
        return PredictionLog(out / name)

    def marker(self, out: Path, index: int | None = None) -> Path:
        return out / f".shard-{self.index if index is None else index:02d}-of-{self.count:02d}.done"

    def take(self, items: list) -> list:
        return items[self.index::self.count]

    def wait_for_everyone(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def current_shard() -> Shard:
    """This process's shard: from accelerate's state when a launcher started several processes, else the only one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(0, 1, "auto")
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(state.process_index, state.num_processes, str(state.device), state)


def prediction_files(out: Path) -> list[Path]:
    return [p for p in (out / MERGED, *sorted(out.glob("predictions.shard-*.jsonl"))) if p.is_file()]


def done_keys(out: Path, own: PredictionLog) -> set[str]:
    """Keys of every row already written in `out`; only this process's own file is repaired (the others may be
    being appended to right now)."""
    keys = {r["key"] for r in own.read(repair=True)}
    for path in prediction_files(out):
        if path != own.path:
            keys |= {r["key"] for r in PredictionLog(path).read()}
    return keys


def mark_done(out: Path, shard: Shard, clips_run: int, wall_s: float) -> None:
    write_json(shard.marker(out), {"shard": shard.index, "of": shard.count, "clips_run": clips_run,
                                   "wall_s": round(wall_s, 3)})


def wait_for_shards(out: Path, shard: Shard, poll_s: float = 1.0) -> list[dict]:
    """The done markers of every shard, waited for by file rather than by a collective: shards can finish hours
    apart (a resumed shard may have nothing left), longer than a process group's timeout. If a process dies, the
    launcher stops the others."""
    paths = [shard.marker(out, i) for i in range(shard.count)]
    waiting_since = time.monotonic()
    while not all(p.is_file() for p in paths):
        if time.monotonic() - waiting_since > 60:
            log.info("waiting for %d other process(es) to finish", sum(not p.is_file() for p in paths))
            waiting_since = time.monotonic()
        time.sleep(poll_s)
    return [json.loads(p.read_text()) for p in paths]


def merge(out: Path, order: dict[str, int]) -> list[dict]:
    """All rows of the folder in clip order (rows of clips outside `order` last), written to predictions.jsonl in
    one atomic rename; the shard files and markers are removed only after that."""
    rows: dict[str, dict] = {}
    files = prediction_files(out)
    for path in files:
        for r in PredictionLog(path).read():
            rows.setdefault(r["key"], r)
    ordered = sorted(rows.values(), key=lambda r: order.get(r["key"], len(order)))
    atomic_write_text(out / MERGED, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    for path in files:
        if path.name != MERGED:
            path.unlink()
    for marker in out.glob(".shard-*.done"):
        marker.unlink()
    return ordered
