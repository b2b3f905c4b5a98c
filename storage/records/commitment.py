"""Storage commitment decisions (PS3.4 Annex J): which referenced instances the archive keeps.

An instance is committed only when it is indexed under the referenced SOP class
and its served object exists and re-hashes to the recorded SHA-256
(:meth:`Archive.commitment_status`). Every decision is audited, one entry per
instance, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from storage import audit
from storage.archive import Archive, CommitmentCheck, CommitmentFailure
from storage.audit import Actor, AuditRecord
from storage.dicom.uids import is_valid_uid
from storage.errors import IndexUnavailable
from storage.index.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Reference:
    """One referenced instance of a commitment request."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass
class CommitmentReport:
    """The outcome of one commitment transaction."""

    transaction_uid: str
    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[Reference, CommitmentCheck]] = field(default_factory=list)


def commit(archive: Archive, transaction_uid: str, references: Iterable[Reference], actor: Actor) -> CommitmentReport:
    """Decide and audit a storage commitment request."""
    report = CommitmentReport(transaction_uid)
    for ref in references:
        if not (is_valid_uid(ref.sop_class_uid) and is_valid_uid(ref.sop_instance_uid)):
            check = CommitmentCheck(False, CommitmentFailure.NO_SUCH_INSTANCE, "invalid UID")
        else:
            check = archive.commitment_status(ref.sop_class_uid, ref.sop_instance_uid)
        if check.committed:
            report.committed.append(ref)
        else:
            report.failed.append((ref, check))
    records = [
        AuditRecord(
            actor=actor,
            action="commit",
            outcome="success",
            sop_instance_uid=ref.sop_instance_uid,
            detail={"transaction_uid": transaction_uid, "sop_class_uid": ref.sop_class_uid},
        )
        for ref in report.committed
    ] + [
        AuditRecord(
            actor=actor,
            action="commit",
            outcome="failure",
            sop_instance_uid=ref.sop_instance_uid if is_valid_uid(ref.sop_instance_uid) else None,
            detail={
                "transaction_uid": transaction_uid,
                "sop_class_uid": ref.sop_class_uid[:64],
                "failure": check.failure.value if check.failure else None,
                "reason": check.reason,
            },
        )
        for ref, check in report.failed
    ]
    if not records:
        records = [
            AuditRecord(actor=actor, action="commit", outcome="failure", detail={"transaction_uid": transaction_uid})
        ]

    def write(uow: UnitOfWork) -> None:
        for record in records:
            audit.append(uow.session, record)

    try:
        archive.db.run(write)
    except IndexUnavailable:
        # Not durable in the audit log: commit nothing (PS3.4 J.3.2: failure is always safe to report).
        unavailable = CommitmentCheck(False, CommitmentFailure.UNAVAILABLE, "audit log unavailable")
        report.failed.extend((ref, unavailable) for ref in report.committed)
        report.committed.clear()
    return report
