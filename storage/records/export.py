"""Export: the stored originals of a component or an inspection to a folder, optionally as a File-set.

Byte-exact copies of what the devices sent (DESIGN.md: an auditor's copy is the device's copy),
each export audited (action ``export``, one entry per inspection). Without a DICOMDIR the files go
to ``DIR/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``; with one, to a DICOM
File-set (PS3.10 §8) laid out by :mod:`storage.dicom.fileset`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.dicom.fileset import write_fileset
from storage.errors import InvalidQuery, NotFound
from storage.index.attributes import Level
from storage.index.query import Query, run_query
from storage.index.retrieve import StoredInstance


@dataclass
class ExportReport:
    """What an export wrote."""

    studies: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    instances: int = 0
    bytes: int = 0


def studies_of(archive: Archive, serial: str) -> list[str]:
    """The StudyInstanceUIDs of the component *serial* (PatientID, matched exactly)."""
    if not serial or any(c in serial for c in "*?\\"):
        raise InvalidQuery("a serial number to export is one exact value (no wildcards)")
    with archive.db.read_session() as session:
        matches = run_query(session, Query(Level.STUDY, {"PatientID": serial}), archive.max_results)
    found = sorted(str(m.values["StudyInstanceUID"]) for m in matches if m.values.get("PatientID") == serial)
    if not found:
        raise NotFound(f"no stored inspections for serial {serial!r}")
    return found


def _copy(archive: Archive, instance: StoredInstance, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in archive.read_instance(instance):
            out.write(chunk)


def export(
    archive: Archive,
    actor: Actor,
    directory: Path,
    *,
    serial: str | None = None,
    study: str | None = None,
    dicomdir: bool = False,
) -> ExportReport:
    """Write the originals of component *serial* or inspection *study* to *directory* (new or empty).

    Raises :class:`NotFound` when nothing matches and :class:`InvalidQuery` for a bad request;
    nothing is written then.
    """
    if (serial is None) == (study is None):
        raise InvalidQuery("export one component (serial) or one inspection (study)")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidQuery(f"{directory} is not an empty directory")
    study_uids = studies_of(archive, serial) if serial is not None else [str(study)]
    per_study = {uid: archive.instances(uid) for uid in study_uids}  # NotFound before anything is written
    report = ExportReport(studies=study_uids)
    directory.mkdir(parents=True, exist_ok=True)
    if dicomdir:
        with tempfile.TemporaryDirectory(prefix="export-", dir=directory.parent) as staging:
            staged: list[Path] = []
            for instances in per_study.values():
                for i, instance in enumerate(instances):
                    path = Path(staging) / f"{len(staged):08d}-{i}.dcm"
                    _copy(archive, instance, path)
                    staged.append(path)
            report.files = write_fileset(staged, directory, fileset_id=(serial or "INSPECTION")[:16])
    else:
        for instances in per_study.values():
            for instance in instances:
                target = (
                    directory
                    / instance.study_instance_uid
                    / instance.series_instance_uid
                    / f"{instance.sop_instance_uid}.dcm"
                )
                _copy(archive, instance, target)
                report.files.append(target)
    for uid, instances in per_study.items():
        report.instances += len(instances)
        report.bytes += sum(i.size for i in instances)
        archive.record(
            AuditRecord(
                actor=actor,
                action="export",
                outcome="success",
                study_instance_uid=uid,
                detail={
                    "instances": len(instances),
                    "bytes": sum(i.size for i in instances),
                    "directory": os.fspath(directory.resolve()),
                    "dicomdir": dicomdir,
                    **({"serial": serial} if serial is not None else {}),
                },
            )
        )
    return report
