"""C-FIND identifiers <-> the archive's protocol-neutral query model (PS3.4 C.4.1)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from storage.index.attributes import BY_KEYWORD, Level
from storage.index.query import Match, Query

_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC"}

# PS3.4 C.6: which levels each information model supports.
PATIENT_ROOT_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)
STUDY_ROOT_LEVELS = (Level.STUDY, Level.SERIES, Level.IMAGE)


class InvalidIdentifier(ValueError):
    """The identifier cannot be a query of this information model."""


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def query_from_identifier(identifier: Dataset, levels: Iterable[Level]) -> Query:
    """Build the :class:`Query` for a C-FIND identifier: non-empty elements are matching keys."""
    raw_level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    try:
        level = Level(raw_level)
    except ValueError as exc:
        raise InvalidIdentifier(f"QueryRetrieveLevel {raw_level!r} is not a valid level") from exc
    if level not in tuple(levels):
        raise InvalidIdentifier(f"QueryRetrieveLevel {level} is not supported by this information model")
    filters: dict[str, str] = {}
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in _SKIP or element.VR == "SQ":
            continue
        text = _as_text(element.value)
        if text:
            filters[keyword] = text
    return Query(level=level, filters=filters)


def response_identifier(request: Dataset, match: Match, *, retrieve_ae_title: str) -> Dataset:
    """The C-FIND response for *match*: every requested key, filled where the archive knows it."""
    response = Dataset()
    response.SpecificCharacterSet = "ISO_IR 192"
    header: Dataset | None = None
    for element in request:
        keyword = element.keyword or keyword_for_tag(element.tag)
        if keyword in ("SpecificCharacterSet",):
            continue
        if keyword == "QueryRetrieveLevel":
            response.QueryRetrieveLevel = match.level.value
            continue
        if keyword == "RetrieveAETitle":
            response.RetrieveAETitle = retrieve_ae_title
            continue
        if keyword in match.values and keyword in BY_KEYWORD:
            value = match.values[keyword]
            response.add_new(element.tag, element.VR, "" if value is None else value)
            continue
        if match.header_json is not None:
            if header is None:
                header = Dataset.from_json(json.loads(match.header_json))
            if element.tag in header:
                response[element.tag] = header[element.tag]
                continue
        response.add_new(element.tag, element.VR, None)  # unknown: returned empty
    return response
