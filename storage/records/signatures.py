"""Electronic signatures on an evaluation, 21 CFR Part 11 style.

§11.200(a): signing re-enters the password (a session alone never signs). §11.50: a signature
records the printed name, the UTC date and time and the meaning (``evaluated``, ``reviewed``,
``approved``). §11.70: it is linked to exactly what was signed by the SHA-256 of the canonical
serialisation of the evaluation, the indications with their versions and the image hashes
(:mod:`storage.records.signed_content`); a later change invalidates it visibly.

§11.10(f)-(g) operational and authority checks, enforced here for every door: ``evaluated``
needs a valid Level 2+ qualification in the inspection's method, ``approved`` Level 3;
``reviewed`` Level 2+; review and approval follow a valid ``evaluated`` signature and are never
by the evaluator; the certificate and the vision test must be valid at the moment of signing.

:func:`sign` takes the caller's session, flushes and audits in it; a refusal raises and the
caller's unit of work writes nothing. :func:`audit_refusal` records the refused attempt in a
unit of work of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError
from storage.index.models import Evaluation, Signature, utcnow
from storage.records import accounts, signed_content
from storage.records.evaluations import EvaluationConflict, NotQualified, methods_of, qualify, study_row
from storage.records.vocabularies import Policy

MEANINGS = {"evaluated": "evaluations:write", "reviewed": "evaluations:write", "approved": "evaluations:approve"}


class InvalidSignature(ArchiveError):
    """A signature request that is malformed (unknown meaning, no password)."""


class SignatureRefused(ArchiveError):
    """The password did not authenticate the signer (§11.200(a))."""


@dataclass(frozen=True)
class SignatureRecord:
    """A signature and whether it still holds."""

    id: int
    study_instance_uid: str
    evaluation_attempt: int
    meaning: str
    signer: str
    printed_name: str
    role: str | None
    signed_at: datetime
    qualification: dict[str, Any]
    content_sha256: str
    valid: bool


@dataclass(frozen=True)
class Signed:
    """The outcome of :func:`sign`: the signature and the inspection's status after it."""

    signature: SignatureRecord
    status: str
    released: bool  # this signature completed the release (the exports are due)


def record_of(row: Signature, study_uid: str, attempt: int, valid: bool) -> SignatureRecord:
    """*row* detached from the session."""
    return SignatureRecord(
        id=row.id,
        study_instance_uid=study_uid,
        evaluation_attempt=attempt,
        meaning=row.meaning,
        signer=row.signer,
        printed_name=row.printed_name,
        role=row.role,
        signed_at=audit.utc(row.signed_at),
        qualification=json.loads(row.qualification),
        content_sha256=row.content_sha256,
        valid=valid,
    )


def list_for(session: Session, study_id: int, study_uid: str) -> list[SignatureRecord]:
    """Every signature of an inspection, oldest first, each marked valid or invalidated."""
    rows = session.execute(select(Evaluation.id, Evaluation.attempt).where(Evaluation.study_id == study_id))
    attempts: dict[int, int] = {int(row[0]): int(row[1]) for row in rows}
    return [
        record_of(s.signature, study_uid, attempts.get(s.signature.evaluation_id, 0), s.valid)
        for s in signed_content.signature_states(session, study_id)
    ]


def sign(
    session: Session, study_uid: str, meaning: str, password: str, actor: Actor, address: str, policy: Policy
) -> Signed:
    """Sign the current evaluation of inspection *study_uid* with *meaning*, re-authenticating *actor*.

    Refusals: :class:`InvalidSignature`, :class:`SignatureRefused` (wrong password),
    :class:`NotQualified`, :class:`EvaluationConflict` (no evaluation yet, approval before a
    valid evaluation signature, approver = evaluator, the same meaning signed already),
    :class:`~storage.errors.NotFound`.
    """
    if meaning not in MEANINGS:
        raise InvalidSignature(f"meaning must be one of {', '.join(MEANINGS)}")
    if not isinstance(password, str) or not password or len(password) > 1024:
        raise InvalidSignature("signing needs the signer's password (21 CFR 11.200)")
    if actor.kind != "user":
        raise NotQualified("a signed-in person is needed to sign")
    study = study_row(session, study_uid, lock=True)
    login = accounts.authenticate_password(session, actor.name, password, address, how="signature")
    if login.identity is None or login.identity.username != actor.name:
        raise SignatureRefused("too many failed attempts: wait" if login.throttled else "wrong password")
    evaluation = signed_content.current_evaluation(session, study.id)
    if evaluation is None:
        raise EvaluationConflict("there is no evaluation to sign yet: record the evaluation first")
    methods = methods_of(session, study)
    qualified = qualify(session, actor, MEANINGS[meaning], methods, accounts.now_utc().date())
    content = signed_content.content_of(session, study.id)
    text = signed_content.canonical(content)
    digest = signed_content.sha256(text)
    valid = [s.signature for s in signed_content.signature_states(session, study.id, digest) if s.valid]
    evaluators = {s.signer for s in valid if s.meaning == "evaluated"}
    if any(s.meaning == meaning and s.signer == actor.name for s in valid):
        raise EvaluationConflict(f"{actor.name} has already signed this evaluation as {meaning}")
    if meaning == "evaluated" and any(s.meaning == "evaluated" for s in valid):
        raise EvaluationConflict("this evaluation already carries a valid evaluator signature")
    if meaning in ("reviewed", "approved"):
        if not evaluators:
            raise EvaluationConflict(f"{meaning} follows evaluation: the evaluation has no valid evaluator signature")
        if actor.name in evaluators or evaluation.author == audit.actor_label(actor):
            raise EvaluationConflict(f"the evaluator may not sign the same evaluation as {meaning} (four eyes)")
    if meaning == "approved" and any(s.meaning == "approved" for s in valid):
        raise EvaluationConflict("this evaluation is already approved")
    before = signed_content.status_of(session, study.id, policy)
    row = Signature(
        study_id=study.id,
        evaluation_id=evaluation.id,
        meaning=meaning,
        signer=actor.name,
        printed_name=qualified.identity.full_name or actor.name,
        role=qualified.identity.role,
        signed_at=utcnow(),
        qualification=json.dumps(qualified.snapshot(), sort_keys=True),
        content=text,
        content_sha256=digest,
    )
    session.add(row)
    session.flush()
    record = record_of(row, study.study_instance_uid, evaluation.attempt, True)
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action="sign",
            outcome="success",
            study_instance_uid=study.study_instance_uid,
            detail={
                "signature": row.id,
                "meaning": meaning,
                "printed_name": record.printed_name,
                "evaluation_attempt": evaluation.attempt,
                "content_sha256": digest,
                "qualification": record.qualification,
            },
        ),
    )
    status = signed_content.refresh_status(session, study.id, policy)
    released = status != "evaluated" and before != status
    return Signed(record, status, released)


def audit_refusal(session: Session, actor: Actor, study_uid: str, meaning: str, reason: str, address: str) -> None:
    """Record a refused signature attempt (and count a wrong password towards the login rate limit)."""
    if reason == "wrong password" and actor.kind == "user":
        accounts.record_failure(session, actor.name, address, "signature", reason, accounts.now_utc())
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action="sign",
            outcome="failure",
            study_instance_uid=study_uid[:64],
            detail={"meaning": str(meaning)[:16], "reason": reason[:300]},
        ),
    )
