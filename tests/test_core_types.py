"""AU codes parse losslessly, the FACS table is complete, configs load from YAML with flags on top."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from assistant.au import AU, format_aus, parse_aus
from assistant.config import parse_config
from assistant.emotions import emotion_from_aus, map_emotion
from assistant.errors import ConfigError, UnknownAUError
from assistant.facs import FACS, REGION_NAMES, facs_au, image_direction


@pytest.mark.parametrize("cell", ["4+L10", "1+R2+25", "R12", "14A", "L10+R14A+17", "1+2+4+5+26"])
def test_sheet_strings_round_trip(cell):
    assert format_aus(parse_aus(cell).aus) == cell


def test_sides_intensities_and_unknowns_are_kept():
    s = parse_aus("R14A")
    assert s.aus == (AU(14, "R", "A", raw="R14A"),)
    spaced = parse_aus("R12 + R15")
    assert [(a.code, a.side) for a in spaced.aus] == [(12, "R"), (15, "R")]
    unknown = parse_aus("?")
    assert unknown.codes == [] and str(unknown.unknown[0]) == "?"
    alt = parse_aus("12 or 14")
    assert alt.codes == [12] and [a.code for a in alt.alternatives[0]] == [14]
    assert parse_aus(float("nan")).aus == () and parse_aus(4.0).codes == [4]


def test_facs_table_covers_the_required_aus_and_regions():
    required = {1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 43}
    assert required <= set(FACS)
    assert all(a.region in REGION_NAMES for au in FACS.values() for a in au.actions)
    with pytest.raises(UnknownAUError, match="AU99"):
        facs_au(99)


def test_image_direction_mirrors_outward_motion_between_the_persons_sides():
    corner = FACS[12].actions[0]
    right, left = image_direction(corner, "R"), image_direction(corner, "L")
    assert right[0] < 0 < left[0] and right[1] < 0 and left[1] < 0
    assert np.isclose(np.linalg.norm(right), 1.0)


def test_emotion_schemes_and_au_rules():
    assert map_emotion("Happiness", "3") == "positive" and map_emotion("repression", "5") == "repression"
    assert map_emotion("fear", "5") == "others" and map_emotion("others", "7") is None
    assert emotion_from_aus({6, 12})[0] == "happiness" and emotion_from_aus({1, 2})[0] == "surprise"
    assert emotion_from_aus(set())[0] == "others"


@dataclass
class _Cfg:
    lr: float = field(default=1e-4, metadata={"help": "learning rate"})
    steps: int = 10
    name: str = "x"
    merge: bool = False


def test_config_yaml_then_flags(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 0.5\nsteps: 3\n")
    cfg, _ = parse_config(_Cfg, ["--config", str(yml), "--steps", "7", "--merge"], "t", "test")
    assert cfg == _Cfg(lr=0.5, steps=7, name="x", merge=True)
    yml.write_text("lr: 0.5\nepochs: 3\n")
    with pytest.raises(ConfigError, match="epochs"):
        parse_config(_Cfg, ["--config", str(yml)], "t", "test")
