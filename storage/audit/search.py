"""Searching the audit log (``GET /api/audit``): by time, actor, action, component, inspection, outcome.

The auditor's question is rarely "entry 4711" but "what happened to serial X between March
and May, and who did it" (ndt-workflow §3.3). A component is found through its inspections'
Study Instance UIDs and through entries that name its serial in their details.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true
from sqlalchemy.orm import Session

from storage.audit.export import ExportedEntry, entries_of
from storage.index.models import AuditEvent, Component, Study

MAX_PAGE = 500


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def naming_serial(serial: str) -> ColumnElement[bool]:
    """Entries whose details name component *serial* (``"serial":"…"`` as the log writes it)."""
    needle = json.dumps({"serial": serial}, separators=(",", ":"))[1:-1]
    return AuditEvent.detail.like(f"%{_like_literal(needle)}%", escape="\\")


def about(study_uids: list[str], serial: str | None = None) -> Select[Any]:
    """The entries about these inspections (and, given *serial*, those naming the component), in chain order."""
    conditions: list[ColumnElement[bool]] = [AuditEvent.study_instance_uid.in_(study_uids)] if study_uids else []
    if serial is not None:
        conditions.append(naming_serial(serial))
    if not conditions:
        return select(AuditEvent).where(AuditEvent.id < 0)
    return select(AuditEvent).where(or_(*conditions)).order_by(AuditEvent.id)


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor asks for; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""  # substring of "kind:name", case-insensitive
    action: str = ""  # exact
    serial: str = ""  # the component's inspections, and entries naming it
    study: str = ""  # one inspection
    outcome: str = ""  # exact: success, failure, duplicate, ...
    limit: int = 100
    offset: int = 0
    newest_first: bool = True


def _conditions(session: Session, wanted: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.since is not None:
        conditions.append(AuditEvent.occurred_at >= wanted.since)
    if wanted.until is not None:
        conditions.append(AuditEvent.occurred_at < wanted.until)
    if wanted.actor:
        conditions.append(func.lower(AuditEvent.actor).like(f"%{_like_literal(wanted.actor.lower())}%", escape="\\"))
    if wanted.action:
        conditions.append(AuditEvent.action == wanted.action)
    if wanted.outcome:
        conditions.append(AuditEvent.outcome == wanted.outcome)
    if wanted.study:
        conditions.append(AuditEvent.study_instance_uid == wanted.study)
    if wanted.serial:
        studies = select(Study.study_instance_uid).join(Component).where(Component.patient_id == wanted.serial)
        conditions.append(or_(AuditEvent.study_instance_uid.in_(studies), naming_serial(wanted.serial)))
    return conditions


def search(session: Session, wanted: AuditFilter) -> tuple[int, list[ExportedEntry]]:
    """The total number of matching entries and one page of them (newest first unless asked otherwise)."""
    condition = and_(true(), *_conditions(session, wanted))
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(condition)) or 0
    order = AuditEvent.id.desc() if wanted.newest_first else AuditEvent.id.asc()
    limit = max(1, min(wanted.limit, MAX_PAGE))
    page = select(AuditEvent).where(condition).order_by(order).limit(limit).offset(max(0, wanted.offset))
    return int(total), entries_of(session, page)
