"""Which physical size a pixel has, and which attribute says so (PS3.3 10.7.1.3).

Measurements in the viewer and annotations in the archive must agree on the calibration, so
the choice is made once, here: Pixel Spacing (calibrated in the patient / object plane) first,
then Imager Pixel Spacing (detector plane), then Nominal Scanned Pixel Spacing (digitised film).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SPACING_TAGS = (
    ("PixelSpacing", "00280030"),
    ("ImagerPixelSpacing", "00181164"),
    ("NominalScannedPixelSpacing", "00182010"),
)


@dataclass(frozen=True)
class Spacing:
    """Millimetres between rows and between columns, and the attribute they came from."""

    row_mm: float
    column_mm: float
    attribute: str


def numbers(header: dict[str, Any], tag: str) -> list[float]:
    """The numeric values of element *tag* of a DICOM JSON header (PS3.18 F.2); unparsable ones skipped."""
    out = []
    for value in header.get(tag, {}).get("Value") or []:
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            continue
    return out


def pixel_spacing(header: dict[str, Any]) -> Spacing | None:
    """The first usable spacing of a DICOM JSON header, in the order above; None when there is none."""
    for keyword, tag in SPACING_TAGS:
        values = numbers(header, tag)
        if len(values) >= 2 and all(math.isfinite(v) and v > 0 for v in values[:2]):
            return Spacing(row_mm=values[0], column_mm=values[1], attribute=keyword)
    return None
