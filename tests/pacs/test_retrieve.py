"""C-GET and C-MOVE SCP over real associations with pynetdicom SCUs and SCPs (PS3.4 C.4.2, C.4.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000, CTImageStorage, MRImageStorage, RLELossless
from pynetdicom import AE, evt
from pynetdicom.presentation import build_role
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.server import DicomListener
from pacs.status import Status
from storage.archive import Archive
from storage.audit import Actor
from storage.records.peers import PeerRegistry
from tests.support.retrieve_helpers import (
    UNCOMPRESSED,
    AuditRow,
    Received,
    audit_rows,
    dataset_bytes,
    final,
    get_scu,
    identifier,
    store_file,
    store_study,
    uid_list,
)
from tests.support.servers import free_port

GET_STUDY = StudyRootQueryRetrieveInformationModelGet
MOVE_STUDY = StudyRootQueryRetrieveInformationModelMove
ADMIN = Actor("test", kind="system")


def _audit(archive: Archive, action: str) -> list[AuditRow]:
    return audit_rows(archive, action)


def test_c_get_study_sends_stored_bytes_unchanged(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=3)
    study = stored[0].study_instance_uid
    received = Received()
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        responses = list(assoc.send_c_get(identifier("STUDY", StudyInstanceUID=study), GET_STUDY))
    finally:
        assoc.release()
    status, _ = final(responses)
    assert status.Status == Status.SUCCESS
    assert status.NumberOfCompletedSuboperations == 3
    assert status.NumberOfFailedSuboperations == 0
    pending = [s for s, _ in responses[:-1]]
    assert [s.NumberOfRemainingSuboperations for s in pending] == [2, 1, 0]
    by_uid = {uid: (ts, data) for uid, ts, data in received.items}
    assert set(by_uid) == {r.sop_instance_uid for r in stored}
    for result in stored:
        with archive.instance_file(result.object_key) as path:
            assert by_uid[result.sop_instance_uid] == (str(result_ts(path)), dataset_bytes(path))
    record = _audit(archive, "retrieve")[-1]
    detail = record.detail
    assert (record.actor, record.outcome, record.study_instance_uid) == ("ae:VIEWER", "success", study)
    assert detail["service"] == "C-GET"
    assert detail["completed"] == 3
    assert detail["destination"] == "VIEWER"


def result_ts(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("syntaxes", [UNCOMPRESSED, UNCOMPRESSED[::-1]])
def test_requestor_transfer_syntax_preference_is_honoured(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path, syntaxes: list[str]
):
    """One context listing several syntaxes: the archive takes the requestor's first choice."""
    stored = store_study(archive, tmp_path, count=1)
    received = Received()
    ae = AE(ae_title="VIEWER")
    ae.add_requested_context(GET_STUDY)
    ae.add_requested_context(CTImageStorage, syntaxes)
    assoc = ae.associate(
        "127.0.0.1",
        dicom_listener.port,
        ae_title="NDTPACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, received.handler())],
    )
    try:
        [ct] = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == CTImageStorage]
        assert ct.transfer_syntax[0] == syntaxes[0]
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.SUCCESS
    [(_, ts, data)] = received.items
    assert ts == syntaxes[0]
    with archive.instance_file(stored[0].object_key) as path:
        if ts == result_ts(path):
            assert data == dataset_bytes(path)  # unchanged when the requestor prefers the stored syntax
    assert received.decode(0).SOPInstanceUID == stored[0].sop_instance_uid


def test_c_get_diconde_eddy_current(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    """DICONDE classes pynetdicom lacks (601.x) are registered, so the role selection for them works."""
    eddy_current = "1.2.840.10008.5.1.4.1.1.601.1"
    stored = store_study(archive, tmp_path, count=1, sop_class_uid=eddy_current, modality="EC")
    received = Received()
    assoc = get_scu(dicom_listener.port, [(eddy_current, UNCOMPRESSED)], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 1)
    with archive.instance_file(stored[0].object_key) as path:
        assert received.items[0][2] == dataset_bytes(path)


def test_c_get_pages_past_the_query_cap(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    """A retrieve is never cut short by the archive's per-query result cap."""
    stored = store_study(archive, tmp_path, count=5)
    archive.max_results = 2
    received = Received()
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 5)
    assert len({uid for uid, _, _ in received.items}) == 5


def test_several_c_gets_on_one_association(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    first = store_study(archive, tmp_path, count=2)
    second = store_study(archive, tmp_path, count=1)
    received = Received()
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        for study in (first, second):
            keys = {"StudyInstanceUID": study[0].study_instance_uid}
            status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
            assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, len(study))
    finally:
        assoc.release()
    assert {uid for uid, _, _ in received.items} == {r.sop_instance_uid for r in first + second}


@pytest.mark.parametrize("level", ["SERIES", "IMAGE"])
def test_c_get_series_and_image_level(archive: Archive, dicom_listener: DicomListener, tmp_path: Path, level: str):
    stored = store_study(archive, tmp_path, count=2)
    keys = {"StudyInstanceUID": stored[0].study_instance_uid, "SeriesInstanceUID": stored[0].series_instance_uid}
    if level == "IMAGE":
        keys["SOPInstanceUID"] = stored[1].sop_instance_uid
    received = Received()
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        status, _ = final(list(assoc.send_c_get(identifier(level, **keys), GET_STUDY)))
    finally:
        assoc.release()
    expected = 2 if level == "SERIES" else 1
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, expected)
    assert len(received.items) == expected


def test_c_get_patient_root(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=1)
    received = Received()
    model = PatientRootQueryRetrieveInformationModelGet
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, model)
    try:
        patient_id = dcmread_stored(archive, stored[0].object_key).PatientID
        status, _ = final(list(assoc.send_c_get(identifier("PATIENT", PatientID=patient_id), model)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 1)


def dcmread_stored(archive: Archive, key: str):
    with archive.instance_file(key) as path:
        return dcmread(path)


@pytest.mark.parametrize(("name", "syntax"), [("JPEG2000.dcm", JPEG2000), ("MR_small_RLE.dcm", RLELossless)])
def test_c_get_compressed_as_stored_when_accepted(
    archive: Archive, dicom_listener: DicomListener, name: str, syntax: str
):
    path = Path(get_testdata_file(name))
    sop_class = dcmread(path, stop_before_pixels=True).SOPClassUID
    result = store_file(archive, path)
    received = Received()
    assoc = get_scu(dicom_listener.port, [(sop_class, [syntax, *UNCOMPRESSED])], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": result.study_instance_uid}
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 1)
    [(_, ts, data)] = received.items
    assert ts == syntax
    assert data == dataset_bytes(path)  # byte for byte what was stored


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_RLE.dcm"])
def test_c_get_compressed_converted_when_peer_accepts_only_uncompressed(
    archive: Archive, dicom_listener: DicomListener, name: str
):
    path = Path(get_testdata_file(name))
    sop_class = dcmread(path, stop_before_pixels=True).SOPClassUID
    result = store_file(archive, path)
    received = Received()
    assoc = get_scu(dicom_listener.port, [(sop_class, UNCOMPRESSED)], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": result.study_instance_uid}
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 1)
    [(_, ts, _)] = received.items
    assert ts in UNCOMPRESSED
    np.testing.assert_array_equal(received.decode(0).pixel_array, dcmread(path).pixel_array)


def test_c_get_fails_instance_the_peer_cannot_take(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=2)
    received = Received()
    # The requestor takes the storage SCP role for MR only: the CT instances cannot be sent.
    assoc = get_scu(dicom_listener.port, [(MRImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, ident = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.OUT_OF_RESOURCES_SUBOPS  # every sub-operation failed (C.4.3.1.3.2)
    assert (status.NumberOfFailedSuboperations, status.NumberOfCompletedSuboperations) == (2, 0)
    assert ident is not None
    assert uid_list(ident.FailedSOPInstanceUIDList) == {r.sop_instance_uid for r in stored}
    assert received.items == []
    assert _audit(archive, "retrieve")[-1].outcome == "failure"


def test_c_get_partial_failure_is_a_warning(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=2)
    archive.objects.delete(stored[0].object_key)  # lost behind the archive's back
    received = Received()
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], received, GET_STUDY)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, ident = final(list(assoc.send_c_get(identifier("STUDY", **keys), GET_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.WARNING_SUBOPS_FAILED
    assert (status.NumberOfFailedSuboperations, status.NumberOfCompletedSuboperations) == (1, 1)
    assert ident is not None
    assert uid_list(ident.FailedSOPInstanceUIDList) == {stored[0].sop_instance_uid}


@pytest.mark.parametrize(
    "ident",
    [
        identifier("STUDY"),  # no unique key
        identifier("STUDY", StudyInstanceUID="1.2.*"),  # wildcard in the unique key
        identifier("WARD", StudyInstanceUID="1.2.3"),  # no such level
        identifier("PATIENT", PatientID="X"),  # PATIENT level is not in the Study Root model
    ],
)
def test_c_get_bad_identifier(archive: Archive, dicom_listener: DicomListener, ident):
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], Received(), GET_STUDY)
    try:
        status, _ = final(list(assoc.send_c_get(ident, GET_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS


def test_c_get_no_match_is_success_with_zero_counts(archive: Archive, dicom_listener: DicomListener):
    assoc = get_scu(dicom_listener.port, [(CTImageStorage, UNCOMPRESSED)], Received(), GET_STUDY)
    try:
        status, _ = final(list(assoc.send_c_get(identifier("STUDY", StudyInstanceUID="1.2.3.4"), GET_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 0)


# -- C-MOVE ------------------------------------------------------------------------------------------------


class StorageSCP:
    """A pynetdicom storage SCP standing in for a second archive."""

    def __init__(self, ae_title: str = "ARCHIVE2", delay: float = 0.0) -> None:
        self.received = Received()
        self.ae = AE(ae_title=ae_title)
        self.ae.add_supported_context(CTImageStorage, UNCOMPRESSED)
        self.ae.add_supported_context(MRImageStorage, UNCOMPRESSED)
        self.port = free_port()
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self.received.handler(delay))],
        )

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def destination(archive: Archive):
    scp = StorageSCP()
    archive.db.run(
        lambda uow: PeerRegistry(archive.db).add(uow, "ARCHIVE2", "127.0.0.1", scp.port, ADMIN, allow=["move"])
    )
    yield scp
    scp.stop()


def move_scu(port: int) -> object:
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(MOVE_STUDY)
    assoc = ae.associate("127.0.0.1", port, ae_title="NDTPACS")
    assert assoc.is_established
    return assoc


def test_c_move_to_known_destination(archive: Archive, dicom_listener: DicomListener, destination, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=3)
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        responses = list(assoc.send_c_move(identifier("STUDY", **keys), "ARCHIVE2", MOVE_STUDY))
    finally:
        assoc.release()
    status, _ = final(responses)
    assert (status.Status, status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (0, 3, 0)
    assert {uid for uid, _, _ in destination.received.items} == {r.sop_instance_uid for r in stored}
    for result in stored:
        with archive.instance_file(result.object_key) as path:
            assert (result.sop_instance_uid, result_ts(path), dataset_bytes(path)) in destination.received.items
    record = _audit(archive, "retrieve")[-1]
    detail = record.detail
    assert (record.actor, record.outcome, detail["service"]) == ("ae:WORKSTATION", "success", "C-MOVE")
    assert detail["destination"] == f"ARCHIVE2@127.0.0.1:{destination.port}"


def test_c_move_compressed_to_destination_taking_only_uncompressed(
    archive: Archive, dicom_listener: DicomListener, destination: StorageSCP
):
    path = Path(get_testdata_file("MR_small_RLE.dcm"))
    result = store_file(archive, path)
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": result.study_instance_uid}
        status, _ = final(list(assoc.send_c_move(identifier("STUDY", **keys), "ARCHIVE2", MOVE_STUDY)))
    finally:
        assoc.release()
    assert (status.Status, status.NumberOfCompletedSuboperations) == (Status.SUCCESS, 1)
    [(_, ts, _)] = destination.received.items
    assert ts in UNCOMPRESSED
    np.testing.assert_array_equal(destination.received.decode(0).pixel_array, dcmread(path).pixel_array)
    assert _audit(archive, "retrieve")[-1].detail["converted"] == 1


def test_c_move_unknown_destination(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=1)
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_move(identifier("STUDY", **keys), "NOBODY", MOVE_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.MOVE_DESTINATION_UNKNOWN == 0xA801
    record = _audit(archive, "retrieve")[-1]
    assert record.outcome == "failure"
    assert record.detail["destination"] == "NOBODY"


def test_c_move_destination_without_move_permission(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    stored = store_study(archive, tmp_path, count=1)
    archive.db.run(
        lambda uow: PeerRegistry(archive.db).add(uow, "SENDERONLY", "127.0.0.1", free_port(), ADMIN, allow=["store"])
    )
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_move(identifier("STUDY", **keys), "SENDERONLY", MOVE_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.MOVE_DESTINATION_UNKNOWN


def test_c_move_to_unreachable_destination(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    archive.db.run(
        lambda uow: PeerRegistry(archive.db).add(uow, "OFFLINE", "127.0.0.1", free_port(), ADMIN, allow=["move"])
    )  # nothing listens
    stored = store_study(archive, tmp_path, count=1)
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, _ = final(list(assoc.send_c_move(identifier("STUDY", **keys), "OFFLINE", MOVE_STUDY)))
    finally:
        assoc.release()
    assert status.Status == Status.MOVE_DESTINATION_UNKNOWN
    record = _audit(archive, "retrieve")[-1]
    assert record.outcome == "failure"
    assert record.detail["reason"] == "cannot associate with the move destination"


def test_c_cancel_mid_move(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    slow = StorageSCP("SLOW", delay=0.2)
    archive.db.run(lambda uow: PeerRegistry(archive.db).add(uow, "SLOW", "127.0.0.1", slow.port, ADMIN, allow=["move"]))
    stored = store_study(archive, tmp_path, count=8)
    assoc = move_scu(dicom_listener.port)
    responses = []
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        for status, ident in assoc.send_c_move(identifier("STUDY", **keys), "SLOW", MOVE_STUDY, msg_id=7):
            responses.append((status, ident))
            if status.Status == Status.PENDING and len(responses) == 1:
                cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == MOVE_STUDY)
                assoc.send_c_cancel(7, cx.context_id)
    finally:
        assoc.release()
        slow.stop()
    status, _ = final(responses)
    assert status.Status == Status.CANCEL
    assert status.NumberOfRemainingSuboperations > 0
    assert status.NumberOfCompletedSuboperations < 8
    assert len(slow.received.items) == status.NumberOfCompletedSuboperations
    assert _audit(archive, "retrieve")[-1].outcome == "cancelled"


def test_c_move_counts_refusals_by_the_destination(archive: Archive, dicom_listener: DicomListener, tmp_path: Path):
    refusing = AE(ae_title="PICKY")
    refusing.add_supported_context(CTImageStorage, UNCOMPRESSED)
    port = free_port()
    server = refusing.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)]
    )
    archive.db.run(lambda uow: PeerRegistry(archive.db).add(uow, "PICKY", "127.0.0.1", port, ADMIN, allow=["move"]))
    stored = store_study(archive, tmp_path, count=2)
    assoc = move_scu(dicom_listener.port)
    try:
        keys = {"StudyInstanceUID": stored[0].study_instance_uid}
        status, ident = final(list(assoc.send_c_move(identifier("STUDY", **keys), "PICKY", MOVE_STUDY)))
    finally:
        assoc.release()
        server.shutdown()
    assert status.Status == Status.OUT_OF_RESOURCES_SUBOPS
    assert status.NumberOfFailedSuboperations == 2
    detail = _audit(archive, "retrieve")[-1].detail
    assert detail["failed"] == 2
    assert set(detail["failed_instances"]) == {r.sop_instance_uid for r in stored}
