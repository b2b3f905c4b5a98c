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
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from sqlalchemy import select

from storage import audit
from storage.audit import Actor, AuditRecord, ChainReport
from storage.dicom import header
from storage.dicom.files import read_received_file
from storage.errors import (
    ArchiveError,
    ComponentMismatch,
    IndexUnavailable,
    InvalidInstance,
    NotFound,
    StorageUnavailable,
)
from storage.index.db import Database
from storage.index.models import Instance
from storage.index.query import Match, Query, run_query
from storage.index.retrieve import StoredInstance, iter_object, list_instances, open_object
from storage.index.unit_of_work import UnitOfWork
from storage.ingest.admission import examine_for_admission
from storage.ingest.index_writer import (
    IndexItem,
    IndexValues,
    IndexWriter,
    ReceivedObject,
    StoreOutcome,
    StoreResult,
    check_component,
    identity_of,
)
from storage.ingest.intake import Entry, Intake
from storage.objects import ObjectStore
from storage.objects.keys import object_key

log = logging.getLogger(__name__)

BULK_DATA_THRESHOLD = 4096


class CommitmentFailure(StrEnum):
    """Why an instance cannot be committed (mapped to PS3.4 J.3.2.1.2 Failure Reasons by pacs)."""

    NO_SUCH_INSTANCE = "no_such_instance"
    CLASS_MISMATCH = "class_mismatch"
    MISSING_OBJECT = "missing_object"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CommitmentCheck:
    """The outcome of :meth:`Archive.commitment_status`."""

    committed: bool
    failure: CommitmentFailure | None
    reason: str


def _bulk_data_uri(element: Any) -> str:
    return f"bulkdata/{element.tag:08X}"


def header_json(ds: Dataset) -> str:
    """The header as DICOM JSON (PS3.18 F.2); large binary values become BulkDataURIs."""
    body = header.json_dict(
        ds,
        bulk_data_threshold=BULK_DATA_THRESHOLD,
        bulk_data_element_handler=_bulk_data_uri,
    )
    return json.dumps(body, separators=(",", ":"))


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
        self.index_writer = IndexWriter()
        self.intake: Intake | None = None  # set by use_intake (deferred indexing)

    # -- ingest ----------------------------------------------------------------

    def store_file(self, path: Path, actor: Actor, *, move: bool = False, sha256: str | None = None) -> StoreResult:
        """Archive the DICOM Part 10 file at *path* (DESIGN.md steps 1-5).

        *sha256*: the file's SHA-256 (hex) when the caller hashed the bytes as they arrived.

        Raises :class:`InvalidInstance` for input that cannot be archived, and
        :class:`StorageUnavailable` / :class:`IndexUnavailable` when a backend
        fails; in every error case nothing is indexed and nothing is served.
        """
        try:
            item = self.examine(path, actor, sha256)
            self._check_component(item.identity.study_instance_uid, item.values.component_key)
        except InvalidInstance as exc:
            self._audit_rejection(actor, exc, path)
            raise
        identity, values, stored = item.identity, item.values, item.stored
        # The key is content-addressed: writing it before we know whether the bytes are
        # a duplicate is harmless (same key, same bytes), and it is never deleted here.
        # When the index transaction fails the object stays unindexed (never served) and
        # `pacs verify --sweep-orphans` removes it later: deleting it now could remove
        # the object a concurrent store of the same bytes is about to acknowledge.
        self.objects.put_file(stored.key, path, move=move)
        try:
            result, known = self.db.run(
                lambda uow: self.index_writer.index(uow.connection, actor, identity, values, stored)
            )
        except InvalidInstance as exc:  # a conflict a concurrent store created after the check above
            self.index_writer.forget(identity.series_instance_uid)
            self._audit_rejection(actor, exc, path)
            raise
        except Exception:
            self.index_writer.forget(identity.series_instance_uid)
            log.warning("object %s left unindexed after a failed index transaction", stored.key)
            raise
        self.index_writer.remember(identity.series_instance_uid, known)
        return result

    # -- deferred indexing (storage/ingest/intake.py) ----------------------------------------

    def use_intake(self, intake: Intake) -> None:
        """Acknowledge stores through :meth:`admit_file` once durable in *intake*; reads wait for the indexer."""
        self.intake = intake

    def admit_file(self, path: Path, actor: Actor) -> Entry:
        """The receiver's half of a deferred store: check the file, make it durable in the intake.

        Nothing here needs the SHA-256 (the indexer computes it while it reads the file), so
        the sender's answer does not wait for it. Raises :class:`InvalidInstance` for what
        :meth:`store_file` refuses (nothing is kept) and :class:`StorageUnavailable` when the
        intake cannot be written. Once this returns, the object is durable and the indexer will
        index it (:meth:`examine_entry`, :meth:`index_entries`).
        """
        if self.intake is None:
            raise RuntimeError("deferred indexing is not enabled on this archive (use_intake)")
        try:
            admission = examine_for_admission(path)
            key = admission.component_key
            if key.isascii() and "\\" not in key:  # the index's key is this text (else its decoding decides)
                self._check_component(admission.identity.study_instance_uid, key)
        except InvalidInstance as exc:
            self._audit_rejection(actor, exc, path)
            raise
        return self.intake.admit(path, actor)

    def _check_component(self, study_instance_uid: str, component_key: str) -> None:
        """Refuse (:class:`ComponentMismatch`) an instance whose study is indexed under another component.

        Finding 7 of issue 18 (dcm4chee's patient mismatch): checked before the answer, without
        waiting for the indexer; the index transaction checks again (a study still in the intake,
        or a concurrent store). An index that cannot be read leaves the decision to that transaction.
        """
        try:
            with self.db.unit_of_work() as uow:  # not Archive.unit_of_work: never waits for the indexer
                check_component(uow.connection, study_instance_uid, component_key)
        except ComponentMismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - the index transaction decides when the index is down
            log.debug("component check skipped, index unreadable: %s", exc)

    @staticmethod
    def examine(path: Path, actor: Actor, sha256: str | None = None) -> IndexItem:
        """Steps 2-3: hash (unless given), check and parse the header; what the index transaction needs.

        Raises :class:`InvalidInstance` for a file that cannot be archived (nothing is written).
        """
        received = read_received_file(path, sha256=sha256)
        ds = received.dataset
        try:  # pydicom converts values lazily: one it cannot convert surfaces here, as the file's fault
            identity = identity_of(ds)
            body, values = header_json(ds), IndexValues.of(ds)
        except InvalidInstance:
            raise
        except Exception as exc:  # found by tests/storage/test_fuzz_admission.py
            raise InvalidInstance(f"cannot read the header's values: {str(exc)[:300]}") from exc
        stored = ReceivedObject(
            key=object_key(
                identity.study_instance_uid, identity.series_instance_uid, identity.sop_instance_uid, received.sha256
            ),
            sha256=received.sha256,
            size=received.size,
            transfer_syntax_uid=received.transfer_syntax_uid,
            header_json=body,
        )
        return IndexItem(actor=actor, identity=identity, values=values, stored=stored)

    def examine_entry(self, entry: Entry) -> IndexItem:
        """The indexer's first step for an intake entry: the full header parse that admission skipped.

        A file that pydicom cannot parse after all is still indexed, under the UIDs it was admitted
        with and without header values (logged): it was acknowledged, so it must be findable.
        Raises :class:`InvalidInstance` only when even that is impossible (the entry is set aside).
        """
        try:
            return self.examine(entry.path, entry.actor, None)
        except InvalidInstance as exc:
            admission = examine_for_admission(entry.path)
            log.error("admitted object %s indexed without its header: %s", entry.name, exc)
        identity = admission.identity
        with open(entry.path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        stored = ReceivedObject(
            key=object_key(
                identity.study_instance_uid, identity.series_instance_uid, identity.sop_instance_uid, digest
            ),
            sha256=digest,
            size=admission.size,
            transfer_syntax_uid=admission.transfer_syntax_uid,
            header_json="{}",
        )
        values = IndexValues(component_key="", patient={}, study={}, series={}, image={}, indications=[])
        return IndexItem(actor=entry.actor, identity=identity, values=values, stored=stored)

    def index_entries(self, intake: Intake, batch: Sequence[tuple[Entry, IndexItem]]) -> list[StoreResult]:
        """The indexer's second step: place the objects, index them in one transaction, then drop the entries.

        All or nothing (see :meth:`index_stored`); the entries are removed only after the commit.
        """
        self.objects.put_linked([(item.stored.key, entry.path) for entry, item in batch])
        results = self.index_stored([item for _, item in batch])
        for entry, _ in batch:
            intake.done(entry)
        return results

    def index_stored(self, items: Sequence[IndexItem]) -> list[StoreResult]:
        """Index objects already in the object store, all in ONE transaction (one commit); results in order.

        For a deferred / background indexer. Each item is what :meth:`store_file` has at its
        index step: the sender (``actor``), the validated ``identity``, the extracted index
        ``values`` and the ``stored`` object, which must already be durable under
        ``stored.key``. The items are indexed exactly as consecutive :meth:`store_file` calls
        in that order would index them (rows, counters, versions, duplicate outcomes, one audit
        entry each, chained in item order), including several instances of one series and the
        same SOP instance more than once in one batch.

        All or nothing: on :class:`IndexUnavailable` (or any error) nothing of the batch is
        indexed and the objects stay unindexed (never served; swept as orphans if never
        indexed). The caller may retry the batch, or its items one by one to isolate one that
        keeps failing. An empty batch does nothing.
        """
        if not items:
            return []
        try:
            batch = self.db.run(lambda uow: self.index_writer.index_many(uow.connection, items))
        except Exception:
            self.index_writer.forget_all({item.identity.series_instance_uid for item in items})
            log.warning("%d objects left unindexed after a failed index transaction", len(items))
            raise
        self.index_writer.remember_all(batch.learned)
        return batch.results

    def _audit_rejection(self, actor: Actor, exc: InvalidInstance, path: Path) -> None:
        detail: dict[str, Any] = {"reason": str(exc)[:500]}
        with contextlib.suppress(OSError):
            detail["size"] = path.stat().st_size
        study = None
        if isinstance(exc, ComponentMismatch):  # who owns the study, and what the refused instance named
            detail.update(mismatch="component", owner=exc.owner, named=exc.named)
            study = exc.study_instance_uid
        record = AuditRecord(actor=actor, action="store", outcome="failure", study_instance_uid=study, detail=detail)
        self.record(record)

    # -- units of work, queries and audit ---------------------------------------------

    @contextlib.contextmanager
    def unit_of_work(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        """The unit of work of one request, DIMSE operation or command: committed at the end of the block.

        Reads begin here, so with deferred indexing this first waits for every store
        acknowledged before it (``Intake.settle``): a read sees every acknowledged instance.
        """
        if self.intake is not None:
            self.intake.settle()
        with self.db.unit_of_work(write=write) as uow:
            yield uow

    @contextlib.contextmanager
    def _unit(self, uow: UnitOfWork | None) -> Iterator[UnitOfWork]:
        if uow is not None:
            yield uow
            return
        with self.unit_of_work() as own:
            yield own

    def find(self, query: Query, actor: Actor, *, action: str = "find", uow: UnitOfWork | None = None) -> list[Match]:
        """Run *query* (bounded by ``max_results``) in *uow* (or its own) and audit it as *action*."""
        with self._unit(uow) as unit:
            matches = run_query(unit.session, query, self.max_results)
            self.audit_read(
                unit,
                AuditRecord(
                    actor=actor,
                    action=action,
                    outcome="success",
                    detail={
                        "level": query.level.value,
                        "filters": {k: v for k, v in query.filters.items() if v},
                        "matches": len(matches),
                    },
                ),
            )
        return matches

    def audit_read(self, uow: UnitOfWork, record: AuditRecord) -> None:
        """Audit a read done in *uow*: appended once *uow* has committed, off the read's transaction."""
        uow.after_commit(lambda: self.record(record))

    def record(self, record: AuditRecord) -> None:
        """Append *record* to the audit log in its own transaction (best effort when down)."""
        try:
            self.db.run(lambda uow: audit.append(uow.session, record))
        except IndexUnavailable:
            log.error("audit entry not written, index unavailable: %s", record)

    def record_once(self, record: AuditRecord, window: timedelta) -> bool:
        """Append *record* unless the actor has a like entry (action, outcome, study, series) within *window*.

        For reads that come in bursts, e.g. the viewer scrolling a CT series image by image: one entry
        per actor, series and window says who looked at the series and when it started. Returns True
        when an entry was written. The log is the only state (no per-process cache), so every HTTP
        replica sees the same entries.
        """
        since = datetime.now(UTC) - window
        try:
            with self.db.unit_of_work() as uow:
                if audit.seen_since(uow.session, record, since):
                    return False
            return self.db.run(lambda uow: audit.append_unless_seen(uow.session, record, since)) is not None
        except IndexUnavailable:
            log.error("audit entry not written, index unavailable: %s", record)
            return False

    # -- retrieval ---------------------------------------------------------------

    def instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        with_header: bool = False,
        uow: UnitOfWork | None = None,
    ) -> list[StoredInstance]:
        """The served instances of a study / series / instance; :class:`NotFound` when there are none."""
        with self._unit(uow) as unit:
            found = list_instances(unit.session, study_uid, series_uid, sop_uid, with_header=with_header)
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
        with self.db.unit_of_work() as uow:
            return audit.verify_chain(uow.session)

    # -- retrieval and storage commitment ---------------------------------------

    @contextlib.contextmanager
    def instance_file(self, key: str) -> Iterator[Path]:
        """The stored object *key* as a local Part 10 file, for sending as it is (read only).

        A file store hands out its own file; any other store is spooled to a
        temporary file (removed afterwards). :class:`NotFound` when the object is missing.
        """
        path = self.objects.local_path(key)
        if path is not None:
            yield path
            return
        fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix=".dcm")
        spooled = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in self.objects.get(key):
                    out.write(block)
            yield spooled
        finally:
            with contextlib.suppress(FileNotFoundError):
                spooled.unlink()

    def commitment_status(self, sop_class_uid: str, sop_instance_uid: str) -> CommitmentCheck:
        """Whether the archive can commit to keeping an instance (PS3.4 J.3.2).

        Committed only when the instance is indexed under that SOP class and its
        served object exists and re-hashes to the recorded SHA-256.
        """
        with self.unit_of_work() as uow:
            row = uow.session.execute(
                select(Instance.sop_class_uid, Instance.object_key, Instance.sha256).where(
                    Instance.sop_instance_uid == sop_instance_uid
                )
            ).one_or_none()
        if row is None:
            return CommitmentCheck(False, CommitmentFailure.NO_SUCH_INSTANCE, "not in the archive")
        sop_class, key, expected = row
        if sop_class != sop_class_uid:
            return CommitmentCheck(False, CommitmentFailure.CLASS_MISMATCH, f"archived as SOP class {sop_class}")
        digest = hashlib.sha256()
        try:
            for block in self.objects.get(key):
                digest.update(block)
        except NotFound:
            return CommitmentCheck(False, CommitmentFailure.MISSING_OBJECT, "stored object is missing")
        except ArchiveError as exc:
            return CommitmentCheck(False, CommitmentFailure.UNAVAILABLE, str(exc)[:200])
        if digest.hexdigest() != expected:
            return CommitmentCheck(False, CommitmentFailure.CHECKSUM_MISMATCH, "stored object fails its checksum")
        return CommitmentCheck(True, None, "indexed, object present, checksum verified")

    # -- health ----------------------------------------------------------------

    def health(self) -> dict[str, bool]:
        """Whether the database and the object store answer (and, with deferred indexing, an indexer runs)."""
        try:
            objects_ok = self.objects.check()
        except Exception:  # noqa: BLE001 - a health probe reports any failure as down
            objects_ok = False
        state = {"database": self.db.ping(), "object_store": objects_ok}
        if self.intake is not None:
            state["indexer"] = self.intake.indexer_running()
        return state


__all__ = ["Archive", "CommitmentCheck", "CommitmentFailure", "StoreOutcome", "StoreResult", "StorageUnavailable"]
