"""Fixity checking (``pacs verify``): every indexed object version is re-hashed.

It also finds orphans: objects in the store that no index row names. A store whose
index transaction failed leaves its object behind on purpose (the key is
content-addressed, and a concurrent store of the same bytes may be about to
acknowledge it), so orphans are removed here, and only once they are older than
any store still in flight.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError
from storage.index.models import InstanceVersion

log = logging.getLogger(__name__)


@dataclass
class FixityReport:
    """How many objects were checked and what was wrong."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class OrphanReport:
    """Objects no index row names: found (old enough to judge) and removed."""

    found: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    too_young: int = 0


ORPHAN_MIN_AGE = timedelta(hours=1)  # far longer than any store between its upload and its commit


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


def find_orphans(
    archive: Archive, *, remove: bool = False, min_age: timedelta = ORPHAN_MIN_AGE, actor: Actor | None = None
) -> OrphanReport:
    """List (and with *remove*, delete) stored objects that no index row names; audit a removal."""
    report = OrphanReport()
    cutoff = datetime.now(UTC) - min_age
    batch: list[str] = []

    def judge(keys: list[str]) -> None:
        with archive.db.read_session() as session:
            indexed = set(
                session.scalars(select(InstanceVersion.object_key).where(InstanceVersion.object_key.in_(keys)))
            )
        report.found.extend(key for key in keys if key not in indexed)

    for key, modified in archive.objects.list_keys():
        if modified > cutoff:
            report.too_young += 1
            continue
        batch.append(key)
        if len(batch) == 500:
            judge(batch)
            batch = []
    if batch:
        judge(batch)
    if remove and report.found:
        for key in report.found:
            try:
                archive.objects.delete(key)
                report.removed.append(key)
            except ArchiveError as exc:
                log.warning("could not remove orphan %s: %s", key, exc)
        archive.record(
            AuditRecord(
                actor=actor or Actor("pacs verify", kind="system"),
                action="sweep_orphans",
                outcome="success" if len(report.removed) == len(report.found) else "failure",
                detail={"removed": len(report.removed), "keys": report.removed[:100]},
            )
        )
    return report
