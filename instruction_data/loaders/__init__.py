"""Dataset loaders by name: `load_dataset("casme2", root)` -> `LoadResult` (records plus every skipped row)."""

from __future__ import annotations

import importlib
from pathlib import Path

from assistant.config import split_list
from assistant.emotions import CDE_MAPPING
from assistant.errors import AnnotationSheetError, ConfigError
from instruction_data.long_records import LongLoadResult
from instruction_data.records import LoadResult

LOADERS = {
    "casme2": "instruction_data.loaders.casme2",
    "samm": "instruction_data.loaders.samm",
    "dfme": "instruction_data.loaders.dfme",
    "casme3": "instruction_data.loaders.casme3",
    "smic": "instruction_data.loaders.smic",
    "generic": "instruction_data.loaders.generic",
}
LONG_LOADERS = {  # long videos with expression intervals (spotting)
    "casme2_long": "instruction_data.loaders.casme2_long",
    "samm_long": "instruction_data.loaders.samm_long",
}


def load_dataset(name: str, root: str | Path, strict: bool = False, **options) -> LoadResult:
    """Read a dataset's annotation sheet(s) and resolve its frames. `strict` fails on the first problem row."""
    if name not in LOADERS:
        raise AnnotationSheetError(f"Unknown dataset {name!r}; use one of {', '.join(LOADERS)}.")
    return importlib.import_module(LOADERS[name]).load(root, strict=strict, **options)


def load_long_dataset(name: str, root: str | Path, strict: bool = False, **options) -> LongLoadResult:
    """Read a long-video dataset's sheet: its videos with their annotated expression intervals."""
    if name not in LONG_LOADERS:
        raise AnnotationSheetError(f"Unknown long-video dataset {name!r}; use one of {', '.join(LONG_LOADERS)}.")
    return importlib.import_module(LONG_LOADERS[name]).load(root, strict=strict, **options)


def cde_settings(dataset: str | list, root: str | list) -> tuple[str, str]:
    """The composite's `--dataset` and `--root` (comma lists or YAML lists) checked and joined: datasets the
    challenge pools, each once, one folder each. Shared by `meu data build`, `meu train au` and `meu eval`."""
    names = split_list(dataset, "--dataset")
    outside = [n for n in names if n not in CDE_MAPPING]
    if outside or not names or len(set(names)) < len(names):
        raise ConfigError(f"The composite (MEGC 2019 CDE) pools {', '.join(CDE_MAPPING)}, each once; got "
                          f"{', '.join(names)}.")
    roots = split_list(root, "--root") if root else []
    if len(roots) != len(names):
        raise ConfigError(f"--root gives {len(roots)} folder(s) for the {len(names)} datasets {', '.join(names)}; "
                          "give one folder per dataset, comma-separated in the same order.")
    return ",".join(names), ",".join(roots)
