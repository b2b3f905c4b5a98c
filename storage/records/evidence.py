"""Evidence bundles: a component's or an inspection's whole record in one zip that checks itself offline.

The zip holds the original DICOM files of every version (byte for byte as received; the
DICONDE evaluation objects and PDF reports are instances of the same inspections, so they
come along), the audit entries about them as JSON Lines with their chain hashes, the
component history, a ``manifest.json`` with the SHA-256 and size of every file and the audit
chain head at the time of export (the anchor to check online with ``pacs audit verify
--anchor``), and ``verify.py`` (:mod:`storage.records.evidence_verify`), which checks it all
with Python's standard library. Building a bundle is itself audited, naming the manifest's
SHA-256 (ISO 9001 7.5.3, 21 CFR 11.10(b): accurate and complete copies for inspection).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit import Actor, AuditRecord, actor_label, anchor, append
from storage.audit.export import as_json_line, entries_of
from storage.errors import NotFound
from storage.index.models import AuditEvent, Instance, InstanceVersion, Series, Study
from storage.objects import ObjectStore
from storage.records.history import audit_query, component_history, studies_of

FORMAT = "ndt-pacs evidence bundle 1"
VERIFY_SCRIPT = Path(__file__).with_name("evidence_verify.py")
README = """ndt-pacs evidence bundle

Check it offline (Python 3, standard library only):    python3 -I verify.py
It verifies every file against manifest.json (SHA-256 and size), that each DICOM file is the
original the archive received, and that each audit entry still matches its chain hash.

manifest.json names the audit chain head at export ("audit_head", ID:SHA256). On the archive,
`pacs audit verify --anchor ID:SHA256` proves the chain was not rewritten since.
"""


@dataclass(frozen=True)
class EvidenceSummary:
    """What went into a bundle."""

    files: int
    instances: int
    audit_entries: int
    manifest_sha256: str
    audit_head: str


class _Writer:
    """Adds files to the zip, hashing them as they are written."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive
        self.files: list[dict[str, Any]] = []

    def add_bytes(self, path: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.zip.writestr(path, data, compress_type=zipfile.ZIP_DEFLATED)
        self.files.append({"path": path, "sha256": digest, "size": len(data)})
        return digest

    def add_object(self, path: str, objects: ObjectStore, key: str) -> str:
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as out:
            for block in objects.get(key):
                digest.update(block)
                size += len(block)
                out.write(block)
        self.files.append({"path": path, "sha256": digest.hexdigest(), "size": size})
        return digest.hexdigest()


def write_bundle(
    session: Session,
    objects: ObjectStore,
    destination: Path,
    actor: Actor,
    *,
    serial: str | None = None,
    study_instance_uid: str | None = None,
) -> EvidenceSummary:
    """Write the evidence bundle of component *serial* or of one inspection to *destination* (a zip file).

    The export is audited in *session* (the caller commits). :class:`NotFound` for an unknown scope.
    """
    if (serial is None) == (study_instance_uid is None):
        raise ValueError("give a serial or a study, not both")
    if serial is not None:
        _, studies = studies_of(session, serial)
        scope: dict[str, Any] = {"serial": serial}
    else:
        study = session.scalars(select(Study).where(Study.study_instance_uid == study_instance_uid)).one_or_none()
        if study is None:
            raise NotFound(f"inspection {study_instance_uid} not found")
        studies = [study]
        scope = {"study": study_instance_uid}
    study_uids = [s.study_instance_uid for s in studies]
    head = anchor.head(session)
    versions = session.execute(
        select(InstanceVersion, Instance.sop_instance_uid, Series.series_instance_uid, Study.study_instance_uid)
        .join(Instance, InstanceVersion.instance_id == Instance.id)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .where(Study.id.in_([s.id for s in studies]))
        .order_by(Study.id, Series.id, Instance.id, InstanceVersion.version)
    ).all()
    with zipfile.ZipFile(destination, "w", allowZip64=True) as bundle:
        writer = _Writer(bundle)
        instances = []
        for version, sop_uid, series_uid, study_uid in versions:
            path = f"dicom/{study_uid}/{series_uid}/{sop_uid}.v{version.version}.dcm"
            writer.add_object(path, objects, version.object_key)
            instances.append(
                {
                    "path": path,
                    "sop_instance_uid": sop_uid,
                    "version": version.version,
                    "sha256_at_receipt": version.sha256,
                    "received_at": version.received_at.isoformat(),
                    "received_by": version.received_by,
                }
            )
        audit_entries = entries_of(
            session, audit_query(study_uids, serial).where(AuditEvent.id <= head.anchor.entry_id)
        )
        audit_lines = "".join(as_json_line(entry) + "\n" for entry in audit_entries)
        writer.add_bytes("audit.jsonl", audit_lines.encode("utf-8"))
        if serial is not None:
            history = component_history(session, serial)
            events = [event.as_dict() for event in history.events]
            writer.add_bytes("history.json", json.dumps({"serial": serial, "events": events}, indent=1).encode())
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "created_by": actor_label(actor),
            "scope": scope,
            "inspections": study_uids,
            "audit_head": str(head.anchor),
            "audit_entries": len(audit_entries),
            "files": writer.files,
            "instances": instances,
        }
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        bundle.writestr("manifest.json", manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
        bundle.writestr("verify.py", VERIFY_SCRIPT.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
        bundle.writestr("README.txt", README, compress_type=zipfile.ZIP_DEFLATED)
    summary = EvidenceSummary(
        files=len(writer.files),
        instances=len(instances),
        audit_entries=len(audit_entries),
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        audit_head=str(head.anchor),
    )
    append(
        session,
        AuditRecord(
            actor=actor,
            action="evidence-export",
            outcome="success",
            study_instance_uid=study_instance_uid,
            detail={**scope, "files": summary.files, "manifest_sha256": summary.manifest_sha256},
        ),
    )
    return summary
