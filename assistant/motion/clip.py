"""Clip input: a video file, a folder of frames, or an onset image plus an apex image.

Videos are streamed frame by frame (PyAV), so memory does not grow with the clip's length; only the onset, the
offset and a short ring of recent frames are ever kept. When the apex is unknown it is spotted in the same pass (a
clip with a known offset reads its apex frame again afterwards)
against a local baseline (`assistant.motion.apex.ApexSpotter`), so slow head or lighting drift does not make the
last frame win; when no frame stands out of the noise the clip says so in its warnings.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import queue
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from assistant.errors import ClipTooLargeError, ClipTooShortError, FrameIndexError, UnreadableClipError
from assistant.motion.apex import ApexSpotter, SpotRegion, half_window
from assistant.types import Clip

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MAX_ASPECT_GAP = 0.02  # onset/apex images whose aspect ratios differ more than this are not one clip's frames
MAX_MEGAPIXELS = 40.0  # default pixel limit per frame: a 30000x30000 PNG of 0.9 MB decodes to 2.7 GB
MAX_MEGAPIXELS_CEILING = 2 * Image.MAX_IMAGE_PIXELS / 1e6 // 1  # PIL refuses larger images as decompression bombs
PREFETCH = 8  # frames decoded ahead on the second thread
FULL_RANGE = 2  # FFmpeg's AVCOL_RANGE_JPEG: 0-255 luma, which OpenCV's YUV conversion does not expect
BT601_OR_UNTAGGED = {2, 5, 6}  # FFmpeg's AVCOL_SPC_UNSPECIFIED, BT470BG and SMPTE170M: OpenCV's matrix
# limited-range luma (16-235) to the grey level OpenCV's RGB2GRAY gives for the same pixel's BT.601 RGB: the chroma
# terms of 0.299 R + 0.587 G + 0.114 B cancel, leaving 255 / 219 (Y - 16)
LUMA_TO_GREY = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ClipLimits:
    """What one clip may cost. Pixels are checked from the file's header before anything is decoded: a small
    compressed file can hold a huge image (a decompression bomb) that would exhaust memory or crash the landmarker."""

    max_bytes: int = 500 * 1024 * 1024
    max_frames: int = 20000
    max_pixels: int = int(MAX_MEGAPIXELS * 1e6)


def check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ClipTooLargeError(
            f"{name} is {width}x{height} px ({width * height / 1e6:.3g} megapixels), over the limit of "
            f"{max_pixels / 1e6:g} megapixels; downscale it or crop it around the face."
        )


def _missing(path: Path, what: str = "") -> UnreadableClipError:
    """Why `path` cannot be opened, in words: a symlink loop and a dangling link are not a typo in the path."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return UnreadableClipError(f"{what}{path} is a symlink loop (a link that leads back to itself); point to "
                                       "the real file.")
        if path.is_symlink():
            return UnreadableClipError(f"{what}{path} is a link to {os.readlink(path)}, which does not exist; point "
                                       "to the real file.")
    else:
        if path.is_dir():
            return UnreadableClipError(f"{what}{path} is a folder, not an image file.")
    return UnreadableClipError(f"{what}{path} does not exist; check the path.")


EXIF_ORIENTATION = 0x0112
# EXIF orientation -> what makes the stored pixels upright: (transpose first, then flip rows, flip columns)
UPRIGHT = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False), 5: (True, False, False),
           6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


def check_image_header(path: Path, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the file's header alone (PIL reads pixels lazily); over `max_pixels` is an error."""
    return _image_header(path, max_pixels)[0]


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as a viewer shows them: phones store a portrait photo sideways with an EXIF orientation tag, and
    read as stored the face lay on its side (AU12 read as AU20) or mirrored (the person's sides swapped)."""
    transpose, flip_rows, flip_cols = UPRIGHT.get(orientation, (False, False, False))
    if transpose:
        image = np.swapaxes(image, 0, 1)
    return np.ascontiguousarray(image[::-1 if flip_rows else 1, ::-1 if flip_cols else 1])


def _image_header(path: Path, max_pixels: int) -> tuple[tuple[int, int], int]:
    """(width, height) and the EXIF orientation (1: as stored) from the file's header."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower, checked below
            with Image.open(path) as im:
                size = im.size
                check_pixels(path.name, *size, max_pixels)
                orientation = _orientation(im)
    except Image.DecompressionBombError as err:  # over PIL's own ceiling (about 179 megapixels), above any of ours
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size_words = f"{int(pixels.group(1)) / 1e6:.3g} megapixels" if pixels else "too large"
        raise ClipTooLargeError(f"{path.name} is {size_words}, over the limit of {max_pixels / 1e6:g} megapixels; "
                                "downscale it or crop it around the face.") from None
    except (OSError, SyntaxError, ValueError):
        raise UnreadableClipError(f"{path.name} is not a readable image (JPEG, PNG, BMP, TIFF or WebP).") from None
    return size, orientation


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation OpenCV's decoding leaves to us (1 where it turns the picture itself or none is given),
    read from the header only: PIL's `getexif` decodes a whole PNG that has no eXIf chunk before its pixels."""
    if im.format == "TIFF":  # OpenCV's TIFF decoder applies the orientation itself, even unchanged
        return 1
    try:
        raw = im.info.get("exif")
        if raw is None:
            return 1 if im.format == "PNG" else int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(EXIF_ORIENTATION, 1) or 1)
    except (ValueError, TypeError, OSError, SyntaxError):  # a damaged tag does not make the picture unreadable
        return 1


def natural_key(path: Path | str) -> list:
    """Sort key so that img2 comes before img10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(path).name)]


def in_unit_range(images) -> bool:
    """Float images whose values all lie in 0-1 (scikit-image's, PIL's and torch's convention), judged over a whole
    source's float images: a float video in 0-255 that fades in from black is not scaled frame by frame, and a float
    apex beside an 8-bit onset is not read as black because the onset is not a float."""
    arrays = [a for a in map(np.asarray, images) if a.dtype.kind == "f"]
    return bool(arrays) and all(a.size and np.isfinite(a).all() for a in arrays) and \
        min(float(a.min()) for a in arrays) >= 0 and max(float(a.max()) for a in arrays) <= 1


def to_rgb(image: np.ndarray, unit: bool | None = None) -> np.ndarray:
    """Grey, RGBA, 16-bit and float images become 8-bit RGB. Float images in 0-1 (`unit`; None: judged on this image
    alone) are scaled to 0-255: read as grey levels they were black, and the user was told that no face was found."""
    img = np.asarray(image)
    if img.ndim not in (2, 3) or 0 in img.shape:
        raise UnreadableClipError(f"Image of shape {img.shape} holds no picture; give a grey, RGB or RGBA image of "
                                  "the face.")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        if img.dtype.kind == "f" and not np.isfinite(img).all():
            raise UnreadableClipError("The image holds NaN or infinite values; give grey levels 0-255 (or floats in "
                                      "0-1).")
        if unit is None:
            unit = in_unit_range([img])
        if unit and img.dtype.kind == "f":
            img = np.rint(img * 255.0)
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise UnreadableClipError(f"Image of shape {img.shape} is not a grey, RGB or RGBA picture.")


def read_image(path: Path | str, max_pixels: int = ClipLimits.max_pixels) -> np.ndarray:
    """An RGB image, refused from its header when it has more than `max_pixels` pixels."""
    p = Path(path)
    if not p.is_file():
        raise _missing(p, "Image ")
    if p.stat().st_size == 0:
        raise UnreadableClipError(f"Image {p.name} is an empty file; upload the picture again.")
    _, orientation = _image_header(p, max_pixels)
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UnreadableClipError(f"{p.name} is not a readable image (JPEG, PNG, BMP, TIFF or WebP).")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return to_rgb(upright(img, orientation))


class DecodedFrame:
    """One decoded frame: its grey pixels, and its RGB pixels made only when asked. The apex spotter reads every frame
    of a clip in grey and keeps a few; only the onset and the apex are ever shown, so most frames of a common video
    (`_opencv_yuv`) never need the YUV-to-RGB conversion (on a 640x360 clip about a fifth of the whole load)."""

    __slots__ = ("_yuv", "_rgb", "_grey", "time")

    def __init__(self, rgb: np.ndarray | None = None, yuv: np.ndarray | None = None, time: float | None = None):
        self._rgb, self._yuv, self._grey = rgb, yuv, None
        self.time = time  # its timestamp in the video, seconds (None: a frame of a folder or a list)

    @property
    def grey(self) -> np.ndarray:
        if self._grey is None:
            if self._yuv is not None:  # limited-range BT.601 4:2:0: the luma plane, rescaled
                self._grey = cv2.LUT(self._yuv[:self._yuv.shape[0] * 2 // 3], LUMA_TO_GREY)
            else:
                self._grey = cv2.cvtColor(self._rgb, cv2.COLOR_RGB2GRAY)
        return self._grey

    def forget_grey(self) -> None:
        """Drop the grey pixels once they are read, so a frame kept for later holds only what `rgb` needs."""
        self._grey = None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = cv2.cvtColor(self._yuv, cv2.COLOR_YUV2RGB_I420)
            self._yuv = None
        return self._rgb


class FrameSource:
    """Sequential access to the frames of a video file, a frame folder, or an in-memory list."""

    def __init__(self, source: str, n_frames: int | None, fps: float | None,
                 iterate: Callable[[], Iterator[DecodedFrame]], at: Callable[[int], np.ndarray] | None = None):
        self.source = source
        self.n_frames = n_frames
        self.fps = fps
        self._iterate = iterate
        self._at = at  # random access, for sources that have it (frame folders, lists)
        self.peak_fps: float | None = None  # a video whose rate varies: its highest rate (`variable_rate`)

    @property
    def random_access(self) -> bool:
        return self._at is not None

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame) in order."""
        for i, frame in self.decoded():
            yield i, frame.rgb()

    def decoded(self, prefetch: int = 0, grey: bool = False) -> Iterator[tuple[int, DecodedFrame]]:
        """(index, `DecodedFrame`) in order, RGB made on demand; with `prefetch`, decoded that many frames ahead on a
        second thread; with `grey`, the grey pixels are made at once (on that thread when prefetching)."""
        frames = self._iterate()
        if grey:
            frames = (_with_grey(f) for f in frames)
        yield from enumerate(prefetched(frames, prefetch) if prefetch > 0 else frames)

    def read(self, indices: list[int]) -> list[np.ndarray]:
        """Frames at `indices` (any order, repeats allowed) in one pass over the source."""
        wanted = sorted(set(int(i) for i in indices))
        if not wanted:
            return []
        if self._at is not None:
            if wanted[0] < 0 or wanted[-1] >= (self.n_frames or 0):
                bad = wanted[-1] if wanted[-1] >= (self.n_frames or 0) else wanted[0]
                raise FrameIndexError(f"Frame {bad} is outside {Path(self.source).name} ({self.n_frames} frames).")
            return [self._at(int(i)) for i in indices]
        got: dict[int, np.ndarray] = {}
        for i, frame in self.decoded():
            if i in wanted:
                got[i] = frame.rgb()  # only the frames returned are turned into RGB
            if i >= wanted[-1]:
                break
        missing = [i for i in wanted if i not in got]
        if missing:
            raise FrameIndexError(f"Frame {missing[0]} is past the end of {Path(self.source).name} "
                                  f"({self.n_frames or len(got)} frames).")
        return [got[int(i)] for i in indices]


def prefetched(items: Iterator, depth: int = PREFETCH) -> Iterator:
    """`items`, produced on a second thread at most `depth` ahead of the caller. Decoding (PyAV and OpenCV release
    the GIL) and the caller's per-frame work then share the two cores: a long clip's load takes the longer of the two,
    not their sum. An error in the producer is raised in the caller; a caller that stops early stops the producer,
    which closes the source."""
    buffer: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as err:  # handed to the caller, who raises it
            put((end, err))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = buffer.get()
            if err is not None:
                raise err
            if item is end:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _with_grey(frame: DecodedFrame) -> DecodedFrame:
    frame.grey  # noqa: B018 - made now, on the thread that decodes
    return frame


def _opencv_yuv(frame: av.VideoFrame) -> bool:
    """Limited-range 4:2:0 YUV with BT.601 colours (or no colour tag, which FFmpeg reads as BT.601), as most videos
    are: OpenCV's conversion applies, in a quarter of the time of FFmpeg's own converter."""
    return (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and frame.color_range != FULL_RANGE and frame.colorspace in BT601_OR_UNTAGGED)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels. OpenCV converts the common YUV format (`_opencv_yuv`; on a 640x360 clip half of the whole decoding
    time with FFmpeg's converter); other formats, full range and other colour matrices (BT.709 HD video) go through
    FFmpeg, which follows the frame's tags."""
    if _opencv_yuv(frame):
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def _decoded(frame: av.VideoFrame) -> DecodedFrame:
    """The frame as `DecodedFrame`, kept in YUV where OpenCV converts it and the file asks for no rotation."""
    time = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
    if _opencv_yuv(frame) and not round((frame.rotation or 0) / 90) % 4:
        return DecodedFrame(yuv=frame.to_ndarray(), time=time)
    return DecodedFrame(rgb=_upright(frame), time=time)


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels turned the way the file says to show them: phones store portrait clips sideways with a display
    rotation, and a sideways face gets wrong landmarks and wrong motion directions."""
    rgb = _rgb(frame)
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _video_source(path: Path, limits: ClipLimits) -> FrameSource:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise UnreadableClipError(
            f"{path.name} could not be decoded as a video ({type(err).__name__}); use an MP4, AVI, WebM or MOV file "
            "with a video track, or a folder of frames."
        ) from None
    with container:
        if not container.streams.video:
            raise UnreadableClipError(f"{path.name} has no video track (sound only?); give the video of the face.")
        stream = container.streams.video[0]
        n = int(stream.frames or 0) or None
        fps = float(stream.average_rate) if stream.average_rate else None
        peak = variable_rate(stream)
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    check_pixels(path.name, width, height, limits.max_pixels)  # from the stream header, before any frame is decoded

    def iterate() -> Iterator[DecodedFrame]:
        try:
            with av.open(str(path)) as c:
                c.streams.video[0].thread_type = "AUTO"
                for k, frame in enumerate(c.decode(video=0)):
                    if k >= limits.max_frames:
                        raise ClipTooLargeError(
                            f"{path.name} has more than {limits.max_frames} frames; cut the clip around the "
                            "expression, spot it as a long video (`meu spot`, the app's Long video tab), or raise "
                            "the frame limit (--max-frames)."
                        )
                    check_pixels(path.name, frame.width, frame.height, limits.max_pixels)  # a mid-stream size change
                    yield _decoded(frame)
        except av.error.FFmpegError as err:
            raise UnreadableClipError(f"{path.name} is damaged: decoding stopped ({err}).") from None

    source = FrameSource(str(path), n, fps, iterate)
    source.peak_fps = peak
    return source


VARIABLE_RATE = 0.01  # a stream whose highest frame rate is this much above its average one varies its rate


def variable_rate(stream) -> float | None:
    """The highest frame rate of a stream whose rate varies (None: constant). Frames are counted in decoding order
    and a time is frame / average rate; where the rate changes that time is off, and a frame found by its
    timestamp is another frame than the one counted."""
    if not stream.average_rate or not stream.guessed_rate:
        return None
    peak, average = float(stream.guessed_rate), float(stream.average_rate)
    return peak if peak > average * (1 + VARIABLE_RATE) else None


def frame_files(folder: Path) -> list[Path]:
    """A frame folder's images in natural order (img2 before img10). Hidden files are not frames: macOS leaves
    "._img1.jpg" metadata beside every frame copied off its disks, and counted, they shifted every frame number."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not p.name.startswith(".")), key=natural_key)


def _folder_source(path: Path, limits: ClipLimits) -> FrameSource:
    files = frame_files(path)
    if not files:
        raise UnreadableClipError(
            f"Folder {path} holds no images (.jpg, .png, .bmp, .tif); point to the clip's frames."
        )
    if len(files) > limits.max_frames:
        raise ClipTooLargeError(f"Folder {path.name} has {len(files)} frames, over the limit of {limits.max_frames}.")
    sizes: dict[str, tuple[int, int]] = {}

    def read_same_size(i: int) -> np.ndarray:
        """A folder's frames must share one size: a stray resized frame would be read as facial motion."""
        image = read_image(files[i], limits.max_pixels)
        size = image.shape[:2]
        first = sizes.setdefault("first", size if i == 0 else read_image(files[0], limits.max_pixels).shape[:2])
        if size != first:
            raise UnreadableClipError(  # said both ways round: the odd one may be the first frame
                f"The frames in {path.name} differ in size: {files[0].name} is {first[1]}x{first[0]} px and "
                f"{files[i].name} is {size[1]}x{size[0]} px; they must all have one size (remove or resize the odd "
                "ones)."
            )
        return image

    return FrameSource(str(path), len(files), None,
                       lambda: (DecodedFrame(rgb=read_same_size(i)) for i in range(len(files))),
                       at=read_same_size)


def open_source(source: str | Path | list[np.ndarray], limits: ClipLimits | None = None) -> FrameSource:
    """A `FrameSource` for a video file, a frame folder or a list of RGB frames."""
    limits = limits or ClipLimits()
    if isinstance(source, np.ndarray) and source.ndim == 4:  # frames stacked in one array
        source = list(source)
    if isinstance(source, np.ndarray):  # read as a path, it stopped with a TypeError
        raise UnreadableClipError("One image is half a clip: give the apex image too (analyze(onset_image, "
                                  "apex_image)), or a list of frames.")
    if isinstance(source, (list, tuple)):
        source = [as_image(f, "frame") if isinstance(f, Image.Image) else f for f in source]
        for f in source:
            check_pixels("A frame", np.shape(f)[1], np.shape(f)[0], limits.max_pixels)
        unit = in_unit_range(source)
        frames = [to_rgb(f, unit) for f in source]
        return FrameSource("<frames>", len(frames), None, lambda: (DecodedFrame(rgb=f) for f in frames),
                           at=frames.__getitem__)
    path = Path(source)
    if not path.exists():
        raise _missing(path)
    if path.is_dir():
        return _folder_source(path, limits)
    size = path.stat().st_size
    if size == 0:
        raise UnreadableClipError(f"{path.name} is an empty file; upload the clip again.")
    if size > limits.max_bytes:
        raise ClipTooLargeError(
            f"{path.name} is {size / 2**20:.3g} MB, over the limit of {limits.max_bytes / 2**20:.3g} MB; "
            "upload a shorter clip."
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ClipTooShortError(
            f"{path.name} is a single image; give an onset image and an apex image, a video, or a frame folder."
        )
    return _video_source(path, limits)


def as_image(image, which: str) -> np.ndarray | str | Path:
    """A path or an array as it is; a PIL image as its upright RGB pixels; anything else refused in words (a PIL
    image or a list of frames beside an apex image stopped with a TypeError about paths)."""
    if isinstance(image, (str, Path, np.ndarray)):
        return image
    if isinstance(image, Image.Image):
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
        if image.mode in ("L", "RGB", "RGBA", "F"):
            return np.asarray(image)
        if image.mode.startswith("I;16"):  # 16-bit in either byte order: converting to RGB clipped it to white
            return np.asarray(image).astype(np.uint16)
        if image.mode == "I":  # 32-bit integers: 16-bit grey as PIL opens some PNGs, or 8-bit values widened
            values = np.asarray(image)
            return values.clip(0, 255).astype(np.uint8) if values.max() <= 255 else values.clip(0, 65535).astype(
                np.uint16)
        return np.asarray(image.convert("RGB"))
    raise UnreadableClipError(f"The {which} image is a {type(image).__name__}; give a file path, a numpy array or a "
                              "PIL image (a list of frames is a clip: give it without an apex image).")


def load_clip(source: str | Path | list[np.ndarray], apex_image: str | Path | np.ndarray | None = None, *,
              onset: int | None = None, apex: int | None = None, offset: int | None = None,
              face_box: Callable[[np.ndarray], tuple[int, int, int, int] | SpotRegion | None] | None = None,
              limits: ClipLimits | None = None) -> Clip:
    """Read the onset and apex frames of a clip, spotting the apex when it is not given.

    `face_box(onset_frame)` gives the region the apex spotter compares (the whole frame when None), so that
    background motion does not win; a `SpotRegion` with the eyes keeps a blink from being taken for the apex. Memory
    stays bounded: the onset frame, the spotter's short ring of frames (none for a bounded clip, whose apex frame is
    read again) and the few frames decoded ahead.
    """
    if apex_image is not None:
        if (onset, apex, offset) != (None, None, None):
            raise FrameIndexError("Onset, apex and offset frame numbers apply to a video or a frame folder; two images "
                                  "are the onset and the apex themselves (leave the numbers out).")
        max_pixels = (limits or ClipLimits()).max_pixels
        images = []
        source, apex_image = as_image(source, "onset"), as_image(apex_image, "apex")
        unit = in_unit_range([i for i in (source, apex_image) if isinstance(i, np.ndarray)])
        for name, img in (("The onset image", source), ("The apex image", apex_image)):
            if isinstance(img, np.ndarray):
                check_pixels(name, img.shape[1], img.shape[0], max_pixels)
                images.append(to_rgb(img, unit))
            else:
                images.append(read_image(img, max_pixels))
        onset_img, apex_img = images
        warnings = []
        if onset_img.shape != apex_img.shape:
            (h0, w0), (h1, w1) = onset_img.shape[:2], apex_img.shape[:2]
            if abs(w1 / h1 - w0 / h0) > MAX_ASPECT_GAP * w0 / h0:  # stretching would read as facial motion
                raise UnreadableClipError(f"The onset image is {w0}x{h0} px and the apex image {w1}x{h1} px; give two "
                                          "frames of the same clip, at the same size.")
            apex_img = cv2.resize(apex_img, (w0, h0), interpolation=cv2.INTER_AREA)
            warnings.append(f"The apex image ({w1}x{h1} px) was resized to the onset image's {w0}x{h0} px.")
        return Clip(source=str(source) if not isinstance(source, np.ndarray) else "<image>",
                    onset_frame=onset_img, apex_frame=apex_img, onset=0, apex=1, n_frames=2, warnings=warnings)

    src = open_source(source, limits)
    start = 0 if onset is None else int(onset)
    if start < 0:
        raise FrameIndexError(f"The onset frame must be 0 or more (frames count from 0); got {onset}.")
    if apex is not None and apex <= start:
        raise FrameIndexError(f"The apex frame ({apex}) must come after the onset frame ({start}).")
    if offset is not None and offset < (apex or start + 1):
        raise FrameIndexError(f"The offset frame ({offset}) must come after the onset frame ({start})"
                              + (f" and not before the apex frame ({apex})." if apex is not None else "."))
    if apex is not None and src.random_access:
        if (src.n_frames or 0) < 2:
            raise ClipTooShortError(f"{Path(src.source).name} has {src.n_frames} frame; a micro-expression needs at "
                                    "least an onset and an apex frame.")
        wanted = [start, apex] + ([offset] if offset is not None else [])
        frames = src.read(wanted)
        return Clip(source=src.source, onset_frame=frames[0], apex_frame=frames[1], onset=start, apex=int(apex),
                    offset=offset, n_frames=src.n_frames, fps=src.fps,
                    offset_frame=frames[2] if offset is not None and offset > apex else None)
    onset_frame = apex_frame = offset_frame = None
    spotter: ApexSpotter | None = None
    n_seen = 0
    offset_seen = False
    for i, frame in src.decoded(prefetch=PREFETCH if apex is None else 0, grey=apex is None):
        n_seen = i + 1
        if i < start:
            continue
        if i == start:  # never the apex or the offset: both lie after the onset (checked above)
            onset_frame = frame.rgb()
            if apex is None:
                k = half_window(src.fps, onset, offset, src.n_frames)
                region = face_box(onset_frame) if face_box else None
                if isinstance(region, SpotRegion):
                    spotter = ApexSpotter(region.box, k, start, offset, eyes=region.eyes)
                else:
                    spotter = ApexSpotter(region, k, start, offset)
        if spotter is not None and (offset is None or i <= offset):
            spotter.push(i, frame.grey, keep=frame)
            frame.forget_grey()
        elif apex is not None and i == apex:
            apex_frame = frame.rgb()
        if offset is not None and i == offset:
            offset_seen = True
            offset_frame = frame.rgb()
        if (apex is not None and i >= apex and (offset is None or i >= offset)) or (offset is not None and i >= offset):
            break
    if onset_frame is None or n_seen < 2:
        total = n_seen
        if onset is not None and total > 1:
            raise FrameIndexError(f"Onset frame {onset} is past the end of the clip ({total} frames).")
        raise ClipTooShortError(
            f"{Path(src.source).name} has {total} frame{'s' if total != 1 else ''}; a micro-expression needs at "
            "least an onset and an apex frame."
        )
    if offset is not None and not offset_seen:
        raise FrameIndexError(f"Offset frame {offset} is past the end of the clip ({n_seen} frames).")
    spot = None
    if spotter is not None:
        spot, kept = spotter.finish()
        apex_frame = kept.rgb() if kept is not None else None
        if spot.apex == start:
            apex_frame = None  # nothing after the onset
        elif apex_frame is None:  # a bounded clip keeps no frames while it is scored
            apex_frame = src.read([spot.apex])[0]
    if apex_frame is None:
        if apex is not None:
            raise FrameIndexError(f"Apex frame {apex} is past the end of the clip ({n_seen} frames, numbered from 0); "
                                  f"give an apex from {start + 1} to {n_seen - 1}.")
        raise FrameIndexError(f"The clip has no frame after onset {start} ({n_seen} frames, numbered from 0); give an "
                              "earlier onset.")
    warnings = []
    if spot is not None and spot.blink is not None and not spot.eyes_only:
        warnings.append(f"Frame {spot.blink} is a blink (the eyes alone moved), so the apex was taken from the rest "
                        f"of the face: frame {spot.apex}. Give the apex frame if you know it.")
    elif spot is not None and spot.eyes_only:
        warnings.append(f"At frame {spot.apex} only the eyes move: a blink, or an eyelid action (AU43, AU7); nothing "
                        "else in the clip stands out of the noise. A blink is not an expression: give the apex frame "
                        "if you know it.")
    if spot is not None and not spot.found:
        warnings.append(
            f"No frame between {start} and {offset if offset is not None else n_seen - 1} stands out of the noise: "
            f"no expression was found, and frame {spot.apex} is only the best guess for the apex. Give the apex frame "
            "if you know it, or check that the clip holds an expression."
        )
    clip = Clip(
        source=src.source, onset_frame=onset_frame, apex_frame=apex_frame, onset=start,
        apex=int(spot.apex if spot is not None else apex), offset=offset, n_frames=src.n_frames or n_seen, fps=src.fps,
        apex_spotted=spot is not None, apex_found=spot.found if spot is not None else True,
        motion_curve=spot.curve if spot is not None else None,
        curve_frames=spot.frames if spot is not None else None,
        warnings=warnings,
    )
    if offset is not None and offset > clip.apex:
        clip.offset_frame = offset_frame
    if spot is not None:
        log.info("apex spotted at frame %d of %d (local-baseline curve, k=%d, %s)", clip.apex, clip.n_frames,
                 spot.half_window, "above the noise" if spot.found else "NOT above the noise")
    return clip


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float = 30.0) -> Path:
    """H.264 MP4 (yuv420p) that browsers play, streamed frame by frame; written to a temporary name, then renamed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part" + out.suffix)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ClipTooShortError(f"No frames to write to {out.name}.")
    h, w = first.shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=int(round(fps)))
            stream.width, stream.height = w2, h2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            for f in itertools.chain([first], it):
                rgb = np.ascontiguousarray(to_rgb(f)[:h2, :w2])
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
