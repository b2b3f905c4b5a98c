"""Rendering a decoded frame to JPEG or PNG (PS3.18 §8.3.5 rendered media types, §8.3.5.1 parameters).

Grayscale goes through one lookup table built over the stored value range
(at most 65 536 entries): Modality LUT / Rescale Slope-Intercept (PS3.3 C.11.1),
then the asked window, else the stored VOI LUT or window, else the frame's
min/max (PS3.3 C.11.2), then MONOCHROME1 inversion. Indexing the table with the
frame is one numpy operation, so a 10 000 x 10 000 16-bit radiograph costs one
pass and an 8-bit output buffer; there are no per-pixel Python loops.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from viewer.frames import Frame

MediaType = Literal["image/jpeg", "image/png"]
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


class RenderError(ValueError):
    """A rendering parameter is malformed (the caller answers 400 with this reason)."""


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): centre, width and function."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """Output size (vw, vh) and an optional source region (sx, sy, sw, sh), PS3.18 §8.3.5.1.3."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class RenderOptions:
    """What the client asked for."""

    media_type: MediaType = "image/jpeg"
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = 90


def parse_window(text: str) -> Window:
    """``center,width,function`` (PS3.18 §8.3.5.1.4)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise RenderError("window must be center,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise RenderError(f"window values must be numbers: {text!r}") from exc
    function = parts[2].upper() if len(parts) == 3 and parts[2] else "LINEAR"
    if function not in VOI_FUNCTIONS:
        raise RenderError(f"window function must be one of {', '.join(v.lower() for v in VOI_FUNCTIONS)}")
    if not math.isfinite(center) or not math.isfinite(width) or width <= 0 or (function == "LINEAR" and width < 1):
        raise RenderError("window width must be positive (>= 1 for linear)")
    return Window(center, width, function)


def parse_viewport(text: str, max_side: int = 16384) -> Viewport:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (PS3.18 §8.3.5.1.3)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 6):
        raise RenderError("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    try:
        numbers = [int(p) if p else -1 for p in parts]
    except ValueError as exc:
        raise RenderError(f"viewport values must be integers: {text!r}") from exc
    vw, vh = numbers[0], numbers[1]
    if not (0 < vw <= max_side and 0 < vh <= max_side):
        raise RenderError(f"viewport width and height must be between 1 and {max_side}")
    region = None
    if len(numbers) == 6:
        sx, sy, sw, sh = (max(n, 0) for n in numbers[2:])
        region = (sx, sy, sw, sh)
    return Viewport(vw, vh, region)


def parse_quality(text: str) -> int:
    """``quality`` 1..100 (PS3.18 §8.3.5.1.2)."""
    try:
        value = int(text)
    except ValueError as exc:
        raise RenderError(f"quality must be an integer: {text!r}") from exc
    if not 1 <= value <= 100:
        raise RenderError("quality must be between 1 and 100")
    return value


def _window_to_unit(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a VOI window to *values* (float64), giving 0..1 (PS3.3 C.11.2.1.2-3)."""
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    if window.function == "LINEAR_EXACT":
        return np.clip((values - (c - w / 2)) / w, 0.0, 1.0)
    # LINEAR: C.11.2.1.2.1
    return np.clip(((values - (c - 0.5)) / (w - 1)) + 0.5, 0.0, 1.0)


def _stored_window(frame: Frame) -> Window | None:
    info = frame.info
    if not info.window_centers or not info.window_widths:
        return None
    function = info.voi_lut_function if info.voi_lut_function in VOI_FUNCTIONS else "LINEAR"
    width = info.window_widths[0]
    if width <= 0 or (function == "LINEAR" and width < 1):
        return None
    return Window(info.window_centers[0], width, function)


def _gray_lut_input(array: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For integer frames of <= 16 bits: (table index array, the stored values of each index)."""
    if array.dtype in (np.uint8, np.uint16):
        size = 256 if array.dtype == np.uint8 else 65536
        return array, np.arange(size, dtype=np.int64)
    if array.dtype in (np.int8, np.int16):
        unsigned = np.uint8 if array.dtype == np.int8 else np.uint16
        size = 256 if array.dtype == np.int8 else 65536
        values = np.arange(size, dtype=unsigned).view(array.dtype).astype(np.int64)
        return array.view(unsigned), values
    return None


def _gray_to_8bit(frame: Frame, window: Window | None) -> np.ndarray:
    info = frame.info
    array = frame.array
    prepared = _gray_lut_input(array)
    index: np.ndarray | None
    lo: float
    hi: float
    if prepared is not None:
        index, values = prepared
        lo, hi = float(array.min()), float(array.max())
    else:  # 32-bit or float data: compute on the frame itself
        index, values = None, array.astype(np.float64)
        lo, hi = float(np.min(values)), float(np.max(values))
    stored = values
    # Modality LUT: a table, or Rescale Slope/Intercept (PS3.3 C.11.1).
    if info.has_modality_lut:
        modality = apply_modality_lut(np.clip(stored, 0, None), frame.header).astype(np.float64)
    else:
        modality = stored * info.rescale_slope + info.rescale_intercept
    if window is None and info.has_voi_lut:
        voi = apply_voi_lut(stored.astype(array.dtype) if index is not None else array, frame.header, prefer_lut=True)
        voi = voi.astype(np.float64)
        unit = (voi - voi.min()) / max(float(voi.max() - voi.min()), 1e-12)
    else:
        chosen = window or _stored_window(frame)
        if chosen is None:  # no window anywhere: the frame's own range
            m_lo = lo * info.rescale_slope + info.rescale_intercept
            m_hi = hi * info.rescale_slope + info.rescale_intercept
            if info.has_modality_lut and index is not None:
                m_lo, m_hi = float(modality[index].min()), float(modality[index].max())
            low, high = min(m_lo, m_hi), max(m_lo, m_hi)
            chosen = Window((low + high) / 2, max(high - low, 1.0), "LINEAR_EXACT")
        unit = _window_to_unit(modality, chosen)
    if info.photometric_interpretation == "MONOCHROME1":
        unit = 1.0 - unit
    lut = np.rint(unit * 255.0).astype(np.uint8)
    return lut[index] if index is not None else lut


def _color_to_8bit(frame: Frame) -> np.ndarray:
    info = frame.info
    array = frame.array
    if info.photometric_interpretation == "PALETTE COLOR":
        array = apply_color_lut(array, frame.header)
        shift = 8 if array.dtype.itemsize > 1 else 0
        return (array >> shift).astype(np.uint8) if shift else array.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype.itemsize > 1:
        shift = max(info.bits_stored - 8, 0)
        return (array >> shift).astype(np.uint8)
    return array.astype(np.uint8, copy=False)


def to_8bit(frame: Frame, window: Window | None = None) -> np.ndarray:
    """The frame as displayable 8-bit samples: (rows, cols) grayscale or (rows, cols, 3) RGB."""
    if frame.info.grayscale and frame.array.ndim == 2:
        return _gray_to_8bit(frame, window)
    return _color_to_8bit(frame)


def _apply_viewport(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    if viewport is None:
        return image
    if viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        sw = sw or image.width - sx
        sh = sh or image.height - sy
        box = (min(sx, image.width), min(sy, image.height), min(sx + sw, image.width), min(sy + sh, image.height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise RenderError("viewport source region lies outside the image")
        image = image.crop(box)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS if scale > 1 else Image.Resampling.BILINEAR, reducing_gap=3.0)


def render(frame: Frame, options: RenderOptions) -> bytes:
    """Encode *frame* as JPEG or PNG per *options* (window, viewport, quality)."""
    pixels = to_8bit(frame, options.window)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    image = _apply_viewport(image, options.viewport)
    out = io.BytesIO()
    if options.media_type == "image/png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()
