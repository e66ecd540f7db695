"""FACS knowledge: what each action unit is called, where it acts and which way it moves the skin.

This table is the single source for the rules detector, the synthetic generator (which moves regions the way
the table says), the instruction writer and the template reasoner.

Motion is written in a face-relative frame so one entry serves both sides: `lateral` > 0 is *away from the
face midline* (outward), `vertical` > 0 is *up*. `image_direction` turns that into image coordinates
(x right, y down) for a region on the person's left or right. The person's left is the image's right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.errors import UnknownAUError

SIDED_REGIONS = ("inner_brow", "outer_brow", "upper_eyelid", "lower_eyelid", "cheek", "nasolabial", "mouth_corner")
MIDLINE_REGIONS = ("glabella", "nose", "upper_lip", "lower_lip", "chin")
REGION_NAMES = SIDED_REGIONS + MIDLINE_REGIONS


@dataclass(frozen=True)
class RegionAction:
    region: str
    lateral: float  # + outward from the midline, - inward
    vertical: float  # + up, - down
    weight: float = 1.0  # how characteristic this region's motion is for the AU


@dataclass(frozen=True)
class FacsAU:
    code: int
    name: str
    description: str  # what the skin does, in plain words
    actions: tuple[RegionAction, ...]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(a.region for a in self.actions)


def _au(code: int, name: str, description: str, *actions: tuple) -> FacsAU:
    return FacsAU(code, name, description, tuple(RegionAction(*a) for a in actions))


FACS: dict[int, FacsAU] = {
    au.code: au
    for au in (
        _au(1, "Inner Brow Raiser", "the inner ends of the eyebrows move up",
            ("inner_brow", 0.0, 1.0), ("outer_brow", 0.0, 0.4, 0.4)),
        _au(2, "Outer Brow Raiser", "the outer ends of the eyebrows move up",
            ("outer_brow", 0.2, 1.0), ("inner_brow", 0.0, 0.3, 0.3)),
        _au(4, "Brow Lowerer", "the eyebrows are pulled down and together",
            ("inner_brow", -0.6, -0.8), ("glabella", 0.0, -1.0, 0.7), ("outer_brow", -0.2, -0.6, 0.5)),
        _au(5, "Upper Lid Raiser", "the upper eyelids move up and the eyes widen",
            ("upper_eyelid", 0.0, 1.0)),
        _au(6, "Cheek Raiser", "the cheeks lift and the skin below the eyes bunches up",
            ("cheek", 0.2, 1.0), ("lower_eyelid", 0.0, 0.6, 0.6)),
        _au(7, "Lid Tightener", "the lower eyelids tighten and rise",
            ("lower_eyelid", -0.2, 1.0), ("upper_eyelid", 0.0, -0.4, 0.4)),
        _au(9, "Nose Wrinkler", "the skin of the nose wrinkles and pulls up",
            ("nose", 0.0, 1.0), ("nasolabial", -0.2, 0.8, 0.6), ("glabella", 0.0, -0.5, 0.4)),
        _au(10, "Upper Lip Raiser", "the upper lip is raised",
            ("upper_lip", 0.0, 1.0), ("nasolabial", 0.2, 0.8, 0.5)),
        _au(12, "Lip Corner Puller", "the mouth corners are pulled up and outward",
            ("mouth_corner", 0.8, 0.6), ("cheek", 0.3, 0.5, 0.4), ("nasolabial", 0.4, 0.5, 0.4)),
        _au(14, "Dimpler", "the mouth corners tighten and are pulled inward into a dimple",
            ("mouth_corner", -0.9, 0.3)),
        _au(15, "Lip Corner Depressor", "the mouth corners are pulled down",
            ("mouth_corner", 0.1, -1.0), ("chin", 0.0, -0.3, 0.3)),
        _au(17, "Chin Raiser", "the chin boss pushes up and the lower lip rises",
            ("chin", 0.0, 1.0), ("lower_lip", 0.0, 0.8, 0.7)),
        _au(20, "Lip Stretcher", "the lips are stretched sideways",
            ("mouth_corner", 1.0, -0.2)),
        _au(23, "Lip Tightener", "the lips narrow and tighten",
            ("upper_lip", 0.0, -0.6, 0.7), ("lower_lip", 0.0, 0.6, 0.7), ("mouth_corner", -0.8, 0.0)),
        _au(24, "Lip Pressor", "the lips press together",
            ("upper_lip", 0.0, -1.0), ("lower_lip", 0.0, 1.0)),
        _au(25, "Lips Part", "the lips part",
            ("lower_lip", 0.0, -1.0), ("upper_lip", 0.0, 0.3, 0.3)),
        _au(26, "Jaw Drop", "the jaw drops and the chin moves down",
            ("chin", 0.0, -1.0), ("lower_lip", 0.0, -0.8, 0.7)),
        _au(43, "Eyes Closed", "the upper eyelids come down",
            ("upper_eyelid", 0.0, -1.0), ("lower_eyelid", 0.0, 0.2, 0.2)),
    )
}


def facs_au(code: int) -> FacsAU:
    """Look an AU up; unknown codes raise a clear error instead of being ignored."""
    try:
        return FACS[int(code)]
    except (KeyError, ValueError, TypeError):
        known = ", ".join(str(c) for c in sorted(FACS))
        raise UnknownAUError(f"AU{code} is not in the FACS table; known AUs are {known}.") from None


def side_sign(side: str | None) -> float:
    """Image x of "outward" on the person's `side`: +1 on the left (the image's right), -1 on the right, 0 midline."""
    return {"L": 1.0, "R": -1.0}.get(side or "", 0.0)


def image_direction(action: RegionAction, side: str | None) -> np.ndarray:
    """Unit motion vector (dx, dy) in image coordinates for `action` on the person's `side` ("L"/"R"/None).

    The person's right side is on the image's left, so "outward" there is -x.
    """
    v = np.array([action.lateral * side_sign(side), -action.vertical], dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def region_label(region: str, side: str | None) -> str:
    """Human name using the person's side: `left inner brow`."""
    words = region.replace("_", " ")
    return f"{'left' if side == 'L' else 'right'} {words}" if side in ("L", "R") else words


def region_of_label(label: str) -> tuple[str, str | None]:
    """`region_label`'s inverse: `left inner brow` -> ("inner_brow", "L")."""
    first, _, rest = label.partition(" ")
    side = {"left": "L", "right": "R"}.get(first)
    return (rest if side else label).replace(" ", "_"), side
