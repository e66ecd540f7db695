"""The `rules` AU detector: FACS motion directions matched against the region motion table. No training.

For an AU with region actions a (assistant.facs.FACS) and a side s, each action is scored from the measured mean
motion vector v_a of its region (pixels of the working-size crop, head motion removed) and its signal-to-noise ratio
snr_a against the analysis' own noise floor (assistant.motion.noise):

    agree_a = max(0, cos(v_a, d_a)) ** AGREE_POWER    d_a = facs.image_direction(a, s): the expected direction
    mag_a   = 1 - exp(-|v_a| / MAG_REF)                |v_a| rescaled to a 256 px crop
    gate_a  = 1 / (1 + exp(-(snr_a - SNR0)))           motion the noise could have made counts for little
    S_s     = sum_a w_a * agree_a * mag_a * gate_a / sum_a w_a    (w_a = RegionAction.weight; a missing region: 0)

A power of the cosine keeps neighbouring directions apart (AU12's up-outward mouth corner barely scores AU20's
outward one). Using the region's *mean vector*, not its mean magnitude, makes incoherent flow noise cancel; the SNR
gate makes the detector read a 0.1 px real AU on a clean camera and ignore 0.1 px of noise on a noisy one. The AU's
score is S = max(S_L, S_R) (S_None for AUs acting only on midline regions) and its probability is the logistic
squash p = 1 / (1 + exp(-STEEPNESS * (S / MIDPOINT - 1))): p >= 0.5 exactly when S >= MIDPOINT, no motion gives
p = 0.01 and twice the midpoint p = 0.99, whatever the calibrated midpoint. The side is
reported when the AU has some support (S >= MIDPOINT / 2) and one side's score is below SIDE_RATIO times the
other's (one side moved), otherwise None.

Explaining away (`assistant.au.explaining_away`): skin moves as one sheet, so an AU moves regions beyond its own
(AU4 pushes the upper lids down, AU12 lifts the cheek). The AUs whose S passes the midpoint are named one at a time,
the one whose main regions (its actions of largest weight) agree best first; each named AU takes its predicted field
(its primary motion and a coupling pattern fitted on the calibration split) out of the table, and the AUs not yet
named are scored again with what is left in their main regions. What is left can lower an AU's S, never raise it.
Each score's sources are the regions it was scored on; `AUEvidence.explained` says which named AU took motion out of
which region. AU5 reads each upper lid against the upward motion of its brow (`eyelids.lid_against_brow`, when the
calibration says `au5_against_brow`): a raised brow drags the lid skin up.

AU43 is not read from the flow: the lids' flow follows the brow (AU4) and the head, and AU43 was the AU most often
named that nobody coded on real clips. `score_analysis` reads it from the eye's opening on the landmarks of both
frames (`assistant.au.eyelids`); `score_regions`, which sees only the region table, gives it no evidence.

MAG_REF, SNR0, AGREE_POWER and MIDPOINT (`RulesParameters`) and the coupling patterns with their strength are read
when scoring from `rules_calibration.json`, the shipped one beside this file or a calibration folder's
(`assistant.calibration`), which `meu calibrate rules` writes: a grid search for the best macro F1 over CASME II's
eight AUs on the **calibration** split of the realistic synthetic world (people and seeds disjoint from the benchmark
split), under the constraint that at most `--max-null-any` of its null clips get any AU; then the patterns' fit and
a second search over their strength (0: off) and the midpoint. The file records the grids, the split and the figures
reached. A file without `explaining_away` (written before it) scores every AU on the measured table.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from assistant import calibration
from assistant.au import explaining_away
from assistant.au.eyelids import au43_score, lid_against_brow
from assistant.au.sources import flow_sources
from assistant.facs import FACS, SIDED_REGIONS, FacsAU, RegionAction, facs_au, image_direction, region_label
from assistant.types import AUEvidence, AUScore, Clip, MotionAnalysis, RegionMotion

REFERENCE_SIZE = 256
LANDMARK_AUS = frozenset({43})  # read from the landmarks (assistant.au.eyelids), never from the region flow
STEEPNESS = math.log(99)
SIDE_RATIO = 0.5


@dataclass(frozen=True)
class RulesParameters:
    mag_ref: float  # px at the 256 px crop
    snr0: float
    agree_power: float
    midpoint: float
    coupling: dict[int, dict[str, list[float]]] | None = None  # explaining away's patterns; None: off
    coupling_strength: float = 1.0
    lid_against_brow: bool = False  # AU5 reads its upper lids against their brows


def parameters() -> RulesParameters:
    """The calibrated settings in force now (read at call time: a calibration folder chosen later takes effect). A
    calibration written before explaining away has no `explaining_away` and no `au5_against_brow` entry: every AU is
    then scored alone on the measured table, exactly as before."""
    doc = calibration.load("rules_calibration.json")
    p = doc["parameters"]
    ea = doc.get("explaining_away")
    on = bool(ea) and float(ea["strength"]) > 0
    coupling = {int(c): v["pattern"] for c, v in ea["coupling"].items()} if on else None
    return RulesParameters(float(p["mag_ref"]), float(p["snr0"]), float(p["agree_power"]), float(p["midpoint"]),
                           coupling, float(ea["strength"]) if on else 1.0, bool(doc.get("au5_against_brow", False)))


@functools.cache
def _direction(action: RegionAction, side: str | None) -> tuple[float, float]:
    """`image_direction` as floats: `side_score` runs hundreds of thousands of times in a calibration grid."""
    dx, dy = image_direction(action, side)
    return float(dx), float(dy)


def action_score(norm: float, cos: float, snr: float, params: RulesParameters | None = None) -> float:
    """agree * mag * gate of one region action (module docstring); `norm` in px at the 256 px crop."""
    if norm <= 0:
        return 0.0
    p = params or parameters()
    gate = 1.0 / (1.0 + math.exp(-(snr - p.snr0))) if math.isfinite(snr) else 1.0
    return max(0.0, cos) ** p.agree_power * (1.0 - math.exp(-norm / p.mag_ref)) * gate


def side_score(au: FacsAU, regions: list[RegionMotion], side: str | None, size: int = REFERENCE_SIZE,
               params: RulesParameters | None = None) -> float:
    """S_side of the module docstring, 0..1. `size`: the crop's side in pixels, the unit of the regions' dx and dy."""
    params = params or parameters()
    table = {(r.region, r.side): r for r in regions}
    scale = REFERENCE_SIZE / size
    total = weight = 0.0
    for action in au.actions:
        key = (action.region, side if action.region in SIDED_REGIONS else None)
        row = table.get(key)
        dx, dy = (row.dx * scale, row.dy * scale) if row is not None else (0.0, 0.0)
        norm = math.hypot(dx, dy)
        ux, uy = _direction(action, key[1])
        snr = row.snr if row is not None and row.snr > 0 else float("inf")
        total += action.weight * action_score(norm, (dx * ux + dy * uy) / norm if norm > 0 else 0.0, snr, params)
        weight += action.weight
    return total / weight if weight else 0.0


def probability(score: float, params: RulesParameters | None = None) -> float:
    return 1.0 / (1.0 + math.exp(-STEEPNESS * (score / (params or parameters()).midpoint - 1.0)))


def _au_table(code: int, regions: list[RegionMotion], params: RulesParameters) -> list[RegionMotion]:
    """The table an AU reads: AU5 its upper lids against their brows when the calibration says so
    (`eyelids.lid_against_brow`), every other AU the table as given."""
    return lid_against_brow(regions) if code == 5 and params.lid_against_brow else regions


def _score_au(code: int, regions: list[RegionMotion], size: int, params: RulesParameters
              ) -> tuple[float, str | None, list[RegionMotion]]:
    """S of one AU, the side it is reported on (module docstring) and the table it read."""
    au = FACS[code]
    regions = _au_table(code, regions, params)
    if not any(a.region in SIDED_REGIONS for a in au.actions):
        return side_score(au, regions, None, size, params), None, regions
    s_l, s_r = side_score(au, regions, "L", size, params), side_score(au, regions, "R", size, params)
    best = max(s_l, s_r)
    side = None
    if best >= params.midpoint / 2 and min(s_l, s_r) < SIDE_RATIO * best:
        side = "L" if s_l > s_r else "R"
    return best, side, regions


def _main_score(code: int, regions: list[RegionMotion], size: int, params: RulesParameters) -> float:
    """S over the AU's main actions only (those of largest weight), on the table the AU read: which of the AUs that
    pass explains first. Where two AUs act on one region (AU12 and AU20 on the mouth corner) the one whose direction
    the region follows claims it, not the one whose lesser regions happen to be stronger. (The magnitude term
    saturates, so two strong AUs on different regions nearly tie; they do not compete for a region either.)"""
    au = FACS[code]
    where = explaining_away.main_regions(code)
    main = dataclasses.replace(au, actions=tuple(a for a in au.actions if a.region in where))
    sides = ("L", "R") if any(a.region in SIDED_REGIONS for a in main.actions) else (None,)
    return max(side_score(main, regions, s, size, params) for s in sides)


def _compete(regions: list[RegionMotion], size: int, params: RulesParameters
             ) -> tuple[dict[int, tuple[float, str | None, list[RegionMotion]]], dict[tuple[str, str | None], int]]:
    """Every flow AU's S, side and the region table it was scored on, and which named AU took the most motion out
    of each region. Without a coupling, each AU is scored on the measured table. With one
    (`assistant.au.explaining_away`), the AUs that pass are named one at a time, the one whose main regions agree
    best first (`_main_score`): each AU named takes its predicted field out of the table, and the AUs not yet named
    are scored again with what is left in their main regions (`main_residual`); what is left can lower a score,
    never raise it."""
    pool = [c for c in sorted(FACS) if c not in LANDMARK_AUS]
    scored = {c: _score_au(c, regions, size, params) for c in pool}
    if params.coupling is None:
        return scored, {}
    table = {(r.region, r.side): np.array([r.dx, r.dy]) * (REFERENCE_SIZE / size) for r in regions}
    taken: dict[tuple[str, str | None], tuple[float, int]] = {}
    named: set[int] = set()
    while len(named) < len(pool):
        candidates = [c for c in pool if c not in named and probability(scored[c][0], params) >= 0.5]
        if not candidates:
            break
        top = max(candidates, key=lambda c: _main_score(c, scored[c][2], size, params))
        named.add(top)
        field = explaining_away.predicted_field(top, explaining_away.amplitudes(top, table),
                                                params.coupling.get(top, {}), params.coupling_strength)
        after = explaining_away.take_out(table, field)
        for key in field:
            if key in table:
                px = float(np.linalg.norm(table[key] - after[key]))
                if px > taken.get(key, (0.0, 0))[0]:
                    taken[key] = (px, top)
        table = after
        rest = explaining_away.residual_regions(regions, table, size, REFERENCE_SIZE)
        for c in pool:
            if c not in named:
                again = _score_au(c, explaining_away.main_residual(c, regions, rest), size, params)
                if again[0] < scored[c][0]:
                    scored[c] = again
    return scored, {key: code for key, (px, code) in taken.items()
                    if key[0] not in FACS[code].regions and px >= explaining_away.REPORT_MIN_PX}


def score_regions(regions: list[RegionMotion], codes: list[int] | None = None,
                  size: int = REFERENCE_SIZE, params: RulesParameters | None = None) -> AUEvidence:
    """Rules evidence for `codes` (default: every AU of the FACS table) from a region motion table measured on a
    `size` px crop. Every flow AU takes part in the competition, asked for or not: an AU4 explains the lids away
    for an AU7 asked for alone. Each score's sources are the regions it was scored on, after what stronger AUs
    explained."""
    codes = sorted(FACS) if codes is None else [facs_au(c).code for c in codes]
    params = params or parameters()
    scored, taken = _compete(regions, size, params)
    scores = []
    for code in codes:
        best, side, table = scored.get(code, (0.0, None, regions))
        p = probability(best, params)
        used = flow_sources(code, table, side) if p >= 0.5 else ()
        scores.append(AUScore(int(code), min(1.0, max(0.0, p)), side, used))
    return AUEvidence(sorted(scores, key=lambda s: s.code), "rules",
                      explained={region_label(r, s): code for (r, s), code in sorted(taken.items(), key=str)})


class RulesDetector:
    """Default evidence of the assistant. `motion_config` is used only when `detect` gets no analysis."""

    name = "rules"

    def __init__(self, codes: list[int] | None = None, motion_config=None):
        self.codes = codes
        self.motion_config = motion_config

    def detect(self, clip: Clip, analysis: MotionAnalysis | None = None) -> AUEvidence:
        if analysis is None:
            from assistant.motion.analyze import analyze_frames

            analysis = analyze_frames(clip.onset_frame, clip.apex_frame, self.motion_config, clip=clip)
        return score_analysis(analysis, self.codes)


def score_analysis(analysis: MotionAnalysis, codes: list[int] | None = None) -> AUEvidence:
    """Rules evidence for an analysis: the region table's, with AU43 read from the landmarks of both frames."""
    evidence = score_regions(analysis.regions, codes, analysis.crop.size)
    lids = au43_score(analysis.landmarks, analysis.apex_landmarks)
    if lids is not None:
        evidence.scores = [lids if s.code == lids.code else s for s in evidence.scores]
    return evidence
