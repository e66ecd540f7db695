"""AU-LLM's input for training (`meu train au`), `meu eval --aullm-checkpoint` and the app (issue 22).

The motion input and the region token are computed through this one path in all three; the published frames input
without the token is cut the same way (the same box, the same frames), from `ClipCache`'s per-file crops in
training and from `frame_crops` in serving. Every input is computed from the clip's motion analysis
(`analyze_clip`: the crop, head compensation and noise floor of `meu analyze`), run with the motion settings stored
in the checkpoint:
- `input: frames` (published): grey crops of onset..apex in the analysis' face box (the box `crop_box` draws around
  the onset landmarks, the same whether the analysis or the face detector alone found it), six sampled later;
- `input: motion`: for T frames evenly spaced from onset to apex, the registered flow onset -> frame in the clip's
  noise floor (`motion_input.normalised_flow`, the apex analysis' floor for every frame, so a still clip stays
  near zero and one unit means the same along the clip), resized to the model's size, clipped at `CLIP_SNR` floors
  and divided by it. The onset's own flow is zero. An image pair has no frames in between: its motion rises linearly
  from zero to the apex flow (what a steady expression gives), never a cross-fade of two photos;
- the region token (`regions: true`): the apex analysis' motion table, per region and side in a fixed order
  (`REGION_KEYS`): mean motion in noise floors (x, y), SNR, mean motion in px at the 256 crop (x, y), coherence.
  Measurements only, never a detector's probabilities.

Mirroring (training augmentation; AU codes carry no side) flips the motion field and negates its x, and swaps the
person's right and left regions and negates their x.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from assistant.au.motion_input import CLIP_SNR, normalised_flow
from assistant.facs import REGION_NAMES, SIDED_REGIONS
from assistant.types import MotionAnalysis, RegionMotion

REGION_KEYS: list[tuple[str, str | None]] = [(name, side) for name in REGION_NAMES
                                             for side in (("R", "L") if name in SIDED_REGIONS else (None,))]
REGION_VALUES = 6  # per region: x, y, SNR in noise floors / CLIP_SNR; x, y in px at 256; coherence
_MIRROR = [REGION_KEYS.index((name, {"R": "L", "L": "R"}.get(side))) for name, side in REGION_KEYS]
MAX_REGION_PX = 4.0  # px at 256: larger motion is clipped (expressions, not head moves)
MAX_FRAMES = 24  # frames input: onset..apex thinned to this many before six are sampled


@dataclass
class AULLMInput:
    """One clip's input: `x` is (N, S, S) uint8 crops for `frames` (six sampled at use) or (T, 2, S, S) float32
    for `motion`; `regions` is (len(REGION_KEYS) * REGION_VALUES,) float32 with the region token, else None."""

    x: np.ndarray
    regions: np.ndarray | None


def region_features(regions: list[RegionMotion], noise_px: float, size: int) -> np.ndarray:
    """The region token's values (module docstring); a region the table lacks is all zeros."""
    table = {(r.region, r.side): r for r in regions}
    out = np.zeros((len(REGION_KEYS), REGION_VALUES), np.float32)
    to256 = 256.0 / size
    for i, key in enumerate(REGION_KEYS):
        r = table.get(key)
        if r is None:
            continue
        z = np.array([r.dx, r.dy, np.hypot(r.dx, r.dy)]) / max(noise_px, 1e-6) / CLIP_SNR
        out[i, :3] = np.clip(z, -2.0, 2.0)
        out[i, 3:5] = np.clip(np.array([r.dx, r.dy]) * to256, -MAX_REGION_PX, MAX_REGION_PX)
        out[i, 5] = r.coherence
    return out.reshape(-1)


def mirror(x: np.ndarray, regions: np.ndarray | None, motion: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Model tensors of clips (a batch or one) seen in a mirror: left and right swap, x motion changes sign."""
    x = x[..., ::-1].copy()
    if motion:
        x[..., 0, :, :] = -x[..., 0, :, :]
    return x, mirror_regions(regions) if regions is not None else None


def mirror_regions(regions: np.ndarray) -> np.ndarray:
    """Region token values (one clip's or a batch's) seen in a mirror: the person's sides swap, x changes sign."""
    r = regions.reshape(*regions.shape[:-1], len(REGION_KEYS), REGION_VALUES)[..., _MIRROR, :].copy()
    r[..., [0, 3]] = -r[..., [0, 3]]
    return r.reshape(regions.shape)


def sequence_positions(onset: int, apex: int, n: int) -> list[int]:
    """`n` frame indices from onset to apex, evenly spaced (repeats when the clip is shorter)."""
    return np.round(np.linspace(onset, max(apex, onset), n)).astype(int).tolist()


def _motion_frame(flow_field, noise_px: float, size: int) -> np.ndarray:
    z = normalised_flow(flow_field, noise_px=noise_px)
    z = cv2.resize(z, (size, size), interpolation=cv2.INTER_AREA)
    return (np.clip(z, -CLIP_SNR, CLIP_SNR) / CLIP_SNR).transpose(2, 0, 1).astype(np.float32)


def motion_sequence(analysis: MotionAnalysis, n: int, size: int, motion_config) -> np.ndarray:
    """(n, 2, size, size): the clip's motion from the onset to each of `n` frames (module docstring)."""
    from assistant.motion.analyze import analyze_frames

    clip = analysis.clip
    noise = analysis.field.noise_px
    apex = _motion_frame(analysis.field, noise, size)
    positions = sequence_positions(clip.onset, clip.apex, n)
    src = readable_source(clip)
    if src is None:  # an image pair: a linear rise to the apex motion
        return np.stack([apex * (k / max(n - 1, 1)) for k in range(n)])
    from assistant.motion.clip import open_source

    between = sorted({p for p in positions if p not in (clip.onset, clip.apex)})
    frames = dict(zip(between, open_source(src).read(between))) if between else {}
    out = []
    for p in positions:
        if p == clip.onset:
            out.append(np.zeros_like(apex))
        elif p == clip.apex:
            out.append(apex)
        else:
            field = analyze_frames(clip.onset_frame, frames[p], motion_config, clip).field
            out.append(_motion_frame(field, noise, size))
    return np.stack(out)


def readable_source(clip) -> str | None:
    """The clip's video or frame folder when its frames between onset and apex can be read again."""
    src = clip.source
    if not src or src.startswith("<") or clip.n_frames <= 2 or not Path(src).exists():
        return None
    return src


def frame_crops(clip, box, size: int) -> np.ndarray:
    """(N, size, size) uint8 grey crops of onset..apex (at most `MAX_FRAMES`) in `box` (source pixels). An image pair
    gives six linear blends of its two frames, as the published input has always been served."""
    from assistant.au.preprocess import grey_crops, span_indices
    from assistant.types import CropBox

    box = CropBox(box.x0, box.y0, box.x1, box.y1, size)
    src = readable_source(clip)
    if src is None:
        a, b = clip.onset_frame.astype(np.float32), clip.apex_frame.astype(np.float32)
        frames = [np.clip(a + (b - a) * w, 0, 255).astype(np.uint8) for w in np.linspace(0, 1, 6)]
    else:
        from assistant.motion.clip import open_source

        frames = open_source(src).read(span_indices(clip.onset, clip.apex, MAX_FRAMES))
    return grey_crops(frames, box)


def analysis_input(analysis: MotionAnalysis, config, motion_config) -> AULLMInput:
    """The one input path: a clip's motion analysis (run with `motion_config`) -> AU-LLM's input for `config`
    (assistant.au.aullm.AULLMConfig)."""
    if config.input == "motion":
        x = motion_sequence(analysis, config.n_frames, config.size, motion_config)
    else:
        x = frame_crops(analysis.clip, analysis.crop, config.size)
    regions = None
    if config.regions:
        regions = region_features(analysis.regions, analysis.field.noise_px, analysis.onset_crop.shape[0])
    return AULLMInput(x, regions)


def model_tensor(inp: AULLMInput, config, jitter: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """The network's input array for one clip: six sampled frames in 0..1, or the motion sequence as it is."""
    if config.input == "motion":
        return inp.x.astype(np.float32)
    from assistant.au.preprocess import clip_tensor

    return clip_tensor(inp.x, config.n_frames, jitter, rng)
