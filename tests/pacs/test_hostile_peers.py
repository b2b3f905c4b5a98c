"""Hostile peers on the DICOM port (issue 18, findings 1 and 3): raw sockets against a real `pacs serve`.

Each test sends what an attacker would and asserts that the server closes the connection
(or aborts the association), that its memory stays far below what the attack announces,
and that a real device still gets in. Timeouts are configured short; no test asserts a time.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, ImplementationClassUIDNotification, MaximumLengthNotification
from pynetdicom.presentation import build_context
from pynetdicom.transport import AddressInformation

from pacs.pynetdicom_compat import IncompatiblePynetdicom, check_version
from pacs.service_uids import VERIFICATION
from tests.support.factories import make_instance
from tests.support.scu import associate
from tests.support.servers import RunningServer, start_server, stop_server

A_ASSOCIATE_AC, A_ABORT = 0x02, 0x07
ATTACKER = "127.0.0.2"  # loopback, but another peer address than the device's 127.0.0.1
MIB = 1 << 20


def _rss(pid: int) -> int:
    """Resident set size of *pid* in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect(port: int, source: str = "127.0.0.1", timeout: float = 20) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    return sock


def _association_request(called: str = "NDTPACS", max_length: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing Verification, encoded by pynetdicom."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAWPEER"
    primitive.called_ae_title = called
    primitive.calling_presentation_address = AddressInformation("127.0.0.1", 1)
    primitive.called_presentation_address = AddressInformation("127.0.0.1", 2)
    context = build_context(VERIFICATION, [ImplicitVRLittleEndian])
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = max_length
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.1"
    primitive.user_information = [length, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next PDU's type and body, or None when the server closed the connection."""
    header = _recv_exactly(sock, 6)
    if header is None:
        return None
    pdu_type, _, length = struct.unpack(">BBL", header)
    body = _recv_exactly(sock, length)
    return None if body is None else (pdu_type, body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset) before the socket timeout."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
            if chunk[0] not in (A_ABORT,):  # an A-ABORT may come first; nothing else may
                return False
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _established(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = _connect(port, source)
    sock.sendall(_association_request())
    answer = _read_pdu(sock)
    assert answer is not None
    assert answer[0] == A_ASSOCIATE_AC, f"association not accepted: {answer!r}"
    return sock


def _limited_server(data_dir: Path, timeout: float) -> RunningServer:
    """`pacs serve` with *timeout* as its pre-association and partial-PDU timeouts and a small budget."""
    return start_server(
        data_dir,
        {
            "PACS_PRE_ASSOCIATION_TIMEOUT": str(timeout),
            "PACS_PARTIAL_PDU_TIMEOUT": str(timeout),
            "PACS_MAX_ASSOCIATIONS": "8",
            "PACS_MAX_ASSOCIATIONS_PER_ADDRESS": "4",
            "PACS_MAX_PDU": str(64 << 10),
            "PACS_MAX_REQUEST_PDU": str(64 << 10),
        },
    )


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`pacs serve` with short (2 s) reliability timeouts and 8 association slots, 4 per address."""
    server = _limited_server(tmp_path / "pacs-data", 2)
    yield server
    stop_server(server)


def _device_can_store(server: RunningServer) -> None:
    """A real device (pynetdicom SCU at 127.0.0.1) stores an instance and finds it over QIDO."""
    ds = make_instance()
    with associate(server.dicom_port, [(str(ds.SOPClassUID), [ExplicitVRLittleEndian])]) as assoc:
        status = assoc.send_c_store(ds)
        assert status
        assert int(status.Status) == 0x0000
    found = httpx.get(
        f"{server.url_as('device')}/dicom-web/studies", params={"StudyInstanceUID": ds.StudyInstanceUID}, timeout=30
    )
    assert found.status_code == 200
    assert len(found.json()) == 1


def test_huge_p_data_announcement_aborts_without_allocating(hostile_server: RunningServer) -> None:
    """Finding 1: a P-DATA-TF header announcing 4 GiB after association gets an A-ABORT, not +4 GB RSS."""
    pid = hostile_server.process.pid
    before = _rss(pid)
    with contextlib.closing(_established(hostile_server.dicom_port)) as sock:
        sock.sendall(struct.pack(">BBL", 0x04, 0, 0xFFFFFFFF) + b"\x00" * 1024)
        answer = _read_pdu(sock)
        assert answer is not None
        assert answer[0] == A_ABORT, f"expected an A-ABORT, got {answer!r}"
        assert _closed_by_server(sock)
    assert _rss(pid) - before < 64 * MIB
    assert "exceeds the limit" in hostile_server.log()
    _device_can_store(hostile_server)


def test_huge_association_request_is_closed_while_it_streams(hostile_server: RunningServer) -> None:
    """Finding 1: a 1 GiB A-ASSOCIATE-RQ is refused by its header, before its body is read."""
    pid = hostile_server.process.pid
    before = _rss(pid)
    with contextlib.closing(_connect(hostile_server.dicom_port)) as sock:
        sent, closed = 0, False
        try:
            sock.sendall(struct.pack(">BBL", 0x01, 0, 1 << 30))
            while sent < 256 * MIB:  # far less than announced: the server must have hung up long before
                sock.sendall(b"\x00" * MIB)
                sent += MIB
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        assert closed or _closed_by_server(sock)
    assert _rss(pid) - before < 64 * MIB
    _device_can_store(hostile_server)


def test_non_dicom_bytes_close_the_connection_at_once(hostile_server: RunningServer) -> None:
    """Finding 3: an HTTP request on the DICOM port is not a PDU (PS3.8 9.3): the connection is closed."""
    with contextlib.closing(_connect(hostile_server.dicom_port, timeout=1.5)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n")
        # Closed before the 2 s pre-association timeout could have done it: by the invalid PDU type.
        assert _closed_by_server(sock)
    assert "is not DICOM" in hostile_server.log()


@pytest.mark.parametrize(
    "sent", [b"", b"\x01\x00\x00", b"\x01\x00\x00\x00\x01\x00\x00\x01"], ids=["nothing", "half-header", "half-pdu"]
)
def test_silent_and_partial_peers_are_timed_out(hostile_server: RunningServer, sent: bytes) -> None:
    """Finding 3: nothing, half a header or half a PDU before association: ARTIM / partial-PDU timeout closes it."""
    with contextlib.closing(_connect(hostile_server.dicom_port, timeout=20)) as sock:
        sock.sendall(sent)
        assert _closed_by_server(sock)


def test_partial_pdu_after_association_is_timed_out(hostile_server: RunningServer) -> None:
    """Finding 3: half a P-DATA-TF PDU on an established association: closed after the partial-PDU timeout."""
    with contextlib.closing(_established(hostile_server.dicom_port)) as sock:
        sock.settimeout(20)
        sock.sendall(struct.pack(">BBL", 0x04, 0, 1000) + b"\x00" * 100)
        assert _closed_by_server(sock)
    assert "no whole PDU within" in hostile_server.log()


def test_junk_connections_from_one_address_cannot_lock_the_port(tmp_path: Path) -> None:
    """Finding 3: 40 half-open connections from one address hold 4 slots, not all 8; devices still get in."""
    server = _limited_server(tmp_path / "pacs-data", 120)  # the junk stays for the whole test
    junk: list[socket.socket] = []
    try:
        for _ in range(40):
            sock = _connect(server.dicom_port, ATTACKER, timeout=10)
            with contextlib.suppress(OSError):
                sock.sendall(b"\x01\x00\x00")  # half a PDU header
            junk.append(sock)
        for sock in junk:
            sock.settimeout(0.5)  # the refused ones are closed already; the others wait 120 s
        closed = [_closed_by_server(sock) for sock in junk]
        assert closed.count(True) == 36, f"{closed.count(True)} of 40 junk connections were closed"
        _device_can_store(server)  # 8 slots in all: without the per-address limit the junk held them
        still_open = [sock for sock, gone in zip(junk, closed, strict=True) if not gone]
        assert not any(_closed_by_server(sock) for sock in still_open)  # the device got in beside them
    finally:
        for sock in junk:
            sock.close()
        stop_server(server)


def test_unsupported_pynetdicom_is_refused_with_the_supported_range() -> None:
    """The fast path runs only on the pynetdicom it was written for; the error names range and switch."""
    check_version("3.0.4")
    for version in ("3.1.0", "4.0.0", "2.0.2", "garbage"):
        with pytest.raises(IncompatiblePynetdicom, match=r"3\.0\.x .*found " + version + ".*PACS_PLAIN_PYNETDICOM"):
            check_version(version)


def test_plain_pynetdicom_still_stores_and_finds(tmp_path: Path) -> None:
    """PACS_PLAIN_PYNETDICOM=true: no patches, no fast path; the archive still stores and finds."""
    server = start_server(tmp_path / "pacs-data", {"PACS_PLAIN_PYNETDICOM": "true"})
    try:
        datasets = [make_instance() for _ in range(3)]
        with associate(server.dicom_port, [(str(datasets[0].SOPClassUID), [ExplicitVRLittleEndian])]) as assoc:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                assert status
                assert int(status.Status) == 0x0000
        for ds in datasets:  # findable right away: each answer waited for its indexing
            found = httpx.get(
                f"{server.url_as('device')}/dicom-web/studies/{ds.StudyInstanceUID}/instances", timeout=30
            )
            assert found.status_code == 200
            assert [i["00080018"]["Value"][0] for i in found.json()] == [ds.SOPInstanceUID]
        assert "running on plain pynetdicom" in server.log()
    finally:
        stop_server(server)
