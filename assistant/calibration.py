"""Calibrated settings: the shipped defaults, or a folder that `meu calibrate rules|fusion --out DIR` wrote.

The program never writes into its own source tree (an installed package cannot be written to at all, and a quick
`meu calibrate rules --clips 6` used to overwrite the shipped defaults). Calibration writes its files into one folder;
`meu analyze`, `spot`, `eval` and `app` read that folder with `--calibration DIR` or the `MEU_CALIBRATION` variable,
else the defaults shipped beside the code that reads them. The shipped files change only by a commit of a documented
`meu calibrate ... --out` run. Settings are read when they are used, not at import, so a folder chosen after import
takes effect; a file is parsed once per modification.

A folder must hold the `rules` calibration (`RULES_FILES`: the rules detector's settings and the region intensity
words, written together because the noise weight is chosen with the rules); the `fusion` calibration's files
(`FUSION_FILES`) are read from it when present, else the shipped ones.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from pathlib import Path

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

ENV = "MEU_CALIBRATION"
_HERE = Path(__file__).resolve().parent
SHIPPED = {
    "rules_calibration.json": _HERE / "au" / "rules_calibration.json",
    "intensity_calibration.json": _HERE / "motion" / "intensity_calibration.json",
    "blendshapes_noise.json": _HERE / "au" / "blendshapes_noise.json",
    "fusion_calibration.json": _HERE / "au" / "fusion_calibration.json",
    "fusion_weights.json": _HERE / "au" / "fusion_weights.json",
}
RULES_FILES = ("rules_calibration.json", "intensity_calibration.json")
FUSION_FILES = ("blendshapes_noise.json", "fusion_calibration.json", "fusion_weights.json")


def default_out() -> Path:
    """Where `meu calibrate` writes when no --out is given: the user's data folder, never the source tree."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "meu" / "calibration"


def check_folder(folder: str | Path, option: str = "--calibration") -> Path:
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise ConfigError(f"{option} {p} is not a folder; give the folder `meu calibrate rules --out` wrote.")
    missing = [name for name in RULES_FILES if not (p / name).is_file()]
    if missing:
        raise ConfigError(f"{option} {p} has no {' or '.join(missing)}; run `meu calibrate rules --out {p}` first, or "
                          "leave the option out to use the shipped calibration.")
    return p


def use(folder: str | Path | None) -> None:
    """Read calibrated settings from `folder` from now on (None: the shipped files). Set as `MEU_CALIBRATION`, so
    the worker processes a job starts read the same folder."""
    if folder is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = str(check_folder(folder))


def folder() -> Path | None:
    env = os.environ.get(ENV)
    return check_folder(env, ENV) if env else None


def path(name: str) -> Path:
    """The file `name` is read from now."""
    chosen = folder()
    if chosen is not None and (name in RULES_FILES or (chosen / name).is_file()):
        return chosen / name
    return SHIPPED[name]


def record(names: tuple[str, ...] = tuple(SHIPPED)) -> dict:
    """Which calibration a job reads: its folder (None: the shipped files) and a hash of the settings in the files
    `names` (those the job reads; their values, not their layout), for a run's record and its resume check (two
    calibrations mixed in one resumed run went unnoticed)."""
    import hashlib

    values = {name: load(name) for name in names}
    chosen = folder()
    return {"folder": str(chosen.resolve()) if chosen else None,
            "files": hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]}  # in file order: it is read so


def load(name: str) -> dict:
    p = path(name)
    return _parse(str(p), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _parse(p: str, _mtime_ns: int) -> dict:
    try:
        doc = json.loads(Path(p).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"The calibration file {p} cannot be read ({err}); write it again with `meu calibrate`.") \
            from None
    problem = _problem(Path(p).name, doc)
    if problem:
        raise ConfigError(f"The calibration file {p} is not what `meu calibrate` writes: {problem}; write it again "
                          "with `meu calibrate`.")
    return doc


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(name: str, doc) -> str | None:
    """What the readers of the rules files would trip on (a hand-edited or truncated file), said once with the
    file's name instead of a ValueError deep in a detector; None when every setting they convert is there, a number
    where they want one (as `meu calibrate` writes them: a number written as a string is refused)."""
    if not isinstance(doc, dict):
        return "it holds no mapping of settings"
    if name == "rules_calibration.json":
        params = doc.get("parameters")
        if not isinstance(params, dict):
            return "it has no \"parameters\" mapping"
        bad = [k for k in ("mag_ref", "snr0", "agree_power", "midpoint") if not _number(params.get(k))]
        if bad:
            return f"parameters.{bad[0]} is missing or not a number"
        ea = doc.get("explaining_away")
        if ea and not (isinstance(ea, dict) and _number(ea.get("strength")) and isinstance(ea.get("coupling"), dict)
                       and all(str(code).isdigit() and isinstance(v, dict) and isinstance(v.get("pattern"), dict)
                               for code, v in ea["coupling"].items())):
            return "explaining_away needs a numeric strength and a coupling mapping of AU numbers to patterns"
    if name == "intensity_calibration.json":
        if not _number(doc.get("snr_min")):
            return "snr_min is missing or not a number"
        words = doc.get("thresholds_px")
        if not (isinstance(words, dict) and words and all(_number(v) for v in words.values())):
            return "thresholds_px must map intensity words to numbers"
        if "stable_weight" in doc and not _number(doc["stable_weight"]):
            return "stable_weight is not a number"
    return None


def add_argument(parser) -> None:
    parser.add_argument("--calibration", metavar="DIR", default=None,
                        help=f"calibration folder written by `meu calibrate rules --out DIR` (also {ENV}; default: "
                             "the shipped calibration)")


def apply(ns, reads: tuple[str, ...] = RULES_FILES) -> None:
    """Use the folder named by a parsed `--calibration` flag, checked before any work is done.

    A run's record given as `--config` (`ns.recorded["calibration"]`, what that run read) is followed: its folder is
    read when neither the flag nor `MEU_CALIBRATION` names one, and a warning says when the files `reads` hold other
    settings now than they did then, since the run will not repeat that one. `calibration: DIR` in a YAML config is
    the flag's folder."""
    recorded = (getattr(ns, "recorded", None) or {}).get("calibration")
    if isinstance(recorded, str):  # `calibration: DIR` written in a YAML config means --calibration DIR (a flag wins)
        ns.calibration = getattr(ns, "calibration", None) or recorded
        recorded = None
    if recorded is not None and not (isinstance(recorded, dict)
                                     and isinstance(recorded.get("folder") or "", str)
                                     and isinstance(recorded.get("files") or "", str)):
        raise ConfigError("The config's calibration entry must be a folder (`calibration: DIR`) or a run's record of "
                          f"one (folder and files); it is {recorded!r}.")
    recorded = recorded or {}
    if getattr(ns, "calibration", None):
        use(ns.calibration)
    elif recorded.get("folder") and not os.environ.get(ENV):
        if not Path(recorded["folder"]).is_dir():
            raise ConfigError(f"The run given as --config read its calibration from {recorded['folder']}, which is "
                              "not a folder any more; give --calibration DIR, or delete the file's calibration entry "
                              "to read the shipped calibration.")
        use(recorded["folder"])
    else:
        folder()  # a wrong MEU_CALIBRATION is refused now, not at the first clip
    for name in RULES_FILES:  # and a file the readers would trip on, too
        load(name)
    if recorded.get("files") and record(reads)["files"] != recorded["files"]:
        now = folder()
        log.warning("The calibration read now (%s) holds other settings than the run given as --config read (%s); "
                    "its results will differ from that run's.", now or "the shipped files",
                    recorded.get("folder") or "the shipped files at the time")
