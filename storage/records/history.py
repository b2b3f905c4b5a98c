"""A component's history: everything that happened to one serial number, in time order.

What an auditor asks first (ndt-workflow §3.3: who, what, when, why): every inspection, every
image version with its SHA-256, every measurement and its withdrawal, and every audit entry
about the component's inspections, merged into one timeline. Later record kinds (indications,
evaluations, signatures, reports, rejections) add their events here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storage.audit.log import utc
from storage.errors import NotFound
from storage.index.models import Annotation, AuditEvent, Component, Instance, InstanceVersion, Series, Study


@dataclass(frozen=True)
class HistoryEvent:
    """One thing that happened, with enough to find it again."""

    at: datetime
    kind: str  # inspection, image, annotation, annotation-withdrawn, audit, ...
    summary: str
    study_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (time as ISO 8601 UTC)."""
        return {
            "at": utc(self.at).isoformat(),
            "kind": self.kind,
            "summary": self.summary,
            "study_instance_uid": self.study_instance_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "actor": self.actor,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ComponentHistory:
    """The component and its events, oldest first."""

    serial: str
    name: str | None
    study_instance_uids: list[str]
    events: list[HistoryEvent]


def studies_of(session: Session, serial: str) -> tuple[Component, list[Study]]:
    """The component with *serial* and its inspections; :class:`NotFound` when unknown."""
    component = session.scalars(select(Component).where(Component.patient_id == serial)).one_or_none()
    if component is None:
        raise NotFound(f"component {serial!r} not found")
    studies = session.scalars(select(Study).where(Study.component_id == component.id).order_by(Study.id)).all()
    return component, list(studies)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def audit_query(study_uids: Sequence[str], serial: str | None = None) -> Any:
    """The audit entries about these inspections (and, given *serial*, those naming the component), by id."""
    conditions = [AuditEvent.study_instance_uid.in_(list(study_uids))] if study_uids else []
    if serial is not None:
        needle = json.dumps({"serial": serial}, separators=(",", ":"))[1:-1]  # as the log writes it
        conditions.append(AuditEvent.detail.like(f"%{_like_literal(needle)}%", escape="\\"))
    if not conditions:
        return select(AuditEvent).where(AuditEvent.id < 0)
    return select(AuditEvent).where(or_(*conditions)).order_by(AuditEvent.id)


def component_history(session: Session, serial: str, *, audit_limit: int = 10_000) -> ComponentHistory:
    """Every recorded event of component *serial*, oldest first (at most *audit_limit* audit entries)."""
    component, studies = studies_of(session, serial)
    by_id = {study.id: study.study_instance_uid for study in studies}
    events: list[HistoryEvent] = [
        HistoryEvent(
            at=study.created_at,
            kind="inspection",
            summary=f"inspection {study.study_date or ''} {study.study_description or ''}".strip(),
            study_instance_uid=study.study_instance_uid,
            detail={"order": study.accession_number, "company": study.physicians_of_record, "date": study.study_date},
        )
        for study in studies
    ]
    rows = session.execute(
        select(InstanceVersion, Instance.sop_instance_uid, Instance.sop_class_uid, Series.study_id, Series.modality)
        .join(Instance, InstanceVersion.instance_id == Instance.id)
        .join(Series, Instance.series_id == Series.id)
        .where(Series.study_id.in_(list(by_id)))
        .order_by(InstanceVersion.id)
    ).all()
    for version, sop_uid, sop_class, study_id, modality in rows:
        events.append(
            HistoryEvent(
                at=version.received_at,
                kind="image",
                summary=f"{modality or 'image'} version {version.version} received, SHA-256 {version.sha256[:12]}…",
                study_instance_uid=by_id[study_id],
                sop_instance_uid=sop_uid,
                actor=version.received_by,
                detail={
                    "version": version.version,
                    "sha256": version.sha256,
                    "size": version.size_bytes,
                    "sop_class_uid": sop_class,
                    "transfer_syntax_uid": version.transfer_syntax_uid,
                },
            )
        )
    annotations = session.execute(
        select(Annotation, Series.study_id)
        .join(Instance, Annotation.instance_id == Instance.id)
        .join(Series, Instance.series_id == Series.id)
        .where(Series.study_id.in_(list(by_id)))
        .order_by(Annotation.id)
    ).all()
    for annotation, study_id in annotations:
        base = {
            "annotation": annotation.id,
            "kind": annotation.kind,
            "value": annotation.value,
            "unit": annotation.unit,
        }
        events.append(
            HistoryEvent(
                at=annotation.created_at,
                kind="annotation",
                summary=f"{annotation.kind} measured: {annotation.text or annotation.value}",
                study_instance_uid=by_id[study_id],
                sop_instance_uid=annotation.sop_instance_uid,
                actor=annotation.author,
                detail={**base, "label": annotation.label, "instance_version": annotation.instance_version},
            )
        )
        if annotation.withdrawn_at is not None:
            events.append(
                HistoryEvent(
                    at=annotation.withdrawn_at,
                    kind="annotation-withdrawn",
                    summary=f"{annotation.kind} withdrawn"
                    + (f": {annotation.withdrawal_reason}" if annotation.withdrawal_reason else ""),
                    study_instance_uid=by_id[study_id],
                    sop_instance_uid=annotation.sop_instance_uid,
                    actor=annotation.withdrawn_by,
                    detail={**base, "reason": annotation.withdrawal_reason},
                )
            )
    for entry in session.scalars(audit_query(list(by_id.values()), serial).limit(audit_limit)):
        events.append(
            HistoryEvent(
                at=entry.occurred_at,
                kind="audit",
                summary=f"{entry.action} ({entry.outcome})",
                study_instance_uid=entry.study_instance_uid,
                sop_instance_uid=entry.sop_instance_uid,
                actor=entry.actor,
                detail={"entry": entry.id, "hash": entry.hash, "address": entry.actor_address},
            )
        )
    events.sort(key=lambda e: (utc(e.at), e.kind))
    return ComponentHistory(
        serial=component.patient_id,
        name=component.patient_name,
        study_instance_uids=list(by_id.values()),
        events=events,
    )
