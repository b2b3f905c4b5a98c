"""The audit log cannot be changed through the database, and reaches a syslog collector (IHE ATNA)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.audit.forward import Forwarder, SyslogTarget, parse_target
from storage.index.models import AuditEvent
from tests.support.factories import make_instance, write_part10
from tests.support.servers import free_port, start_server, stop_server

DEVICE = Actor("DEVICE1", "127.0.0.1:4000")


def _fill(archive: Archive, tmp_path: Path, count: int = 3) -> None:
    for n in range(count):
        archive.store_file(write_part10(make_instance(), tmp_path / f"{n}.dcm"), DEVICE)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET outcome = 'failure'", "DELETE FROM audit_events WHERE id = 1"],
)
def test_the_application_cannot_change_or_remove_audit_rows(archive: Archive, tmp_path: Path, statement: str) -> None:
    _fill(archive, tmp_path)
    with pytest.raises(DBAPIError, match="append-only"), archive.db.engine.begin() as conn:
        conn.execute(text(statement))
    with archive.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 3
        assert session.scalars(select(AuditEvent.outcome)).all() == ["success"] * 3
    assert archive.verify_audit().ok
    (tmp_path / "more").mkdir()
    _fill(archive, tmp_path / "more", 1)  # appending still works
    assert archive.verify_audit().entries == 4


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    from storage.index import migrate
    from storage.index.db import Database

    db = Database(postgres_url)
    migrate.upgrade(db.engine)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    db.dispose()


class Collector:
    """A syslog collector on loopback: reads RFC 6587 octet-counted RFC 5424 messages (TCP, or TLS)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.messages: list[bytes] = []
        self.connections = 0
        self._context = context
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if self._context is not None:
                try:
                    conn = self._context.wrap_socket(conn, server_side=True)
                except ssl.SSLError:  # a client that does not trust us: nothing is received
                    conn.close()
                    continue
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            while data:
                length, _, rest = data.partition(b" ")
                size = int(length)
                self.messages.append(rest[:size])
                data = rest[size:]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def _parts(message: bytes) -> tuple[str, ET.Element]:
    header, _, body = message.partition(b"\xef\xbb\xbf")
    return header.decode("ascii"), ET.fromstring(body.decode("utf-8"))


def test_every_entry_reaches_the_collector_once(archive: Archive, tmp_path: Path, collector: Collector) -> None:
    _fill(archive, tmp_path)
    archive.record(AuditRecord(Actor("mallory", "10.0.0.9:1", kind="user"), "access-denied", "failure"))
    forwarder = Forwarder(archive.db, SyslogTarget("tcp", "127.0.0.1", collector.port), source_id="NDTPACS")
    assert forwarder.forward_pending() == 4
    assert forwarder.forward_pending() == 0  # the cursor moved: nothing twice
    messages = collector.wait_for(4)
    assert len(messages) == 4
    header, xml = _parts(messages[0])
    assert header.startswith("<85>1 ")  # facility 10 (security/authorization), notice
    assert " ndt-pacs - IHE+RFC-3881 - " in header
    assert xml.tag == "AuditMessage"
    assert xml.find("EventIdentification/EventID").get("csd-code") == "110104"  # type: ignore[union-attr]
    assert _parts(messages[3])[0].startswith("<84>1 ")  # a failure is a warning
    with archive.db.read_session() as session:
        hashes = session.scalars(select(AuditEvent.hash).order_by(AuditEvent.id)).all()
    sent = [_parts(m)[1].find(".//ParticipantObjectDetail[@type='hash']").get("value") for m in messages]  # type: ignore[union-attr]
    assert sent == hashes


def test_a_collector_that_is_down_loses_nothing(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path, 2)
    port = free_port()  # nobody listens there yet
    forwarder = Forwarder(archive.db, SyslogTarget("tcp", "127.0.0.1", port), source_id="NDTPACS", timeout=2)
    with pytest.raises(OSError):
        forwarder.forward_pending()
    (tmp_path / "later").mkdir()
    _fill(archive, tmp_path / "later", 1)
    late = Collector()
    try:
        forwarder.target = SyslogTarget("tcp", "127.0.0.1", late.port)
        # A new target starts from the beginning of the log: all three entries arrive.
        assert forwarder.forward_pending() == 3
        assert len(late.wait_for(3)) == 3
    finally:
        late.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_forwarding_over_tls(archive: Archive, tmp_path: Path) -> None:
    cert, key = tmp_path / "collector.pem", tmp_path / "collector.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure = Collector(context)
    try:
        _fill(archive, tmp_path, 2)
        target = SyslogTarget("tls", "localhost", secure.port)
        assert Forwarder(archive.db, target, source_id="NDTPACS", ca_file=cert).forward_pending() == 2
        assert len(secure.wait_for(2)) == 2
        archive.record(AuditRecord(DEVICE, "associate", "success"))  # something new to send
        untrusted = Forwarder(archive.db, SyslogTarget("tls", "localhost", secure.port), source_id="X")
        with pytest.raises(ssl.SSLError):  # a collector we cannot verify gets nothing
            untrusted.forward_pending()
    finally:
        secure.close()


def test_targets_are_parsed_strictly() -> None:
    assert parse_target("tcp://collector.example:1514") == SyslogTarget("tcp", "collector.example", 1514)
    assert parse_target("tls://collector").port == 6514
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        parse_target("udp://collector:514")


def test_pacs_serve_forwards_its_audit_log(tmp_path: Path, collector: Collector) -> None:
    from pynetdicom import AE

    server = start_server(tmp_path / "data", {"PACS_AUDIT_SYSLOG": f"tcp://127.0.0.1:{collector.port}"})
    try:
        ae = AE(ae_title="ECHOSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="NDTPACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        messages = collector.wait_for(1)
    finally:
        stop_server(server)
    assert messages, server.log()[-3000:]
    users = [_parts(m)[1].find("ActiveParticipant[@UserIsRequestor='true']") for m in messages]
    assert "ECHOSCU" in [u.get("UserID") for u in users if u is not None]
