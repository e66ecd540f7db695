"""The `meu` command: one subcommand per job, each imported only when it runs.

Subcommands live in the package that owns the job and expose `main(argv) -> int`; dispatch goes by module path
strings so that importing the CLI imports none of the heavy packages.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from assistant.errors import MEUError

COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("assistant.analyze_cli", "analyse one clip: MMC map, landmarks, region motion table"),
    "spot": ("assistant.spot_cli", "find the micro- and macro-expressions in a long video"),
    "data synth": ("instruction_data.synth_cli", "write a synthetic dataset in an official layout"),
    "data build": ("instruction_data.build", "build the FGMU instruction dataset from annotated clips"),
    "train au": ("finetune.au", "train an AU detector (AU-LLM, Micro-AU CLIP) with LOSO or cross-dataset protocols"),
    "train vlm": ("finetune.vlm", "fine-tune Qwen2.5-VL with LoRA through TRL (the MELLM recipe)"),
    "eval": ("eval.run", "evaluate the assistant on a dataset with the field's protocols"),
    "eval compare": ("eval.compare", "put several evaluation runs side by side"),
    "calibrate rules": ("eval.calibrate", "choose the rules detector's settings on the realistic calibration split"),
    "calibrate fusion": ("eval.calibrate_blend", "measure blendshape noise floors and fit the fusion AU detector "
                                                 "on the realistic calibration split"),
    "app": ("app", "start the Gradio chat app"),
}


def _usage() -> str:
    lines = ["usage: meu COMMAND [options]   (meu COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str | None, list[str]]:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return None, argv


# Runs are offline: a model is a local folder or a hub name already in the cache. Without this a missing one was
# asked of the hub, retried for about 50 s and then refused; a user who wants downloads sets HF_HUB_OFFLINE=0.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def main(argv: list[str] | None = None) -> int:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name, rest = _resolve(argv)
    if name is None:
        print(_usage(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module_name = COMMANDS[name][0]
    import importlib

    return run_command(lambda argv: importlib.import_module(module_name).main(argv), rest)


def run_command(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """A command's `main` as the user sees it: a `MEUError` (bad input, a missing file) is one "error: ..." line with
    exit status 1, not a traceback; Ctrl-C is "interrupted" with status 130."""
    try:
        return int(main(argv) or 0)
    except MEUError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
