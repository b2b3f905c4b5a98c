"""The archive core: the one ingest path, the one query path, health and fixity.

``Archive.store_file`` is where a C-STORE and a STOW-RS part both end
(DESIGN.md "Storing an instance"): the received Part 10 bytes are kept exactly,
the header alone is parsed, UIDs are validated, the SHA-256 is computed, the
object is written durably, then the index and the audit entry are committed in
one transaction. Only then does the caller report success.

Duplicate policy: a resend of bytes already stored (any version) is a no-op
success. The same SOP Instance UID with different bytes is stored as a new
version; every earlier version is kept, and the index serves the newest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage import audit
from storage.attributes import Level, attributes_at, extract, join_multi, split_multi
from storage.audit import Actor, AuditRecord, ChainReport
from storage.db import Database
from storage.dicomfile import ReceivedFile, read_received_file
from storage.diconde.indications import read_indications
from storage.errors import ArchiveError, IndexUnavailable, InvalidInstance, NotFound, StorageUnavailable
from storage.models import Component, Indication, Instance, InstanceVersion, Series, Study, utcnow
from storage.objects import CHUNK, ObjectStore
from storage.query import Match, Query, run_query
from storage.retrieve import StoredInstance, iter_object, list_instances, open_object
from storage.uids import object_key, require_uid

log = logging.getLogger(__name__)

BULK_DATA_THRESHOLD = 4096


class StoreOutcome(StrEnum):
    """What a store did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    NEW_VERSION = "new_version"


@dataclass(frozen=True)
class StoreResult:
    """The durable, indexed result of one store."""

    outcome: StoreOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    version: int
    sha256: str
    size: int
    object_key: str


@dataclass(frozen=True)
class _Identity:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


def _identity(ds: Dataset) -> _Identity:
    """The four required UIDs, validated (PS3.5 §9.1); mismatched file meta is rejected."""
    identity = _Identity(
        sop_class_uid=require_uid("SOPClassUID", ds.get("SOPClassUID")),
        sop_instance_uid=require_uid("SOPInstanceUID", ds.get("SOPInstanceUID")),
        study_instance_uid=require_uid("StudyInstanceUID", ds.get("StudyInstanceUID")),
        series_instance_uid=require_uid("SeriesInstanceUID", ds.get("SeriesInstanceUID")),
    )
    meta_sop = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if meta_sop and str(meta_sop) != identity.sop_instance_uid:
        raise InvalidInstance("file meta (0002,0003) names another SOP Instance UID than the data set (0008,0018)")
    return identity


def _bulk_data_uri(element: Any) -> str:
    return f"bulkdata/{element.tag:08X}"


def header_json(ds: Dataset) -> str:
    """The header as DICOM JSON (PS3.18 F.2); large binary values become BulkDataURIs."""
    body = ds.to_json_dict(
        bulk_data_threshold=BULK_DATA_THRESHOLD,
        bulk_data_element_handler=_bulk_data_uri,
        suppress_invalid_tags=True,
    )
    return json.dumps(body, separators=(",", ":"))


def _apply(row: Any, level: Level, ds: Dataset) -> bool:
    """Copy the non-empty values of *level*'s attributes from *ds* onto *row*."""
    changed = False
    for attribute in attributes_at(level):
        if attribute.derived:
            continue
        value = extract(ds, attribute)
        if value is None or value == "":
            continue
        name = attribute.column.key
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _index_indications(session: Session, instance: Instance, ds: Dataset) -> None:
    """Replace *instance*'s indication rows with those of the served version (DICONDE 0014,2012)."""
    session.execute(delete(Indication).where(Indication.instance_id == instance.id))
    for values in read_indications(ds):
        session.add(
            Indication(
                instance_id=instance.id,
                indication_number=values.number,
                indication_label=values.label,
                indication_type=values.types,
                indication_disposition=values.disposition,
                indication_description=values.description,
            )
        )


class Archive:
    """Objects + index + audit, behind one interface used by every protocol adapter."""

    def __init__(
        self,
        db: Database,
        objects: ObjectStore,
        *,
        spool_dir: Path,
        max_results: int = 10_000,
    ) -> None:
        self.db = db
        self.objects = objects
        self.spool_dir = spool_dir
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.max_results = max_results

    # -- ingest ----------------------------------------------------------------

    def store_stream(self, stream: BinaryIO, actor: Actor) -> StoreResult:
        """Spool a Part 10 stream to disk (never whole in memory), then :meth:`store_file`."""
        fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix=".dcm")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as spool:
                while block := stream.read(CHUNK):
                    spool.write(block)
            return self.store_file(path, actor, move=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def store_file(self, path: Path, actor: Actor, *, move: bool = False) -> StoreResult:
        """Archive the DICOM Part 10 file at *path* (DESIGN.md steps 1-5).

        Raises :class:`InvalidInstance` for input that cannot be archived, and
        :class:`StorageUnavailable` / :class:`IndexUnavailable` when a backend
        fails; in every error case nothing is indexed and nothing is served.
        """
        try:
            received = read_received_file(path)
            identity = _identity(received.dataset)
            header = header_json(received.dataset)
        except InvalidInstance as exc:
            self._audit_rejection(actor, str(exc), path)
            raise
        key = object_key(
            identity.study_instance_uid,
            identity.series_instance_uid,
            identity.sop_instance_uid,
            received.sha256,
        )
        # Content-addressed key: writing it before we know whether the bytes are a
        # duplicate is harmless (same key, same bytes) and saves a round trip.
        self.objects.put_file(key, path, move=move)
        try:
            result = self.db.write(lambda s: self._index(s, actor, identity, received, header, key))
        except Exception:
            self._discard_unindexed(key)
            raise
        if result.object_key != key:  # a duplicate archived earlier under another study/series
            self._discard_unindexed(key)
        return result

    def _discard_unindexed(self, key: str) -> None:
        """Compensate a failed index transaction: remove the object unless it is indexed."""
        try:
            with self.db.read_session() as session:
                indexed = session.scalar(select(InstanceVersion.id).where(InstanceVersion.object_key == key))
        except ArchiveError:
            log.warning("index unreachable: object %s left orphaned for `pacs verify`", key)
            return
        if indexed is None:
            try:
                self.objects.delete(key)
            except ArchiveError:
                log.warning("could not remove unindexed object %s", key)

    def _index(
        self,
        session: Session,
        actor: Actor,
        identity: _Identity,
        received: ReceivedFile,
        header: str,
        key: str,
    ) -> StoreResult:
        with session.no_autoflush:
            return self._index_rows(session, actor, identity, received, header, key)

    def _index_rows(
        self,
        session: Session,
        actor: Actor,
        identity: _Identity,
        received: ReceivedFile,
        header: str,
        key: str,
    ) -> StoreResult:
        ds = received.dataset
        instance = session.scalars(
            select(Instance).where(Instance.sop_instance_uid == identity.sop_instance_uid)
        ).one_or_none()
        if instance is not None:
            versions = session.execute(
                select(InstanceVersion.version, InstanceVersion.sha256, InstanceVersion.object_key).where(
                    InstanceVersion.instance_id == instance.id
                )
            ).all()
            for number, digest, stored_key in versions:
                if digest == received.sha256:  # these bytes are already archived
                    self._audit_store(session, actor, identity, StoreOutcome.DUPLICATE, received, number)
                    return self._result(StoreOutcome.DUPLICATE, identity, received, number, stored_key)
            version = max(number for number, _, _ in versions) + 1
            outcome = StoreOutcome.NEW_VERSION
        else:
            version = 1
            outcome = StoreOutcome.STORED

        series = self._upsert_series(session, ds, identity)
        if instance is None:
            instance = Instance(sop_instance_uid=identity.sop_instance_uid, series_id=series.id)
            series.number_of_instances += 1
            session.get_one(Study, series.study_id).number_of_instances += 1
        elif instance.series_id != series.id:
            old = session.get_one(Series, instance.series_id)
            old.number_of_instances -= 1
            session.get_one(Study, old.study_id).number_of_instances -= 1
            instance.series_id = series.id
            series.number_of_instances += 1
            session.get_one(Study, series.study_id).number_of_instances += 1
        _apply(instance, Level.IMAGE, ds)
        instance.sop_class_uid = identity.sop_class_uid
        instance.transfer_syntax_uid = received.transfer_syntax_uid
        instance.version = version
        instance.object_key = key
        instance.size_bytes = received.size
        instance.sha256 = received.sha256
        instance.header_json = header
        instance.storage_state = "stored"
        instance.received_at = utcnow()
        session.add(instance)
        session.flush()
        _index_indications(session, instance, ds)
        session.add(
            InstanceVersion(
                instance_id=instance.id,
                version=version,
                object_key=key,
                size_bytes=received.size,
                sha256=received.sha256,
                transfer_syntax_uid=received.transfer_syntax_uid,
                received_by=f"{actor.kind}:{actor.name}",
            )
        )
        self._audit_store(session, actor, identity, outcome, received, version)
        return self._result(outcome, identity, received, version, key)

    def _upsert_series(self, session: Session, ds: Dataset, identity: _Identity) -> Series:
        component_id = str(ds.get("PatientID", "") or "")[:64]
        component = session.scalars(select(Component).where(Component.patient_id == component_id)).one_or_none()
        if component is None:
            component = Component(patient_id=component_id, number_of_studies=0)
            session.add(component)
        if _apply(component, Level.PATIENT, ds):
            component.updated_at = utcnow()
        if component.id is None:
            session.flush()

        study = session.scalars(
            select(Study).where(Study.study_instance_uid == identity.study_instance_uid)
        ).one_or_none()
        if study is None:
            study = Study(
                study_instance_uid=identity.study_instance_uid,
                component_id=component.id,
                modalities_in_study="",
                number_of_series=0,
                number_of_instances=0,
            )
            session.add(study)
            component.number_of_studies += 1
        if _apply(study, Level.STUDY, ds):
            study.updated_at = utcnow()
        if study.id is None:
            session.flush()

        series = session.scalars(
            select(Series).where(Series.series_instance_uid == identity.series_instance_uid)
        ).one_or_none()
        if series is None:
            series = Series(
                series_instance_uid=identity.series_instance_uid,
                study_id=study.id,
                number_of_instances=0,
            )
            session.add(series)
            study.number_of_series += 1
        if _apply(series, Level.SERIES, ds):
            series.updated_at = utcnow()
        modalities = split_multi(study.modalities_in_study)
        if series.modality and series.modality not in modalities:
            study.modalities_in_study = join_multi([*modalities, series.modality])
        if series.id is None:
            session.flush()
        return series

    @staticmethod
    def _result(
        outcome: StoreOutcome, identity: _Identity, received: ReceivedFile, version: int, key: str
    ) -> StoreResult:
        return StoreResult(
            outcome=outcome,
            sop_class_uid=identity.sop_class_uid,
            sop_instance_uid=identity.sop_instance_uid,
            study_instance_uid=identity.study_instance_uid,
            series_instance_uid=identity.series_instance_uid,
            version=version,
            sha256=received.sha256,
            size=received.size,
            object_key=key,
        )

    @staticmethod
    def _audit_store(
        session: Session,
        actor: Actor,
        identity: _Identity,
        outcome: StoreOutcome,
        received: ReceivedFile,
        version: int,
    ) -> None:
        audit.append(
            session,
            AuditRecord(
                actor=actor,
                action="store",
                outcome="success" if outcome is StoreOutcome.STORED else outcome.value,
                study_instance_uid=identity.study_instance_uid,
                series_instance_uid=identity.series_instance_uid,
                sop_instance_uid=identity.sop_instance_uid,
                detail={
                    "sha256": received.sha256,
                    "size": received.size,
                    "version": version,
                    "transfer_syntax": received.transfer_syntax_uid,
                },
            ),
        )

    def _audit_rejection(self, actor: Actor, reason: str, path: Path) -> None:
        detail: dict[str, Any] = {"reason": reason[:500]}
        with contextlib.suppress(OSError):
            detail["size"] = path.stat().st_size
        self.record(AuditRecord(actor=actor, action="store", outcome="failure", detail=detail))

    # -- queries and audit ---------------------------------------------------------

    def find(self, query: Query, actor: Actor, *, action: str = "find") -> list[Match]:
        """Run *query* (bounded by ``max_results``) and audit it as *action*."""
        with self.db.read_session() as session:
            matches = run_query(session, query, self.max_results)
        self.record(
            AuditRecord(
                actor=actor,
                action=action,
                outcome="success",
                detail={
                    "level": query.level.value,
                    "filters": {k: v for k, v in query.filters.items() if v},
                    "matches": len(matches),
                },
            )
        )
        return matches

    def record(self, record: AuditRecord) -> None:
        """Append *record* to the audit log in its own transaction (best effort when down)."""
        try:
            self.db.write(lambda s: audit.append(s, record))
        except IndexUnavailable:
            log.error("audit entry not written, index unavailable: %s", record)

    # -- retrieval ---------------------------------------------------------------

    def instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *, with_header: bool = False
    ) -> list[StoredInstance]:
        """The served instances of a study / series / instance; :class:`NotFound` when there are none."""
        with self.db.read_session() as session:
            found = list_instances(session, study_uid, series_uid, sop_uid, with_header=with_header)
        if not found:
            what = sop_uid or series_uid or study_uid
            raise NotFound(f"no stored instances for {what}")
        return found

    def read_instance(self, instance: StoredInstance, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The stored Part 10 bytes of *instance* (or a range of them), in chunks."""
        return iter_object(self.objects, instance.object_key, offset, length)

    def open_instance(self, instance: StoredInstance) -> BinaryIO:
        """A seekable binary stream over the stored object of *instance* (ranged reads)."""
        return open_object(self.objects, instance.object_key, instance.size)

    def verify_audit(self) -> ChainReport:
        """Walk and check the audit hash chain."""
        with self.db.read_session() as session:
            return audit.verify_chain(session)

    # -- health ----------------------------------------------------------------

    def health(self) -> dict[str, bool]:
        """Whether the database and the object store answer."""
        try:
            objects_ok = self.objects.check()
        except Exception:  # noqa: BLE001 - a health probe reports any failure as down
            objects_ok = False
        return {"database": self.db.ping(), "object_store": objects_ok}


__all__ = ["Archive", "StoreOutcome", "StoreResult", "StorageUnavailable"]
