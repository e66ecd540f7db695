"""Typed values that pass between the stages (the stages of the README's tour).

Conventions: images are RGB `uint8` arrays of shape (H, W, 3); points are float (x, y) pixels with y down;
flow is float32 (H, W, 2) holding (dx, dy) in pixels of the working-size crop; sides are the **person's**
("L" = person's left = image right).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.au import AU


@dataclass
class Clip:
    """The two frames the analysis compares, plus what is known about where they came from.

    Long videos are never held in memory: only onset, apex (and offset when given) frames are kept, together with
    the per-frame motion curve used to spot the apex. The offset frame is where the expression has gone; the motion
    core cancels slow drift with it (`assistant.motion.drift`).
    """

    source: str
    onset_frame: np.ndarray
    apex_frame: np.ndarray
    onset: int
    apex: int
    offset: int | None = None
    n_frames: int = 2
    fps: float | None = None
    apex_spotted: bool = False  # True when the apex was found automatically
    apex_found: bool = True  # False when spotting found no frame above the noise (the apex is then only a guess)
    motion_curve: np.ndarray | None = None  # per scored frame: face change against the local baseline (SNR)
    curve_frames: np.ndarray | None = None  # frame indices of `motion_curve`
    warnings: list[str] = field(default_factory=list)
    offset_frame: np.ndarray | None = None  # RGB, when the offset is given and lies after the apex


@dataclass
class FaceLandmarks:
    """Landmarks of one face on one image (pixel coordinates of that image)."""

    points: np.ndarray  # (N, 2): 478 for mediapipe, 68 for dlib
    points68: np.ndarray  # (68, 2) iBUG 68-point layout
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 tight around the points
    image_size: tuple[int, int]  # (width, height)
    backend: str
    n_faces: int = 1
    # MediaPipe's 52 expression scores (0..1) from the same landmarker call, keyed by MediaPipe's own names; their
    # Left/Right is the person's side (checked in tests/test_blendshapes.py). None for backends without them (dlib).
    blendshapes: dict[str, float] | None = None
    # Depth of each of `points`, px toward the camera on the same scale as x (MediaPipe's z, which grows away from the
    # camera in units of the image width, negated and scaled); a rigid head turn moves a point in proportion to it.
    # None for backends without depth (dlib): 3-D head-motion compensation is then unavailable.
    depth: np.ndarray | None = None
    # MediaPipe's facial transformation matrix (4x4, canonical face model -> camera space, cm); None without it.
    pose: np.ndarray | None = None

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> FaceLandmarks:
        """Landmarks after a crop (`dx`, `dy` offsets removed) and a resize (`sx`, `sy`); depth scales with x."""
        def tf(p: np.ndarray) -> np.ndarray:
            return np.stack([(p[:, 0] - dx) * sx, (p[:, 1] - dy) * sy], axis=1)

        x0, y0, x1, y1 = self.box
        return FaceLandmarks(
            points=tf(self.points), points68=tf(self.points68),
            box=((x0 - dx) * sx, (y0 - dy) * sy, (x1 - dx) * sx, (y1 - dy) * sy),
            image_size=self.image_size, backend=self.backend, n_faces=self.n_faces, blendshapes=self.blendshapes,
            depth=None if self.depth is None else self.depth * sx, pose=self.pose,
        )


@dataclass(frozen=True)
class CropBox:
    """Square box in source-frame pixels, applied to both frames, then resized to `size` x `size`."""

    x0: int
    y0: int
    x1: int
    y1: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / float(self.x1 - self.x0)


@dataclass
class MotionField:
    flow: np.ndarray  # (H, W, 2) float32, head motion removed
    raw_flow: np.ndarray  # (H, W, 2) float32 before compensation
    method: str  # "tvl1" | "dis"
    compensation: str  # "register" | "register2d" | "similarity" | "nose" | "none"
    # tx, ty (px at the nose tip), rotation (deg, in the image plane), scale; with the rigid3d head model also pitch,
    # yaw and roll (deg; pitch > 0: the head nods down, yaw > 0: the nose turns towards the image's right, roll =
    # rotation)
    head_motion: dict[str, float] = field(default_factory=dict)
    face_mask: np.ndarray | None = None  # (H, W) bool: inside the face, the eyes' openings left out unless
    # MotionConfig.eyes is "read"; flow 0 outside
    noise_px: float = 0.0  # per-axis spread of a region's mean vector under no expression (assistant.motion.noise)
    noise_source: str = ""  # "null pair" | "stable area" | "default": which estimate set the floor
    noise_estimates: dict[str, float] = field(default_factory=dict)  # every estimate made, px
    registration: str = "none"  # how the apex face was registered onto the onset face before the flow
    head_model: str = "similarity"  # "similarity" | "rigid3d" (assistant.motion.register)
    # with an offset frame (assistant.motion.drift): share, stillness_px, cancelled_stillness_px (median motion over
    # the face before and after the cancellation) and cancelled (1.0 when the cancelled field was kept); else empty
    drift: dict[str, float] = field(default_factory=dict)


@dataclass
class RegionMotion:
    region: str  # e.g. "inner_brow" (facs.REGION_NAMES)
    side: str | None  # person's "L"/"R", None for midline regions
    dx: float
    dy: float
    mean_magnitude: float
    max_magnitude: float
    direction: str  # "up", "up-right", ... in image coordinates (as the colour legend)
    colour: str  # legend colour name of that direction
    intensity: str  # "none" | "weak" | "moderate" | "strong"
    coherence: float  # |mean vector| / mean magnitude, 0..1: 1 = all pixels move the same way
    n_pixels: int = 0
    snr: float = 0.0  # |mean vector| / the analysis' noise floor

    @property
    def motion_px(self) -> float:
        """Coherent motion: the length of the region's mean vector (noise averages out of it, muscle motion not)."""
        return float(np.hypot(self.dx, self.dy))

    def moved(self, dx: float, dy: float) -> RegionMotion:
        """The row with another mean vector (what is left of the motion once part of it is attributed elsewhere),
        its SNR on the same noise floor."""
        before, after = math.hypot(self.dx, self.dy), math.hypot(dx, dy)
        return dataclasses.replace(self, dx=float(dx), dy=float(dy),
                                   snr=self.snr * after / before if before > 0 else 0.0)

    @property
    def label(self) -> str:
        from assistant.facs import region_label

        return region_label(self.region, self.side)

    def to_dict(self) -> dict:
        return {
            "region": self.region, "side": self.side, "label": self.label,
            "dx": round(self.dx, 4), "dy": round(self.dy, 4),
            "mean_magnitude": round(self.mean_magnitude, 4), "max_magnitude": round(self.max_magnitude, 4),
            "direction": self.direction, "colour": self.colour, "intensity": self.intensity,
            "coherence": round(self.coherence, 4), "n_pixels": self.n_pixels,
            "motion_px": round(self.motion_px, 4), "snr": round(self.snr, 2),
        }


@dataclass
class MotionAnalysis:
    clip: Clip
    landmarks: FaceLandmarks  # on the onset frame, in source-frame pixels
    crop: CropBox
    crop_landmarks: FaceLandmarks  # the same landmarks in working-size crop pixels
    onset_crop: np.ndarray  # (size, size, 3) RGB
    apex_crop: np.ndarray
    field: MotionField
    mmc_map: np.ndarray  # (size, size, 3) RGB
    mmc_mode: str
    regions: list[RegionMotion]
    timings: dict[str, float] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    apex_landmarks: FaceLandmarks | None = None  # on the apex frame (source-frame pixels), when registration ran

    def moving_regions(self) -> list[RegionMotion]:
        return [r for r in self.regions if r.intensity != "none"]


@dataclass(frozen=True)
class EvidenceSource:
    """One measurement an AU's probability rests on, so the app and the reasoner can say why an AU was reported."""

    kind: str  # "flow" (a region of the motion table) | "blendshape" (a MediaPipe expression score) | "landmarks"
    name: str  # region label such as "left mouth corner", or a blendshape name such as "mouthSmileLeft"
    # flow: the region's mean motion (px at the working crop); blendshape: apex - onset score change; landmarks: the
    # relative change of a landmark measure (the upper lid's height above the eye's corners, -0.6 = 60 % lower)
    value: float
    side: str | None = None  # the person's side the measurement belongs to
    region: str | None = None  # flow: the region's id (facs.REGION_NAMES), for wording in other languages

    def describe(self) -> str:
        if self.kind == "blendshape":
            return f"blendshape {self.name} {self.value:+.2f}"
        if self.kind == "landmarks":
            return f"the {self.name} {abs(self.value):.0%} {'lower' if self.value < 0 else 'higher'} (landmarks)"
        return f"flow in the {self.name} ({self.value:.2f} px)"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "value": round(float(self.value), 4), "side": self.side,
                "region": self.region}


@dataclass(frozen=True)
class AUScore:
    code: int
    probability: float
    side: str | None = None
    sources: tuple[EvidenceSource, ...] = ()  # strongest first; empty when the backend cannot tell (learned models)


@dataclass
class AUEvidence:
    scores: list[AUScore]
    backend: str
    threshold: float = 0.5
    # explaining away (`assistant.au.explaining_away`): region label -> the named AU that took the most motion out of
    # it before the AUs after it were scored; empty for detectors that score AUs independently
    explained: dict[str, int] = field(default_factory=dict)

    def active(self, threshold: float | None = None) -> list[AUScore]:
        t = self.threshold if threshold is None else threshold
        return sorted((s for s in self.scores if s.probability >= t), key=lambda s: -s.probability)

    def probability(self, code: int) -> float:
        return next((s.probability for s in self.scores if s.code == code), 0.0)


@dataclass
class Answer:
    aus: list[AU]
    emotion: str | None
    reasoning: str
    text: str  # the raw text shown to the user (or generated by the model)
    backends: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    parse_status: str = "ok"  # "ok" | "inferred" | "unparsable"


PathLike = str | Path
