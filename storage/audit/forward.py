"""Forwarding the audit log to a syslog collector, as IHE ATNA does (RFC 5424 over TCP or TLS).

Each entry travels as one DICOM audit message (PS3.15 A.5, :func:`storage.audit.export.as_dicom_audit_message`)
in an RFC 5424 syslog message (facility 10 "security/authorization", MSGID ``IHE+RFC-3881``),
framed by octet counting (RFC 6587 §3.4.1) over TCP, or TLS (RFC 5425). The forwarder reads the
log after its cursor, sends, and only then moves the cursor — kept in the database
(``audit_forwarding``), so delivery is at least once across restarts and several servers
sharing the index take turns under a row lock instead of sending twice.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit.export import ExportedEntry, as_dicom_audit_message, entries
from storage.index.db import Database
from storage.index.models import AuditForwarding

log = logging.getLogger(__name__)

FACILITY_AUTHPRIV = 10  # RFC 5424 6.2.1: security/authorization messages (IHE ATNA)
NOTICE, WARNING = 5, 4
MSGID = "IHE+RFC-3881"


@dataclass(frozen=True)
class SyslogTarget:
    """Where to send: ``tcp://host:port`` or ``tls://host:port``."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_target(url: str) -> SyslogTarget:
    """``tcp://HOST[:PORT]`` (default 514) or ``tls://HOST[:PORT]`` (default 6514); ValueError otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
        raise ValueError(f"PACS_AUDIT_SYSLOG must be tcp://HOST:PORT or tls://HOST:PORT, not {url!r}")
    return SyslogTarget(parsed.scheme, parsed.hostname, parsed.port or (514 if parsed.scheme == "tcp" else 6514))


def syslog_frame(
    message: str, *, severity: int, at: datetime, hostname: str, app_name: str = "ndt-pacs", procid: str = "-"
) -> bytes:
    """One RFC 5424 message with its RFC 6587 octet count: ``LEN <PRI>1 TIMESTAMP HOST APP PROCID MSGID - BOM MSG``."""
    pri = FACILITY_AUTHPRIV * 8 + severity
    timestamp = at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = f"<{pri}>1 {timestamp} {hostname[:255] or '-'} {app_name[:48]} {procid[:128]} {MSGID} - "
    body = header.encode("ascii", "replace") + b"\xef\xbb\xbf" + message.encode("utf-8")
    return str(len(body)).encode("ascii") + b" " + body


def frame_entry(entry: ExportedEntry, source_id: str, hostname: str) -> bytes:
    """The syslog frame of one audit entry."""
    severity = WARNING if entry.outcome in ("failure", "refused", "denied", "error") else NOTICE
    return syslog_frame(
        as_dicom_audit_message(entry, source_id),
        severity=severity,
        at=datetime.fromisoformat(entry.occurred_at),
        hostname=hostname,
    )


class Forwarder:
    """Sends every audit entry after the cursor to one syslog collector."""

    def __init__(
        self,
        db: Database,
        target: SyslogTarget,
        *,
        source_id: str,
        ca_file: Path | None = None,
        batch: int = 500,
        timeout: float = 10.0,
    ) -> None:
        self.db = db
        self.target = target
        self.source_id = source_id
        self.ca_file = ca_file
        self.batch = batch
        self.timeout = timeout
        self.hostname = socket.gethostname()

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self.target.host, self.target.port), timeout=self.timeout)
        if self.target.scheme == "tcp":
            return raw
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        return context.wrap_socket(raw, server_hostname=self.target.host)

    def _cursor(self, session: Session) -> AuditForwarding:
        name = str(self.target)
        cursor = session.scalars(
            select(AuditForwarding).where(AuditForwarding.target == name).with_for_update()
        ).one_or_none()
        if cursor is None:
            cursor = AuditForwarding(target=name, last_event_id=0, updated_at=datetime.now(UTC))
            session.add(cursor)
            session.flush()
        return cursor

    def forward_pending(self) -> int:
        """Send what was logged since the last call (at most one batch); the number sent.

        Raises OSError when the collector cannot be reached (the cursor stays: nothing is skipped).
        """

        def send(session: Session) -> int:
            cursor = self._cursor(session)
            pending = list(entries(session, after_id=cursor.last_event_id, batch=self.batch))[: self.batch]
            if not pending:
                return 0
            frames = b"".join(frame_entry(entry, self.source_id, self.hostname) for entry in pending)
            with self._connect() as connection:
                connection.sendall(frames)
            cursor.last_event_id = pending[-1].id
            cursor.updated_at = datetime.now(UTC)
            return len(pending)

        return self.db.write(send, attempts=1)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Forward until *stop*; a collector that is down is retried every *interval* seconds, nothing is lost."""
        while not stop.is_set():
            try:
                while self.forward_pending() == self.batch and not stop.is_set():
                    pass
            except OSError as exc:
                log.warning("audit forwarding to %s failed (will retry): %s", self.target, exc)
            except Exception:
                log.exception("audit forwarding to %s failed (will retry)", self.target)
            stop.wait(interval)
        try:  # what was logged while stopping
            self.forward_pending()
        except Exception as exc:  # noqa: BLE001 - the next start sends it
            log.warning("audit forwarding to %s: last pass failed (%s); the next start resends", self.target, exc)
