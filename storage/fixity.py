"""Fixity checking (``pacs verify``): every indexed object version is re-hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError
from storage.models import InstanceVersion


@dataclass
class FixityReport:
    """How many objects were checked and what was wrong."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)


def verify_objects(archive: Archive, actor: Actor | None = None) -> FixityReport:
    """Re-hash every stored version and compare with the index; audit the run."""
    report = FixityReport()
    last = 0
    while True:
        with archive.db.read_session() as session:
            batch = session.execute(
                select(InstanceVersion.id, InstanceVersion.object_key, InstanceVersion.sha256)
                .where(InstanceVersion.id > last)
                .order_by(InstanceVersion.id)
                .limit(1000)
            ).all()
        if not batch:
            break
        for row_id, key, expected in batch:
            last = row_id
            report.checked += 1
            digest = hashlib.sha256()
            try:
                for block in archive.objects.get(key):
                    digest.update(block)
            except ArchiveError as exc:
                report.problems.append(f"{key}: {exc}")
                continue
            if digest.hexdigest() != expected:
                report.problems.append(f"{key}: checksum differs from the index")
    archive.record(
        AuditRecord(
            actor=actor or Actor("pacs verify", kind="system"),
            action="fixity",
            outcome="success" if not report.problems else "failure",
            detail={"checked": report.checked, "problems": report.problems[:100]},
        )
    )
    return report
