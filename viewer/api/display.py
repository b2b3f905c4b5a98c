"""Values as an inspector reads them: names without DICOM's ``^``, dates in ISO 8601, calibration in NDT words.

The API keeps every raw value as stored and adds these beside it (``display`` fields), so that
the viewer and any other client show the same text.
"""

from __future__ import annotations

import re

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_DT = re.compile(r"^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?$")

# Which plane a pixel spacing is calibrated in (PS3.3 10.7.1.3), said the way radiographers say it.
SPACING_WORDS = {
    "PixelSpacing": "object pixel spacing",
    "ImagerPixelSpacing": "detector pixel spacing",
    "NominalScannedPixelSpacing": "scanned film pixel spacing",
}


def person_name(value: str | None) -> str:
    """A PN value (``Family^Given^Middle^Prefix^Suffix``, groups ``=``, values ``\\``) without the separators.

    Components are kept in their stored order (DICONDE puts component names in PatientName, where
    "Pipe^Weld 7" must read "Pipe Weld 7"); the ideographic and phonetic groups, when present, stay
    after their ``=`` so that nothing stored is hidden.
    """
    if not value:
        return ""
    names = []
    for one in str(value).split("\\"):
        groups = [" ".join(part.strip() for part in group.split("^") if part.strip()) for group in one.split("=")]
        while groups and not groups[-1]:
            groups.pop()
        names.append("=".join(groups).lstrip("="))
    return ", ".join(n for n in names if n)


def date(value: str | None) -> str:
    """A DA value YYYYMMDD as YYYY-MM-DD (a range ``A-B`` as ``A – B``); anything else unchanged."""
    if not value:
        return ""
    text = str(value).strip()
    if "-" in text and not text.startswith("-") and len(text) == 17:  # DA range YYYYMMDD-YYYYMMDD
        start, end = text.split("-", 1)
        return f"{date(start)} – {date(end)}"
    m = _DA.match(text)
    return f"{m[1]}-{m[2]}-{m[3]}" if m else text


def time(value: str | None) -> str:
    """A TM value HHMMSS.FFFFFF as HH:MM:SS.FFFFFF (as many parts as stored); anything else unchanged."""
    if not value:
        return ""
    text = str(value).strip()
    m = _TM.match(text)
    if not m:
        return text
    return ":".join(p for p in (m[1], m[2], m[3]) if p) + (m[4] or "")


def date_time(value: str | None) -> str:
    """A DT value YYYYMMDDHHMMSS.FFFFFF&ZZXX as ``YYYY-MM-DD HH:MM:SS.FFFFFF +ZZXX``; anything else unchanged."""
    if not value:
        return ""
    text = str(value).strip()
    m = _DT.match(text)
    if not m:
        return text
    parts = [date(m[1])]
    if m[2]:
        parts.append(time(m[2]))
    if m[3]:
        parts.append(m[3])
    return " ".join(parts)


def decimal(value: str) -> str:
    """A DS value without a meaningless fraction ("160.0" -> "160"); others as stored."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else value.strip()


_BY_VR = {"PN": person_name, "DA": date, "TM": time, "DT": date_time, "DS": decimal}


def attribute_value(vr: str, text: str) -> str:
    """An attribute's text value (multiple values joined with ``\\``) as shown to people, by its VR.

    PN without ``^``, DA / TM / DT in ISO 8601, DS without a fraction of zeros; other VRs as stored.
    """
    formatter = _BY_VR.get(vr)
    if formatter is None or not text:
        return text
    if vr == "PN":
        return formatter(text)
    return ", ".join(formatter(v) for v in text.split("\\"))


def millimetres(value: float) -> str:
    """A length in mm without trailing zeros: 0.1 -> "0.1", 0.05 -> "0.05", 0.125 -> "0.125"."""
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def spacing_words(attribute: str) -> str:
    """The calibration's kind in NDT words ("detector pixel spacing"); the keyword itself when unknown."""
    return SPACING_WORDS.get(attribute, attribute)


def calibration(attribute: str, row_mm: float, column_mm: float) -> str:
    """What a measurement's millimetres rest on: ``calibrated: detector pixel spacing 0.1 mm``."""
    size = (
        f"{millimetres(row_mm)} mm"
        if millimetres(row_mm) == millimetres(column_mm)
        else f"{millimetres(row_mm)} × {millimetres(column_mm)} mm (rows × columns)"
    )
    return f"calibrated: {spacing_words(attribute)} {size}"
