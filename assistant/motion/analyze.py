"""The motion core: a clip in, the MMC map and the region motion table out.

Order of work: landmarks on the onset and apex frames -> one crop box -> the apex face registered onto the onset face
on stable content (`register`), its exposure matched to the onset's there -> flow -> robust removal of the head
motion left -> face mask -> noise floor (`noise`) -> map -> regions with px and SNR. Cropping first makes TV-L1 run
on the face only (the published recipe runs it on the whole frame) and makes every pixel threshold mean the same thing
on every dataset; registering first leaves TV-L1 only the expression to measure, which is both more accurate and much
faster when the head moved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError, NoFaceError
from assistant.motion import face as face_mod
from assistant.motion.apex import SpotRegion
from assistant.motion.clip import ClipLimits, load_clip, open_source
from assistant.motion.depth import depth_map
from assistant.motion.drift import DRIFT_MODES, DRIFT_STILLER, cancel_drift, drift_share
from assistant.motion.flow import COMPENSATIONS, FLOW_METHODS, compensate, compute_flow, to_grey
from assistant.motion.gaze import EYE_MODES, eye_openings
from assistant.motion.mmc import FLOOR_PX, FULL_SCALE_PX, MMC_MODES, mmc_map
from assistant.motion.noise import combine_floors, noise_from_regions, noise_from_stable
from assistant.motion.regions import face_region_masks, region_motion
from assistant.motion.register import (
    crop_pair,
    describe,
    face_mask,
    match_exposure,
    register_pair,
    rigid3d_fit_mask,
    stable_mask,
)
from assistant.types import Clip, MotionAnalysis, MotionField

log = logging.getLogger(__name__)

# Names what the motion core measures (this module's analysis and the long-video tracker) as of its last change of
# numbers, not of speed: the day, with a suffix (".2") for a second change that day. Evaluation and AU training runs,
# instruction builds and AU checkpoints record it, so a resume never mixes rows of two motion cores and a head trained
# on another one is served with a warning, and the measurement caches (realism tables, the AU heads' inputs) hold it
# in their keys. Change it with any such change.
MOTION_CORE = "2026-12-07"  # the eyes' openings masked (assistant.motion.gaze)


def motion_core_change(recorded: str | None) -> str | None:
    """How results recorded with motion core `recorded` (None: from before it was recorded) differ from this
    version's, as the end of a sentence; None when they were measured the same way."""
    if recorded == MOTION_CORE:
        return None
    made = "an older motion core" if recorded is None else f"the motion core of {recorded}"
    return f"was measured by {made}, and this version's ({MOTION_CORE}) measures differently"


def refuse_other_motion_core(recorded: str | None, out, held: str, units: str) -> None:
    """A resume of the `held` ("run", "build") in `out` whose record says motion core `recorded` would mix its
    `units` ("rows", "folds") with this version's: refused with a sentence naming both."""
    change = motion_core_change(recorded)
    if change:
        raise ConfigError(f"{out} holds a {held} that {change}: its {units} cannot be mixed with new ones; choose a "
                          "new --out.")


def warn_recorded_motion_core(recorded: dict) -> None:
    """A job's own record given back as `--config` (`parse_config`'s `recorded`) runs it again; made by another motion
    core, its figures will not come out as recorded: said."""
    change = motion_core_change(recorded["motion_core"]) if "motion_core" in recorded else None
    if change:
        log.warning("The run recorded in --config %s: this run's figures will not be the recorded ones.", change)


NOISE_MODES = ("auto", "stable")
REGISTERED = ("register", "register2d")  # compensations that register the apex face onto the onset face first
# The rigid3d model replaces the similarity only when it leaves the face this much stiller (`stillness`): its two
# extra parameters fit a little noise, and it learns pitch from the nose bridge, which AU4 and AU9 move (a 0.5 px
# AU9 alone read as 0.35 degrees of pitch). Chosen on calibration data only (see docs/reading_real_faces.md).
RIGID3D_STILLER = 0.6
# px at 256: when the similarity leaves a median motion under this, there is no turn to undo and rigid3d is not run.
# Its own floor on a still pair of the calibration photo was 0.012 px, so it could not be RIGID3D_STILLER as still.
TURN_MIN_PX = 0.02
FREE_BRIDGE = "+free-bridge"  # ends the registration's method when the rigid3d fits left the nose bridge out
NOISE_MIN_GAP = 8  # a frame right after the onset is a null pair only when the apex is at least this far away
NOISE_MAX_SEEK = 300  # frames decoded again at most to fetch the null-pair frame of a video
DEFAULT_NOISE_PX = 0.03  # px at 256 when no estimate is possible (the middle of what still real faces show)
SMALL_FACE_PX = 80  # faces narrower than this in the source frame get a warning: sub-pixel motion is lost


@dataclass
class MotionConfig:
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend", "choices": ["mediapipe", "dlib"]})
    flow: str = field(default="tvl1", metadata={"help": "optical flow method", "choices": list(FLOW_METHODS)})
    compensation: str = field(default="register", metadata={
        "help": "head motion: register (apex face registered onto the onset face, then a robust residual fit, both "
                "with a 3-D rigid head model from the mesh's depth; default), register2d (the same with a 2-D "
                "similarity), similarity (the 2-D robust fit alone), nose or none (the published recipe)",
        "choices": list(COMPENSATIONS)})
    noise: str = field(default="auto", metadata={
        "help": "noise floor: auto (a null pair of neighbouring frames when the clip has one, else the stable face "
                "area of the analysed flow) or stable (always the latter: no second flow)",
        "choices": list(NOISE_MODES)})
    drift: str = field(default="offset", metadata={
        "help": "slow drift: offset (when the clip's offset frame is known and lies after the apex, the share of the "
                "onset -> offset motion reached at the apex is taken out where that leaves the face clearly "
                "stiller; default) or none",
        "choices": list(DRIFT_MODES)})
    eyes: str = field(default="masked", metadata={
        "help": "the eyes' openings: masked (left out of every measurement of the pair, so a gaze shift is not "
                "read as a lid action; default) or read (as skin, as the motion core did until 2026-12-07; AU heads "
                "trained on that are served so). Long-video spotting always masks them",
        "choices": list(EYE_MODES)})
    mode: str = field(default="default", metadata={"help": "MMC map mode", "choices": list(MMC_MODES)})
    size: int = field(default=256, metadata={"help": "working size of the square face crop (px)"})
    margin: float = field(default=0.15, metadata={"help": "crop margin around the landmarks, fraction of face size"})
    full_scale_px: float = field(default=FULL_SCALE_PX,
                                 metadata={"help": "motion (px at 256) drawn at full brightness"})

    def __post_init__(self):
        """Flags and YAML reach here unchecked; impossible values would surface as OpenCV assertions or a blank map."""
        if not face_mod.MIN_CROP <= self.size <= face_mod.MAX_CROP:
            raise ConfigError(f"size={self.size} must lie between {face_mod.MIN_CROP} and {face_mod.MAX_CROP} px (the "
                              "working size of the face crop; default 256).")
        if not 0 <= self.margin <= 1:
            raise ConfigError(f"margin={self.margin} must lie between 0 and 1 (a fraction of the face size).")
        if self.drift not in DRIFT_MODES:
            raise ConfigError(f"drift={self.drift!r} is not valid; choose one of: {', '.join(DRIFT_MODES)}.")
        if self.eyes not in EYE_MODES:
            raise ConfigError(f"eyes={self.eyes!r} is not valid; choose one of: {', '.join(EYE_MODES)}.")
        if not FLOOR_PX < self.full_scale_px < math.inf:
            raise ConfigError(f"full_scale_px={self.full_scale_px} must be a finite number above the {FLOOR_PX} px "
                              "floor under which motion is not drawn.")


# The motion settings' choices, for the other jobs' configs that pass them on (eval, AU training).
MOTION_CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(MotionConfig) if "choices" in f.metadata}


def analyze_frames(onset: np.ndarray, apex: np.ndarray, config: MotionConfig | None = None,
                   clip: Clip | None = None, null_frame: np.ndarray | None = None,
                   offset_frame: np.ndarray | None = None) -> MotionAnalysis:
    """Analyse an onset/apex pair of RGB frames. `null_frame`: a neighbour of the onset frame with no expression
    (the noise floor is measured on it), or None (the floor comes from the stable face area). `offset_frame`: the
    frame at `clip.offset`, where the expression has gone; slow drift is cancelled with it (`drift`)."""
    cfg = config or MotionConfig()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t = time.perf_counter()
    landmarks = face_mod.detect_face(onset, cfg.landmarks)
    apex_lm = None
    if cfg.compensation in REGISTERED:
        try:
            apex_lm = face_mod.detect_face(apex, cfg.landmarks)
        except NoFaceError:
            warnings.append("No face was found on the apex frame; it was aligned to the onset face by image content "
                            "alone.")
    timings["landmarks"] = time.perf_counter() - t

    t = time.perf_counter()
    box = face_mod.crop_box(landmarks, cfg.size, cfg.margin)
    crop_lm = face_mod.landmarks_in_crop(landmarks, box)
    shape = (cfg.size, cfg.size)
    mesh = crop_lm.points if len(crop_lm.points) >= 468 else None
    face = face_mask(crop_lm.points68, shape, mesh)
    if cfg.eyes == "masked":
        face &= ~eye_openings(crop_lm.points68, shape)
    stable = stable_mask(crop_lm.points68, shape, mesh)
    depth = depth_map(crop_lm, shape) if cfg.compensation == "register" else None
    if depth is None and cfg.compensation == "register":
        warnings.append(f"3-D head-motion compensation needs landmarks with depth, which the {cfg.landmarks} backend "
                        "does not give; a 2-D similarity was used, so a head that turns out of plane may leave "
                        "motion at the nose and the face's edges.")
    fit3d = rigid3d_fit_mask(stable, face, crop_lm.points68) if depth is not None else None
    free3d = rigid3d_fit_mask(stable, face, crop_lm.points68, bridge=False) if depth is not None else None
    onset_grey = None

    def compensated(frame: np.ndarray, frame_lm, model_depth: np.ndarray | None, free_bridge: bool = False,
                    timed: bool = True):
        """Onset crop, registered frame crop, registration, the flow with the head motion removed and the head motion,
        for the similarity (`model_depth` None) or the rigid3d model (`free_bridge`: fitted without the nose bridge).
        `timed`: add the stages' times to `timings` (the null pair's count under "noise" instead)."""
        nonlocal onset_grey

        def lap(stage: str, since: float) -> None:
            if timed:
                timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - since

        t = time.perf_counter()
        fit = stable if model_depth is None else (free3d if free_bridge else fit3d)
        if cfg.compensation in REGISTERED:
            onset_crop, crop, registration = register_pair(onset, frame, landmarks, frame_lm, box, fit, model_depth)
        else:
            onset_crop, crop, registration = crop_pair(onset, frame, box)
        if free_bridge and model_depth is not None:
            registration = replace(registration, method=registration.method + FREE_BRIDGE)
        lap("register", t)
        t = time.perf_counter()
        if onset_grey is None:
            onset_grey = to_grey(onset_crop).astype(np.float32)
        grey = to_grey(crop)
        if cfg.compensation in REGISTERED:
            grey = match_exposure(onset_grey, grey, stable)
        raw = compute_flow(onset_grey, grey, cfg.flow)
        lap("flow", t)
        t = time.perf_counter()
        flow, residual = compensate(raw, crop_lm.points68, cfg.compensation, fit, model_depth)
        flow = np.where(face[..., None], flow, 0).astype(np.float32)
        lap("compensation", t)
        return onset_crop, crop, registration, flow, registration.head.then(residual)

    onset_crop, apex_crop, registration, flow, head = compensated(apex, apex_lm, None)
    depth_used, free_used = None, False
    still_2d = stillness(flow, face)
    if depth is not None and still_2d >= TURN_MIN_PX * cfg.size / 256:
        # rigid3d is fitted with the nose bridge and without it, and the stiller is kept: the bridge is the lever for
        # pitch and yaw, but AU4 and AU9 move its skin, and with a turn a 0.8 px AU9 was read as pitch, leaving the
        # glabella moving (named AU4) and the nose still (docs/reading_real_faces.md). Both get the configured flow:
        # choosing on DIS flows (8-bit input) to save one TV-L1 disagreed with TV-L1 on a pitch + yaw with AU9.
        fits = {free: compensated(apex, apex_lm, depth, free) for free in (False, True)}
        free = min(fits, key=lambda f: stillness(fits[f][3], face))
        turned, still_3d = fits[free], stillness(fits[free][3], face)
        log.debug("stillness: similarity %.4f px, rigid3d %.4f px (%s)", still_2d, still_3d, turned[2].method)
        if still_3d < RIGID3D_STILLER * still_2d:
            onset_crop, apex_crop, registration, flow, head = turned
            depth_used, free_used = depth, free

    drift: dict[str, float] = {}
    share = drift_share(clip.onset, clip.apex, clip.offset) if clip is not None and offset_frame is not None else None
    if share is not None and cfg.drift == "offset":
        t = time.perf_counter()
        try:
            offset_lm = face_mod.detect_face(offset_frame, cfg.landmarks) if cfg.compensation in REGISTERED else None
        except NoFaceError:
            offset_lm = None
            warnings.append("No face was found on the offset frame; it was aligned to the onset face by image "
                            "content alone before its drift was measured.")
        cancelled = cancel_drift(flow, compensated(offset_frame, offset_lm, depth_used, free_used, timed=False)[3],
                                 share)
        still, still_cancelled = stillness(flow, face), stillness(cancelled, face)
        drift = {"share": share, "stillness_px": still, "cancelled_stillness_px": still_cancelled,
                 "cancelled": float(still_cancelled < DRIFT_STILLER * still)}
        if drift["cancelled"]:
            flow = cancelled
        timings["drift"] = time.perf_counter() - t

    t = time.perf_counter()
    masks = face_region_masks(crop_lm.points68, face)
    estimates: dict[str, float] = {}
    stable_floor = noise_from_stable(flow, stable, crop_lm.points68)
    if stable_floor is not None:
        estimates["stable area"] = stable_floor
    if null_frame is not None and cfg.noise == "auto":
        null_flow = compensated(null_frame, None, depth_used, free_used, timed=False)[3]
        null = noise_from_regions(null_flow, masks)
        if null is not None:
            estimates["null pair"] = null
    noise, source = combine_floors(estimates)
    if noise is None:
        noise, source = DEFAULT_NOISE_PX * cfg.size / 256, "default"
        warnings.append("Too little stable face area was visible to measure the noise floor; a typical value was "
                        "assumed, so weak motion may be over- or under-reported.")
    timings["noise"] = time.perf_counter() - t

    t = time.perf_counter()
    colour_map = mmc_map(onset_crop, flow, cfg.mode, full_scale_px=cfg.full_scale_px, mask=face)
    timings["map"] = time.perf_counter() - t

    t = time.perf_counter()
    regions = region_motion(flow, crop_lm.points68, masks, noise)
    timings["regions"] = time.perf_counter() - t

    face_px = landmarks.box[2] - landmarks.box[0]
    if face_px < SMALL_FACE_PX:
        warnings.append(f"The face is only {face_px:.0f} px wide; motion of a fraction of a pixel cannot be measured "
                        "reliably on so small a face, so read the result with care (150 px or more is best).")
    if landmarks.n_faces > 1:
        warnings.append(f"{landmarks.n_faces} faces were found; the largest one was analysed.")
    tilted = face_mod.tilt_note(face_mod.roll_deg(landmarks.points68))
    if tilted:
        warnings.append(tilted)
    head_motion = describe(head, tuple(crop_lm.points68[face_mod.NOSE_TIP_68]), depth_used)
    turned = max(abs(head_motion.get("pitch", 0.0)), abs(head_motion.get("yaw", 0.0)))
    if abs(head_motion["rotation"]) > 3 or abs(head_motion["scale"] - 1) > 0.03 or turned > 3:
        warnings.append("The head moved noticeably between onset and apex; compensation may leave residual motion.")
    clip = clip or Clip(source="<frames>", onset_frame=onset, apex_frame=apex, onset=0, apex=1)
    return MotionAnalysis(
        clip=clip, landmarks=landmarks, crop=box, crop_landmarks=crop_lm, onset_crop=onset_crop, apex_crop=apex_crop,
        field=MotionField(flow=flow, raw_flow=flow + head.field(shape, depth_used), method=cfg.flow,
                          compensation=cfg.compensation, head_motion=head_motion, face_mask=face, noise_px=noise,
                          noise_source=source, noise_estimates=estimates, registration=registration.method,
                          head_model="rigid3d" if depth_used is not None else "similarity", drift=drift),
        mmc_map=colour_map, mmc_mode=cfg.mode, regions=regions, timings=timings,
        backends={"landmarks": cfg.landmarks, "flow": cfg.flow, "compensation": cfg.compensation, "mmc": cfg.mode,
                  "eyes": cfg.eyes},
        warnings=clip.warnings + warnings, apex_landmarks=apex_lm,
    )


def stillness(flow: np.ndarray, face: np.ndarray) -> float:
    """Median motion over the face (px): what a head model leaves where no AU acts, since AUs move a few regions."""
    return float(np.median(np.hypot(*flow[face].T)))


def null_frame_index(clip: Clip) -> int | None:
    """A neighbour of the onset frame that the expression has not reached: the frame before the onset, or the one
    after it when the apex is far enough away."""
    if clip.n_frames <= 2 or clip.source in ("<image>",):
        return None
    if clip.onset >= 1:
        return clip.onset - 1
    if clip.apex - clip.onset >= NOISE_MIN_GAP:
        return clip.onset + 1
    return None


def analyze_clip(source: str | Path | list[np.ndarray], apex_image: str | Path | np.ndarray | None = None, *,
                 onset: int | None = None, apex: int | None = None, offset: int | None = None,
                 config: MotionConfig | None = None, limits: ClipLimits | None = None) -> MotionAnalysis:
    """Load a clip (spotting the apex inside the face box when it is not given) and analyse onset -> apex."""
    cfg = config or MotionConfig()

    def face_box(frame: np.ndarray) -> SpotRegion:
        landmarks = face_mod.detect_face(frame, cfg.landmarks)
        box = face_mod.crop_box(landmarks, cfg.size, cfg.margin)
        return SpotRegion((box.x0, box.y0, box.x1, box.y1), np.asarray(landmarks.points68)[36:48])

    t = time.perf_counter()
    clip = load_clip(source, apex_image, onset=onset, apex=apex, offset=offset,
                     face_box=face_box if apex is None and apex_image is None else None, limits=limits)
    load_time = time.perf_counter() - t
    null_frame = None
    index = null_frame_index(clip) if cfg.noise == "auto" else None
    if index is not None and apex_image is None:
        src = open_source(source, limits)
        if src.random_access or index <= NOISE_MAX_SEEK:
            null_frame = src.read([index])[0]
    load_time = time.perf_counter() - t
    analysis = analyze_frames(clip.onset_frame, clip.apex_frame, cfg, clip, null_frame, clip.offset_frame)
    clip.offset_frame = None  # measured; a full-size frame nothing reads again
    analysis.timings = {"load": load_time, **analysis.timings}
    analysis.timings["total"] = sum(analysis.timings.values())
    return analysis
