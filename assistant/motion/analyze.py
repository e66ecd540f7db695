"""The motion core: a clip in, the MMC map and the region motion table out.

Order of work: landmarks on the onset and apex frames -> one crop box -> the apex face registered onto the onset face
on stable content (`register`), its exposure matched to the onset's there -> flow -> robust removal of the head
motion left -> face mask -> noise floor (`noise`) -> map -> regions with px and SNR. Cropping first makes TV-L1 run
on the face only (the published recipe runs it on the whole frame) and makes every pixel threshold mean the same thing
on every dataset; registering first leaves TV-L1 only the expression to measure, which is both more accurate and much
faster when the head moved.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError, NoFaceError
from assistant.motion import face as face_mod
from assistant.motion.clip import ClipLimits, load_clip, open_source
from assistant.motion.flow import COMPENSATIONS, FLOW_METHODS, compensate, compute_flow, to_grey
from assistant.motion.mmc import FLOOR_PX, FULL_SCALE_PX, MMC_MODES, mmc_map
from assistant.motion.noise import combine_floors, noise_from_regions, noise_from_stable
from assistant.motion.regions import face_region_masks, region_motion
from assistant.motion.register import (
    crop_pair,
    describe,
    displacement,
    face_mask,
    match_exposure,
    register_pair,
    stable_mask,
)
from assistant.types import Clip, MotionAnalysis, MotionField

log = logging.getLogger(__name__)

NOISE_MODES = ("auto", "stable")
NOISE_MIN_GAP = 8  # a frame right after the onset is a null pair only when the apex is at least this far away
NOISE_MAX_SEEK = 300  # frames decoded again at most to fetch the null-pair frame of a video
DEFAULT_NOISE_PX = 0.03  # px at 256 when no estimate is possible (the middle of what still real faces show)
MIN_SIZE = 64  # px; below this the regions are a few pixels wide
SMALL_FACE_PX = 80  # faces narrower than this in the source frame get a warning: sub-pixel motion is lost


@dataclass
class MotionConfig:
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend", "choices": ["mediapipe", "dlib"]})
    flow: str = field(default="tvl1", metadata={"help": "optical flow method", "choices": list(FLOW_METHODS)})
    compensation: str = field(default="register", metadata={
        "help": "head motion: register (apex face registered onto the onset face, then a robust residual fit; "
                "default), similarity (the robust fit alone), nose or none (the published recipe)",
        "choices": list(COMPENSATIONS)})
    noise: str = field(default="auto", metadata={
        "help": "noise floor: auto (a null pair of neighbouring frames when the clip has one, else the stable face "
                "area of the analysed flow) or stable (always the latter: no second flow)",
        "choices": list(NOISE_MODES)})
    mode: str = field(default="default", metadata={"help": "MMC map mode", "choices": list(MMC_MODES)})
    size: int = field(default=256, metadata={"help": "working size of the square face crop (px)"})
    margin: float = field(default=0.15, metadata={"help": "crop margin around the landmarks, fraction of face size"})
    full_scale_px: float = field(default=FULL_SCALE_PX,
                                 metadata={"help": "motion (px at 256) drawn at full brightness"})

    def __post_init__(self):
        """Flags and YAML reach here unchecked; impossible values would surface as OpenCV assertions or a blank map."""
        if self.size < MIN_SIZE:
            raise ConfigError(f"size={self.size} is too small; the face crop needs at least {MIN_SIZE} px "
                              "(default 256).")
        if not 0 <= self.margin <= 1:
            raise ConfigError(f"margin={self.margin} must lie between 0 and 1 (a fraction of the face size).")
        if self.full_scale_px <= FLOOR_PX:
            raise ConfigError(f"full_scale_px={self.full_scale_px} must be above the {FLOOR_PX} px floor under which "
                              "motion is not drawn.")


def analyze_frames(onset: np.ndarray, apex: np.ndarray, config: MotionConfig | None = None,
                   clip: Clip | None = None, null_frame: np.ndarray | None = None) -> MotionAnalysis:
    """Analyse an onset/apex pair of RGB frames. `null_frame`: a neighbour of the onset frame with no expression
    (the noise floor is measured on it), or None (the floor comes from the stable face area)."""
    cfg = config or MotionConfig()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t = time.perf_counter()
    landmarks = face_mod.detect_face(onset, cfg.landmarks)
    apex_lm = None
    if cfg.compensation == "register":
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
    stable = stable_mask(crop_lm.points68, shape, mesh)

    def crops(frame: np.ndarray, frame_lm):
        if cfg.compensation == "register":
            return register_pair(onset, frame, landmarks, frame_lm, box, stable)
        return crop_pair(onset, frame, box)

    onset_crop, apex_crop, registration = crops(apex, apex_lm)
    timings["register"] = time.perf_counter() - t

    onset_grey = to_grey(onset_crop).astype(np.float32)

    def flow_to(crop: np.ndarray) -> np.ndarray:
        grey = to_grey(crop)
        if cfg.compensation == "register":
            grey = match_exposure(onset_grey, grey, stable)
        return compute_flow(onset_grey, grey, cfg.flow)

    t = time.perf_counter()
    raw = flow_to(apex_crop)
    timings["flow"] = time.perf_counter() - t

    t = time.perf_counter()
    flow, residual = compensate(raw, crop_lm.points68, cfg.compensation, stable)
    head = registration.matrix @ residual
    flow = np.where(face[..., None], flow, 0).astype(np.float32)
    timings["compensation"] = time.perf_counter() - t

    t = time.perf_counter()
    masks = face_region_masks(crop_lm.points68, face)
    estimates: dict[str, float] = {}
    stable_floor = noise_from_stable(flow, stable, crop_lm.points68)
    if stable_floor is not None:
        estimates["stable area"] = stable_floor
    if null_frame is not None and cfg.noise == "auto":
        _, null_crop, _ = crops(null_frame, None)
        null_flow, _ = compensate(flow_to(null_crop), crop_lm.points68, cfg.compensation, stable)
        null = noise_from_regions(np.where(face[..., None], null_flow, 0), masks)
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
    head_motion = describe(head, tuple(crop_lm.points68[face_mod.NOSE_TIP_68]))
    if abs(head_motion["rotation"]) > 3 or abs(head_motion["scale"] - 1) > 0.03:
        warnings.append("The head moved noticeably between onset and apex; compensation may leave residual motion.")
    clip = clip or Clip(source="<frames>", onset_frame=onset, apex_frame=apex, onset=0, apex=1)
    return MotionAnalysis(
        clip=clip, landmarks=landmarks, crop=box, crop_landmarks=crop_lm, onset_crop=onset_crop, apex_crop=apex_crop,
        field=MotionField(flow=flow, raw_flow=flow + displacement(head, shape), method=cfg.flow,
                          compensation=cfg.compensation, head_motion=head_motion, face_mask=face, noise_px=noise,
                          noise_source=source, noise_estimates=estimates, registration=registration.method),
        mmc_map=colour_map, mmc_mode=cfg.mode, regions=regions, timings=timings,
        backends={"landmarks": cfg.landmarks, "flow": cfg.flow, "compensation": cfg.compensation, "mmc": cfg.mode},
        warnings=clip.warnings + warnings, apex_landmarks=apex_lm,
    )


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

    def face_box(frame: np.ndarray) -> tuple[int, int, int, int]:
        box = face_mod.crop_box(face_mod.detect_face(frame, cfg.landmarks), cfg.size, cfg.margin)
        return box.x0, box.y0, box.x1, box.y1

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
    analysis = analyze_frames(clip.onset_frame, clip.apex_frame, cfg, clip, null_frame)
    analysis.timings = {"load": load_time, **analysis.timings}
    analysis.timings["total"] = sum(analysis.timings.values())
    return analysis
