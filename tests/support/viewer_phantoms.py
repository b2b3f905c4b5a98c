"""Synthetic images with known content for the viewer's tool tests (browser and benchmarks).

Every region, value and spacing is chosen so a measurement has an exact expected answer:

- PHANTOM (400 x 600, 16-bit, anisotropic Pixel Spacing 0.2 mm rows / 0.1 mm columns,
  Rescale Slope 2, Intercept -100, stored window): a checkerboard rectangle, a checkerboard disc,
  a flat-ramp-flat band for the line profile, a cold row and a hot row (outliers for the
  histogram window).
- MARKS (200 x 300): a bright square top left and a medium square bottom left on a dark
  background, to see where rotate / flip / invert put them.
- WELD_STRIP (1000 x 10000): a long weld-strip radiograph with two markers 8000 px apart.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation

from tests.support.factories import make_instance

PHANTOM_SERIAL = "SN-PHANTOM-1"
MARKS_SERIAL = "SN-MARKS-1"
STRIP_SERIAL = "SN-STRIP-10K"

# -- PHANTOM ----------------------------------------------------------------------------------
PHANTOM_SHAPE = (400, 600)
ROW_MM, COLUMN_MM = 0.2, 0.1  # Pixel Spacing (0028,0030): row spacing \ column spacing
SLOPE, INTERCEPT = 2.0, -100.0
BACKGROUND = 1000  # stored
# Rectangle region: rows 40..139, columns 40..239, checkerboard of 1500 / 2500 stored.
RECT_REGION = (40, 140, 40, 240)  # row0, row1, col0, col1 (exclusive ends)
RECT_VALUES = (1500, 2500)
# Disc: centre (row 90, column 400), radius 60 px, checkerboard of 3000 / 3400 stored.
DISC_CENTER = (400, 90)  # x (column), y (row)
DISC_RADIUS = 60
DISC_VALUES = (3000, 3400)
# Profile band: rows 200..239; columns 100..199 flat LOW, 200..299 linear ramp, 300..399 flat HIGH.
BAND_ROWS = (200, 240)
BAND_LOW, BAND_HIGH = 1200, 3200
BAND_COLUMNS = (100, 200, 300, 400)
COLD_ROW, COLD_VALUE = 399, 0  # 0.25 % of the pixels: outliers below
HOT_ROW, HOT_VALUE = 0, 30000  # 0.25 % of the pixels: outliers above
STORED_WINDOW = (4000.0, 3000.0)  # center, width in modality units


def modality(stored: float) -> float:
    """Stored value -> modality value (PS3.3 C.11.1.1.2: slope * stored + intercept)."""
    return SLOPE * stored + INTERCEPT


def phantom_pixels() -> np.ndarray:
    rows, columns = PHANTOM_SHAPE
    y, x = np.mgrid[0:rows, 0:columns]
    parity = (x + y) % 2 == 0
    image = np.full(PHANTOM_SHAPE, BACKGROUND, dtype=np.uint16)
    r0, r1, c0, c1 = RECT_REGION
    box = (slice(r0, r1), slice(c0, c1))
    image[box] = np.where(parity[box], RECT_VALUES[0], RECT_VALUES[1])
    cx, cy = DISC_CENTER
    disc = (x - cx) ** 2 + (y - cy) ** 2 <= DISC_RADIUS**2
    image[disc] = np.where(parity[disc], DISC_VALUES[0], DISC_VALUES[1])
    b0, b1 = BAND_ROWS
    a, b, c, d = BAND_COLUMNS
    image[b0:b1, a:b] = BAND_LOW
    ramp = BAND_LOW + (BAND_HIGH - BAND_LOW) * (np.arange(b, c) - b) / (c - 1 - b)
    image[b0:b1, b:c] = np.round(ramp).astype(np.uint16)
    image[b0:b1, c:d] = BAND_HIGH
    image[COLD_ROW, :] = COLD_VALUE
    image[HOT_ROW, :] = HOT_VALUE
    return image


def phantom_dataset() -> Dataset:
    rows, columns = PHANTOM_SHAPE
    ds = make_instance(
        rows=rows,
        columns=columns,
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX",
        PatientID=PHANTOM_SERIAL,
        PatientName="Phantom^Tools",
        StudyDescription="Known-content phantom",
        RescaleSlope=SLOPE,
        RescaleIntercept=INTERCEPT,
        RescaleType="US",
        WindowCenter=STORED_WINDOW[0],
        WindowWidth=STORED_WINDOW[1],
    )
    ds.PixelSpacing = [ROW_MM, COLUMN_MM]
    ds.PixelData = phantom_pixels().tobytes()
    return ds


# -- MARKS ------------------------------------------------------------------------------------
MARKS_SHAPE = (200, 300)
MARK_BRIGHT = (slice(10, 40), slice(10, 40))  # top left, renders white (255)
MARK_MEDIUM = (slice(160, 190), slice(10, 40))  # bottom left, renders ~159
MARKS_VALUES = {"background": 1000, "medium": 2500, "bright": 4000}
MARKS_WINDOW = (2000.0, 4000.0)  # background ~64, medium ~159, bright 255


def marks_dataset() -> Dataset:
    image = np.full(MARKS_SHAPE, MARKS_VALUES["background"], dtype=np.uint16)
    image[MARK_BRIGHT] = MARKS_VALUES["bright"]
    image[MARK_MEDIUM] = MARKS_VALUES["medium"]
    ds = make_instance(
        rows=MARKS_SHAPE[0],
        columns=MARKS_SHAPE[1],
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX",
        PatientID=MARKS_SERIAL,
        PatientName="Marks^Orientation",
        WindowCenter=MARKS_WINDOW[0],
        WindowWidth=MARKS_WINDOW[1],
    )
    ds.PixelData = image.tobytes()
    return ds


# -- WELD_STRIP -------------------------------------------------------------------------------
STRIP_SHAPE = (1000, 10000)
STRIP_SPACING_MM = 0.1  # Imager Pixel Spacing
STRIP_MARKERS = ((1000, 500), (9000, 500))  # x, y: 8000 px = 800.0 mm apart
STRIP_MARKER_HALF = 15  # markers are 31 x 31 px: they survive a 10x decimation
STRIP_FLAT = (slice(100, 300), slice(4000, 6000))  # a flat region of STRIP_FLAT_VALUE
STRIP_FLAT_VALUE = 20000


def strip_pixels() -> np.ndarray:
    rows, columns = STRIP_SHAPE
    x = np.arange(columns)
    y = np.arange(rows)[:, None]
    image = (9000 + 2000 * np.sin(x / 300.0)[None, :] + 1500 * np.exp(-(((y - 500) / 60.0) ** 2))).astype(np.uint16)
    image[STRIP_FLAT] = STRIP_FLAT_VALUE
    h = STRIP_MARKER_HALF
    for mx, my in STRIP_MARKERS:
        image[my - h : my + h + 1, mx - h : mx + h + 1] = 60000
    return image


def strip_dataset() -> Dataset:
    rows, columns = STRIP_SHAPE
    ds = make_instance(
        rows=rows,
        columns=columns,
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX",
        PatientID=STRIP_SERIAL,
        PatientName="Pipeline^Girth weld strip",
        WindowCenter=20000,
        WindowWidth=40000,
    )
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [STRIP_SPACING_MM, STRIP_SPACING_MM]
    ds.PixelData = strip_pixels().tobytes()
    return ds


def all_datasets() -> dict[str, Dataset]:
    """The phantoms, each its own component / inspection / series."""
    return {"phantom": phantom_dataset(), "marks": marks_dataset(), "strip": strip_dataset()}
