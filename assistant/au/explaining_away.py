"""Explaining away: motion that an AU already named predicts in neighbouring regions is attributed to it before other
AUs are scored there.

Real skin moves as one sheet: a lowered brow (AU4) pushes the upper lids down, a lip-corner pull (AU12) lifts the
cheek and the nasolabial fold. Scored region by region, that coupled motion names AUs nobody coded (AU7 and AU43 with
AU4, AU6 with AU12, AU9 and AU10 with each other), the false AUs that dominated on real clips (issue 21). The `rules`
detector therefore names the AUs that pass one at a time, the one whose main regions agree best first (an ordered
competition): each named AU's predicted field is taken out of the region table, and the AUs still unnamed are scored
again with what is left in their main regions (`main_residual`).

An AU's predicted field is its amplitude times a coupling pattern. The amplitude on a side is the motion of its first
(primary) region along the direction FACS gives it; the pattern says how far every other region moves, in the person's
frame (outward, up), per pixel of that primary motion: sided regions on the acting side, midline regions from either
side. The patterns are fitted by `meu calibrate rules` (`fit_coupling`) on the calibration split's labelled clips,
by least squares, and stored under `explaining_away` in `rules_calibration.json` with the strength they are used
at; nothing here assumes how skin couples.

What a named AU takes out of a region is only the part of the region's motion that points the predicted way, and at
most the predicted length: a region that moved less than predicted, or another way, is not given motion it never had,
so explaining away can remove false evidence but never create it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from assistant.facs import FACS, SIDED_REGIONS, image_direction, side_sign
from assistant.types import RegionMotion

SIDES = ("L", "R")
MIN_CLIPS = 3  # clips an AU needs before its coupling is fitted (fewer: it explains its own region only)
REPORT_MIN_PX = 0.02  # px at 256 an AU must take out of a region outside its main ones for the result to say so
RIDGE = 1e-3  # a small ridge, relative to the mean diagonal of X'X, for AUs that nearly always come together


def to_person(v: np.ndarray, side: str | None) -> np.ndarray:
    """Image (dx, dy) to the person's frame (outward from the midline on `side`, up)."""
    return np.array([v[0] * side_sign(side), -v[1]])


def to_image(p: np.ndarray, side: str | None) -> np.ndarray:
    return np.array([p[0] * side_sign(side), -p[1]])


def acting_sides(code: int) -> tuple[str | None, ...]:
    """The sides an AU's amplitude is read on: both for an AU with sided regions, None for a midline AU."""
    return SIDES if FACS[code].actions[0].region in SIDED_REGIONS else (None,)


def amplitudes(code: int, table: dict[tuple[str, str | None], np.ndarray]) -> dict[str | None, float]:
    """Per acting side, the primary region's motion along the AU's direction (px, >= 0)."""
    action = FACS[code].actions[0]
    out = {}
    for side in acting_sides(code):
        v = table.get((action.region, side))
        out[side] = 0.0 if v is None else max(0.0, float(v @ image_direction(action, side)))
    return out


def predicted_field(code: int, amps: dict[str | None, float], coupling: dict[str, list[float]],
                    strength: float = 1.0) -> dict[tuple[str, str | None], np.ndarray]:
    """Image-frame motion the AU predicts in each region (its primary region: exactly its measured projection).
    Sided regions follow their own side's amplitude; midline regions the sum over sides."""
    primary = FACS[code].actions[0]
    out: dict[tuple[str, str | None], np.ndarray] = {}
    for side, amp in amps.items():
        if amp > 0:
            out[(primary.region, side)] = amp * image_direction(primary, side)
    total = sum(amps.values())
    for name, pattern in coupling.items():
        region, _ = name.split("@")
        if region == primary.region:
            continue
        p = strength * np.asarray(pattern, dtype=np.float64)
        if region not in SIDED_REGIONS:  # fitted vertical only: the sides' lateral pulls cancel on the midline
            if total > 0:
                out[(region, None)] = total * np.array([0.0, -p[1]])
            continue
        for s in SIDES:
            amp = amps.get(None, 0.0) if None in amps else amps.get(s, 0.0)
            if amp > 0:
                out[(region, s)] = amp * to_image(p, s)
    return out


def take_out(table: dict[tuple[str, str | None], np.ndarray],
             field: dict[tuple[str, str | None], np.ndarray]) -> dict[tuple[str, str | None], np.ndarray]:
    """The table less the predicted field: per region, the motion along the prediction, capped at its length."""
    out = dict(table)
    for key, p in field.items():
        v = out.get(key)
        n = float(np.linalg.norm(p))
        if v is None or n <= 0:
            continue
        u = p / n
        out[key] = v - min(max(float(v @ u), 0.0), n) * u
    return out


def residual_regions(regions: list[RegionMotion], table: dict[tuple[str, str | None], np.ndarray],
                     size: int, reference: int) -> list[RegionMotion]:
    """Region rows with the residual vectors (px at the `size` crop; `table` is at `reference` px) and their SNR on
    the same noise floor."""
    return [r.moved(*(table[(r.region, r.side)] * (size / reference))) for r in regions]


def main_regions(code: int) -> set[str]:
    """The regions of an AU's actions of largest weight: where it acts most."""
    top = max(a.weight for a in FACS[code].actions)
    return {a.region for a in FACS[code].actions if a.weight == top}


def main_residual(code: int, measured: list[RegionMotion], residual: list[RegionMotion]) -> list[RegionMotion]:
    """The table an AU not yet named is scored on: its main regions (the actions of largest weight: AU24's two lips,
    AU7's lower lid) as the named AUs left them, every other region as measured. An AU is not named from motion that
    another AU predicts where it acts most (AU7 from lower lids that AU6 lifted, AU24 from a lower lip that AU17
    pushed up), while the regions FACS lets it share with a lesser weight keep their motion (AU2 keeps the inner
    brow that AU1 lifts, and it lifts too). Chosen on the calibration split against reading every region from the
    residual (for which it preferred no explaining away at all) and against the first region only (more false
    alarms at the same F1)."""
    main = main_regions(code)
    rest = {(r.region, r.side): r for r in residual}
    return [rest[(r.region, r.side)] if r.region in main else r for r in measured]


def _side_amplitude(amps: dict[str | None, float], only: str | None, side: str) -> float:
    """The amplitude an AU drives a sided region on `side` with: its own side's, or a midline AU's unless it was
    labelled on the other side."""
    if None in amps:
        return amps[None] if only in (None, side) else 0.0
    return amps.get(side, 0.0)


def fit_coupling(clips: Iterable[tuple[dict[int, str | None], list[dict], int]]) -> dict[str, dict]:
    """Per AU, its coupling pattern, by least squares over every labelled clip at once: each region's motion (the
    person's frame) is the sum of the clip's AUs' primary amplitudes times their patterns (its own side's amplitude
    for a sided region; the sum over sides, vertical only, for a midline one). Joint, so AUs that come together (AU1
    with AU2, AU6 with AU12) are told apart by the clips where they do not. `clips`: ({code: the one side it acts on
    or None}, region rows, crop size). A midline AU labelled on one side (AU9 wrinkling one nasolabial fold) keeps
    its amplitude and explains the sided regions of that side only. An AU in fewer than `MIN_CLIPS` clips is left
    out, with the clips holding it; `clips` in the result counts the clips each fit used."""
    clips = list(clips)
    seen: dict[int, int] = {}
    for codes, _, _ in clips:
        for code in codes:
            seen[code] = seen.get(code, 0) + 1
    fitted = sorted(c for c, n in seen.items() if n >= MIN_CLIPS and c in FACS)
    used = dict.fromkeys(fitted, 0)
    rows: dict[str, tuple[list, list]] = {}
    for codes, regions, size in clips:
        if not set(codes) <= set(fitted):
            continue
        for code in codes:
            used[code] += 1
        table = {(r["region"], r["side"]): np.array([r["dx"], r["dy"]]) * (256 / size) for r in regions}
        amps = {code: {s: (v if only is None or s in (None, only) else 0.0)
                       for s, v in amplitudes(code, table).items()} for code, only in codes.items()}
        for (region, rside), v in table.items():
            if region in SIDED_REGIONS:
                x = [_side_amplitude(amps.get(c, {}), codes.get(c), rside) for c in fitted]
                key, y = f"{region}@same", to_person(v, rside)
            else:
                x = [sum(amps[c].values()) if c in amps else 0.0 for c in fitted]
                key, y = f"{region}@mid", np.array([0.0, -v[1]])
            xs, ys = rows.setdefault(key, ([], []))
            xs.append(x)
            ys.append(y)
    patterns: dict[int, dict[str, list[float]]] = {c: {} for c in fitted}
    for key, (xs, ys) in sorted(rows.items()):
        x, y = np.asarray(xs), np.asarray(ys)
        gram = x.T @ x
        ridge = RIDGE * np.trace(gram) / len(fitted) + 1e-12
        k = np.linalg.solve(gram + ridge * np.eye(len(fitted)), x.T @ y)
        for j, code in enumerate(fitted):
            patterns[code][key] = [round(float(c), 4) for c in k[j]]
    return {str(c): {"clips": used[c], "pattern": patterns[c]} for c in fitted}
