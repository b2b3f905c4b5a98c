"""What a signature signs, and the inspection status that follows from the signatures still valid.

A signature is linked to its record (21 CFR 11.70) by the SHA-256 of a canonical serialisation
of exactly what was signed: the current evaluation, every marked indication with its version,
and the SHA-256 of every image of the inspection (served version). Any later change (a new
indication version, a new evaluation attempt, a new image version) changes the hash, so the
signature shows as invalidated and the inspection needs signing again.

Status (DESIGN.md Interfaces): ``received`` (no evaluation), ``evaluated`` (an evaluation not
yet released), and once released by the valid signatures the release policy asks for
(``evaluated`` + ``approved``, or ``evaluated`` alone): ``approved`` / ``rejected`` /
``on-hold`` after the overall disposition ACCEPT / REJECT / HOLD.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.index.models import (
    Evaluation,
    InspectionState,
    Instance,
    MarkedIndication,
    MarkedIndicationVersion,
    Series,
    Signature,
    Study,
    utcnow,
)
from storage.records.vocabularies import Policy

STATUSES = ("received", "evaluated", "approved", "rejected", "on-hold")
RELEASED = {"ACCEPT": "approved", "REJECT": "rejected", "HOLD": "on-hold"}


def canonical(content: dict[str, Any]) -> str:
    """The canonical serialisation: JSON, keys sorted, no blanks, UTF-8 text (RFC 8785 in spirit)."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256(text: str) -> str:
    """SHA-256 (hex) of *text* in UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_evaluation(session: Session, study_id: int) -> Evaluation | None:
    """The newest evaluation attempt of an inspection."""
    return session.scalars(
        select(Evaluation).where(Evaluation.study_id == study_id).order_by(Evaluation.attempt.desc()).limit(1)
    ).one_or_none()


def evaluation_content(evaluation: Evaluation) -> dict[str, Any]:
    """The signed fields of an evaluation."""
    return {
        "attempt": evaluation.attempt,
        "method": evaluation.method,
        "disposition": evaluation.disposition,
        "standard": evaluation.standard,
        "comment": evaluation.comment,
        "repair_id": evaluation.repair_id,
        "reinspection_of": evaluation.reinspection_of,
        "dispositions": json.loads(evaluation.dispositions or "{}"),
    }


def content_of(session: Session, study_id: int) -> dict[str, Any]:
    """What a signature on inspection *study_id* signs, now."""
    study = session.get(Study, study_id)
    assert study is not None
    evaluation = current_evaluation(session, study_id)
    indications = session.execute(
        select(MarkedIndication, MarkedIndicationVersion)
        .join(
            MarkedIndicationVersion,
            (MarkedIndicationVersion.indication_id == MarkedIndication.id)
            & (MarkedIndicationVersion.version == MarkedIndication.version),
        )
        .where(MarkedIndication.study_id == study_id)
        .order_by(MarkedIndication.number)
    ).all()
    images = session.execute(
        select(Instance.sop_instance_uid, Instance.version, Instance.sha256)
        .join(Series, Series.id == Instance.series_id)
        .where(Series.study_id == study_id, Instance.rows.is_not(None))
        .order_by(Instance.sop_instance_uid)
    ).all()
    return {
        "inspection": study.study_instance_uid,
        "evaluation": evaluation_content(evaluation) if evaluation else None,
        "indications": [
            {
                "id": head.id,
                "number": head.number,
                "version": row.version,
                "image": head.sop_instance_uid,
                "image_version": row.instance_version,
                "frame": row.frame_number,
                "kind": row.kind,
                "points": json.loads(row.geometry)["points"],
                "type": row.indication_type,
                "label": row.label,
                "description": row.description,
                "length": row.length,
                "width": row.width,
                "area": row.area,
                "unit": row.unit,
                "withdrawn": row.withdrawn,
            }
            for head, row in indications
        ],
        "images": [{"uid": uid, "version": version, "sha256": digest} for uid, version, digest in images],
    }


@dataclass(frozen=True)
class SignatureState:
    """A signature and whether what it signed is still what the inspection says."""

    signature: Signature
    valid: bool


def signature_states(session: Session, study_id: int, current_hash: str | None = None) -> list[SignatureState]:
    """Every signature of the inspection, oldest first, each marked valid or invalidated."""
    digest = current_hash or sha256(canonical(content_of(session, study_id)))
    rows = session.scalars(select(Signature).where(Signature.study_id == study_id).order_by(Signature.id)).all()
    return [SignatureState(row, row.content_sha256 == digest) for row in rows]


def status_of(session: Session, study_id: int, policy: Policy) -> str:
    """The inspection's status from its current evaluation and the signatures still valid."""
    evaluation = current_evaluation(session, study_id)
    if evaluation is None:
        return "received"
    valid = {s.signature.meaning for s in signature_states(session, study_id) if s.valid}
    needed = {"evaluated", "approved"} if policy.release_signatures >= 2 else {"evaluated"}
    if needed <= valid:
        return RELEASED[evaluation.disposition]
    return "evaluated"


def refresh_status(session: Session, study_id: int, policy: Policy) -> str:
    """Recompute and keep the inspection's status (the search filter reads it); returns it."""
    status = status_of(session, study_id, policy)
    state = session.get(InspectionState, study_id)
    if state is None:
        session.add(InspectionState(study_id=study_id, status=status, updated_at=utcnow()))
    elif state.status != status:
        state.status = status
        state.updated_at = utcnow()
    session.flush()
    return status
