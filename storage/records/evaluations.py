"""Evaluation of an inspection: dispositions against an acceptance standard, by a qualified person.

ndt-workflow §3.1 step 4: a Level 2 (or 3) qualified in the inspection's method records the
disposition ACCEPT / REJECT / HOLD of each indication and of the inspection, against the
acceptance standard and level applied (NAS 410 / EN 4179: Level 1 never records an
accept/reject). Each evaluation is a new attempt (EvaluationAttempt (0014,2008)); nothing is
overwritten, and once the inspection carries a signature a new attempt needs a reason.

Functions take the caller's session, flush and audit in it (one unit of work).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError, NotFound
from storage.index.models import Component, Evaluation, Series, Signature, Study, utcnow
from storage.records import accounts, signed_content
from storage.records.annotations import check_text
from storage.records.indications import for_study
from storage.records.permissions import QUALIFIED, Certificate, Decision
from storage.records.vocabularies import Policy

DISPOSITIONS = ("ACCEPT", "REJECT", "HOLD")
MAX_COMMENT = 4000
MAX_REPAIR_ID = 64
MAX_REASON = 500

# Which NDT methods (qualification) cover a DICOM modality: radiography in any of its
# digital forms is RT (a DR / CR sector certificate counts too).
MODALITY_METHODS: dict[str, tuple[str, ...]] = {
    "DX": ("RT", "DR"),
    "DR": ("RT", "DR"),
    "CR": ("RT", "CR"),
    "RG": ("RT",),
    "RF": ("RT",),
    "XA": ("RT",),
    "PX": ("RT",),
    "IO": ("RT",),
    "MG": ("RT",),
    "OT": ("RT",),
    "CT": ("CT",),
    "US": ("UT", "PAUT", "TOFD"),
    "UT": ("UT", "PAUT", "TOFD"),
    "EC": ("ET",),
    "ET": ("ET",),
    "TG": ("TT",),
    "TT": ("TT",),
}
_DERIVED_MODALITIES = {"PR", "DOC", "SR", "KO"}  # what the archive itself adds to an inspection


class InvalidEvaluation(ArchiveError):
    """An evaluation that cannot be recorded as given (unknown standard, bad disposition, ...)."""


class EvaluationConflict(ArchiveError):
    """The request contradicts the stored state (reason missing after a signature, order of signing, ...)."""


class NotQualified(ArchiveError):
    """The person lacks the qualification the act needs (Level, method, validity, vision test)."""


@dataclass(frozen=True)
class Draft:
    """An evaluation as a client describes it."""

    disposition: str
    standard: str
    comment: str | None = None
    indications: dict[str, str] = field(default_factory=dict)  # indication id -> disposition
    repair_id: str | None = None
    reinspection_of: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """A stored evaluation attempt."""

    id: int
    study_instance_uid: str
    attempt: int
    method: str
    disposition: str
    standard: str
    standard_meaning: str
    comment: str | None
    repair_id: str | None
    reinspection_of: str | None
    indications: dict[str, str]
    author: str
    created_at: datetime
    reason: str | None


def record_of(row: Evaluation, study_uid: str) -> EvaluationRecord:
    """*row* detached from the session."""
    return EvaluationRecord(
        id=row.id,
        study_instance_uid=study_uid,
        attempt=row.attempt,
        method=row.method,
        disposition=row.disposition,
        standard=row.standard,
        standard_meaning=row.standard_meaning,
        comment=row.comment,
        repair_id=row.repair_id,
        reinspection_of=row.reinspection_of,
        indications=json.loads(row.dispositions or "{}"),
        author=row.author,
        created_at=audit.utc(row.created_at),
        reason=row.reason,
    )


def _text(name: str, value: Any, limit: int, *, multiline: bool = False) -> str | None:
    if value is None:
        return None
    try:
        text = check_text(name, value, limit, multiline=multiline).strip()
    except ArchiveError as exc:
        raise InvalidEvaluation(str(exc)) from None
    return text or None


def study_row(session: Session, study_uid: str, *, lock: bool = False) -> Study:
    """The inspection *study_uid* (locked for the unit of work when *lock*); :class:`NotFound`."""
    stmt = select(Study).where(Study.study_instance_uid == study_uid)
    row = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
    if row is None:
        raise NotFound(f"no inspection {study_uid[:64]!r}")
    return row


def methods_of(session: Session, study: Study) -> tuple[str, ...]:
    """The NDT methods whose qualification covers the inspection's images (first: the one named on records)."""
    modalities = session.scalars(select(Series.modality).where(Series.study_id == study.id)).all()
    out: list[str] = []
    for modality in modalities:
        if not modality or modality.upper() in _DERIVED_MODALITIES:
            continue
        for method in MODALITY_METHODS.get(modality.upper(), (modality.upper()[:8],)):
            if method not in out:
                out.append(method)
    if not out:
        raise InvalidEvaluation("the inspection has no images of a known NDT method to evaluate")
    return tuple(out)


@dataclass(frozen=True)
class Qualified:
    """Who acts, with the certificate that allows it (the snapshot kept on a signature)."""

    identity: accounts.Identity
    method: str
    certificate: Certificate
    checked_on: date

    def snapshot(self) -> dict[str, Any]:
        """The qualification used, as kept on the signature."""
        c = self.certificate
        return {
            "method": c.method,
            "level": c.level,
            "certificate": c.certificate,
            "issuer": c.issuer,
            "valid_from": c.valid_from.isoformat() if c.valid_from else None,
            "valid_until": c.valid_until.isoformat(),
            "vision_test": c.vision_test.isoformat() if c.vision_test else None,
            "checked_on": self.checked_on.isoformat(),
        }


def qualify(session: Session, actor: Actor, permission: str, methods: tuple[str, ...], on: date) -> Qualified:
    """The acting person's valid qualification for *permission* in one of *methods* on *on*, or :class:`NotQualified`.

    ndt-workflow R25: method + level + certificate validity + vision test at the moment of the act.
    """
    if actor.kind != "user":
        raise NotQualified("a signed-in person is needed (devices and anonymous callers do not evaluate)")
    try:
        identity = accounts.identity_of(session, actor.name)
    except NotFound:
        raise NotQualified(f"no account {actor.name!r}") from None
    first: Decision | None = None
    for method in methods:
        decision = identity.decide(permission, on=on, method=method)
        if decision.allowed:
            needed = QUALIFIED.get(permission, 0)
            usable = [
                c for c in identity.certificates if c.method == method and c.level >= needed and c.problem(on) is None
            ]
            best = max(usable, key=lambda c: (c.level, c.valid_until))
            return Qualified(identity, method, best, on)
        first = first or decision
    assert first is not None
    raise NotQualified(f"{actor.name}: {first.reason}")


def _is_signed(session: Session, study_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(Signature).where(Signature.study_id == study_id)) != 0


def record(session: Session, study_uid: str, draft: Draft, actor: Actor, policy: Policy) -> EvaluationRecord:
    """Record *draft* as the next evaluation attempt of inspection *study_uid*, audited.

    Refusals (nothing written): :class:`NotFound`, :class:`InvalidEvaluation` (unknown standard,
    bad disposition, an indication of another inspection or without a disposition, a
    re-inspection link to another component), :class:`NotQualified` (not Level 2+ in the
    inspection's method, certificate or vision test not valid today), :class:`EvaluationConflict`
    (a new attempt after a signature without a reason).
    """
    if draft.disposition not in DISPOSITIONS:
        raise InvalidEvaluation(f"disposition must be one of {', '.join(DISPOSITIONS)}")
    standard = policy.standard(draft.standard) if isinstance(draft.standard, str) else None
    if standard is None:
        known = ", ".join(t.code for t in policy.standards)
        raise InvalidEvaluation(f"unknown acceptance standard {str(draft.standard)[:60]!r}; configured: {known}")
    comment = _text("comment", draft.comment, MAX_COMMENT, multiline=True)
    repair_id = _text("repair_id", draft.repair_id, MAX_REPAIR_ID)
    reason = _text("reason", draft.reason, MAX_REASON, multiline=True)
    study = study_row(session, study_uid, lock=True)
    methods = methods_of(session, study)
    qualify(session, actor, "evaluations:write", methods, accounts.now_utc().date())
    active = {str(r.id): r for r in for_study(session, study.id, include_withdrawn=False)}
    dispositions: dict[str, str] = {}
    for key, value in (draft.indications or {}).items():
        if str(key) not in active:
            raise InvalidEvaluation(f"indication {str(key)[:20]!r} is not an indication of this inspection")
        if value not in DISPOSITIONS:
            raise InvalidEvaluation(f"indication {key}: disposition must be one of {', '.join(DISPOSITIONS)}")
        dispositions[str(key)] = value
    missing = [f"#{r.number}" for key, r in active.items() if key not in dispositions]
    if missing:
        raise InvalidEvaluation(f"every indication needs a disposition; missing: {', '.join(missing)}")
    reinspection_of = None
    if draft.reinspection_of:
        earlier = study_row(session, str(draft.reinspection_of)[:64])
        if earlier.id == study.id or earlier.component_id != study.component_id:
            raise InvalidEvaluation("reinspection_of must be another inspection of the same component")
        reinspection_of = earlier.study_instance_uid
    if not reason and _is_signed(session, study.id):
        raise EvaluationConflict("this inspection's evaluation has been signed: a new evaluation needs a reason")
    attempt = (session.scalar(select(func.max(Evaluation.attempt)).where(Evaluation.study_id == study.id)) or 0) + 1
    row = Evaluation(
        study_id=study.id,
        attempt=attempt,
        method=methods[0],
        disposition=draft.disposition,
        standard=standard.code,
        standard_meaning=standard.meaning,
        comment=comment,
        repair_id=repair_id,
        reinspection_of=reinspection_of,
        dispositions=json.dumps(dispositions, sort_keys=True),
        author=audit.actor_label(actor),
        created_at=utcnow(),
        reason=reason,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action="evaluation-record",
            outcome="success",
            study_instance_uid=study.study_instance_uid,
            detail={**signed_content.evaluation_content(row), "reason": reason},
        ),
    )
    signed_content.refresh_status(session, study.id, policy)
    return record_of(row, study.study_instance_uid)


def reinspections(session: Session, study_uid: str) -> list[str]:
    """Later inspections whose current evaluation names *study_uid* as the one they re-inspect."""
    return list(
        session.scalars(
            select(Study.study_instance_uid)
            .join(Evaluation, Evaluation.study_id == Study.id)
            .where(Evaluation.reinspection_of == study_uid)
            .distinct()
        ).all()
    )


def component_serial(session: Session, study: Study) -> str:
    """The serial (PatientID) of the inspection's component."""
    return session.scalars(select(Component.patient_id).where(Component.id == study.component_id)).one()
