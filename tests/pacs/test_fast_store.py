"""The C-STORE receive fast path (pacs/fast_store.py) over real associations, against the archive."""

from __future__ import annotations

import hashlib
import io
import queue
import struct
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import create_file_meta, encode, write_file_meta_info
from pynetdicom.pdu_primitives import MaximumLengthNotification
from sqlalchemy import func, select

from pacs.fast_store import file_meta_header, parse_command_set, store_response
from pacs.server import DicomListener
from pacs.service_uids import STUDY_ROOT_FIND, VERIFICATION
from pacs.settings import DicomSettings
from storage.archive import Archive
from storage.audit import Actor
from storage.dicom.files import dataset_offset
from storage.index.models import Instance, InstanceVersion
from storage.objects import read_bytes
from storage.objects.files import FileObjectStore
from storage.records.peers import PeerRegistry
from tests.support.factories import make_instance, write_part10
from tests.support.scu import associate
from tests.support.servers import dcmtk

CT, MR = str(CTImageStorage), str(MRImageStorage)


@pytest.fixture
def chunked_send() -> Iterator[None]:
    """pynetdicom SCUs send files as they are (no decode / re-encode by the client)."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def _count(archive: Archive) -> int:
    with archive.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


def _stored(archive: Archive, sop_instance_uid: str) -> bytes:
    """The one stored object of *sop_instance_uid*, checked against its recorded checksum."""
    with archive.db.read_session() as session:
        key, sha = session.execute(
            select(InstanceVersion.object_key, InstanceVersion.sha256)
            .join(Instance, Instance.id == InstanceVersion.instance_id)
            .where(Instance.sop_instance_uid == sop_instance_uid)
        ).one()
    data = read_bytes(archive.objects, key)
    assert hashlib.sha256(data).hexdigest() == sha
    return data


def _spooled(archive: Archive) -> list[Path]:
    return sorted(archive.spool_dir.iterdir())


def _fast_receivers(listener: DicomListener) -> list[object]:
    """Each association's fast-path receiver, or None where C-STORE requests stay pynetdicom's."""
    assert listener._server is not None
    receivers = [getattr(a, "_pacs_fast_store", None) for a in listener._server.active_associations]
    return [r if getattr(r, "take_stores", False) else None for r in receivers]


def _encoded(ds: Dataset, syntax: str) -> bytes:
    """*ds* encoded in *syntax* without file meta: the bytes a C-STORE carries."""
    out = DicomBytesIO()
    out.is_implicit_VR = syntax == ImplicitVRLittleEndian
    out.is_little_endian = syntax != ExplicitVRBigEndian
    write_dataset(out, ds)
    return out.getvalue()


def _limit_sending(assoc: Association, length: int) -> None:
    """Make the SCU fragment what it sends as if we had offered *length* as our maximum PDU length."""
    for item in assoc.acceptor.user_information:
        if isinstance(item, MaximumLengthNotification):
            item.maximum_length_received = length


def _command(ds: Dataset, message_id: int) -> bytes:
    """The C-STORE-RQ command set for *ds*, encoded by pynetdicom (not by the code under test)."""
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = ds.SOPClassUID
    primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
    primitive.Priority = 0
    primitive.DataSet = io.BytesIO(b"\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    encoded = encode(message.command_set, True, True)
    assert encoded is not None
    return encoded


def _pdvs(context_id: int, command: bytes, dataset: bytes, size: int) -> list[bytes]:
    """PDV items (PS3.8 9.3.5.1) of one message, fragments of at most *size* bytes."""
    items = []
    for payload, kind in ((command, 0x01), (dataset, 0x00)):
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for n, chunk in enumerate(chunks):
            header = kind | (0x02 if n == len(chunks) - 1 else 0x00)
            items.append(struct.pack(">IBB", len(chunk) + 2, context_id, header) + chunk)
    return items


def _send_pdus(assoc: Association, items: list[bytes], per_pdu: int) -> None:
    """Write P-DATA-TF PDUs (PS3.8 9.3.5) of *per_pdu* PDV items each straight to the association's socket."""
    if not hasattr(assoc, "responses"):
        responses: queue.Queue[tuple[int, int]] = queue.Queue()
        assoc.responses = responses  # type: ignore[attr-defined]

        def collect(event: evt.Event) -> None:
            command = event.message.command_set
            responses.put((int(command.CommandField), int(command.Status)))

        assoc.bind(evt.EVT_DIMSE_RECV, collect)
    sock = assoc.dul.socket
    assert sock is not None
    for i in range(0, len(items), per_pdu):
        body = b"".join(items[i : i + per_pdu])
        sock.send(struct.pack(">BBI", 0x04, 0, len(body)) + body)


def _response(assoc: Association) -> int:
    """The status of the next C-STORE-RSP, as the SCU's DIMSE layer decoded it."""
    field, status = assoc.responses.get(timeout=30)  # type: ignore[attr-defined]
    assert field == 0x8001, f"expected a C-STORE-RSP, got command field 0x{field:04X}"
    return int(status)


def _context_id(assoc: Association, abstract: str, syntax: str) -> int:
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == abstract and cx.transfer_syntax[0] == syntax:
            return int(cx.context_id)  # type: ignore[arg-type]
    raise AssertionError(f"no accepted context {abstract} / {syntax}")


def _wait(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


# -- encoders, against pydicom / pynetdicom ---------------------------------------------


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax"),
    [(CT, "1.2.3.4", ExplicitVRLittleEndian), (MR, "1.2.3.45", str(ImplicitVRLittleEndian)), ("1.2", "1.23", "1.2")],
)
def test_file_meta_is_byte_for_byte_pynetdicoms(sop_class: str, sop_instance: str, syntax: str) -> None:
    theirs = io.BytesIO()
    theirs.write(b"\x00" * 128 + b"DICM")
    meta = create_file_meta(
        sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance), transfer_syntax=UID(syntax)
    )
    write_file_meta_info(theirs, meta)  # type: ignore[arg-type]
    assert file_meta_header(sop_class, sop_instance, syntax) == theirs.getvalue()


def test_response_command_set_decodes_with_pydicom() -> None:
    encoded = store_response(CT, "1.2.3.45", 7, 0xA700)
    ds = pydicom.filereader.read_dataset(io.BytesIO(encoded), True, True)
    assert ds.CommandGroupLength == len(encoded) - 12
    assert (ds.AffectedSOPClassUID, ds.AffectedSOPInstanceUID) == (CT, "1.2.3.45")
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.CommandDataSetType, ds.Status) == (
        0x8001,
        7,
        0x0101,
        0xA700,
    )
    assert parse_command_set(encoded)[0x0900] == b"\x00\xa7"


def test_malformed_command_set_is_not_parsed() -> None:
    with pytest.raises(ValueError, match="element header"):
        parse_command_set(b"\x00\x00\x00\x00\x04")
    with pytest.raises(ValueError, match="command element"):
        parse_command_set(struct.pack("<HHI", 0x0008, 0x0016, 0))
    with pytest.raises(ValueError, match="command element"):
        parse_command_set(struct.pack("<HHI", 0x0000, 0x0002, 99) + b"1.2")


# -- over the wire ---------------------------------------------------------------------------


@pytest.mark.usefixtures("chunked_send")
def test_stored_bytes_do_not_depend_on_the_receive_path(archive: Archive, tmp_path: Path) -> None:
    """The same file, received on the fast path and on pynetdicom's, is archived as the same object."""
    path = write_part10(make_instance(rows=96, columns=80), tmp_path / "one.dcm")
    keys = []
    for fast in (True, False):
        settings = DicomSettings(host="127.0.0.1", dicom_port=0, ae_title="NDTPACS", fast_store=fast)
        listener = DicomListener(archive, settings)
        listener.start()
        try:
            with associate(listener.port, [(CT, [ExplicitVRLittleEndian])]) as assoc:
                assert (_fast_receivers(listener) != [None]) is fast
                assert int(assoc.send_c_store(path).Status) == 0x0000
        finally:
            listener.stop(grace=5)
        with archive.db.read_session() as session:
            keys.append(session.scalars(select(InstanceVersion.object_key)).all())
    assert len(keys[0]) == 1
    assert keys[0] == keys[1]  # same bytes, same content-addressed key: a duplicate
    stored = _stored(archive, str(pydicom.dcmread(path).SOPInstanceUID))
    assert stored[dataset_offset(stored) :] == path.read_bytes()[dataset_offset(path.read_bytes()) :]


@pytest.mark.parametrize(("fragment", "per_pdu"), [(7, 1), (7, 5), (1000, 3), (1 << 20, 4)])
def test_fragmented_messages_several_pdvs_per_pdu(
    archive: Archive, dicom_listener: DicomListener, fragment: int, per_pdu: int
) -> None:
    """Command and data set split into many PDVs, several PDVs per PDU, two messages sharing PDUs."""
    instances = [make_instance(rows=40, columns=30), make_instance(rows=33, columns=17)]
    with associate(dicom_listener.port, [(CT, [ExplicitVRLittleEndian])]) as assoc:
        cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
        items = []
        for n, ds in enumerate(instances, start=1):
            items += _pdvs(cx, _command(ds, n), _encoded(ds, ExplicitVRLittleEndian), fragment)
        _send_pdus(assoc, items, per_pdu)
        assert [_response(assoc), _response(assoc)] == [0x0000, 0x0000]
    for ds in instances:
        stored = _stored(archive, ds.SOPInstanceUID)
        assert stored[dataset_offset(stored) :] == _encoded(ds, ExplicitVRLittleEndian)
    assert _spooled(archive) == []


def test_other_messages_in_the_same_pdu_go_to_pynetdicom(archive: Archive, dicom_listener: DicomListener) -> None:
    """One PDU: a C-ECHO-RQ, then a whole C-STORE-RQ, then another C-ECHO-RQ. Each is answered."""
    ds = make_instance()
    contexts = [(CT, [str(ExplicitVRLittleEndian)]), (str(VERIFICATION), [str(ImplicitVRLittleEndian)])]
    with associate(dicom_listener.port, contexts) as assoc:
        store_cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
        echo_cx = _context_id(assoc, str(VERIFICATION), ImplicitVRLittleEndian)
        echo = C_ECHO()
        echo.MessageID = 7
        echo.AffectedSOPClassUID = VERIFICATION
        message = C_ECHO_RQ()
        message.primitive_to_message(echo)
        encoded = encode(message.command_set, True, True)
        assert encoded is not None
        items = _pdvs(echo_cx, encoded, b"", 1 << 20)[:1]
        items += _pdvs(store_cx, _command(ds, 8), _encoded(ds, ExplicitVRLittleEndian), 1 << 20)
        items += _pdvs(echo_cx, encoded, b"", 1 << 20)[:1]
        _send_pdus(assoc, items, len(items))
        answers = sorted(assoc.responses.get(timeout=30) for _ in range(3))  # type: ignore[attr-defined]
    assert answers == [(0x8001, 0x0000), (0x8030, 0x0000), (0x8030, 0x0000)]
    stored = _stored(archive, ds.SOPInstanceUID)
    assert stored[dataset_offset(stored) :] == _encoded(ds, ExplicitVRLittleEndian)


def test_small_pdus_from_pynetdicom_scu(archive: Archive, dicom_listener: DicomListener) -> None:
    """An SCU that sends 64-byte PDUs (command set in four fragments) and takes 4096-byte ones back."""
    ae = AE(ae_title="SMALLPDU")
    ae.maximum_pdu_size = 4096
    ae.add_requested_context(CT, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    try:
        _limit_sending(assoc, 64)  # the SCU fragments what it sends to 58-byte PDVs
        ds = make_instance(rows=20, columns=20)
        assert int(assoc.send_c_store(ds).Status) == 0x0000
    finally:
        assoc.release()
        ae.shutdown()
    assert _count(archive) == 1


@pytest.mark.usefixtures("dcmtk_available")
def test_dcmtk_storescu_small_pdus(archive: Archive, dicom_listener: DicomListener, tmp_path: Path) -> None:
    storescu = dcmtk("storescu")
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [write_part10(make_instance(rows=100, columns=90), folder / f"{n}.dcm") for n in range(3)]
    result = subprocess.run(
        [storescu, "-aec", "NDTPACS", "-pdu", "4096", "+sd", "127.0.0.1", str(dicom_listener.port), str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for path in paths:
        sent = path.read_bytes()
        stored = _stored(archive, str(pydicom.dcmread(path).SOPInstanceUID))
        assert stored[dataset_offset(stored) :] == sent[dataset_offset(sent) :]


def test_several_contexts_and_syntaxes_with_other_services_between(
    archive: Archive, dicom_listener: DicomListener
) -> None:
    """Stores on four contexts (three transfer syntaxes), C-ECHO and C-FIND in between: one association."""
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
    contexts = [(CT, [s]) for s in syntaxes] + [(MR, [ImplicitVRLittleEndian])]
    contexts += [(str(VERIFICATION), [ImplicitVRLittleEndian]), (str(STUDY_ROOT_FIND), [ImplicitVRLittleEndian])]
    ae = AE(ae_title="TESTSCU")
    for abstract, syntax_list in contexts:
        ae.add_requested_context(abstract, syntax_list)  # one context per syntax, not one per class
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    sent: list[tuple[Dataset, str]] = []
    try:
        assert _fast_receivers(dicom_listener) != [None]
        for abstract, (syntax,) in contexts[:4]:
            ds = make_instance(sop_class_uid=abstract, modality="CT" if abstract == CT else "MR")
            ds.file_meta.TransferSyntaxUID = UID(syntax)  # pynetdicom picks the context of this syntax
            assert int(assoc.send_c_store(ds).Status) == 0x0000
            sent.append((ds, syntax))
            assert int(assoc.send_c_echo().Status) == 0x0000
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = ds.StudyInstanceUID
            answers = list(assoc.send_c_find(query, STUDY_ROOT_FIND))
            assert [int(s.Status) for s, _ in answers] == [0xFF00, 0x0000]
            assert getattr(answers[0][1], "StudyInstanceUID", None) == ds.StudyInstanceUID
    finally:
        assoc.release()
        ae.shutdown()
    for ds, sent_syntax in sent:
        stored = _stored(archive, ds.SOPInstanceUID)
        assert pydicom.dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == sent_syntax
        assert stored[dataset_offset(stored) :] == _encoded(ds, sent_syntax)


def test_deflated_context_goes_as_received(archive: Archive, dicom_listener: DicomListener, tmp_path: Path) -> None:
    ds = make_instance()
    path = write_part10(ds, tmp_path / "plain.dcm")
    ds = pydicom.dcmread(path)
    with associate(dicom_listener.port, [(CT, [DeflatedExplicitVRLittleEndian])]) as assoc:
        assert int(assoc.send_c_store(ds).Status) == 0x0000
    stored = _stored(archive, ds.SOPInstanceUID)
    assert pydicom.dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian


def test_store_refused_by_policy(archive: Archive) -> None:
    settings = DicomSettings(host="127.0.0.1", dicom_port=0, ae_title="NDTPACS", strict_ae=True)
    archive.db.run(
        lambda uow: PeerRegistry(archive.db).add(
            uow, "QUERYONLY", "127.0.0.1", 104, Actor("admin", kind="user"), allow=["query"]
        )
    )
    listener = DicomListener(archive, settings)
    listener.start()
    try:
        ae = AE(ae_title="QUERYONLY")
        ae.add_requested_context(CT, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="NDTPACS")
        assert assoc.is_established
        assert _fast_receivers(listener) != [None]
        assert int(assoc.send_c_store(make_instance()).Status) == 0x0124  # PS3.7 C.5.19 not authorized
        assoc.release()
        ae.shutdown()
    finally:
        listener.stop(grace=5)
    assert _count(archive) == 0
    assert _spooled(archive) == []


def test_truncated_data_set_is_refused(archive: Archive, dicom_listener: DicomListener) -> None:
    ds = make_instance(rows=64, columns=64)
    with associate(dicom_listener.port, [(CT, [ExplicitVRLittleEndian])]) as assoc:
        cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
        _send_pdus(assoc, _pdvs(cx, _command(ds, 1), _encoded(ds, ExplicitVRLittleEndian)[:-1000], 4096), 2)
        assert _response(assoc) == 0xC000  # cannot understand (pacs.status)
        # the association goes on: the next request is answered
        _send_pdus(assoc, _pdvs(cx, _command(ds, 2), _encoded(ds, ExplicitVRLittleEndian), 4096), 2)
        assert _response(assoc) == 0x0000
    assert _count(archive) == 1
    assert _spooled(archive) == []


def test_abort_mid_data_set_leaves_nothing(archive: Archive, dicom_listener: DicomListener) -> None:
    ds = make_instance(rows=256, columns=256)
    with associate(dicom_listener.port, [(CT, [ExplicitVRLittleEndian])]) as assoc:
        cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
        items = _pdvs(cx, _command(ds, 1), _encoded(ds, ExplicitVRLittleEndian), 4096)
        _send_pdus(assoc, items[: len(items) // 2], 1)
        _wait(lambda: _spooled(archive) != [])
        assert len(_spooled(archive)) == 1  # the partial data set, on disk as it arrives
        assoc.abort()
    _wait(lambda: _spooled(archive) == [])
    assert _spooled(archive) == []
    assert _count(archive) == 0


def test_connection_dropped_mid_data_set_leaves_nothing(archive: Archive, dicom_listener: DicomListener) -> None:
    ds = make_instance(rows=256, columns=256)
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CT, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
    items = _pdvs(cx, _command(ds, 1), _encoded(ds, ExplicitVRLittleEndian), 4096)
    _send_pdus(assoc, items[:3], 1)
    _wait(lambda: _spooled(archive) != [])
    assert assoc.dul.socket is not None
    assert assoc.dul.socket.socket is not None
    assoc.dul.socket.socket.close()  # no A-ABORT: the TCP connection just goes away
    _wait(lambda: _spooled(archive) == [] and not dicom_listener._server.active_associations)  # type: ignore[union-attr]
    ae.shutdown()
    assert _spooled(archive) == []
    assert _count(archive) == 0


@pytest.mark.parametrize(
    "violation",
    ["data set first", "command inside data set", "context switch", "item past the PDU", "item too short"],
)
def test_protocol_errors_abort(archive: Archive, dicom_listener: DicomListener, violation: str) -> None:
    ds = make_instance()
    with associate(dicom_listener.port, [(CT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]) as assoc:
        cx = _context_id(assoc, CT, ExplicitVRLittleEndian)
        command, dataset = _command(ds, 1), _encoded(ds, ExplicitVRLittleEndian)
        items = _pdvs(cx, command, dataset, 2048)
        if violation == "data set first":
            items = items[1:]
        elif violation == "command inside data set":
            items = items[:2] + _pdvs(cx, command, b"", 2048)[:1]
        elif violation == "item past the PDU":  # PS3.8 9.3.5.1: the item length runs beyond the PDU
            items = items[:2] + [struct.pack(">IBB", 100, cx, 0x00) + b"x"]
        elif violation == "item too short":  # an item without its context ID and control header
            items = items[:2] + [struct.pack(">I", 1) + b"x"]
        else:
            items = items[:2] + [struct.pack(">IBB", 3, cx + 2, 0x00) + b"x"]
        _send_pdus(assoc, items, 1)
        _wait(lambda: assoc.is_aborted)
        assert assoc.is_aborted  # A-ABORT from the listener (PS3.8 9.3.8)
    _wait(lambda: _spooled(archive) == [])
    assert _spooled(archive) == []
    assert _count(archive) == 0


@pytest.mark.usefixtures("dcmtk_available")
def test_large_instance_streams_with_flat_memory(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path
) -> None:
    """A 32 MiB instance from dcmtk (its own process) in 16 kB PDUs: the listener's heap stays small."""
    if not isinstance(archive.objects, FileObjectStore):
        pytest.skip("the fake S3 server runs in this process and holds the object in memory")
    path = write_part10(make_instance(rows=4096, columns=4096), tmp_path / "large.dcm")
    sent = path.read_bytes()
    digest = hashlib.sha256(sent[dataset_offset(sent) :]).hexdigest()
    del sent
    tracemalloc.start()
    try:
        result = subprocess.run(
            [dcmtk("storescu"), "-aec", "NDTPACS", "127.0.0.1", str(dicom_listener.port), str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.returncode == 0, result.stderr
    assert peak < 8 * (1 << 20), f"peak {peak / 2**20:.1f} MiB while storing a 32 MiB instance"
    stored = _stored(archive, str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
    assert hashlib.sha256(stored[dataset_offset(stored) :]).hexdigest() == digest


def test_each_association_gets_its_own_copy_of_the_contexts(dicom_listener: DicomListener) -> None:
    """The quick context copy (pacs/server.py) equals a deep copy: nothing shared with the listener."""
    import copy

    from pacs.pynetdicom_compat import _copy_contexts

    assert dicom_listener._server is not None
    contexts = dicom_listener._server.contexts
    copies = _copy_contexts(contexts)
    assert [vars(c) for c in copies] == [vars(c) for c in copy.deepcopy(contexts)]
    assert all(
        c is not o and c._transfer_syntax is not o._transfer_syntax for c, o in zip(copies, contexts, strict=True)
    )
    with associate(dicom_listener.port, [(CT, [ExplicitVRLittleEndian])]) as assoc:
        assert assoc.is_established
