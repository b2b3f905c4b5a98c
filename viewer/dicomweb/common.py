"""What every DICOMweb route shares: errors, UIDs, media types, URLs, audit (PS3.18)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from storage.archive import Archive
from storage.audit import AuditRecord
from storage.dicom.uids import is_valid_uid
from storage.errors import NotFound
from storage.index.retrieve import StoredInstance
from viewer.auth import request_actor

DICOM_JSON = "application/dicom+json"
READ = "studies:read"
WRITE = "studies:write"
PREFIX = "/dicom-web"


class DicomWebError(Exception):
    """An HTTP error with a reason, answered as a DICOM JSON body (ErrorComment)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """A DICOM-style JSON error body: ErrorComment (0000,0902) holding the reason."""
    body = {"00000902": {"vr": "LO", "Value": [reason[:1024]]}}
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)


def dicom_json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An ``application/dicom+json`` response (PS3.18 §8.7.3.5.1, Annex F)."""
    content = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return Response(content, status_code=status, media_type=DICOM_JSON, headers=headers)


def archive_of(request: Request) -> Archive:
    """The archive core the application serves."""
    archive: Archive = request.app.state.archive
    return archive


def check_uid(name: str, value: str) -> str:
    """A path or query UID must be well formed (PS3.5 §9.1); 400 otherwise."""
    if not is_valid_uid(value):
        raise DicomWebError(400, f"{name} is not a valid UID: {value[:80]!r}")
    return value


def base_url(request: Request) -> str:
    """The absolute URL of the DICOMweb service root (``.../dicom-web``)."""
    return str(request.base_url).rstrip("/") + PREFIX


def study_url(request: Request, study: str) -> str:
    """RetrieveURL of a study (PS3.18 §10.4.1)."""
    return f"{base_url(request)}/studies/{study}"


def series_url(request: Request, study: str, series: str) -> str:
    """RetrieveURL of a series."""
    return f"{study_url(request, study)}/series/{series}"


def instance_url(request: Request, study: str, series: str, sop: str) -> str:
    """RetrieveURL of an instance."""
    return f"{series_url(request, study, series)}/instances/{sop}"


def audit(
    request: Request,
    action: str,
    outcome: str = "success",
    *,
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    **detail: Any,
) -> None:
    """One audit entry for this request, through the archive's one audit call."""
    archive_of(request).record(
        AuditRecord(
            actor=request_actor(request),
            action=action,
            outcome=outcome,
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=sop,
            detail={"via": "dicomweb", "path": request.url.path[:300], **detail},
        )
    )


def stored_instances(
    request: Request,
    study: str,
    series: str | None = None,
    sop: str | None = None,
    *,
    with_header: bool = False,
    action: str = "retrieve",
) -> list[StoredInstance]:
    """The instances a retrieve addresses, audited once for the request; 404 when unknown."""
    check_uid("StudyInstanceUID", study)
    if series is not None:
        check_uid("SeriesInstanceUID", series)
    if sop is not None:
        check_uid("SOPInstanceUID", sop)
    try:
        found = archive_of(request).instances(study, series, sop, with_header=with_header)
    except NotFound:
        audit(request, action, "failure", study=study, series=series, sop=sop, reason="not found")
        level = "instance" if sop else "series" if series else "study"
        raise DicomWebError(404, f"{level} {sop or series or study} not found") from None
    audit(request, action, study=study, series=series, sop=sop, instances=len(found))
    return found


@dataclass
class MediaRange:
    """One entry of an Accept header (RFC 9110 §12.5.1), parameters lower-cased by name."""

    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        """True when this range accepts *media_type*."""
        if self.type == "*/*":
            return True
        if self.type.endswith("/*"):
            return media_type.split("/")[0] == self.type[:-2]
        return self.type == media_type


def _split_params(text: str) -> list[str]:
    """Split on ``;`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_media_type(text: str) -> MediaRange:
    """``type/subtype; name=value; ...`` -> :class:`MediaRange`."""
    head, *rest = _split_params(text)
    params: dict[str, str] = {}
    q = 1.0
    for item in rest:
        name, _, value = item.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        elif name:
            params[name] = value
    return MediaRange(head.strip().lower(), params, q)


def _split_accept(header: str) -> list[str]:
    """Split an Accept header on commas outside double quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [i.strip() for i in items if i.strip()]


def accepted(request: Request) -> list[MediaRange]:
    """The Accept header's media ranges, best first (``*/*`` when absent)."""
    header = request.headers.get("accept", "")
    ranges = [parse_media_type(item) for item in _split_accept(header)] or [MediaRange("*/*")]
    ranges = [r for r in ranges if r.q > 0]
    return sorted(ranges, key=lambda r: -r.q)
