"""QIDO-RS (PS3.18 §10.6): search studies, series and instances.

A query string becomes the archive's one query object (``storage.index.query.Query``),
matched by the same implementation as C-FIND (PS3.4 C.2.2.2). Results are
``application/dicom+json`` built from the index values; at instance level any
other attribute asked with ``includefield`` comes from the stored header JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from storage.index.attributes import BY_KEYWORD, Level
from storage.index.query import Match, Query
from viewer.auth import SecuredRouter, request_actor, require
from viewer.dicomweb.common import (
    PREFIX,
    READ,
    DicomWebError,
    accepted,
    archive_of,
    check_uid,
    dicom_json_response,
    instance_url,
    series_url,
    study_url,
)

router = SecuredRouter(prefix=PREFIX, tags=["QIDO-RS"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RESERVED = {"includefield", "limit", "offset", "fuzzymatching"}
_TAG = re.compile(r"^([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})$")

# PS3.18 Tables 10.6.3-3..5: attributes returned by default at each level.
DEFAULTS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "InstanceAvailability",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "RetrieveURL",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "Modality",
        "SeriesDescription",
        "SeriesNumber",
        "SeriesInstanceUID",
        "NumberOfSeriesRelatedInstances",
        "SeriesDate",
        "SeriesTime",
        "RetrieveURL",
    ),
    Level.IMAGE: (
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "RetrieveURL",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
}
PARENTS: dict[Level, tuple[Level, ...]] = {
    Level.STUDY: (),
    Level.SERIES: (Level.STUDY,),
    Level.IMAGE: (Level.STUDY, Level.SERIES),
}


def _keyword(name: str) -> str:
    """A query key as a DICOM keyword: keyword or tag (``0010,0020``, ``00100020``)."""
    match = _TAG.match(name)
    if match:
        keyword = keyword_for_tag(int(match.group(1) + match.group(2), 16))
        if not keyword:
            raise DicomWebError(400, f"unknown attribute tag {name!r}")
        return str(keyword)
    if tag_for_keyword(name) is None:
        raise DicomWebError(400, f"unknown attribute {name!r} (use a DICOM keyword or a gggg,eeee tag)")
    return name


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DicomWebError(400, f"{name} must be a non-negative integer, not {raw[:40]!r}") from None
    if not 0 <= value < 2**31:
        raise DicomWebError(400, f"{name} must be a non-negative integer below 2^31")
    return min(value, maximum) if maximum is not None else value


class _Parsed:
    def __init__(self) -> None:
        self.filters: dict[str, str] = {}
        self.include: set[str] = set()
        self.include_all = False
        self.warnings: list[str] = []


def _parse(request: Request, level: Level, fixed: dict[str, str]) -> _Parsed:
    parsed = _Parsed()
    parsed.filters.update(fixed)
    for name, raw in request.query_params.multi_items():
        lowered = name.lower()
        if lowered == "includefield":
            for item in (i.strip() for i in raw.split(",")):
                if not item:
                    continue
                if item.lower() == "all":
                    parsed.include_all = True
                elif "." in item:
                    parsed.warnings.append(f"includefield {item} (sequence path) not supported")
                else:
                    parsed.include.add(_keyword(item))
            continue
        if lowered == "fuzzymatching":
            if raw.lower() not in ("true", "false", ""):
                raise DicomWebError(400, "fuzzymatching must be true or false")
            if raw.lower() == "true":
                parsed.warnings.append("fuzzymatching not supported: PN values match case-insensitively")
            continue
        if lowered in RESERVED:
            continue
        if "." in name:
            parsed.warnings.append(f"matching on sequence attribute {name} not supported")
            continue
        keyword = _keyword(name)
        if level is Level.STUDY and keyword == "Modality":
            keyword = "ModalitiesInStudy"  # PS3.18 §10.6.3.2 "ModalitiesInStudy" via Modality at study level
        attribute = BY_KEYWORD.get(keyword)
        if attribute is None or attribute.level.depth > level.depth:
            if raw:
                parsed.warnings.append(f"matching on {keyword} not supported at this level; ignored")
            parsed.include.add(keyword)
            continue
        value = raw
        if attribute.vr == "UI":
            uids = [u.strip() for u in re.split(r"[,\\]", raw) if u.strip()]
            if raw.strip() and not uids:  # ",,,": an empty UID list, not universal matching
                raise DicomWebError(400, f"{keyword}: {raw[:40]!r} lists no UID")
            for uid in uids:
                check_uid(keyword, uid)
            value = "\\".join(uids)
        if keyword in parsed.filters and keyword in fixed:
            if value and value != parsed.filters[keyword]:
                raise DicomWebError(400, f"{keyword} conflicts with the resource path")
            continue
        if keyword in parsed.filters and attribute.vr == "UI":
            value = parsed.filters[keyword] + "\\" + value
        elif keyword in parsed.filters:
            raise DicomWebError(400, f"{keyword} given more than once")
        parsed.filters[keyword] = value
    return parsed


def _element(keyword: str, value: Any) -> dict[str, Any]:
    """One DICOM JSON attribute (PS3.18 F.2.2) from an index value."""
    vr = str(dictionary_VR(keyword))
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in values]}
    if vr in ("IS", "US", "UL", "SS", "SL", "UV", "SV"):
        out: list[Any] = []
        for v in values:
            try:
                out.append(int(v))
            except (TypeError, ValueError):
                continue
        return {"vr": vr, "Value": out} if out else {"vr": vr}
    if vr in ("DS", "FL", "FD"):
        nums: list[Any] = []
        for v in values:
            try:
                number = float(v)
            except (TypeError, ValueError):
                continue
            nums.append(int(number) if number.is_integer() else number)
        return {"vr": vr, "Value": nums} if nums else {"vr": vr}
    return {"vr": vr, "Value": [str(v) for v in values]}


def _tag_key(keyword: str) -> str:
    return f"{int(tag_for_keyword(keyword) or 0):08X}"


def _result(request: Request, match: Match, level: Level, parsed: _Parsed, nested: bool) -> dict[str, Any]:
    wanted: list[str] = list(DEFAULTS[level])
    if not nested:
        for parent in PARENTS[level]:
            wanted += [k for k in DEFAULTS[parent] if k not in ("RetrieveURL", "InstanceAvailability")]
    for parent in PARENTS[level]:
        wanted.append({Level.STUDY: "StudyInstanceUID", Level.SERIES: "SeriesInstanceUID"}[parent])
    wanted += list(parsed.filters)
    wanted += sorted(parsed.include)
    if parsed.include_all:
        wanted += list(match.values)
    values = match.values
    study = str(values.get("StudyInstanceUID") or "")
    series = str(values.get("SeriesInstanceUID") or "")
    header: dict[str, Any] | None = None
    out: dict[str, Any] = {}
    for keyword in dict.fromkeys(wanted):
        key = _tag_key(keyword)
        if keyword == "RetrieveURL":
            if level is Level.STUDY:
                url = study_url(request, study)
            elif level is Level.SERIES:
                url = series_url(request, study, series)
            else:
                url = instance_url(request, study, series, str(values.get("SOPInstanceUID")))
            out[key] = {"vr": "UR", "Value": [url]}
        elif keyword == "InstanceAvailability":
            out[key] = {"vr": "CS", "Value": ["ONLINE"]}
        elif keyword in values:
            out[key] = _element(keyword, values[keyword])
        elif level is Level.IMAGE and match.header_json:
            if header is None:
                header = json.loads(match.header_json)
            out[key] = header.get(key) or {"vr": str(dictionary_VR(keyword))}
        else:
            out[key] = {"vr": str(dictionary_VR(keyword))}
    if parsed.include_all and level is Level.IMAGE and match.header_json:
        header = header if header is not None else json.loads(match.header_json)
        for key, element in header.items():
            if "BulkDataURI" not in element and "InlineBinary" not in element:
                out.setdefault(key, element)
    return dict(sorted(out.items()))


def _search(request: Request, level: Level, fixed: dict[str, str]) -> Response:
    if not any(r.matches("application/dicom+json") or r.matches("application/json") for r in accepted(request)):
        raise DicomWebError(406, "QIDO-RS answers application/dicom+json only")
    for name, value in fixed.items():
        check_uid(name, value)
    parsed = _parse(request, level, fixed)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    offset = _int_param(request, "offset", 0)
    query = Query(level=level, filters=parsed.filters, limit=limit + 1, offset=offset)
    matches = archive_of(request).find(query, request_actor(request), action="find")
    more = len(matches) > limit
    nested = bool(fixed)
    body = [_result(request, m, level, parsed, nested) for m in matches[:limit]]
    headers: dict[str, str] = {}
    notes = list(parsed.warnings)
    if more:
        notes.append("There are additional results that can be requested")
    if notes:
        headers["Warning"] = ", ".join(f'299 ndt-pacs: "{n.replace(chr(34), chr(39))}"' for n in notes)
    return dicom_json_response(body, headers=headers)


@router.get("/studies", dependencies=[require(READ)])
def search_studies(request: Request) -> Response:
    """Search for studies (inspections)."""
    return _search(request, Level.STUDY, {})


@router.get("/series", dependencies=[require(READ)])
def search_series(request: Request) -> Response:
    """Search for series in all studies."""
    return _search(request, Level.SERIES, {})


@router.get("/instances", dependencies=[require(READ)])
def search_instances(request: Request) -> Response:
    """Search for instances in all studies."""
    return _search(request, Level.IMAGE, {})


@router.get("/studies/{study}/series", dependencies=[require(READ)])
def search_study_series(request: Request, study: str) -> Response:
    """Search for series of one study."""
    return _search(request, Level.SERIES, {"StudyInstanceUID": study})


@router.get("/studies/{study}/instances", dependencies=[require(READ)])
def search_study_instances(request: Request, study: str) -> Response:
    """Search for instances of one study."""
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study})


@router.get("/studies/{study}/series/{series}/instances", dependencies=[require(READ)])
def search_series_instances(request: Request, study: str, series: str) -> Response:
    """Search for instances of one series."""
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study, "SeriesInstanceUID": series})
