"""Synthetic micro-expressions: real face photos warped by AU-shaped displacement fields over time.

The licensed datasets are absent on the build machines, so tests, demos and benchmarks use clips made here. A
subject is a public-domain face photo (scikit-image's astronaut, matplotlib's Grace Hopper sample, or a user's
folder) with its landmarks; `render_clip` places it on a canvas and moves the regions that `assistant.facs.FACS`
names for each AU, in the direction `facs.image_direction` gives, with a Gaussian falloff sized to the face.

Units: `amplitude_px` and the head motion translation are pixels *at the working crop* (the 256 px crop that
`assistant.motion.face.crop_box` takes with its default margin), so "1.5 px" means what the motion core will measure;
`SynthClip.frame_px_per_crop_px` converts to frame pixels.

Warping: frames are made by backward warping (`cv2.remap`) with the inverse of the forward displacement field
`D`. The inverse `u` solves `u(y) = D(y - u(y))`; two fixed-point steps, `u <- D(y - u)` from `u = D`, leave an error of
order |D| |grad D|^3, a few hundredths of a pixel at micro amplitudes; at a region centre (where grad D = 0) the
content moves by exactly the commanded vector. Region centres and sizes come from `assistant.motion.regions`, so the
generator moves the same regions the motion table measures.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from assistant.au import AU
from assistant.facs import FACS, MIDLINE_REGIONS, image_direction
from assistant.motion.gaze import eye_openings
from assistant.motion.regions import region_ellipses
from assistant.types import FaceLandmarks
from instruction_data.shading import Light, face_normals, light_ratio, shade
from instruction_data.world_v2 import V2Draw

log = logging.getLogger(__name__)

WORK_CROP = 256  # the working size amplitudes refer to
CROP_MARGIN = 0.15  # assistant.motion.face.crop_box's default margin

# Gaussian falloff: sigma = SIGMA_FRACTION x the mean radius of the region's ellipse in assistant.motion.regions (which
# sizes regions by the inter-ocular distance d), never below SIGMA_FLOOR x d so the field stays smooth to invert.
SIGMA_FRACTION = 0.85
SIGMA_FLOOR = 0.1
MIDLINE_WEIGHT_SIDED = 0.5  # a one-sided AU moves the shared midline regions half as much


@dataclass(frozen=True, eq=False)
class SubjectFace:
    """One synthetic person: a face picture (with some context around it) and its landmarks on that picture."""

    id: str
    image: np.ndarray  # RGB uint8
    landmarks: FaceLandmarks
    source: str  # the photo it came from
    face_scale: float = 1.0  # relative face size on the canvas
    background: tuple[int, int, int] = (90, 90, 90)


@dataclass(frozen=True)
class TemplateJitter:
    """How one region action of one AU departs from the FACS table, so detectors are not scored on their own table."""

    offset_iod: tuple[float, float] = (0.0, 0.0)  # region centre shift (image x, y) in inter-ocular distances
    angle_deg: float = 0.0  # direction rotated in the image (positive = clockwise on screen, y down)
    size: float = 1.0  # Gaussian falloff scaled by this


@dataclass(frozen=True, eq=False)
class AUMotion:
    """One AU of a clip with its own peak amplitude (crop px at the primary region) and template jitter."""

    au: AU
    amplitude_px: float
    jitter: Mapping[tuple[str, str | None], TemplateJitter] = field(default_factory=dict)  # (region, side) -> jitter


@dataclass(frozen=True)
class RegionMove:
    """One Gaussian bump of the forward displacement field, in the pixels of the image it was built for."""

    au: AU
    region: str
    side: str | None
    centre: tuple[float, float]
    sigma: float
    vector: tuple[float, float]  # displacement at the centre at full strength (dx, dy)


@dataclass
class SynthSpec:
    subject: SubjectFace | int = 0  # an int picks make_subjects(index + 1, seed=0)[index]
    aus: Sequence[AU | str | int] = ()  # AU objects, sheet strings such as "R12", or codes
    amplitude_px: float = 1.5  # peak displacement at the working crop (0.5-3 is micro-expression range)
    n_frames: int = 30
    onset: int | None = None  # default n_frames // 10
    apex: int | None = None  # default 40 % of the clip
    offset: int | None = None  # default 80 % of the clip
    head_translation_px: tuple[float, float] = (0.0, 0.0)  # (dx, dy) drift reached at the last frame, crop px
    head_rotation_deg: float = 0.0  # rotation drift reached at the last frame (positive = image counter-clockwise)
    head_jitter_px: float = 0.0  # per-frame random translation (std, crop px) on top of the drift
    head_jitter_deg: float = 0.0  # per-frame random rotation (std, degrees)
    noise_sigma: float = 1.0  # Gaussian sensor noise, grey levels
    illumination_drift: float = 0.0  # relative brightness change reached at the last frame (0.05 = +5 %)
    frame_size: tuple[int, int] = (640, 480)  # (width, height)
    face_height_frac: float = 0.5  # face height (landmark box) as a fraction of the frame height
    fps: float = 200.0
    seed: int = 0
    motions: Sequence[AUMotion] = ()  # when given, replaces `aus` and `amplitude_px`: per-AU amplitude and jitter
    head_zoom: float = 0.0  # relative scale change reached at the last frame (0.01 = 1 % larger)
    head_jitter_zoom: float = 0.0  # per-frame random relative scale (std)
    blinks: Sequence[tuple[int, int]] = ()  # (first, last) frame of each blink: the lids close, then reopen
    blink_depth: float = 0.7  # share of the eye opening the upper lid travels at the middle of a blink
    jpeg_quality: int | None = None  # encode and decode each frame as JPEG at this quality
    noise_table: bool = False  # draw the noise from a 256-level Gaussian table: 4x faster, same spread
    static_background: bool = False  # the head moves over a still background (else the whole picture moves)
    world_v2: V2Draw | None = None  # world v2's additions (instruction_data.world_v2); None renders world v1
    light: Light | None = None  # with world_v2: the light stays while the head turns (world v3)


@dataclass
class SynthClip:
    frames: list[np.ndarray]  # RGB uint8, frame_size
    aus: list[AU]
    onset: int
    apex: int
    offset: int
    subject_id: str
    landmarks: FaceLandmarks  # on frame 0, exact (transformed from the subject's detected landmarks)
    fps: float
    frame_px_per_crop_px: float  # multiply crop pixels by this to get frame pixels
    strength: np.ndarray  # per frame, 0..1 AU time course
    head_poses: list[tuple[float, float, float]] = field(default_factory=list)  # per frame (tx, ty) frame px, deg
    region_centres: dict[tuple[str, str | None], tuple[float, float]] = field(default_factory=dict)  # frame 0 px
    amplitudes_px: list[float] = field(default_factory=list)  # per AU (same order as `aus`), crop px
    moves: list[RegionMove] = field(default_factory=list)  # the bumps applied, frame 0 px, full strength
    head_zooms: list[float] = field(default_factory=list)  # per frame relative scale change
    head_translation_px: tuple[float, float] = (0.0, 0.0)  # drift at the last frame, crop px
    head_rotation_deg: float = 0.0
    head_zoom: float = 0.0
    blinks: list[tuple[int, int]] = field(default_factory=list)
    blink_strength: np.ndarray | None = None  # per frame, 0..1 lid closure
    noise_sigma: float = 0.0
    illumination_drift: float = 0.0
    jpeg_quality: int | None = None
    split: str = ""  # the realistic world's split ("calibration" / "benchmark"); empty for the easy world
    world: str = "v1"  # "v2" with world v2's additions, "v3" with v2's and the light that stays
    head_turns: list[tuple[float, float]] = field(default_factory=list)  # v2: per frame (pitch, yaw), degrees
    coupled: list[dict] = field(default_factory=list)  # v2: [{au, region, side, px}] skin an AU drags (crop px)

    @property
    def is_null(self) -> bool:
        return not self.aus


def _as_au(a: AU | str | int) -> AU:
    if isinstance(a, AU):
        return a
    return AU.parse(str(a))


def default_photos() -> list[tuple[str, np.ndarray]]:
    """The public-domain faces shipped inside scikit-image and matplotlib."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.array(Image.open(f).convert("RGB"))
    return [("astronaut", data.astronaut()), ("grace_hopper", hopper)]


def load_photos(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Every readable image in `folder` (natural order), for subjects made from a user's own face photos."""
    from assistant.errors import UnreadableClipError
    from assistant.motion.clip import frame_files, read_image

    paths = frame_files(Path(folder))
    if not paths:
        raise UnreadableClipError(f"No face photos (JPEG, PNG, ...) in {folder}.")
    return [(p.stem, read_image(p)) for p in paths]


def _gamma_lut(gamma: float, gains: np.ndarray) -> list[np.ndarray]:
    x = np.arange(256, dtype=np.float64) / 255.0
    return [np.clip(255.0 * g * x ** gamma, 0, 255).astype(np.uint8) for g in gains]


def _make_subject(k: int, name: str, photo: np.ndarray, n_photos: int, seed: int) -> SubjectFace:
    from assistant.motion.face import detect_face

    rng = np.random.default_rng([seed, k])
    mirror = (k // n_photos) % 2 == 1
    stretch = float(rng.uniform(0.9, 1.1))  # anisotropic scaling: a wider or narrower face
    gamma = float(rng.uniform(0.8, 1.25))
    gains = rng.uniform(0.88, 1.12, size=3)
    face_scale = float(rng.uniform(0.88, 1.08))
    background = tuple(int(v) for v in rng.integers(40, 200, size=3))

    lm = detect_face(photo)
    x0, y0, x1, y1 = lm.box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = 0.95 * side  # keep hair, ears and neck around the face
    h, w = photo.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    c, d = int(min(w, cx + half)), int(min(h, cy + half))
    image = photo[b:d, a:c]
    image = cv2.resize(image, None, fx=stretch, fy=1.0, interpolation=cv2.INTER_CUBIC)
    if mirror:
        image = image[:, ::-1]
    luts = _gamma_lut(gamma, gains)
    image = np.ascontiguousarray(np.stack([luts[ch][image[:, :, ch]] for ch in range(3)], axis=2))
    landmarks = detect_face(image)  # re-detected so mirrored subjects keep the person's sides right
    tag = f"{name}{'-m' if mirror else ''}"
    return SubjectFace(id=f"s{k + 1:02d}-{tag}", image=image, landmarks=landmarks, source=name,
                       face_scale=face_scale, background=background)


@functools.lru_cache(maxsize=8)
def _default_subjects(n: int, seed: int) -> tuple[SubjectFace, ...]:
    photos = default_photos()
    return tuple(_make_subject(k, name, img, len(photos), seed) for k, (name, img) in
                 ((k, photos[k % len(photos)]) for k in range(n)))


def make_subjects(n: int, seed: int = 0, photos: list[tuple[str, np.ndarray]] | None = None) -> list[SubjectFace]:
    """`n` distinct people from the photos: mirroring, face width, colour and gamma, size on the canvas.

    Subject k depends only on (seed, k), so asking for more subjects keeps the first ones unchanged.
    """
    if n < 1:
        raise ValueError("make_subjects needs n >= 1")
    if photos is None:
        return list(_default_subjects(n, seed))
    return [_make_subject(k, photos[k % len(photos)][0], photos[k % len(photos)][1], len(photos), seed)
            for k in range(n)]


def time_course(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """0 up to onset, a raised-cosine rise to 1 at apex, a raised-cosine fall back to 0 at offset."""
    i = np.arange(n_frames, dtype=np.float64)
    s = np.zeros(n_frames)
    rise = (i > onset) & (i <= apex)
    s[rise] = 0.5 - 0.5 * np.cos(math.pi * (i[rise] - onset) / max(apex - onset, 1))
    fall = (i > apex) & (i < offset)
    s[fall] = 0.5 + 0.5 * np.cos(math.pi * (i[fall] - apex) / max(offset - apex, 1))
    return s


def region_centres(points68: np.ndarray) -> dict[tuple[str, str | None], tuple[float, float]]:
    return {key: (float(c[0]), float(c[1])) for key, (c, _, _) in region_ellipses(points68).items()}


def _sigmas(points68: np.ndarray) -> dict[tuple[str, str | None], float]:
    d = float(np.linalg.norm(points68[42:48].mean(axis=0) - points68[36:42].mean(axis=0)))
    return {key: max(SIGMA_FRACTION * (rx + ry) / 2, SIGMA_FLOOR * d)
            for key, (_, rx, ry) in region_ellipses(points68).items()}


def _inter_ocular(points68: np.ndarray) -> float:
    return float(np.linalg.norm(points68[42:48].mean(axis=0) - points68[36:42].mean(axis=0)))


def _rotate(v: np.ndarray, angle_deg: float) -> np.ndarray:
    if not angle_deg:
        return v
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def au_moves(points68: np.ndarray, motions: Sequence[AUMotion], scale: float = 1.0) -> list[RegionMove]:
    """The Gaussian bumps the FACS table (bent by each motion's jitter) asks for; `scale` = image px per crop px.

    A sided AU moves only that side's regions (midline ones at half weight); AUs the table lacks (and unreadable
    codes) add nothing and are logged.
    """
    centres, sigmas = region_centres(points68), _sigmas(points68)
    d = _inter_ocular(points68)
    moves = []
    for m in motions:
        au = m.au
        if au.code not in FACS:
            log.debug("AU %s has no FACS motion entry; it adds no motion", au)
            continue
        amplitude = m.amplitude_px * scale
        for action in FACS[au.code].actions:
            midline = action.region in MIDLINE_REGIONS
            sides = [None] if midline else ([au.side] if au.side else ["L", "R"])
            for side in sides:
                jit = m.jitter.get((action.region, side), TemplateJitter())
                weight = action.weight * (MIDLINE_WEIGHT_SIDED if midline and au.side else 1.0)
                direction = _rotate(image_direction(action, side), jit.angle_deg)
                cx, cy = centres[(action.region, side)]
                if jit.offset_iod != (0.0, 0.0):
                    cx, cy = cx + jit.offset_iod[0] * d, cy + jit.offset_iod[1] * d
                moves.append(RegionMove(au, action.region, side, (cx, cy), sigmas[(action.region, side)] * jit.size,
                                        (amplitude * weight * direction[0], amplitude * weight * direction[1])))
    return moves


def field_from_moves(moves: Sequence[RegionMove], size: tuple[int, int]) -> np.ndarray:
    """Forward displacement (H, W, 2) float32: the sum of the moves' Gaussian bumps."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w, 2), np.float32)
    for mv in moves:
        cx, cy = mv.centre
        r = 3.5 * mv.sigma  # compute the Gaussian on a window only: it is ~0 beyond
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        g = np.exp(-((xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2) / (2 * mv.sigma ** 2))
        out[y0:y1, x0:x1, 0] += mv.vector[0] * g
        out[y0:y1, x0:x1, 1] += mv.vector[1] * g
    return out


def gaze_field(points68: np.ndarray, size: tuple[int, int], vector: tuple[float, float]) -> np.ndarray:
    """Forward displacement (H, W, 2) float32 of a gaze shift: `vector` (frame px) inside both eyes' openings (their
    six landmarks' polygons), 0 elsewhere, so the eyes slide under still lids."""
    w, h = size
    out = np.zeros((h, w, 2), np.float32)
    out[eye_openings(points68, (h, w), margin=0.0)] = vector
    return out


def displacement_field(points68: np.ndarray, aus: Sequence[AU], amplitude: float,
                       size: tuple[int, int]) -> np.ndarray:
    """Forward displacement (H, W, 2) float32 at full strength, in the pixels of the image `points68` lives in.

    Each FACS region action adds `amplitude * weight * direction` with a Gaussian falloff around the region
    centre (see `au_moves`).
    """
    return field_from_moves(au_moves(points68, [AUMotion(au, amplitude) for au in aus]), size)


def blink_moves(points68: np.ndarray, depth: float) -> list[RegionMove]:
    """Both upper lids down by `depth` x the eye opening, the lower lids up a little: a blink at its deepest."""
    centres, sigmas = region_centres(points68), _sigmas(points68)
    p = np.asarray(points68, dtype=np.float64)
    opening = float(np.mean([np.linalg.norm(p[a] - p[b]) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46))]))
    blink = AU(43, raw="43")
    moves = []
    for side in ("L", "R"):
        moves.append(RegionMove(blink, "upper_eyelid", side, centres[("upper_eyelid", side)],
                                sigmas[("upper_eyelid", side)], (0.0, depth * opening)))
        moves.append(RegionMove(blink, "lower_eyelid", side, centres[("lower_eyelid", side)],
                                sigmas[("lower_eyelid", side)], (0.0, -0.15 * depth * opening)))
    return moves


def blink_course(n_frames: int, blinks: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per frame lid closure 0..1: a raised cosine from each blink's first frame to its last."""
    b = np.zeros(n_frames)
    i = np.arange(n_frames, dtype=np.float64)
    for first, last in blinks:
        inside = (i >= first) & (i <= last)
        b[inside] = np.maximum(b[inside], 0.5 - 0.5 * np.cos(2 * math.pi * (i[inside] - first) / max(last - first, 1)))
    return b


def _place(subject: SubjectFace, spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, FaceLandmarks]:
    """The subject on a canvas of the frame size (face centred) as float32, plus the affine used."""
    w, h = spec.frame_size
    x0, y0, x1, y1 = subject.landmarks.box
    scale = spec.face_height_frac * h * subject.face_scale / max(y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[scale, 0, w / 2 - scale * cx], [0, scale, h / 2 - scale * cy]], np.float64)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    canvas = cv2.warpAffine(subject.image, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=subject.background)
    lm = subject.landmarks.scaled(scale, scale, -w / (2 * scale) + cx, -h / (2 * scale) + cy)
    lm = dataclasses.replace(lm, image_size=(w, h), blendshapes=None)
    return canvas.astype(np.float32), m, lm


def _resolve_frames(spec: SynthSpec) -> tuple[int, int, int]:
    n = spec.n_frames
    onset = n // 10 if spec.onset is None else spec.onset
    apex = int(round(0.4 * (n - 1))) if spec.apex is None else spec.apex
    offset = int(round(0.8 * (n - 1))) if spec.offset is None else spec.offset
    if not 0 <= onset < apex < offset < n:
        raise ValueError(f"need 0 <= onset < apex < offset < n_frames, got {onset}, {apex}, {offset}, {n}")
    return onset, apex, offset


def _remap_field(d: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    return cv2.remap(d, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# Standard normal quantiles at the centres of 256 equal-probability bins (std 0.997): noise from one random byte.
_GAUSS_TABLE = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


def _sample(fields: list[tuple[float, np.ndarray]], mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """sum(weight x field) sampled at the map (mx, my)."""
    return sum(wt * _remap_field(f, mx, my) for wt, f in fields)


def head_mask(lm: FaceLandmarks, size: tuple[int, int]) -> np.ndarray:
    """Soft (H, W) float32 outline of the head: an ellipse from above the brows (forehead, hair) to below the chin,
    feathered over about a twentieth of the face height so the moving head blends into the still background."""
    w, h = size
    x0, y0, x1, y1 = lm.box
    fw, fh = x1 - x0, y1 - y0
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(round((x0 + x1) / 2)), int(round(y0 + 0.4 * fh))),
                (int(round(0.62 * fw)), int(round(0.78 * fh))), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), 0.05 * fh)


def _window(head: np.ndarray, roi: tuple[slice, slice] | None, margin: float) -> tuple[slice, slice]:
    """The frame window a moving head can change: the head outline's support and the local fields' `roi`, widened."""
    h, w = head.shape
    rows, cols = np.nonzero(head > 1e-3)
    y0, y1, x0, x1 = rows.min() - margin, rows.max() + 1 + margin, cols.min() - margin, cols.max() + 1 + margin
    if roi:
        y0, y1 = min(y0, roi[0].start), max(y1, roi[0].stop)
        x0, x1 = min(x0, roi[1].start), max(x1, roi[1].stop)
    return (slice(max(0, int(y0)), min(h, int(math.ceil(y1)))), slice(max(0, int(x0)), min(w, int(math.ceil(x1)))))


def _support(moves: Sequence[RegionMove], size: tuple[int, int], margin: float) -> tuple[slice, slice] | None:
    """The frame window (rows, columns) outside which every move's bump is zero, widened by `margin` px."""
    if not moves:
        return None
    w, h = size
    x0 = min(mv.centre[0] - 3.5 * mv.sigma for mv in moves) - margin
    x1 = max(mv.centre[0] + 3.5 * mv.sigma for mv in moves) + margin
    y0 = min(mv.centre[1] - 3.5 * mv.sigma for mv in moves) - margin
    y1 = max(mv.centre[1] + 3.5 * mv.sigma for mv in moves) + margin
    cols = slice(max(0, int(x0)), min(w, int(math.ceil(x1)) + 1))
    rows = slice(max(0, int(y0)), min(h, int(math.ceil(y1)) + 1))
    if cols.start >= cols.stop or rows.start >= rows.stop:
        return None
    return rows, cols


def render_clip(spec: SynthSpec, only: Sequence[int] | None = None) -> SynthClip:
    """Render the frames of one clip. Deterministic in `spec` (jitter comes from `spec.seed`, each frame's noise from
    (`spec.seed`, frame index)). `only`: render just these frame indices (the others are None in `frames`), for
    measurements that need the onset and apex alone; the rendered frames are the same as in a full render."""
    subject = spec.subject if isinstance(spec.subject, SubjectFace) else make_subjects(spec.subject + 1)[spec.subject]
    motions = list(spec.motions) or [AUMotion(_as_au(a), spec.amplitude_px) for a in spec.aus]
    aus = [m.au for m in motions]
    onset, apex, offset = _resolve_frames(spec)
    n = spec.n_frames
    rng = np.random.default_rng(spec.seed)
    w, h = spec.frame_size

    canvas, _, lm = _place(subject, spec)
    x0, y0, x1, y1 = lm.box
    crop_side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
    px = crop_side / WORK_CROP  # frame px per crop px
    moves = au_moves(lm.points68, motions, px)
    base = field_from_moves(moves, (w, h))
    strength = time_course(n, onset, apex, offset)
    closure = blink_course(n, spec.blinks)
    blink = field_from_moves(blink_moves(lm.points68, spec.blink_depth), (w, h)) if spec.blinks else None
    v2 = _world_v2(spec, lm, motions, moves, base, px) if spec.world_v2 is not None else None

    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    ramp = np.arange(n) / max(n - 1, 1)
    tx = spec.head_translation_px[0] * px * ramp + rng.normal(0, spec.head_jitter_px * px, n)
    ty = spec.head_translation_px[1] * px * ramp + rng.normal(0, spec.head_jitter_px * px, n)
    rot = spec.head_rotation_deg * ramp + rng.normal(0, spec.head_jitter_deg, n)
    zoom = spec.head_zoom * ramp
    if spec.head_jitter_zoom:
        zoom = zoom + rng.normal(0, spec.head_jitter_zoom, n)
    if spec.head_jitter_px or spec.head_jitter_deg or spec.head_jitter_zoom:  # frame 0 is the reference pose
        tx, ty, rot, zoom = tx - tx[0], ty - ty[0], rot - rot[0], zoom - zoom[0]

    # The head moves the whole frame (one affine warp), or with a still background only the window around the head;
    # the local fields are solved and applied only where they can reach: their support, widened by the largest head
    # motion.
    reach = float((np.abs(tx) + np.abs(ty) + (np.abs(np.radians(rot)) + np.abs(zoom)) * math.hypot(w, h)).max())
    roi = _support(moves + (blink_moves(lm.points68, spec.blink_depth) if spec.blinks else []), (w, h), reach + 4)
    if v2 is not None:  # dense fields: the whole head
        rows, cols = np.nonzero(head_mask(lm, (w, h)) > 1e-3)
        roi = (slice(max(0, int(rows.min() - reach - 4)), min(h, int(rows.max() + reach + 5))),
               slice(max(0, int(cols.min() - reach - 4)), min(w, int(cols.max() + reach + 5))))
    head = head_mask(lm, (w, h)) if spec.static_background else None
    win = (slice(0, h), slice(0, w)) if head is None else _window(head, roi, reach + 4)
    (wy0, wy1), (wx0, wx1) = (win[0].start, win[0].stop), (win[1].start, win[1].stop)
    if roi:
        grid_x, grid_y = grid_x[roi], grid_y[roi]
        in_win = (slice(roi[0].start - wy0, roi[0].stop - wy0), slice(roi[1].start - wx0, roi[1].stop - wx0))
    still = canvas[win].copy()
    cx, cy = float(centre[0]), float(centre[1])
    noise_lut = _GAUSS_TABLE * np.float32(spec.noise_sigma)
    frames, poses = [], []
    wanted = set(range(n)) if only is None else {int(i) for i in only}
    for i in range(n):
        poses.append((float(tx[i]), float(ty[i]), float(rot[i])))
        if i not in wanted:
            frames.append(None)
            continue
        s = float(strength[i])
        fields = [(wt, f) for wt, f in ((s, base), (float(closure[i]), blink)) if wt > 0] if roi else []
        if v2 is not None:
            fields += [(wt, f) for wt, f in v2.frame_fields(i) if wt != 0]
        moved = bool(tx[i] or ty[i] or rot[i] or zoom[i])
        # inverse similarity z = R^T (y - c - t) / k + c (rotation positive = counter-clockwise on screen)
        a = math.radians(rot[i])
        k = 1.0 + float(zoom[i])
        ca, sa = math.cos(a) / k, math.sin(a) / k
        inv = np.array([[ca, -sa, cx - ca * (cx + tx[i]) + sa * (cy + ty[i])],
                        [sa, ca, cy - sa * (cx + tx[i]) - ca * (cy + ty[i])]], np.float64)
        inv_win = inv.copy()  # the same map for pixels of the window (origin at its corner)
        inv_win[:, 2] += inv[:, :2] @ np.array([wx0, wy0], np.float64)
        if moved:
            part = cv2.warpAffine(canvas, inv_win, (wx1 - wx0, wy1 - wy0),
                                  flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        else:
            part = still.copy()
        if fields:
            zx = np.float32(inv[0, 0]) * grid_x + np.float32(inv[0, 1]) * grid_y + np.float32(inv[0, 2])
            zy = np.float32(inv[1, 0]) * grid_x + np.float32(inv[1, 1]) * grid_y + np.float32(inv[1, 2])
            u = _sample(fields, zx, zy)
            for _ in range(2 if closure[i] == 0 else 5):  # fixed-point steps towards the inverse field
                u = _sample(fields, zx - u[:, :, 0], zy - u[:, :, 1])
            part[in_win] = cv2.remap(canvas, zx - u[:, :, 0], zy - u[:, :, 1], cv2.INTER_CUBIC,
                                     borderMode=cv2.BORDER_REPLICATE)
        if moved and head is not None:  # the head over the still picture, through its soft outline
            m = cv2.warpAffine(head, inv_win, (wx1 - wx0, wy1 - wy0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            part = cv2.blendLinear(part, still, m, 1.0 - m)
        if head is None:
            frame = part
        else:
            frame = canvas.copy()
            frame[win] = part
        if v2 is not None and v2.normals is not None and (v2.pitch[i] or v2.yaw[i]):
            ratio = light_ratio(v2.normals, v2.inside, float(v2.pitch[i]), float(v2.yaw[i]), spec.light)
            frame = shade(frame, ratio, inv if moved else None)
        gain = 1.0 + spec.illumination_drift * ramp[i]
        if v2 is not None:
            gain *= float(v2.gains[i])
        frame_rng = np.random.default_rng([spec.seed, i])
        if spec.noise_sigma > 0 and spec.noise_table:
            noise = cv2.LUT(np.frombuffer(frame_rng.bytes(frame.size), np.uint8).reshape(frame.shape), noise_lut)
            frame = cv2.addWeighted(frame, gain, noise, 1.0, 0.0, dtype=cv2.CV_8U)  # rounds and saturates
        else:
            if gain != 1.0:
                frame *= gain
            if spec.noise_sigma > 0:
                frame += frame_rng.standard_normal(frame.shape, dtype=np.float32) * spec.noise_sigma
            frame = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        if spec.jpeg_quality is not None:
            frame = jpeg_roundtrip(frame, spec.jpeg_quality)
        frames.append(frame)

    return SynthClip(frames=frames, aus=aus, onset=onset, apex=apex, offset=offset, subject_id=subject.id,
                     landmarks=lm, fps=spec.fps, frame_px_per_crop_px=px, strength=strength, head_poses=poses,
                     region_centres=region_centres(lm.points68), amplitudes_px=[m.amplitude_px for m in motions],
                     moves=moves, head_zooms=[float(z) for z in zoom],
                     head_translation_px=tuple(float(v) for v in spec.head_translation_px),
                     head_rotation_deg=spec.head_rotation_deg, head_zoom=spec.head_zoom, blinks=list(spec.blinks),
                     blink_strength=closure, noise_sigma=spec.noise_sigma,
                     illumination_drift=spec.illumination_drift, jpeg_quality=spec.jpeg_quality,
                     world="v1" if v2 is None else ("v2" if v2.normals is None else "v3"),
                     head_turns=[] if v2 is None else [(float(a), float(b)) for a, b in zip(v2.pitch, v2.yaw)],
                     coupled=[] if v2 is None else v2.coupled)


@dataclass
class _V2Fields:
    """World v2's per-frame fields (frame px) and gains for one clip, built once before the frame loop."""

    pitch: np.ndarray  # degrees per frame
    yaw: np.ndarray
    turn_x: np.ndarray  # (H, W, 2): displacement per radian of yaw (depth, 0)
    turn_y: np.ndarray  # per radian of pitch (0, depth)
    gaze: np.ndarray  # (H, W, 2) full gaze lid shift
    gaze_share: np.ndarray  # per frame
    gains: np.ndarray  # per frame flicker
    coupled: list[dict]
    normals: np.ndarray | None = None  # world v3: (H, W, 3) of the rendered depth, and where the face is
    inside: np.ndarray | None = None

    def frame_fields(self, i: int) -> list[tuple[float, np.ndarray]]:
        return [(math.radians(float(self.yaw[i])), self.turn_x), (math.radians(float(self.pitch[i])), self.turn_y),
                (float(self.gaze_share[i]), self.gaze)]


def _world_v2(spec: SynthSpec, lm: FaceLandmarks, motions: Sequence[AUMotion], moves: list[RegionMove],
              base: np.ndarray, px: float) -> _V2Fields:
    """Adds each AU's coupled skin motion to `base` (in place) and builds the turn, gaze and flicker of world v2 (and
    with `spec.light` the face's normals, for world v3's shading)."""
    from assistant.motion.depth import mesh_depth
    from instruction_data.head_turn import Turn, true_depth
    from instruction_data.world_v2 import (
        MIN_COUPLED_PX,
        WOBBLE_IOD,
        coupled_field,
        flicker_gains,
        gaze_course,
        turn_course,
    )

    draw = spec.world_v2
    w, h = spec.frame_size
    centres = region_centres(lm.points68)
    coupled = []
    for m in motions:
        direct = field_from_moves([mv for mv in moves if mv.au is m.au], (w, h))
        drag = coupled_field(lm, direct, draw.coupling)
        base += drag
        own = {(mv.region, mv.side) for mv in moves if mv.au is m.au}
        for (region, side), (cx, cy) in centres.items():
            v = drag[int(round(cy)), int(round(cx))] / px
            if (region, side) not in own and math.hypot(*v) >= MIN_COUPLED_PX:
                coupled.append({"au": m.au.code, "region": region, "side": side,
                                "px": round(float(math.hypot(*v)), 4)})
    z = true_depth(lm, (h, w), Turn(depth_scale=draw.depth_scale, wobble=WOBBLE_IOD, wobble_phase=draw.wobble_phase))
    inside = mesh_depth(lm, (h, w))[1] if spec.light is not None else None
    zero = np.zeros_like(z)
    pitch, yaw = turn_course(draw, spec.n_frames, spec.seed)
    gaze_moves = [RegionMove(AU(0, raw="gaze"), "upper_eyelid", side, centres[("upper_eyelid", side)],
                             _sigmas(lm.points68)[("upper_eyelid", side)], (0.0, draw.gaze_px * px))
                  for side in ("L", "R")]
    return _V2Fields(pitch=pitch, yaw=yaw, turn_x=np.stack([z, zero], -1).astype(np.float32),
                     turn_y=np.stack([zero, z], -1).astype(np.float32),
                     gaze=field_from_moves(gaze_moves, (w, h)), gaze_share=gaze_course(draw, spec.n_frames),
                     gains=flicker_gains(draw, spec.n_frames, spec.seed), coupled=coupled,
                     normals=None if inside is None else face_normals(z, inside), inside=inside)


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """An RGB frame as a camera's JPEG would store it: encoded and decoded at `quality`."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed at quality {quality}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
