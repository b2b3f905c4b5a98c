"""C-STORE SCU (PS3.4 Annex B): push data sets to an archive over one association.

Used by ``pacs demo``. Nagle's algorithm is disabled on the socket (many small
PDUs otherwise wait for delayed ACKs), and every needed presentation context,
the DICONDE 601.x storage classes included, is proposed up front.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.presentation import build_context

from pacs import pynetdicom_compat
from pacs.sop_classes import register_diconde_sop_classes
from pacs.status import Status

log = logging.getLogger(__name__)


class PushError(RuntimeError):
    """The association could not be established or was lost."""


@dataclass
class PushReport:
    """What a push did: counts per outcome and the failures (SOP Instance UID, status)."""

    sent: int = 0
    failed: list[tuple[str, int]] = field(default_factory=list)
    bytes: int = 0


def parse_address(text: str, default_port: int = 11112) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``[v6]:PORT``) -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def push_datasets(
    datasets: Iterable[Dataset],
    *,
    host: str,
    port: int,
    sop_classes: Iterable[str],
    called_ae: str = "NDTPACS",
    calling_ae: str = "NDTDEMO",
    timeout: float = 60.0,
    progress: Callable[[int, Dataset], None] | None = None,
) -> PushReport:
    """Send every data set with C-STORE on one association; return the report.

    Raises :class:`PushError` when the peer refuses or drops the association.
    """
    register_diconde_sop_classes()
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    transfer_syntaxes: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    contexts = [build_context(uid, transfer_syntaxes) for uid in dict.fromkeys(sop_classes)]
    assoc = ae.associate(host, port, contexts=contexts, ae_title=called_ae, max_pdu=0)
    if not assoc.is_established:
        raise PushError(f"association with {called_ae}@{host}:{port} was not established")
    sock = pynetdicom_compat.raw_socket(assoc)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    report = PushReport()
    try:
        for ds in datasets:
            if not assoc.is_established:
                raise PushError("association lost")
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status and "Status" in status else -1
            if code == Status.SUCCESS or (code & 0xF000) == 0xB000:  # success or warning (PS3.4 B.2.3)
                report.sent += 1
                report.bytes += len(ds.get("PixelData", b"") or b"")
            else:
                report.failed.append((str(ds.SOPInstanceUID), code))
                log.warning("C-STORE %s failed: status 0x%04X", ds.SOPInstanceUID, code & 0xFFFF)
            if progress is not None:
                progress(report.sent + len(report.failed), ds)
    finally:
        if assoc.is_established:
            assoc.release()
    return report
