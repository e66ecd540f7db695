"""Registration before flow: the apex face is warped onto the onset face using stable face content only.

Real clips drift: the head moves a few pixels and turns a little between onset and apex, far more than the 0.05-0.4 px
a micro-expression moves the skin. Measuring flow first and subtracting a fitted head motion afterwards asks the flow
to get large motion right (TV-L1 runs its whole iteration budget on a 13 px shift) and lets the fit see the
expression. So the apex face is registered first, in two steps, and the flow is left with the expression; a third
step cleans up after it:

1. coarse: a similarity fitted robustly (RANSAC) to landmarks of both frames that muscles do not move: the face
   contour away from the chin (iBUG 0-4, 12-16), the nose bridge (28, 29) and, with mediapipe's mesh, the upper
   forehead. Without apex landmarks (a neighbouring frame) the shift comes from phase correlation of the two crops.
   Landmarks are good to about a pixel;
2. fine: a direct (Lucas-Kanade, inverse compositional) fit of a similarity plus gain and bias to the pixels of the
   **stable mask** (forehead above the brows' reach, nose bridge, a band along the contour away from the chin), with
   Tukey weights on the residuals so that a patch that does move is dropped. Intensities are matched directly,
   so the estimate does not inherit the flow's smoothing, which shrinks motion on smooth skin;
3. after the flow, `residual_head_motion` fits what registration left (a similarity) by iteratively reweighted least
   squares (Tukey) over dense flow samples inside the **stable mask** (forehead above the brows' reach, nose bridge,
   a band along the contour away from the chin), so a patch that does move there is down-weighted, not averaged in.
   Its estimate is sub-pixel and depends on stable content alone; the head motion reported is both steps composed.

Eye corners (AU5/6/7/43 move them) and the nose base (AU9/10) are never used, nor brows, cheeks, mouth and chin. A
similarity (4 parameters), not an affine map, is fitted: the stable content spans the face's width well but its
height poorly, and an affine fit there extrapolates shear into the chin.

Head model. Real heads also turn out of plane, and a turn of half a degree moves the nose against the face contour by
a few tenths of a pixel (parallax), as much as a micro-expression. With a per-pixel depth Z (`assistant.motion.depth`,
from MediaPipe's mesh) steps 2 and 3 fit a weak-perspective rigid motion instead, `rigid3d`:
u = tx + a*x - b*y + yaw*Z, v = ty + b*x + a*y + pitch*Z (direct model-based motion estimation, Bergen et al. 1992;
a 3-D head model with Lucas-Kanade, La Cascia et al. 2000, Xiao, Kanade and Cohn 2002). It is linear in its six
parameters, so the Tukey-weighted loops keep their shape; the apex face is warped with the depth-aware field before
the flow. Pixels on steep depth slopes are weighed down (their depth is least certain). Signs, as `HeadMotion.tilt`
holds them: yaw > 0 moves the nose tip towards the image's right (the person turns to their left), pitch > 0 moves it
down (the head nods down). Without depth (the dlib backend) the similarity is fitted, `similarity`.

Both crops are cut with the same affine resampling from the source frames (anti-aliased when the face is larger than
the working size), so they share one interpolation and no border replication: outside the frame is black, and the
face mask keeps it out of every measurement.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from assistant.motion.depth import slope_weights
from assistant.types import CropBox, FaceLandmarks

log = logging.getLogger(__name__)

STABLE_68 = (0, 1, 2, 3, 4, 12, 13, 14, 15, 16, 28, 29)
# Mediapipe mesh points of the upper forehead (well above the brows, which AU1/2/4 move).
STABLE_MESH = (54, 103, 67, 109, 10, 338, 297, 332, 284, 104, 69, 108, 151, 337, 299, 333)
BROW_CLEARANCE = 0.3  # the forehead band starts this many inter-ocular distances above the brows
FOREHEAD_HEIGHT = 0.55  # and is this tall when the landmarks have no forehead points (the 68-point backend)
CONTOUR_BAND = 0.18  # width of the band along the face contour, in inter-ocular distances
EYE_BAND = 0.3  # nothing within this many inter-ocular distances of the line through the eyes is stable, from
EYE_REACH = 0.3  # this far beyond either outer eye corner (the temples beyond it are stable)
BRIDGE_HALF_WIDTH = 0.07
OUTLINE_CLEARANCE = 0.04  # inter-ocular distances (about 3 px at 256) kept clear of the outline in rigid3d fits
IRLS_ITERATIONS = 6
LK_LEVELS = (3.0, 1.0)  # Gaussian blur (sigma, px) of the coarse and the fine pass: a wide basin, then precision
LK_ITERATIONS = 12
LK_STOP = 1e-3  # px: stop when an update moves no stable pixel further than this
LK_MAX_STEP = 1.0  # px: no single update moves a stable pixel further than this
LK_SPREAD_FLOOR = 1.0  # grey levels: residuals within a few levels are camera noise and resampling, never outliers
LK_DAMPING = 1e-3
PHASE_MAX_SHIFT = 0.05  # of the crop: neighbouring frames never move further; a larger peak is spurious
MIN_EXPOSURE_PIXELS = 200  # stable pixels needed to match the apex crop's exposure to the onset crop's
MAX_GAIN = 1.5  # exposure gains are clipped to 1/1.5..1.5: more is not one clip's lighting but a measuring error
TUKEY_C = 4.685  # Tukey biweight constant (95 % efficiency under Gaussian noise), in units of the robust spread
RAYLEIGH_MEDIAN = math.sqrt(2 * math.log(2))  # median length of a 2-D standard normal vector


@dataclass
class HeadMotion:
    """Head motion in working-crop pixels: onset point p -> apex point `matrix @ p + tilt * Z(p)`.

    `matrix` is a 3x3 similarity; `tilt` = (yaw, pitch) in radians is the parallax of a small out-of-plane turn under
    weak perspective, with Z the depth toward the camera in crop pixels (`assistant.motion.depth`; signs in the module
    docstring). A similarity alone has zero tilt.
    """

    matrix: np.ndarray
    tilt: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def then(self, later: HeadMotion) -> HeadMotion:
        """This motion followed by `later` measured on the result (both small: the depth terms add to first order)."""
        return HeadMotion(self.matrix @ later.matrix, self.tilt + self.matrix[:2, :2] @ later.tilt)

    def field(self, shape: tuple[int, int], depth: np.ndarray | None) -> np.ndarray:
        """(H, W, 2) displacement at every pixel."""
        out = displacement(self.matrix, shape)
        if depth is not None and self.tilt.any():
            out = out + depth[..., None] * self.tilt.astype(np.float32)
        return out


@dataclass
class Registration:
    """Where the apex face was found relative to the onset face, in working-crop pixels."""

    head: HeadMotion  # onset-crop point -> apex-crop point (head motion, before the flow)
    method: str  # "landmarks+lk" | "phase+lk" | "landmarks" | "phase" | "none"; "+free-bridge" appended by
    # analyze_frames when the rigid3d fits that were kept left the nose bridge out


def inter_ocular(points68: np.ndarray) -> float:
    p = np.asarray(points68, dtype=np.float64)
    return max(float(np.linalg.norm(p[42:48].mean(axis=0) - p[36:42].mean(axis=0))), 1.0)


def crop_matrix(box: CropBox) -> np.ndarray:
    """3x3 map from working-crop pixels to source-frame pixels, with the pixel-centre convention of `cv2.resize`."""
    k = 1.0 / box.scale
    return np.array([[k, 0, box.x0 + 0.5 * k - 0.5], [0, k, box.y0 + 0.5 * k - 0.5], [0, 0, 1]], np.float64)


def _antialias(image: np.ndarray, scale: float) -> np.ndarray:
    """Blur before shrinking so that the affine resampling does not alias (what INTER_AREA does for a resize)."""
    if scale >= 0.95:
        return image
    sigma = 0.45 * np.sqrt(1.0 / scale ** 2 - 1.0)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def warp_crop(image: np.ndarray, crop_to_source: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The working-size crop whose pixel u shows source pixel `crop_to_source @ u`."""
    return cv2.warpAffine(_antialias(image, scale), crop_to_source[:2], (size, size),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _source_maps(crop_to_source: np.ndarray, head: HeadMotion, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source-frame x and y (float32 maps) that each working-crop pixel u shows: `crop_to_source @ head(u)`."""
    h, w = depth.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    m = crop_to_source @ head.matrix
    tilt = crop_to_source[:2, :2] @ head.tilt
    mx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + tilt[0] * depth
    my = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + tilt[1] * depth
    return mx.astype(np.float32), my.astype(np.float32)


def warp_head(image: np.ndarray, crop_to_source: np.ndarray, head: HeadMotion, depth: np.ndarray | None,
              size: int, scale: float) -> np.ndarray:
    """The working-size crop of `image` with the head motion undone: pixel u shows where the head took onset pixel u.
    Without depth this is `warp_crop` (an affine resampling); with depth the depth-aware field is resampled."""
    if depth is None:
        return warp_crop(image, crop_to_source @ head.matrix, size, scale)
    return cv2.remap(_antialias(image, scale), *_source_maps(crop_to_source, head, depth), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def stable_points(landmarks: FaceLandmarks) -> np.ndarray:
    pts = [landmarks.points68[list(STABLE_68)]]
    if len(landmarks.points) >= 468:
        pts.append(landmarks.points[list(STABLE_MESH)])
    return np.concatenate(pts).astype(np.float32)


def landmark_similarity(onset: FaceLandmarks, apex: FaceLandmarks) -> np.ndarray | None:
    """3x3 similarity onset-frame -> apex-frame from stable landmarks (RANSAC), or None when it cannot be fitted."""
    src, dst = stable_points(onset), stable_points(apex)
    if len(src) != len(dst):
        return None
    d = inter_ocular(onset.points68)
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=0.05 * d)
    if m is None:
        return None
    return np.vstack([m, [0, 0, 1]])


def stable_mask(points68: np.ndarray, shape: tuple[int, int], mesh: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of face content that facial muscles barely move (crop pixels)."""
    h, w = shape
    p = np.asarray(points68, dtype=np.float64)
    d = inter_ocular(p)
    mask = np.zeros((h, w), np.uint8)
    brow_top = p[17:27, 1].min() - BROW_CLEARANCE * d
    top = brow_top - FOREHEAD_HEIGHT * d  # the face mask cuts it where the mesh ends
    x_left, x_right = p[17, 0] - 0.1 * d, p[26, 0] + 0.1 * d
    if brow_top > top:
        cv2.rectangle(mask, (int(x_left), int(top)), (int(x_right), int(brow_top)), 1, -1)
    cv2.fillConvexPoly(mask, np.round(_bridge(p, d)).astype(np.int32), 1)
    centre = p[27:31].mean(axis=0)
    for idx in ((0, 1, 2, 3, 4), (12, 13, 14, 15, 16)):
        outer = p[list(idx)]
        inner = outer + (centre - outer) / np.linalg.norm(centre - outer, axis=1, keepdims=True) * CONTOUR_BAND * d
        cv2.fillPoly(mask, [np.round(np.concatenate([outer, inner[::-1]])).astype(np.int32)], 1)
    eye_r, eye_l = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    axis = (eye_l - eye_r) / np.linalg.norm(eye_l - eye_r)
    ys, xs = np.mgrid[0:h, 0:w]
    off_line = np.abs((xs - eye_r[0]) * axis[1] - (ys - eye_r[1]) * axis[0])  # distance to the line through the eyes
    along = (xs - eye_r[0]) * axis[0] + (ys - eye_r[1]) * axis[1]  # position along it, from the right eye's centre
    reach = np.linalg.norm(p[36] - eye_r) + EYE_REACH * d
    eyes = (off_line < EYE_BAND * d) & (along > -reach) & (along < d + reach)
    return mask.astype(bool) & ~eyes & face_mask(p, shape, mesh)


def rigid3d_fit_mask(stable: np.ndarray, face: np.ndarray, points68: np.ndarray, bridge: bool = True) -> np.ndarray:
    """The stable mask without a band OUTLINE_CLEARANCE wide inside the face mask's outline: the pixels the rigid3d
    fits use.

    A face that turns out of plane hides and uncovers skin at its outline against a background that stays still, and
    the blur of the fits and the flow's smoothing mix the two there; left in, that band pulled a rendered 1-degree
    turn's estimate 10-20 % towards zero.

    The nose bridge stays in by default although AU4 and AU9 move its skin: it stands in front of the rest and is the
    lever that separates pitch and yaw from a shift. With it a 0.8 px AU9 under a 1-degree pitch reads as 0.6-0.7
    degrees (1.15 rendered) and is mostly compensated away. Without it (`bridge=False`) that pitch is read at 1.02,
    and a turn alone less well than with it (yaw 1.26-1.34 for 1.15), so `analyze_frames` registers with both masks
    and keeps whichever leaves the face stiller (`docs/reading_real_faces.md`)."""
    d = inter_ocular(points68)
    r = max(1, int(round(OUTLINE_CLEARANCE * d)))
    inner = cv2.erode(face.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    if not bridge:
        cv2.fillConvexPoly(inner, np.round(_bridge(points68, d)).astype(np.int32), 0)
    return stable & inner.astype(bool)


def _bridge(p: np.ndarray, d: float) -> np.ndarray:
    """Corners of the nose-bridge strip between iBUG points 28 and 29."""
    return np.array([[p[28, 0] - BRIDGE_HALF_WIDTH * d, p[28, 1]], [p[28, 0] + BRIDGE_HALF_WIDTH * d, p[28, 1]],
                     [p[29, 0] + BRIDGE_HALF_WIDTH * d, p[29, 1]], [p[29, 0] - BRIDGE_HALF_WIDTH * d, p[29, 1]]])


def face_mask(points68: np.ndarray, shape: tuple[int, int], mesh: np.ndarray | None = None,
              erode_px: int = 2) -> np.ndarray:
    """Inside the face: the hull of mediapipe's mesh (forehead included), or of the 68 points with a forehead added
    above the brows for the 68-point backend. Eroded a little so that the background edge never counts."""
    h, w = shape
    if mesh is not None and len(mesh) >= 468:
        pts = np.asarray(mesh, dtype=np.float64)
    else:
        p = np.asarray(points68, dtype=np.float64)
        d = inter_ocular(p)
        pts = np.concatenate([p, p[17:27] - [0, (BROW_CLEARANCE + FOREHEAD_HEIGHT) * d]])
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    if erode_px > 0:
        mask = cv2.erode(mask, np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8))
    return mask.astype(bool)


def phase_shift(onset_grey: np.ndarray, apex_grey: np.ndarray) -> np.ndarray:
    """3x3 translation onset -> apex from phase correlation of the two crops (Hann-windowed)."""
    window = cv2.createHanningWindow(onset_grey.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(onset_grey.copy(), apex_grey.copy(), window)  # it windows its inputs in place
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) if image.ndim == 3 else image.astype(np.float32)


def crop_pair(onset: np.ndarray, apex: np.ndarray, box: CropBox) -> tuple[np.ndarray, np.ndarray, Registration]:
    """Both crops cut from the same box with no registration (the published recipe's `nose` and `none`)."""
    to_src = crop_matrix(box)
    return (warp_crop(onset, to_src, box.size, box.scale), warp_crop(apex, to_src, box.size, box.scale),
            Registration(HeadMotion(np.eye(3)), "none"))


def _similarity(params: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """3x3 map of the centred similarity x' = (1 + a) x - b y + tx, y' = b x + (1 + a) y + ty about `centre`."""
    a, b, tx, ty = params
    cx, cy = centre
    return np.array([[1 + a, -b, tx + cx - (1 + a) * cx + b * cy], [b, 1 + a, ty + cy - b * cx - (1 + a) * cy],
                     [0, 0, 1]])


def _lk_residual(apex_src: np.ndarray, crop_to_source: np.ndarray, head: HeadMotion, depth: np.ndarray | None,
                 shape: tuple[int, int], sigma: float, pixels: tuple[np.ndarray, np.ndarray],
                 template: np.ndarray) -> np.ndarray:
    """Warped, blurred apex minus the template at the stable pixels, after matching gain and bias."""
    ys, xs = pixels
    warped = warp_head(apex_src, crop_to_source, head, depth, shape[0], 1.0)  # apex_src is anti-aliased already
    warped = cv2.GaussianBlur(warped, (0, 0), sigma)[ys, xs]
    warped = (warped - warped.mean()) / (warped.std() + 1e-6) * template.std() + template.mean()
    return (warped - template).astype(np.float64)


def refine_lk(onset_grey: np.ndarray, apex: np.ndarray, to_src: np.ndarray, head: HeadMotion, box: CropBox,
              stable: np.ndarray, depth: np.ndarray | None = None) -> HeadMotion:
    """Refine `head` (crop onset -> crop apex) so that the apex crop matches the onset crop on the stable pixels;
    with `depth`, the rigid3d model (six parameters), else the similarity (four).

    Guarded: a step moves no stable pixel more than LK_MAX_STEP px, and the best estimate seen (by the robust
    residual) is returned, so flat or ambiguous content can only leave the coarse estimate as it was, never worse.
    """
    ys, xs = np.nonzero(stable)
    centre = np.array([xs.mean(), ys.mean()])
    x, y = xs - centre[0], ys - centre[1]
    reach = float(np.abs(np.concatenate([x, y])).max())
    prior = np.ones(len(xs))
    if depth is not None:
        z = depth[ys, xs].astype(np.float64)
        z_reach = float(np.abs(z - z.mean()).max())
        prior = slope_weights(depth)[ys, xs].astype(np.float64)
    apex_src = _grey(_antialias(apex, box.scale))  # one channel: a third of the warping
    best_cost, best_head = np.inf, head
    for sigma in LK_LEVELS:
        template = cv2.GaussianBlur(onset_grey, (0, 0), sigma)
        gx = cv2.Sobel(template, cv2.CV_32F, 1, 0, ksize=3)[ys, xs] / 8.0
        gy = cv2.Sobel(template, cv2.CV_32F, 0, 1, ksize=3)[ys, xs] / 8.0
        t = template[ys, xs]
        columns = [gx * x + gy * y, -gx * y + gy * x, gx, gy]
        if depth is not None:
            columns += [gx * (z - z.mean()), gy * (z - z.mean())]
        steepest = np.stack(columns, axis=1).astype(np.float64)
        best_cost = np.inf  # costs are compared within one blur level only, on one fixed scale
        cost_scale = None

        def residual(h: HeadMotion, sigma: float = sigma, t: np.ndarray = t) -> np.ndarray:
            return _lk_residual(apex_src, to_src, h, depth, onset_grey.shape, sigma, (ys, xs), t)

        for _ in range(LK_ITERATIONS):
            error = residual(head)
            spread = max(1.4826 * float(np.median(np.abs(error))), LK_SPREAD_FLOOR)
            cost_scale = spread if cost_scale is None else cost_scale
            cost = float(np.average(np.minimum(np.abs(error) / cost_scale, TUKEY_C), weights=prior))
            if cost < best_cost:
                best_cost, best_head = cost, head
            r = error / (TUKEY_C * spread)
            weights = np.where(np.abs(r) < 1, (1 - r ** 2) ** 2, 0.0) * prior
            hessian = (steepest * weights[:, None]).T @ steepest
            hessian += LK_DAMPING * np.diag(np.diag(hessian))  # Levenberg-Marquardt: weak directions move little
            delta = np.linalg.solve(hessian + 1e-12 * np.eye(len(columns)), (steepest * weights[:, None]).T @ error)
            moved = np.abs(delta[2:4]).max() + np.abs(delta[:2]).max() * reach
            if depth is not None:
                moved += np.abs(delta[4:]).max() * z_reach
            if moved > LK_MAX_STEP:
                delta *= LK_MAX_STEP / moved
            step = HeadMotion(np.linalg.inv(_similarity(delta[:4], centre)))
            if depth is not None:  # the depth terms, centred on the stable pixels' mean depth like x and y
                tilt = -delta[4:]
                step.tilt = tilt
                step.matrix[:2, 2] -= tilt * z.mean()
            head = head.then(step)
            if moved < LK_STOP:
                break
        last = residual(head)
        if float(np.average(np.minimum(np.abs(last) / cost_scale, TUKEY_C), weights=prior)) < best_cost:
            best_head = head  # the level's last step, scored too
        head = best_head
    return best_head


def register_pair(onset: np.ndarray, apex: np.ndarray, onset_lm: FaceLandmarks, apex_lm: FaceLandmarks | None,
                  box: CropBox, stable: np.ndarray,
                  depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, Registration]:
    """Onset crop, the apex crop registered onto it, and the registration (crop pixels). `apex_lm` None: the coarse
    shift comes from phase correlation (neighbouring frames, or an apex frame where no face was found). `depth` (crop
    pixels, `assistant.motion.depth`): fit and undo the rigid3d model, else the similarity."""
    to_src = crop_matrix(box)
    onset_crop = warp_crop(onset, to_src, box.size, box.scale)
    onset_grey = _grey(onset_crop)
    coarse = landmark_similarity(onset_lm, apex_lm) if apex_lm is not None else None
    if coarse is not None:
        head, method = HeadMotion(np.linalg.inv(to_src) @ coarse @ to_src), "landmarks"
    else:
        shift = phase_shift(onset_grey, _grey(warp_crop(apex, to_src, box.size, box.scale)))
        if np.hypot(*shift[:2, 2]) > PHASE_MAX_SHIFT * box.size:  # a spurious peak: start from no motion instead
            shift = np.eye(3)
        head, method = HeadMotion(shift), "phase"
    if stable.sum() >= 200:
        head, method = refine_lk(onset_grey, apex, to_src, head, box, stable, depth), method + "+lk"
    return onset_crop, warp_head(apex, to_src, head, depth, box.size, box.scale), Registration(head, method)


def match_exposure(onset_grey: np.ndarray, apex_grey: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """The apex crop (grey, float32) with the gain and offset that match it to the onset crop on the stable pixels.

    Auto-exposure and lighting drift change the face's brightness by a few per cent between onset and apex; flow,
    which assumes constant brightness, reads that as motion wherever the skin has a gradient, and on a soft face that
    is as much as the expression itself. The stable content does not move, so its brightness change is the light's.
    """
    apex = apex_grey.astype(np.float32)
    if int(stable.sum()) < MIN_EXPOSURE_PIXELS:
        return apex
    onset_px, apex_px = onset_grey[stable].astype(np.float64), apex[stable].astype(np.float64)
    gain = float(np.clip(onset_px.std() / max(apex_px.std(), 1e-6), 1 / MAX_GAIN, MAX_GAIN))
    return ((apex - apex_px.mean()) * gain + onset_px.mean()).astype(np.float32)


def displacement(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) displacement M(p) - p of a 3x3 affine map at every pixel."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    a, b, tx = matrix[0]
    c, d, ty = matrix[1]
    return np.stack([(a - 1) * xs + b * ys + tx, c * xs + (d - 1) * ys + ty], axis=-1).astype(np.float32)


def residual_head_motion(flow: np.ndarray, mask: np.ndarray, step: int = 2,
                         depth: np.ndarray | None = None) -> HeadMotion:
    """The head motion (similarity, or rigid3d with `depth`) that best explains the flow inside `mask`
    (Tukey-weighted IRLS over dense samples).

    Samples on a `step` grid; the weights come from each sample's residual against the robust spread (MAD), so a
    patch that moved on its own is down-weighted to zero instead of tilting the fit; with depth, samples on steep
    depth slopes start with less weight too.
    """
    ys, xs = np.nonzero(mask[::step, ::step])
    if len(xs) < 20:
        return HeadMotion(np.eye(3))
    ys, xs = ys * step, xs * step
    prior = np.ones(len(xs))
    u = flow[ys, xs].astype(np.float64)
    cx, cy = xs.mean(), ys.mean()
    x, y = xs - cx, ys - cy
    # u_x = a x - b y + tx [+ yaw z] ; u_y = b x + a y + ty [+ pitch z]  (a = s cos - 1, b = s sin), centred
    n = len(x)
    zero, one = np.zeros(n), np.ones(n)
    rows_x, rows_y = [x, -y, one, zero], [y, x, zero, one]
    zm = 0.0
    if depth is not None:
        z = depth[ys, xs].astype(np.float64)
        zm = float(z.mean())
        rows_x += [z - zm, zero]
        rows_y += [zero, z - zm]
        prior = slope_weights(depth)[ys, xs].astype(np.float64)
    design = np.concatenate([np.stack(rows_x, axis=1), np.stack(rows_y, axis=1)])
    target = np.concatenate([u[:, 0], u[:, 1]])
    weights = prior
    params = np.zeros(design.shape[1])
    for _ in range(IRLS_ITERATIONS):
        w2 = np.sqrt(np.concatenate([weights, weights]))  # rows scaled by sqrt(w): least squares weighted by w
        params, *_ = np.linalg.lstsq(design * w2[:, None], target * w2, rcond=None)
        res = np.hypot(*(target - design @ params).reshape(2, n))
        spread = float(np.median(res)) / RAYLEIGH_MEDIAN + 1e-6  # per-axis sigma of 2-D residual lengths
        r = res / (TUKEY_C * spread)
        weights = np.where(r < 1, (1 - r ** 2) ** 2, 0.0) * prior
    a, b, tx, ty = params[:4]
    tilt = params[4:] if depth is not None else np.zeros(2)
    # back to pixel coordinates: displacement at p = A (p - c) + t + tilt (z - zm)  ->  M = [[1+a, -b, .], [b, 1+a, .]]
    m = np.array([[1 + a, -b, 0.0], [b, 1 + a, 0.0], [0, 0, 1]])
    m[0, 2] = tx - a * cx + b * cy - tilt[0] * zm
    m[1, 2] = ty - b * cx - a * cy - tilt[1] * zm
    return HeadMotion(m, np.asarray(tilt, dtype=np.float64))


def describe(head: HeadMotion, at: tuple[float, float], depth: np.ndarray | None = None) -> dict[str, float]:
    """Head motion report: shift of the point `at` (px, its depth's parallax included), rotation (degrees, in the
    image plane; `roll` is the same angle), scale, and with depth the out-of-plane `pitch` and `yaw` (degrees, signs
    in the module docstring)."""
    x, y = at
    moved = head.matrix @ np.array([x, y, 1.0])
    if depth is not None:
        h, w = depth.shape
        moved[:2] += head.tilt * float(depth[int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))])
    lin = head.matrix[:2, :2]
    rotation = float(np.degrees(np.arctan2(lin[1, 0] - lin[0, 1], lin[0, 0] + lin[1, 1])))
    out = {"tx": float(moved[0] - x), "ty": float(moved[1] - y), "rotation": rotation,
           "scale": float(np.sqrt(abs(np.linalg.det(lin))))}
    if depth is not None:
        out.update(pitch=float(np.degrees(head.tilt[1])), yaw=float(np.degrees(head.tilt[0])), roll=rotation)
    return out
