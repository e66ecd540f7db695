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

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from assistant.au import AU
from assistant.facs import FACS, MIDLINE_REGIONS, image_direction
from assistant.motion.regions import region_ellipses
from assistant.types import FaceLandmarks

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
    from assistant.motion.clip import IMAGE_SUFFIXES, natural_key, read_image

    paths = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
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


def displacement_field(points68: np.ndarray, aus: Sequence[AU], amplitude: float,
                       size: tuple[int, int]) -> np.ndarray:
    """Forward displacement (H, W, 2) float32 at full strength, in the pixels of the image `points68` lives in.

    Each FACS region action adds `amplitude * weight * direction` with a Gaussian falloff around the region
    centre. A sided AU moves only that side's regions (midline ones at half weight); AUs the table lacks (and
    unreadable codes) add nothing and are logged.
    """
    w, h = size
    centres, sigmas = region_centres(points68), _sigmas(points68)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w, 2), np.float32)
    for au in aus:
        if au.code not in FACS:
            log.debug("AU %s has no FACS motion entry; it adds no motion", au)
            continue
        for action in FACS[au.code].actions:
            midline = action.region in MIDLINE_REGIONS
            sides = [None] if midline else ([au.side] if au.side else ["L", "R"])
            for side in sides:
                weight = action.weight * (MIDLINE_WEIGHT_SIDED if midline and au.side else 1.0)
                direction = image_direction(action, side)
                cx, cy = centres[(action.region, side)]
                sigma = sigmas[(action.region, side)]
                r = 3.5 * sigma  # compute the Gaussian on a window only: it is ~0 beyond
                x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
                y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
                if x0 >= x1 or y0 >= y1:
                    continue
                g = np.exp(-((xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2) / (2 * sigma ** 2))
                out[y0:y1, x0:x1, 0] += (amplitude * weight * direction[0]) * g
                out[y0:y1, x0:x1, 1] += (amplitude * weight * direction[1]) * g
    return out


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
    lm = FaceLandmarks(lm.points, lm.points68, lm.box, (w, h), lm.backend, lm.n_faces)
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


def render_clip(spec: SynthSpec) -> SynthClip:
    """Render the frames of one clip. Deterministic in `spec` (noise and jitter come from `spec.seed`)."""
    subject = spec.subject if isinstance(spec.subject, SubjectFace) else make_subjects(spec.subject + 1)[spec.subject]
    aus = [_as_au(a) for a in spec.aus]
    onset, apex, offset = _resolve_frames(spec)
    n = spec.n_frames
    rng = np.random.default_rng(spec.seed)
    w, h = spec.frame_size

    canvas, _, lm = _place(subject, spec)
    x0, y0, x1, y1 = lm.box
    crop_side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
    px = crop_side / WORK_CROP  # frame px per crop px
    base = displacement_field(lm.points68, aus, spec.amplitude_px * px, (w, h))
    strength = time_course(n, onset, apex, offset)

    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    ramp = np.arange(n) / max(n - 1, 1)
    tx = spec.head_translation_px[0] * px * ramp + rng.normal(0, spec.head_jitter_px * px, n)
    ty = spec.head_translation_px[1] * px * ramp + rng.normal(0, spec.head_jitter_px * px, n)
    rot = spec.head_rotation_deg * ramp + rng.normal(0, spec.head_jitter_deg, n)
    if spec.head_jitter_px or spec.head_jitter_deg:  # frame 0 is the reference pose
        tx, ty, rot = tx - tx[0], ty - ty[0], rot - rot[0]

    frames, poses = [], []
    for i in range(n):
        s = float(strength[i])
        moved = bool(tx[i] or ty[i] or rot[i])
        if moved:  # inverse similarity: z = R^T (y - c - t) + c (rotation positive = counter-clockwise on screen)
            a = math.radians(rot[i])
            ca, sa = math.cos(a), math.sin(a)
            gx, gy = grid_x - centre[0] - tx[i], grid_y - centre[1] - ty[i]
            zx = (ca * gx - sa * gy + centre[0]).astype(np.float32)
            zy = (sa * gx + ca * gy + centre[1]).astype(np.float32)
        else:
            zx, zy = grid_x, grid_y
        if s > 0:
            d = base if not moved else _remap_field(base, zx, zy)
            u = s * d
            for _ in range(2):  # fixed-point steps towards the inverse field
                u = s * _remap_field(base, zx - u[:, :, 0], zy - u[:, :, 1])
            mx, my = zx - u[:, :, 0], zy - u[:, :, 1]
        else:
            mx, my = zx, zy
        if s > 0 or moved:
            frame = cv2.remap(canvas, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        else:
            frame = canvas.copy()
        gain = 1.0 + spec.illumination_drift * ramp[i]
        if gain != 1.0:
            frame *= gain
        if spec.noise_sigma > 0:
            frame += rng.standard_normal(frame.shape, dtype=np.float32) * spec.noise_sigma
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        poses.append((float(tx[i]), float(ty[i]), float(rot[i])))

    return SynthClip(frames=frames, aus=aus, onset=onset, apex=apex, offset=offset, subject_id=subject.id,
                     landmarks=lm, fps=spec.fps, frame_px_per_crop_px=px, strength=strength, head_poses=poses,
                     region_centres=region_centres(lm.points68))
