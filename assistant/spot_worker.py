"""Long-video spotting in a child process, so that a server's short requests never wait behind it.

Spotting a long video runs for minutes in Python loops that hold the GIL, next to a landmarker that is one per
process; in the server's own process it would slow every short request, and with one shared worker block them
(issue 24: p95 76.6 s for short requests while a 5-minute video was spotted). Here each spot runs in a fresh process
(spawned, not forked: the server has threads), niced by `NICE` and with OpenCV on one thread, and reports progress
through a queue. Closing the iterator (the client went away, or the caller stopped reading) cancels it: the child
stops at its next progress report, and is terminated if it does not within `STOP_GRACE_S`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import MEUError

log = logging.getLogger(__name__)

NICE = 10  # below the server's short requests, on the same cores
STOP_GRACE_S = 5.0
POLL_S = 0.5  # how often the parent looks for news (and the caller may yield)
REPORT_EVERY_S = 0.5  # the child sends progress at most this often


class SpotCancelled(Exception):
    """Raised inside the child when the parent asked it to stop."""


@dataclass(frozen=True)
class SpotUpdate:
    done: int  # frames spotted so far
    total: int | None  # frames in the video, when known
    result: object = None  # the SpotResult, on the last update only


def _child(path: str, max_seconds: float, max_frames: int | None, spot_config, updates, cancel) -> None:
    import time

    import cv2

    from assistant.long_video import spot_long_video

    os.nice(NICE)
    cv2.setNumThreads(1)
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        if cancel.is_set():
            raise SpotCancelled
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S:
            last[0] = now
            updates.put(("progress", done, total))

    try:
        result = spot_long_video(path, max_seconds, spot_config, progress=progress, max_frames=max_frames)
        updates.put(("done", result))
    except SpotCancelled:
        updates.put(("cancelled",))
    except MEUError as err:
        updates.put(("refused", type(err).__name__, str(err)))
    except Exception as err:  # the parent logs it and tells the user; the child's traceback goes to its stderr
        log.exception("spotting failed in the worker")
        updates.put(("failed", f"{type(err).__name__}: {err}"))


def _frames_in(path: str | Path) -> int | None:
    """The container's frame count, for the updates sent while the worker starts (None when it does not say)."""
    from assistant.long_video import probe_video

    try:
        return probe_video(path).n_frames
    except (MEUError, OSError):  # the worker says why with its own sentence
        return None


def spot_in_process(path: str | Path, max_seconds: float, spot_config=None, max_frames: int | None = None,
                    poll_s: float = POLL_S) -> Iterator[SpotUpdate]:
    """`assistant.long_video.spot_long_video` in a child process: progress updates every `poll_s` at most (an update
    repeats when nothing new came, so a caller can yield to its client), the last one with the result. A refusal
    raises the same MEUError subclass with its sentence."""
    from assistant import errors

    ctx = multiprocessing.get_context("spawn")
    updates, cancel = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_child, args=(str(path), max_seconds, max_frames, spot_config, updates, cancel),
                       daemon=True, name="meu-spot")
    total = _frames_in(path)  # before the child starts: nothing here may leave it running
    proc.start()
    done, finished = 0, False
    try:
        while True:
            try:
                message = updates.get(timeout=poll_s)
            except queue.Empty:
                if not proc.is_alive():
                    raise MEUError(f"Spotting stopped unexpectedly (worker exit code {proc.exitcode}); try again, "
                                   "or cut the video into shorter parts.") from None
                yield SpotUpdate(done, total)
                continue
            kind = message[0]
            if kind == "progress":
                done, total = message[1], message[2]
                yield SpotUpdate(done, total)
            elif kind == "done":
                finished, result = True, message[1]
                yield SpotUpdate(result.n_frames, result.n_frames, result)
                return
            elif kind == "refused":
                finished = True
                error_type = getattr(errors, message[1], MEUError)
                raise error_type(message[2])
            elif kind == "failed":
                finished = True
                raise RuntimeError(f"spotting failed in the worker: {message[1]}")
            else:
                return
    finally:
        if finished:
            proc.join(STOP_GRACE_S)
        if proc.is_alive():
            cancel.set()
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(STOP_GRACE_S)
            log.info("spotting of %s stopped before its end (cancelled)", Path(path).name)
        updates.close()
