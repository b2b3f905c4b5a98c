"""Storage Commitment Push Model SCP with pynetdicom requestors (PS3.4 Annex J)."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from pacs.server import DicomListener
from pacs.status import Status
from storage.archive import Archive
from storage.audit import Actor
from storage.records.peers import PeerRegistry
from tests.support.retrieve_helpers import audit_rows, store_study
from tests.support.servers import free_port

REPORT_TIMEOUT = 30


def request(refs: list[tuple[str, str]], transaction_uid: str | None = None) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid or generate_uid()
    ds.ReferencedSOPSequence = []
    for sop_class, sop_instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        ds.ReferencedSOPSequence.append(item)
    return ds


def _refs(sequence: Any) -> set[str]:
    return {str(item.ReferencedSOPInstanceUID) for item in sequence}


class Device:
    """An NDT device asking for storage commitment (pynetdicom SCU, optionally with its own listener)."""

    def __init__(self, ae_title: str = "DEVICE") -> None:
        self.reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()
        self.ae = AE(ae_title=ae_title)
        self.ae.add_requested_context(StorageCommitmentPushModel)
        self.server: Any = None

    def on_report(self, event: Any) -> tuple[int, None]:
        self.reports.put((int(event.event_type), event.event_information))
        return 0x0000, None

    def listen(self) -> int:
        """Accept the archive's report association (it takes the SCP role, J.3.3)."""
        self.ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        port = free_port()
        self.server = self.ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, self.on_report)]
        )
        return port

    def commit(self, port: int, ds: Dataset, *, wait_on_association: bool = True) -> tuple[int, Dataset]:
        handlers = [(evt.EVT_N_EVENT_REPORT, self.on_report)] if wait_on_association else []
        assoc = self.ae.associate("127.0.0.1", port, ae_title="NDTPACS", evt_handlers=handlers)
        assert assoc.is_established
        try:
            status, _ = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance)
            assert status.Status == Status.SUCCESS
            if wait_on_association:
                return self.reports.get(timeout=REPORT_TIMEOUT)
        finally:
            if wait_on_association:
                assoc.release()
        assoc.release()
        return self.reports.get(timeout=REPORT_TIMEOUT)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


@pytest.fixture
def device():
    dev = Device()
    yield dev
    dev.stop()


def test_commitment_of_stored_instances_on_same_association(
    archive: Archive, dicom_listener: DicomListener, device: Device, tmp_path: Path
):
    stored = store_study(archive, tmp_path, count=2)
    transaction = generate_uid()
    event_type, info = device.commit(
        dicom_listener.port, request([(CTImageStorage, r.sop_instance_uid) for r in stored], transaction)
    )
    assert event_type == 1  # all committed
    assert info.TransactionUID == transaction
    assert _refs(info.ReferencedSOPSequence) == {r.sop_instance_uid for r in stored}
    assert "FailedSOPSequence" not in info
    assert info.RetrieveAETitle == "NDTPACS"
    rows = audit_rows(archive, "commit")
    assert {(r.sop_instance_uid, r.outcome) for r in rows} == {(r.sop_instance_uid, "success") for r in stored}
    assert all(r.actor == "ae:DEVICE" and r.detail["transaction_uid"] == transaction for r in rows)
    assert audit_rows(archive, "commit_report")[-1].detail["delivery"] == "same association"


def test_commitment_failures_unknown_uid_missing_object_wrong_class(
    archive: Archive, dicom_listener: DicomListener, device: Device, tmp_path: Path
):
    stored = store_study(archive, tmp_path, count=3)
    archive.objects.delete(stored[1].object_key)  # removed behind the archive's back
    unknown = generate_uid()
    refs = [
        (CTImageStorage, stored[0].sop_instance_uid),
        (CTImageStorage, stored[1].sop_instance_uid),
        (CTImageStorage, unknown),
        ("1.2.840.10008.5.1.4.1.1.4", stored[2].sop_instance_uid),  # MR, but archived as CT
    ]
    event_type, info = device.commit(dicom_listener.port, request(refs))
    assert event_type == 2  # failures exist
    assert _refs(info.ReferencedSOPSequence) == {stored[0].sop_instance_uid}
    reasons = {str(item.ReferencedSOPInstanceUID): int(item.FailureReason) for item in info.FailedSOPSequence}
    assert reasons == {
        stored[1].sop_instance_uid: Status.PROCESSING_FAILURE,
        unknown: Status.NO_SUCH_OBJECT_INSTANCE,
        stored[2].sop_instance_uid: Status.CLASS_INSTANCE_CONFLICT,
    }
    outcomes = {r.sop_instance_uid: (r.outcome, r.detail.get("failure")) for r in audit_rows(archive, "commit")}
    assert outcomes[stored[1].sop_instance_uid] == ("failure", "missing_object")
    assert outcomes[unknown] == ("failure", "no_such_instance")


def test_commitment_detects_altered_object(
    archive: Archive, dicom_listener: DicomListener, device: Device, tmp_path: Path
):
    [stored] = store_study(archive, tmp_path, count=1)
    # Bit rot behind the archive's back, written through whichever object store the archive uses.
    with archive.instance_file(stored.object_key) as path:
        data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    rotten = tmp_path / "rotten.dcm"
    rotten.write_bytes(bytes(data))
    archive.objects.delete(stored.object_key)  # an S3 store does not re-upload an existing key
    archive.objects.put_file(stored.object_key, rotten)
    event_type, info = device.commit(dicom_listener.port, request([(CTImageStorage, stored.sop_instance_uid)]))
    assert event_type == 2
    assert int(info.FailedSOPSequence[0].FailureReason) == Status.PROCESSING_FAILURE


def test_commitment_report_on_new_association_when_requestor_is_gone(
    archive: Archive, dicom_listener: DicomListener, device: Device, tmp_path: Path
):
    port = device.listen()
    archive.db.run(
        lambda uow: PeerRegistry(archive.db).add(uow, "DEVICE", "127.0.0.1", port, Actor("test", kind="system"))
    )
    [stored] = store_study(archive, tmp_path, count=1)
    # The requesting association cannot take the report (no handler): the archive opens its own.
    event_type, info = device.commit(
        dicom_listener.port, request([(CTImageStorage, stored.sop_instance_uid)]), wait_on_association=False
    )
    assert event_type == 1
    assert _refs(info.ReferencedSOPSequence) == {stored.sop_instance_uid}
    deadline = time.monotonic() + REPORT_TIMEOUT
    while not audit_rows(archive, "commit_report") and time.monotonic() < deadline:
        time.sleep(0.05)  # audited once the report's N-EVENT-REPORT-RSP is in
    delivery = audit_rows(archive, "commit_report")[-1]
    assert delivery.outcome == "success"
    assert delivery.detail["delivery"].startswith("new association to DEVICE@127.0.0.1")


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda ds: delattr(ds, "TransactionUID"), Status.MISSING_ATTRIBUTE),
        (lambda ds: setattr(ds, "TransactionUID", "not-a-uid"), Status.INVALID_ARGUMENT_VALUE),
    ],
)
def test_commitment_request_validation(archive: Archive, dicom_listener: DicomListener, mutate: Any, status: Status):
    ds = request([(CTImageStorage, generate_uid())])
    mutate(ds)
    ae = AE(ae_title="DEVICE")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    try:
        rsp, _ = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance)
    finally:
        assoc.release()
    assert rsp.Status == status
    assert audit_rows(archive, "commit") == []
