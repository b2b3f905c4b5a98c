"""The auditor's door: ``/api/audit`` search, a component's history, evidence bundles (permission ``audit:read``).

Reading the audit log is itself audited (an ``audit-search`` entry naming the criteria), and so is
every evidence bundle, inside the core (:func:`storage.records.evidence.write_bundle`).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from storage.audit.export import ExportedEntry
from storage.audit.search import MAX_PAGE, AuditFilter, search
from storage.records.evidence import write_bundle
from storage.records.history import component_history
from viewer.api.errors import ERRORS, ApiProblem, ApiRoute
from viewer.auth import SecuredRouter, request_actor, require
from viewer.deps import ArchiveDep, ReadUnit, WriteUnit, audit

AUDIT = "audit:read"
router = SecuredRouter(prefix="/api", tags=["audit"], route_class=ApiRoute)
UID = Annotated[str, Query(max_length=64, pattern=r"^[0-9.]+$")]


class AuditEntryOut(BaseModel):
    """One audit entry as stored, with its chain hashes."""

    id: int
    occurred_at: str
    actor: str
    actor_address: str | None
    action: str
    outcome: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    sop_instance_uid: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """One page of matching entries, newest first, and how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[AuditEntryOut]


class HistoryEventOut(BaseModel):
    """One event of a component's history."""

    at: str
    kind: str
    summary: str
    study_instance_uid: str | None
    sop_instance_uid: str | None
    actor: str | None
    detail: dict[str, Any]


class ComponentHistoryOut(BaseModel):
    """Everything recorded about one component, oldest first."""

    serial: str
    name: str | None
    inspections: list[str]
    events: list[HistoryEventOut]


def _moment(text: str, *, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` (a whole day, *end*: up to its end) or an ISO 8601 date-time; 400 otherwise."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ApiProblem(400, f"not a date (YYYY-MM-DD) or ISO 8601 date-time: {text[:40]!r}") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _entry(entry: ExportedEntry) -> AuditEntryOut:
    return AuditEntryOut(**entry.__dict__)


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=ERRORS,
    dependencies=[require(AUDIT)],
    summary="Search the audit log",
)
def search_audit(
    request: Request,
    uow: ReadUnit,
    since: Annotated[str, Query(alias="from", max_length=40, description="First day (YYYY-MM-DD) or moment")] = "",
    until: Annotated[str, Query(alias="to", max_length=40, description="Last day, inclusive, or moment")] = "",
    actor: Annotated[str, Query(max_length=80, description="Part of the actor, e.g. a user name")] = "",
    action: Annotated[str, Query(max_length=32)] = "",
    serial: Annotated[str, Query(max_length=64, description="A component: its inspections' entries")] = "",
    study: Annotated[str, Query(max_length=64, description="An inspection (Study Instance UID)")] = "",
    outcome: Annotated[str, Query(max_length=16)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """Audit entries matching every criterion given, newest first, with their chain hashes."""
    wanted = AuditFilter(
        since=_moment(since, end=False),
        until=_moment(until, end=True),
        actor=actor,
        action=action,
        serial=serial,
        study=study,
        outcome=outcome,
        limit=limit,
        offset=offset,
    )
    total, items = search(uow.session, wanted)
    criteria = {k: v for k, v in {"from": since, "to": until, "actor": actor, "action": action}.items() if v}
    criteria.update({k: v for k, v in {"serial": serial, "study": study, "outcome": outcome}.items() if v})
    audit(request, uow, "audit-search", detail={"criteria": criteria, "matches": total})
    return AuditPage(total=total, offset=offset, limit=limit, items=[_entry(e) for e in items])


@router.get(
    "/components/{serial}/history",
    response_model=ComponentHistoryOut,
    responses=ERRORS,
    dependencies=[require(AUDIT)],
    summary="Everything that happened to a component",
)
def get_history(request: Request, uow: ReadUnit, serial: str) -> ComponentHistoryOut:
    """Every inspection, image version (SHA-256), measurement, record and audit entry of *serial*, oldest first."""
    if not serial or len(serial) > 64:  # LO is at most 64 characters
        raise ApiProblem(400, "serial must be 1 to 64 characters")
    history = component_history(uow.session, serial)
    audit(request, uow, "api-history", detail={"serial": serial, "events": len(history.events)})
    return ComponentHistoryOut(
        serial=history.serial,
        name=history.name,
        inspections=history.study_instance_uids,
        events=[HistoryEventOut(**event.as_dict()) for event in history.events],
    )


def _bundle_response(
    archive: ArchiveDep, uow: WriteUnit, request: Request, filename: str, **scope: str
) -> FileResponse:
    fd, name = tempfile.mkstemp(dir=archive.spool_dir, suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        write_bundle(uow.session, archive.objects, path, request_actor(request), **scope)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=filename,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get(
    "/components/{serial}/evidence",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The evidence bundle"}, **ERRORS},
    dependencies=[require(AUDIT)],
    summary="Evidence bundle of a component (zip that verifies offline)",
)
def component_evidence(request: Request, archive: ArchiveDep, uow: WriteUnit, serial: str) -> FileResponse:
    """Originals of every version, audit entries with chain hashes, history, manifest and verify.py, as a zip."""
    if not serial or len(serial) > 64:
        raise ApiProblem(400, "serial must be 1 to 64 characters")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in serial)
    return _bundle_response(archive, uow, request, f"evidence-{safe}.zip", serial=serial)


@router.get(
    "/inspections/{uid}/evidence",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The evidence bundle"}, **ERRORS},
    dependencies=[require(AUDIT)],
    summary="Evidence bundle of one inspection",
)
def inspection_evidence(request: Request, archive: ArchiveDep, uow: WriteUnit, uid: str) -> FileResponse:
    """The evidence bundle of inspection *uid* (its Study Instance UID)."""
    if not uid or len(uid) > 64 or not all(c.isdigit() or c == "." for c in uid):
        raise ApiProblem(400, "the inspection UID must be a DICOM UID")
    return _bundle_response(archive, uow, request, f"evidence-{uid}.zip", study_instance_uid=uid)
