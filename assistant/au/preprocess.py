"""AU-LLM input: the face cropped from the onset landmarks, grey 64x64, six frames from onset towards apex.

Training reads each clip once into a per-dataset cache (`ClipCache`): the onset..apex frames (at most
`max_frames`, evenly spaced) cropped and shrunk, one `.npy` per clip written atomically, so LOSO folds and later
runs never decode video again and an interrupted caching pass resumes where it stopped. Sampling then picks six
of the cached frames: evenly spaced at test time, jittered (each pick moved randomly inside its own interval,
first = onset and last = apex kept) at training time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from assistant.errors import NoFaceError
from assistant.files import atomic_path, file_fingerprint

log = logging.getLogger(__name__)


def sample_positions(n_available: int, n: int = 6, jitter: bool = False,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """`n` indices into 0..n_available-1, from the first (onset) to the last (apex)."""
    if n_available < 1:
        raise ValueError("no frames to sample from")
    grid = np.linspace(0, n_available - 1, n)
    if jitter and n_available > n:
        step = (n_available - 1) / (n - 1)
        rng = rng or np.random.default_rng()
        grid[1:-1] += rng.uniform(-0.5, 0.5, n - 2) * step
    return np.clip(np.round(grid), 0, n_available - 1).astype(int)


def span_indices(onset: int, apex: int, max_frames: int = 24) -> list[int]:
    """The frame indices kept for a clip: onset..apex, thinned evenly to `max_frames` at most."""
    apex = max(apex, onset)
    n = min(apex - onset + 1, max_frames)
    return sorted(set(np.round(np.linspace(onset, apex, n)).astype(int).tolist()))


def onset_box(first: np.ndarray, landmarks: str = "mediapipe", size: int = 64, margin: float = 0.15):
    """The face box of the first frame (`crop_box` around its landmarks, as the motion analysis draws it); without a
    face the centre square (logged), so a clip still gets an input instead of silently disappearing."""
    from assistant.motion.face import crop_box, detect_face
    from assistant.types import CropBox

    try:
        return crop_box(detect_face(first, landmarks), size=size, margin=margin)
    except NoFaceError:
        h, w = first.shape[:2]
        s = min(h, w)
        log.warning("no face found; using the centre square of the frame")
        return CropBox((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s, size)


def face_crop_grey(frames: Sequence[np.ndarray], size: int = 64, margin: float = 0.15,
                   landmarks: str = "mediapipe") -> np.ndarray:
    """(len, size, size) uint8 grey crops of `frames` with one box from the first frame's face (`onset_box`)."""
    return grey_crops(frames, onset_box(frames[0], landmarks, size, margin))


def grey_crops(frames: Sequence[np.ndarray], box) -> np.ndarray:
    """(len, box.size, box.size) uint8 grey crops of RGB `frames` in `box`."""
    from assistant.motion.face import apply_crop

    return np.stack([cv2.cvtColor(apply_crop(f, box), cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.uint8)


def clip_tensor(crops: np.ndarray, n: int = 6, jitter: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """(n, size, size) float32 in 0..1 sampled from cached crops."""
    return crops[sample_positions(len(crops), n, jitter, rng)].astype(np.float32) / 255.0


class ClipCache:
    """Cropped onset..apex frames of a dataset's records, one `.npy` per record under `root`."""

    def __init__(self, root: str | Path, size: int = 64, max_frames: int = 24, margin: float = 0.15,
                 landmarks: str = "mediapipe"):
        self.root = Path(root)
        self.size, self.max_frames, self.margin, self.landmarks = size, max_frames, margin, landmarks

    def path(self, record) -> Path:
        """Keyed by the clip's frames as files too: a dataset made again under the same names is another clip."""
        frames = "|".join(file_fingerprint(record.frame_paths[i])
                          for i in span_indices(record.onset, record.apex, self.max_frames))
        digest = hashlib.sha1(f"{record.key}|{record.onset}|{record.apex}|{self.size}|{self.max_frames}|"
                              f"{self.margin}|{self.landmarks}|{frames}".encode()).hexdigest()[:12]
        return self.root / f"{record.subject}__{record.clip_id}__{digest}.npy"

    def get(self, record) -> np.ndarray:
        p = self.path(record)
        if p.is_file():
            return np.load(p)
        from assistant.motion.clip import read_image

        idx = span_indices(record.onset, record.apex, self.max_frames)
        frames = [read_image(record.frame_paths[i]) for i in idx]
        crops = face_crop_grey(frames, self.size, self.margin, self.landmarks)
        with atomic_path(p) as tmp:
            np.save(tmp, crops)
        return crops

    def fill(self, records: Sequence, progress: bool = True) -> list[np.ndarray]:
        from tqdm import tqdm

        return [self.get(r) for r in tqdm(records, desc="caching clips", disable=not progress, unit="clip")]
