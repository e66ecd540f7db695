"""The motion core: a clip in, the MMC map and the region motion table out.

Order of work: onset frame -> landmarks -> one crop box -> both frames cropped and resized to the working size ->
flow -> head-motion compensation -> map -> regions. Cropping first makes TV-L1 run on the face only (the published
recipe runs it on the whole frame) and makes every pixel threshold mean the same thing on every dataset.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.motion import face as face_mod
from assistant.motion.clip import ClipLimits, load_clip
from assistant.motion.flow import COMPENSATIONS, FLOW_METHODS, compensate, compute_flow
from assistant.motion.mmc import FLOOR_PX, FULL_SCALE_PX, MMC_MODES, mmc_map
from assistant.motion.regions import region_motion
from assistant.types import Clip, MotionAnalysis, MotionField

log = logging.getLogger(__name__)

MIN_SIZE = 64  # px; below this the regions are a few pixels wide
SMALL_FACE_PX = 80  # faces narrower than this in the source frame get a warning: sub-pixel motion is lost


@dataclass
class MotionConfig:
    landmarks: str = field(default="mediapipe", metadata={"help": "landmark backend", "choices": ["mediapipe", "dlib"]})
    flow: str = field(default="tvl1", metadata={"help": "optical flow method", "choices": list(FLOW_METHODS)})
    compensation: str = field(default="similarity", metadata={"help": "head-motion compensation",
                                                              "choices": list(COMPENSATIONS)})
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
                   clip: Clip | None = None) -> MotionAnalysis:
    """Analyse an onset/apex pair of RGB frames."""
    cfg = config or MotionConfig()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    landmarks = face_mod.detect_face(onset, cfg.landmarks)
    timings["landmarks"] = time.perf_counter() - t

    t = time.perf_counter()
    box = face_mod.crop_box(landmarks, cfg.size, cfg.margin)
    onset_crop, apex_crop = face_mod.apply_crop(onset, box), face_mod.apply_crop(apex, box)
    crop_lm = face_mod.landmarks_in_crop(landmarks, box)
    timings["crop"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = compute_flow(onset_crop, apex_crop, cfg.flow)
    timings["flow"] = time.perf_counter() - t

    t = time.perf_counter()
    flow, head = compensate(raw, crop_lm.points68, cfg.compensation)
    timings["compensation"] = time.perf_counter() - t

    t = time.perf_counter()
    colour_map = mmc_map(onset_crop, flow, cfg.mode, full_scale_px=cfg.full_scale_px)
    timings["map"] = time.perf_counter() - t

    t = time.perf_counter()
    regions = region_motion(flow, crop_lm.points68)
    timings["regions"] = time.perf_counter() - t

    warnings = []
    face_px = landmarks.box[2] - landmarks.box[0]
    if face_px < SMALL_FACE_PX:
        warnings.append(f"The face is only {face_px:.0f} px wide; motion of a fraction of a pixel cannot be measured "
                        "reliably on so small a face, so read the result with care (150 px or more is best).")
    if landmarks.n_faces > 1:
        warnings.append(f"{landmarks.n_faces} faces were found; the largest one was analysed.")
    if abs(head.get("rotation", 0.0)) > 3 or abs(head.get("scale", 1.0) - 1) > 0.03:
        warnings.append("The head moved noticeably between onset and apex; compensation may leave residual motion.")
    clip = clip or Clip(source="<frames>", onset_frame=onset, apex_frame=apex, onset=0, apex=1)
    return MotionAnalysis(
        clip=clip, landmarks=landmarks, crop=box, crop_landmarks=crop_lm, onset_crop=onset_crop, apex_crop=apex_crop,
        field=MotionField(flow=flow, raw_flow=raw, method=cfg.flow, compensation=cfg.compensation, head_motion=head),
        mmc_map=colour_map, mmc_mode=cfg.mode, regions=regions, timings=timings,
        backends={"landmarks": cfg.landmarks, "flow": cfg.flow, "compensation": cfg.compensation, "mmc": cfg.mode},
        warnings=clip.warnings + warnings,
    )


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
    analysis = analyze_frames(clip.onset_frame, clip.apex_frame, cfg, clip)
    analysis.timings = {"load": load_time, **analysis.timings}
    analysis.timings["total"] = sum(analysis.timings.values())
    return analysis
