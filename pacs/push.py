"""C-STORE SCU (PS3.4 Annex B): push data sets or files to an archive.

``pacs demo`` pushes data sets over one association (:func:`push_datasets`): Nagle's algorithm
is disabled on the socket (many small PDUs otherwise wait for delayed ACKs), and every needed
presentation context, the DICONDE 601.x storage classes included, is proposed up front.
``pacs push`` sends files unchanged, on one or more associations (:func:`push_files`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

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
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
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


# -- files, unchanged ---------------------------------------------------------------------

MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 §9.3.2.2: odd IDs 1-255)
_WARNING_STATUSES = (0x0107, 0x0116)  # attribute list error, value out of range (PS3.4 B.2.3)


@dataclass(frozen=True)
class FileToSend:
    """A Part 10 file and what its File Meta Information says (PS3.10 §7.1)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    size: int


@dataclass
class FilePushReport:
    """What a push of files did: sent (warnings included) and the files that failed, with why."""

    sent: list[FileToSend] = field(default_factory=list)
    warnings: list[tuple[FileToSend, str]] = field(default_factory=list)
    failed: list[tuple[FileToSend, str]] = field(default_factory=list)
    retried: int = 0


def describe_file(path: Path) -> FileToSend:
    """Read the File Meta Information of *path*; ValueError when it is not a Part 10 file with one."""
    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise ValueError(f"not a DICOM Part 10 file: {exc}") from exc
    missing = [
        k for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID") if k not in meta
    ]
    if missing:
        raise ValueError(f"File Meta Information lacks {', '.join(missing)}")
    return FileToSend(
        path=path,
        sop_class_uid=str(meta.MediaStorageSOPClassUID),
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
        transfer_syntax_uid=str(meta.TransferSyntaxUID),
        size=path.stat().st_size,
    )


def _batches(files: Sequence[FileToSend]) -> list[list[FileToSend]]:
    """*files* in batches needing at most MAX_CONTEXTS (SOP class, transfer syntax) pairs each."""
    batches: list[list[FileToSend]] = []
    pairs: set[tuple[str, str]] = set()
    for item in sorted(files, key=lambda f: (f.sop_class_uid, f.transfer_syntax_uid)):
        pair = (item.sop_class_uid, item.transfer_syntax_uid)
        if not batches or (pair not in pairs and len(pairs) >= MAX_CONTEXTS):
            batches.append([])
            pairs = set()
        pairs.add(pair)
        batches[-1].append(item)
    return batches


def _send_batch(
    batch: list[FileToSend],
    report: FilePushReport,
    lock: threading.Lock,
    *,
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str,
    timeout: float,
    done: Callable[[FileToSend], None] | None,
) -> list[FileToSend]:
    """C-STORE *batch* on one association; returns the files that failed (for the retry)."""
    register_diconde_sop_classes()
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    pairs = dict.fromkeys((f.sop_class_uid, f.transfer_syntax_uid) for f in batch)
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]  # one per stored syntax
    failed: list[tuple[FileToSend, str]] = []
    assoc = ae.associate(host, port, contexts=contexts, ae_title=called_ae, max_pdu=0)
    if not assoc.is_established:
        failed = [(f, f"association with {called_ae}@{host}:{port} was not established") for f in batch]
    else:
        try:
            for item in batch:
                if not assoc.is_established:
                    failed.append((item, "association lost"))
                    continue
                try:
                    status = assoc.send_c_store(item.path)
                except ValueError as exc:  # no accepted presentation context for this class and syntax
                    failed.append(
                        (
                            item,
                            f"not accepted: {UID(item.sop_class_uid).name} in "
                            f"{UID(item.transfer_syntax_uid).name} ({exc})",
                        )
                    )
                    continue
                code = int(status.Status) if status and "Status" in status else -1
                with lock:
                    if code == Status.SUCCESS:
                        report.sent.append(item)
                    elif (code & 0xF000) == 0xB000 or code in _WARNING_STATUSES:
                        report.sent.append(item)
                        report.warnings.append((item, f"warning status 0x{code:04X}"))
                    else:
                        failed.append(
                            (item, "no response (association lost)" if code < 0 else f"status 0x{code & 0xFFFF:04X}")
                        )
                        continue
                if done is not None:
                    done(item)
        finally:
            if assoc.is_established:
                assoc.release()
    with lock:
        report.failed.extend(failed)
    return [item for item, _ in failed]


def push_files(
    files: Sequence[FileToSend],
    *,
    host: str,
    port: int,
    called_ae: str = "NDTPACS",
    calling_ae: str = "NDTPACS-PUSH",
    parallel: int = 1,
    timeout: float = 60.0,
    done: Callable[[FileToSend], None] | None = None,
) -> FilePushReport:
    """C-STORE *files* byte for byte on *parallel* associations; failures are retried once.

    Each association proposes one presentation context per (SOP class, stored transfer syntax),
    so every file travels as it is stored (PS3.7 Annex C: no conversion). *done* is called after
    each file that was stored.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    _config.STORE_SEND_CHUNKED_DATASET = True  # send from the file, unchanged and without loading it whole
    report, lock = FilePushReport(), threading.Lock()

    def run(items: Sequence[FileToSend]) -> list[FileToSend]:
        shares = [list(items[i::parallel]) for i in range(parallel)]
        jobs = [batch for share in shares for batch in _batches(share)]
        options = dict(host=host, port=port, called_ae=called_ae, calling_ae=calling_ae, timeout=timeout, done=done)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(lambda batch: _send_batch(batch, report, lock, **options), jobs))  # type: ignore[arg-type]
        return [item for failed in results for item in failed]

    again = run(files)
    if again:
        report.retried = len(again)
        failed_first = {id(item) for item in again}
        report.failed = [(item, why) for item, why in report.failed if id(item) not in failed_first]
        run(again)
    return report
