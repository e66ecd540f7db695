"""`meu data synth`: write a synthetic dataset (frames + official annotation sheet) in a dataset's layout; with
`--long`, synthetic long videos in a spotting layout (casme2_long, samm_long)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import parse_config
from assistant.errors import ConfigError
from assistant.files import output_folder
from assistant.motion.analyze import SMALL_FACE_PX
from instruction_data.layouts import LAYOUTS, write_realistic_dataset, write_synthetic_dataset
from instruction_data.long_layouts import LONG_LAYOUTS
from instruction_data.long_synth import MIN_EXPRESSION_S
from instruction_data.photos import SPLITS
from instruction_data.synth_folder import is_foreign
from instruction_data.world_v3 import WORLDS

MAX_SIDE = 4096  # px, a frame's width or height
# The rendered face is half the frame's height tall and at least a third of it wide (81 px at 240 px, the narrowest of
# the synthetic people), so from this height on no face is narrower than the analysis' SMALL_FACE_PX.
MIN_HEIGHT = 3 * SMALL_FACE_PX
MIN_WIDTH_PER_HEIGHT = 0.6  # the widest face is about half the frame's height wide: a narrower frame cuts it
MAX_SUBJECTS = 1000  # the real datasets' sizes with a margin: DFME, the largest, has 671 people
MAX_CLIPS = 100  # clips (with --long: videos) per subject: the real datasets hold a few dozen at most
MAX_FRAMES = 2000  # frames per clip: the real datasets' clips hold a few hundred
MAX_LONG_S = 3600.0  # a long video's length (s)


@dataclass
class SynthConfig:
    out: str = field(default="", metadata={"help": "output folder (required): new, or an earlier synthetic dataset, "
                                                     "which is replaced"})
    layout: str = field(default="casme2", metadata={"help": "official layout to imitate (with --long: casme2_long or "
                                                             "samm_long)", "choices": [*LAYOUTS, *LONG_LAYOUTS]})
    realistic: bool = field(default=False, metadata={"help": "the realistic world (micro amplitudes, head drift, "
                                                             "noise, JPEG, blinks, null clips; see --split) instead "
                                                             "of the easy one"})
    world: str = field(default="v1", metadata={"help": "with --realistic: v1 (head motion in the image plane), v2 "
                                                      "(also heads that turn in 3-D, skin that moves as one sheet, "
                                                      "gaze lid shifts and flicker) or v3 (v2 under a light that "
                                                      "stays while the head turns)", "choices": list(WORLDS)})
    split: str = field(default="benchmark", metadata={"help": "with --realistic: whose faces (the two splits share "
                                                              "no person)", "choices": list(SPLITS)})
    subjects: int = field(default=4, metadata={"help": f"number of synthetic subjects, at most {MAX_SUBJECTS} (with "
                                                       "--realistic: people of the split, at most 4)"})
    clips: int = field(default=3, metadata={"help": f"clips per subject, at most {MAX_CLIPS}"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same dataset)"})
    width: int = field(default=0, metadata={"help": "frame width (default 320, or 640 with --realistic; the real "
                                                    f"datasets use 640; at least {MIN_WIDTH_PER_HEIGHT:g} x the "
                                                    "height)"})
    height: int = field(default=0, metadata={"help": "frame height (default 240, or 480 with --realistic; at least "
                                                     f"{MIN_HEIGHT}, so the face is {SMALL_FACE_PX} px or more)"})
    frames: int = field(default=20, metadata={"help": "frames per clip (easy world; realistic clips draw their "
                                                      "length: 0.2-0.5 s at 200 fps plus still frames)"})
    quirks: bool = field(default=True, metadata={"help": "write the real sheets' quirks (apex '/', AU '?', ...; "
                                                         "easy world only: realistic sheets are clean)"})
    long: bool = field(default=False, metadata={"help": "long videos for spotting (several expressions, blinks, head "
                                                        "turns, drift per video); --clips is videos per subject"})
    seconds: float = field(default=60.0, metadata={"help": "length of each long video (with --long; at least "
                                                           f"{MIN_EXPRESSION_S:g}, room for an expression)"})


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(SynthConfig, argv, "meu data synth",
                          "Write synthetic micro-expression clips and an annotation sheet in an official layout.")
    out, size = _check(cfg)
    if cfg.long or cfg.layout in LONG_LAYOUTS:
        return _main_long(cfg, out, size)
    if not 3 <= cfg.frames <= MAX_FRAMES:
        raise ConfigError(f"--frames must lie between 3 (onset, apex and offset frames) and {MAX_FRAMES}, not "
                          f"{cfg.frames}.")
    _check_not_foreign(out)
    if cfg.realistic:
        try:
            root = write_realistic_dataset(cfg.layout, out, cfg.split, cfg.subjects, cfg.clips, seed=cfg.seed,
                                           size=size, progress=True, world=cfg.world)
        except ValueError as e:
            raise ConfigError(f"{e}.") from None
        world = f"realistic synthetic (world {cfg.world}, {cfg.split} split)"
    else:
        root = write_synthetic_dataset(cfg.layout, out, cfg.subjects, cfg.clips, seed=cfg.seed, size=size,
                                       n_frames=cfg.frames, quirks=cfg.quirks, progress=True)
        world = "synthetic"
    n = len(json.loads((root / "synth_truth.json").read_text())["clips"])
    print(f"wrote {n} {world} {cfg.layout} clips to {root} "
          f"(read them with: meu data build --dataset {cfg.layout} --root {root} --out OUT)")
    return 0


def _check(cfg: SynthConfig) -> tuple[Path, tuple[int, int]]:
    """Every refusal that needs no dataset: the output folder (`~` expanded), counts, sizes and flags that only mean
    something together; returns the output folder and the frame size."""
    if not cfg.out:
        raise ConfigError("Give the output folder with --out DIR.")
    out = output_folder(Path(cfg.out).expanduser())
    if cfg.subjects < 1 or cfg.clips < 1:
        raise ConfigError(f"--subjects and --clips must be at least 1, not {cfg.subjects} and {cfg.clips}.")
    if cfg.subjects > MAX_SUBJECTS or cfg.clips > MAX_CLIPS:
        raise ConfigError(f"--subjects must be at most {MAX_SUBJECTS} and --clips at most {MAX_CLIPS} (the real "
                          f"datasets' sizes with a margin), not {cfg.subjects} and {cfg.clips}.")
    if cfg.seed < 0:  # numpy's generators take no negative seed
        raise ConfigError(f"--seed must be 0 or more, not {cfg.seed}.")
    for name, value in (("--width", cfg.width), ("--height", cfg.height)):
        if value > MAX_SIDE:  # 20000 x 20000 asked for 6 GB a frame pair
            raise ConfigError(f"{name} must be at most {MAX_SIDE} px, not {value}.")
        if value < 0:
            raise ConfigError(f"{name} must be positive (0: the default), not {value}.")
    width, height = cfg.width or (640 if cfg.realistic else 320), cfg.height or (480 if cfg.realistic else 240)
    if height < MIN_HEIGHT:  # 8 x 8 frames held no face
        raise ConfigError(f"--height must be at least {MIN_HEIGHT} px, not {height}: the face is half the frame's "
                          f"height tall, and on a face under {SMALL_FACE_PX} px wide the analysis cannot measure "
                          "sub-pixel motion.")
    if width < MIN_WIDTH_PER_HEIGHT * height:
        raise ConfigError(f"--width must be at least {math.ceil(MIN_WIDTH_PER_HEIGHT * height)} px with a height "
                          f"of {height} px, not {width}: the face is about half the frame's height wide.")
    if cfg.world != "v1" and cfg.long:
        raise ConfigError(f"--world {cfg.world}: long videos have no realistic world yet; leave --world out with "
                          "--long.")
    if cfg.realistic and cfg.long:
        raise ConfigError("--realistic: long videos have no realistic world yet; leave --realistic out with --long.")
    if cfg.world != "v1" and not cfg.realistic:
        raise ConfigError(f"--world {cfg.world} is a version of the realistic world's clips; add --realistic.")
    if cfg.split != "benchmark" and not cfg.realistic:
        raise ConfigError(f"--split {cfg.split} chooses the realistic world's faces; add --realistic (the easy world "
                          "has no splits).")
    return out, (width, height)


def _check_not_foreign(out: Path) -> None:
    if is_foreign(out):
        raise ConfigError(f"{out} is not empty and holds no earlier synthetic dataset; choose a new --out (this "
                          "command writes annotation sheets that would replace a real dataset's).")


def _main_long(cfg: SynthConfig, out: Path, size: tuple[int, int]) -> int:
    if cfg.layout not in LONG_LAYOUTS:
        raise ConfigError(f"--long writes long videos in a spotting layout: use --layout {' or '.join(LONG_LAYOUTS)}, "
                          f"not {cfg.layout}.")
    if not cfg.long:
        raise ConfigError(f"--layout {cfg.layout} is a long-video layout: add --long.")
    if cfg.seconds < MIN_EXPRESSION_S:  # 1 s wrote videos with no expression and said nothing; 0.01 s no frames
        raise ConfigError(f"--seconds {cfg.seconds:g} leaves no room for an expression (one needs up to 0.45 s with "
                          f"0.5 s of stillness either side); give --seconds {MIN_EXPRESSION_S:g} or more.")
    if not cfg.seconds <= MAX_LONG_S:  # 1e12 s asked for 182 TB
        raise ConfigError(f"--seconds must be at most {MAX_LONG_S:g} (a long video's length), not {cfg.seconds:g}.")
    if cfg.layout == "casme2_long" and cfg.clips > 6:
        raise ConfigError(f"The casme2_long layout names at most 6 videos per subject, not --clips {cfg.clips}.")
    _check_not_foreign(out)
    from instruction_data.long_layouts import write_synthetic_long_dataset

    root = write_synthetic_long_dataset(cfg.layout, out, cfg.subjects, cfg.clips, seed=cfg.seed, seconds=cfg.seconds,
                                        size=size, quirks=cfg.quirks, progress=True)
    print(f"wrote {cfg.subjects * cfg.clips} synthetic {cfg.layout} long videos to {root} (evaluate a spotter on "
          f"them with: meu eval --task spotting --dataset {cfg.layout} --root {root} --out OUT)")
    return 0
