"""Synthetic NDT pixel data (numpy only, deterministic for a random generator).

Everything here is generated from simple physical models; nothing is copied
from real inspections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Rng = np.random.Generator


@dataclass(frozen=True)
class Feature:
    """A planted indication: what, where (pixel centre row/col) and its size in mm."""

    kind: str  # POROSITY, CRACK, VOID, DISBOND, ...
    row: float
    col: float
    size_mm: float


def _disc_chord(shape: tuple[int, int], cy: float, cx: float, r: float) -> tuple[slice, slice, np.ndarray]:
    """Chord length through a sphere of radius *r* px around (cy, cx), on the pixel window it covers."""
    y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, shape[0])
    x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    chord = 2.0 * np.sqrt(np.clip(r * r - d2, 0.0, None))
    return slice(y0, y1), slice(x0, x1), chord


# 3x5 bitmap digits for lead location markers (rows top to bottom, bits left to right).
_DIGITS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7), "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1), "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
}  # fmt: skip


def _lead_text(t: np.ndarray, text: str, top: int, left: int, cell: int, extra_mm: float) -> None:
    """Add lead letters (high attenuation) to the thickness map *t*, *cell* pixels per font dot."""
    for n, char in enumerate(text):
        glyph = _DIGITS.get(char)
        if glyph is None:
            continue
        for r, bits in enumerate(glyph):
            for c in range(3):
                if bits & (4 >> c):
                    y, x = top + r * cell, left + (n * 4 + c) * cell
                    t[y : y + cell, x : x + cell] += extra_mm


def weld_radiograph(
    rng: Rng,
    rows: int,
    cols: int,
    pixel_mm: float,
    *,
    thickness_mm: float,
    pores: int,
    crack: bool,
    plate_noise: float = 0.0,
) -> tuple[np.ndarray, list[Feature]]:
    """A butt weld radiograph (16-bit detector signal: high = more radiation = less steel).

    Horizontal weld seam with cap reinforcement and bead ripples, gas pores inside the
    weld, optionally a longitudinal crack-like line, and an ISO 19232-1 style wire IQI.
    """
    mu = 0.06  # 1/mm, effective attenuation of steel at a few hundred kV (illustrative)
    y = (np.arange(rows, dtype=np.float32) - rows / 2) * pixel_mm
    x = np.arange(cols, dtype=np.float32) * pixel_mm
    width = 14.0 + rng.uniform(-2, 2)  # weld cap width, mm
    cap = 2.5 * np.clip(1 - (y / (width / 2)) ** 2, 0, None)  # reinforcement profile, mm
    ripple = 1 + 0.08 * np.sin(2 * np.pi * x / rng.uniform(2.5, 4.0))
    t = thickness_mm + cap[:, None] * ripple[None, :]
    # Gas pores: spheres inside the weld metal, a cluster and some scattered.
    features: list[Feature] = []
    cluster_x = rng.uniform(0.3, 0.5) * cols
    for i in range(pores):
        r_mm = rng.uniform(0.3, 1.2)
        cx = cluster_x + rng.normal(0, cols * 0.03) if i < pores * 2 // 3 else rng.uniform(0.05, 0.95) * cols
        cy = rows / 2 + rng.normal(0, width / 5 / pixel_mm)
        ys, xs, chord = _disc_chord(t.shape, cy, cx, r_mm / pixel_mm)
        t[ys, xs] -= chord * pixel_mm
        features.append(Feature("POROSITY", cy, cx, 2 * r_mm))
    if crack:
        length = rng.uniform(8, 20) / pixel_mm
        cx = rng.uniform(0.55, 0.8) * cols
        cy = rows / 2 + rng.uniform(-0.3, 0.3) * width / pixel_mm
        steps = max(int(length), 2)
        path_y = cy + np.cumsum(rng.normal(0, 0.35, steps))
        path_x = cx + np.arange(steps)
        depth = np.sin(np.linspace(0, np.pi, steps)) * thickness_mm * 0.25
        for py, px, dz in zip(path_y, path_x, depth, strict=True):
            iy, ix = int(py), int(px)
            if 0 <= iy < rows - 1 and 0 <= ix < cols:
                t[iy : iy + 2, ix] -= dz
        features.append(Feature("CRACK", float(path_y.mean()), cx + steps / 2, steps * pixel_mm))
    # Wire IQI across the weld near the left edge: 7 wires of decreasing diameter (mm).
    iqi_x0 = 0.06 * cols
    for k, diameter in enumerate((0.4, 0.32, 0.25, 0.2, 0.16, 0.13, 0.1)):
        wx = iqi_x0 + k * 5.0 / pixel_mm
        r = diameter / 2 / pixel_mm
        xs_ = np.arange(cols, dtype=np.float32)
        chord = 2 * np.sqrt(np.clip(r * r - (xs_ - wx) ** 2, 0, None)) * pixel_mm
        y0, y1 = int(rows / 2 - 12.5 / pixel_mm), int(rows / 2 + 12.5 / pixel_mm)
        t[max(y0, 0) : min(y1, rows), :] += chord[None, :] * 1.0
    # Lead location markers every 50 mm along the top edge (film-style position numbers).
    cell = max(1, round(0.8 / pixel_mm))
    if rows > 12 * cell:
        for mark in range(0, int(cols * pixel_mm), 50):
            left = int(mark / pixel_mm) + 2 * cell
            if left + (4 * len(str(mark)) + 1) * cell <= cols:
                _lead_text(t, str(mark), 2 * cell, left, cell, 25.0)
    # Exposure: heel effect across the image, detector gain pattern, quantum noise.
    heel = np.linspace(1.0, 0.85, cols, dtype=np.float32)[None, :]
    signal = 52000.0 * np.exp(-mu * (t - thickness_mm)) * np.exp(-mu * thickness_mm * 0.2) * heel
    signal *= 1 + 0.003 * rng.standard_normal((1, cols)).astype(np.float32)  # column gain
    signal += rng.standard_normal(signal.shape).astype(np.float32) * (np.sqrt(signal) * 1.6 + plate_noise)
    return np.clip(signal, 0, 65535).astype(np.uint16), features


def casting_ct_slice(
    rng: Rng, size: int, pixel_mm: float, z_mm: float, pores: list[tuple[float, float, float, float]]
) -> np.ndarray:
    """One CT slice of a cast aluminium housing: outer wall, bore, ribs, spherical pores.

    Stored values are CT numbers + 1024 (RescaleIntercept -1024): air 0, aluminium ~3400.
    *pores* are (x, y, z, r) in mm, centred on the slice origin.
    """
    half = size * pixel_mm / 2
    coords = (np.arange(size, dtype=np.float32) + 0.5) * pixel_mm - half
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rr = np.hypot(xx, yy)
    outer = 0.42 * 2 * half * (1 + 0.04 * np.cos(6 * np.arctan2(yy, xx)))  # slightly lobed casting
    bore = 0.16 * 2 * half + 0.02 * z_mm
    body = (rr < outer) & (rr > bore)
    ribs = (np.abs(xx) < 0.03 * 2 * half) | (np.abs(yy) < 0.03 * 2 * half)
    body |= ribs & (rr < outer * 1.08) & (rr > outer * 0.98)
    hu = np.where(body, 2400.0, -1000.0).astype(np.float32)
    hu += np.where(body, -120.0 * (1 - rr / outer), 0.0)  # cupping from beam hardening
    for px, py, pz, r in pores:
        dz = z_mm - pz
        if abs(dz) >= r:
            continue
        rc = np.sqrt(r * r - dz * dz)
        hu[(xx - px) ** 2 + (yy - py) ** 2 < rc * rc] = -1000.0
    hu += rng.standard_normal(hu.shape).astype(np.float32) * 60.0
    return np.clip(hu + 1024.0, 0, 65535).astype(np.uint16)


def ut_cscan(rng: Rng, rows: int, cols: int, pixel_mm: float) -> tuple[np.ndarray, list[Feature]]:
    """8-bit amplitude C-scan (back-wall echo, % full screen height) of a bonded panel.

    Stiffener lines, a disbonded area and an impact-damage zone lose back-wall amplitude.
    """
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    amp = 200.0 + rng.standard_normal((rows, cols)).astype(np.float32) * 6.0
    for sx in np.linspace(0.2, 0.8, 3) * cols:
        amp -= 40.0 * np.exp(-(((xx - sx) * pixel_mm / 4.0) ** 2))
    features = []
    cy, cx = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.25, 0.45) * cols
    a, b = rng.uniform(8, 15) / pixel_mm, rng.uniform(5, 10) / pixel_mm
    disbond = ((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2 < 1
    amp[disbond] = 25.0 + rng.standard_normal(int(disbond.sum())).astype(np.float32) * 5
    features.append(Feature("DISBOND", cy, cx, 2 * a * pixel_mm))
    iy, ix = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.6, 0.8) * cols
    r = np.hypot(yy - iy, xx - ix) * pixel_mm
    amp *= 1 - 0.7 * np.exp(-((r / 6.0) ** 2)) * (1 + 0.3 * np.cos(5 * np.arctan2(yy - iy, xx - ix)))
    features.append(Feature("IMPACT", iy, ix, 12.0))
    return np.clip(amp, 0, 255).astype(np.uint8), features


def eddy_current_map(rng: Rng, rows: int, cols: int, pixel_mm: float) -> tuple[np.ndarray, list[Feature]]:
    """16-bit impedance-magnitude map of a riveted lap joint with a crack at one fastener hole."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32) * pixel_mm
    signal = 20000.0 + 300.0 * np.sin(xx / 7.0) + rng.standard_normal((rows, cols)).astype(np.float32) * 120.0
    pitch = 25.0
    row_y = rows * pixel_mm / 2
    for fx in np.arange(pitch / 2, cols * pixel_mm, pitch):
        r = np.hypot(xx - fx, yy - row_y)
        signal += 9000.0 * np.exp(-((r / 2.4) ** 2)) - 2500.0 * np.exp(-(((r - 4.5) / 1.0) ** 2))
    n_holes = int(cols * pixel_mm / pitch)
    hole = int(rng.integers(1, max(n_holes - 1, 2)))
    fx = pitch / 2 + hole * pitch
    length = rng.uniform(3, 6)
    along = (xx - fx - 2.5) / length
    crack = (along > 0) & (along < 1) & (np.abs(yy - row_y) < 0.5)
    signal[crack] += 6000.0 * (1 - along[crack])
    features = [Feature("CRACK", row_y / pixel_mm, (fx + 2.5 + length / 2) / pixel_mm, length)]
    return np.clip(signal, 0, 65535).astype(np.uint16), features
