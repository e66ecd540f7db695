"""`make demo`: write the synthetic example clips if they are missing, then start the app on the offline default.

The examples come from the synthetic generator (`instruction_data.synth`, imported only here, when the demo runs)
so the app itself depends on nothing but `assistant`. They are labelled synthetic everywhere they appear.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.files import save_png
from assistant.motion.clip import write_video

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("outputs") / "examples"


@dataclass(frozen=True)
class ExampleSpec:
    name: str
    aus: tuple[str, ...]
    subject: int


# One clip per emotion the 5-class scheme can show from a clear AU pattern (assistant.emotions rules).
EXAMPLES: tuple[ExampleSpec, ...] = (
    ExampleSpec("happiness_AU6_AU12", ("6", "12"), 0),
    ExampleSpec("surprise_AU1_AU2", ("1", "2"), 1),
    ExampleSpec("disgust_AU4_AU10", ("4", "10"), 2),
    ExampleSpec("repression_AU17", ("17",), 3),
)


def write_examples(out_dir: str | Path = DEFAULT_DIR, n_frames: int = 40, amplitude_px: float = 2.0,
                   frame_size: tuple[int, int] = (640, 480), fps: float = 30.0) -> list[Path]:
    """Synthetic example clips (H.264 mp4) plus one onset/apex image pair; existing files are kept."""
    from instruction_data.synth import SynthSpec, make_subjects, render_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subjects = None
    written = []
    for ex in EXAMPLES:
        path = out / f"{ex.name}.mp4"
        if path.exists():
            written.append(path)
            continue
        subjects = subjects or make_subjects(max(e.subject for e in EXAMPLES) + 1, seed=0)
        clip = render_clip(SynthSpec(subject=subjects[ex.subject], aus=list(ex.aus), n_frames=n_frames,
                                     amplitude_px=amplitude_px, frame_size=frame_size, seed=len(written)))
        write_video(clip.frames, path, fps=fps)
        if ex is EXAMPLES[0]:
            save_png(out / f"{ex.name}_onset.png", clip.frames[clip.onset])
            save_png(out / f"{ex.name}_apex.png", clip.frames[clip.apex])
        log.info("wrote synthetic example %s (AUs %s)", path, "+".join(ex.aus))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    clips = write_examples(DEFAULT_DIR)
    print(f"{len(clips)} synthetic example clips in {DEFAULT_DIR.resolve()}", flush=True)
    app = importlib.import_module("app")  # the top-level app module, found by name as `meu app` finds it
    return app.main(["--examples", str(DEFAULT_DIR.resolve()), *argv])


if __name__ == "__main__":
    raise SystemExit(main())
