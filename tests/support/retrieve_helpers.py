"""Shared helpers of the retrieve, commitment and peer tests: stored instances, SCUs, SCPs."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import build_role

from storage.archive import Archive, StoreResult
from storage.audit import Actor
from tests.support.factories import make_instance, write_part10

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
SCU_ACTOR = Actor("MODALITY", "127.0.0.1:1")


def store_study(archive: Archive, tmp_path: Path, count: int = 2, **attrs: Any) -> list[StoreResult]:
    """Store *count* synthetic CT instances of one study and series; return the store results."""
    first = make_instance(**attrs)
    results = []
    for n in range(count):
        ds = make_instance(
            StudyInstanceUID=first.StudyInstanceUID,
            SeriesInstanceUID=first.SeriesInstanceUID,
            PatientID=first.PatientID,
            InstanceNumber=n + 1,
            **attrs,
        )
        path = write_part10(ds, tmp_path / f"in-{ds.SOPInstanceUID}.dcm")
        results.append(archive.store_file(path, SCU_ACTOR))
    return results


def store_file(archive: Archive, path: Path) -> StoreResult:
    """Store an existing Part 10 file (copied, not moved)."""
    return archive.store_file(path, SCU_ACTOR)


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a Part 10 file, without preamble and file meta."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


@dataclass
class Received:
    """What a storage SCP (or a C-GET requestor) received."""

    items: list[tuple[str, str, bytes]] = field(default_factory=list)  # (sop uid, transfer syntax, data set bytes)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, delay: float = 0.0) -> Any:
        def on_store(event: Any) -> int:
            if delay:
                threading.Event().wait(delay)
            path = getattr(event, "dataset_path", None)
            # With STORE_RECV_CHUNKED_DATASET (the listener sets it process-wide) the data set is in a file.
            data = dataset_bytes(Path(path)) if path is not None else event.request.DataSet.getvalue()
            with self.lock:
                self.items.append((str(event.request.AffectedSOPInstanceUID), str(event.context.transfer_syntax), data))
            return 0x0000

        return on_store

    def decode(self, index: int) -> Dataset:
        """The *index*-th received data set, decoded."""
        from io import BytesIO

        from pydicom.filereader import read_dataset

        _, ts, data = self.items[index]
        ds = read_dataset(BytesIO(data), is_implicit_VR=ts == ImplicitVRLittleEndian, is_little_endian=True)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
        return ds


def get_scu(
    port: int, storage: Iterable[tuple[str, list[str]]], received: Received, model: str, ae_title: str = "VIEWER"
) -> Any:
    """An association for C-GET that takes the storage SCP role for *storage* (class, syntaxes).

    Like dcmtk's getscu it proposes one presentation context per transfer syntax, so the
    archive can pick the one its stored objects are in (PS3.8 9.3.2.2).
    """
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(model)
    roles = []
    for sop_class, syntaxes in storage:
        for syntax in syntaxes:
            ae.add_requested_context(sop_class, [syntax])
        roles.append(build_role(sop_class, scp_role=True))
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="NDTPACS", ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, received.handler())]
    )
    assert assoc.is_established
    return assoc


def identifier(level: str, **keys: str) -> Dataset:
    """A retrieve identifier."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def final(responses: list[tuple[Dataset, Dataset | None]]) -> tuple[Dataset, Dataset | None]:
    """The final (non-pending) response of a C-GET / C-MOVE."""
    status, ident = responses[-1]
    assert status.Status not in (0xFF00, 0xFF01), "last response is still pending"
    return status, ident


def stored_file(path: Path) -> Dataset:
    return dcmread(path)


@dataclass
class AuditRow:
    """An audit entry, detached from the database."""

    actor: str
    actor_address: str | None
    action: str
    outcome: str
    study_instance_uid: str | None
    sop_instance_uid: str | None
    detail: dict[str, Any]


def audit_rows(archive: Archive, action: str) -> list[AuditRow]:
    """The audit entries of *action*, oldest first."""
    import json

    from sqlalchemy import select

    from storage.index.models import AuditEvent

    with archive.db.read_session() as session:
        return [
            AuditRow(
                e.actor,
                e.actor_address,
                e.action,
                e.outcome,
                e.study_instance_uid,
                e.sop_instance_uid,
                json.loads(e.detail),
            )
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        ]


def uid_list(value: Any) -> set[str]:
    """A UI value with VM 1-n as a set (pydicom gives a str for one value)."""
    return {value} if isinstance(value, str) else {str(v) for v in value}
