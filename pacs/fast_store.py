"""C-STORE receive fast path and the bounded PDU reader; pynetdicom's internals via pacs/pynetdicom_compat.py.

Every PDU of an accepted connection is read here, from its first byte (PS3.8 9.3.1):

* a PDU type that is not one of PS3.8 9.3's seven closes the connection at once
  before association (an HTTP request, say), and aborts it after (PS3.8 9.2, AA-8);
* a PDU longer than the limit aborts likewise: before association the hard limit
  ``PACS_MAX_REQUEST_PDU``, after it the maximum length we announced
  (``PACS_MAX_PDU``, PS3.8 D.1); the body is read as it arrives, never allocated
  from the announced length;
* a PDU whose last byte has not arrived ``PACS_PARTIAL_PDU_TIMEOUT`` seconds after
  its first closes the connection; a connection that sends no A-ASSOCIATE-RQ is
  closed by pynetdicom's ARTIM timer (PS3.8 9.1.5, ``PACS_PRE_ASSOCIATION_TIMEOUT``).

pynetdicom decodes every command set with pydicom, hands the request to the
association thread, runs its storage service class and encodes the response with
value validation: about 3 ms per instance, as much as archiving a small instance.
This module sits where pynetdicom's DUL passes P-DATA indications to DIMSE
(``DIMSEServiceProvider.receive_primitive``, called by the state machine's DT-2
action on the DUL thread) and takes over exactly one message type:

* A command set (PS3.8 Annex E.2 message control header bit 0 set; PS3.7 6.3.1:
  implicit VR little endian, group 0000) is collected over its fragments, then
  parsed with :mod:`struct`. A C-STORE-RQ (PS3.7 9.3.1.1) with a data set, on an
  accepted presentation context whose abstract syntax is the Affected SOP Class,
  is ours; every other message (C-ECHO, C-FIND, C-GET, C-MOVE, N-ACTION,
  C-CANCEL, responses, anything unusual) goes to pynetdicom unchanged, fragment
  by fragment.
* The data set fragments are written as they arrive to a spool file in the
  archive's spool directory behind a PS3.10 7.1 file meta header carrying the
  presentation context's transfer syntax: memory stays flat.
* The complete request goes through the handlers bound to ``EVT_C_STORE`` (the
  same policy guard and ``handle_store`` as the pynetdicom path, so the status
  mapping lives in one place); a handler exception answers 0xC211 as pynetdicom does.
* The C-STORE-RSP command set (PS3.7 9.3.1.2) is encoded here and queued to the
  DUL as P-DATA fragments no longer than the peer's maximum PDU length (PS3.8 9.3.5).

Protocol errors (a data set fragment without a command, a command fragment
inside a data set, a context switch inside a message, an empty PDV) put Evt19 on
the DUL's event queue: the state machine sends an A-ABORT and drops the
association (PS3.8 9.2, AA-8), as pynetdicom does for an invalid DIMSE message.
A partial data set is discarded when the association ends. Association
negotiation, release, abort, timers and every other service stay pynetdicom's.
Not raised for fast-path messages: ``EVT_DIMSE_RECV`` / ``EVT_DIMSE_SENT``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass

from pacs import pynetdicom_compat as compat

log = logging.getLogger(__name__)

# PS3.8 E.2 message control header bits
_COMMAND = 0x01
_LAST = 0x02
# PS3.7 E.1 command set elements (group 0000), by element number
_AFFECTED_SOP_CLASS = 0x0002
_COMMAND_FIELD = 0x0100
_MESSAGE_ID = 0x0110
_MESSAGE_ID_RESPONDED = 0x0120
_PRIORITY = 0x0700
_DATA_SET_TYPE = 0x0800
_STATUS = 0x0900
_AFFECTED_SOP_INSTANCE = 0x1000
_MOVE_ORIGINATOR_AE = 0x1030
_MOVE_ORIGINATOR_ID = 0x1031
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
NO_DATA_SET = 0x0101  # PS3.7 E.1 (0000,0800): "null", no data set follows
HANDLER_FAILED = 0xC211  # pynetdicom's status when the EVT_C_STORE handler raises

_PDU_HEADER = struct.Struct(">BBL")  # PS3.8 9.3.1: PDU type, reserved, PDU length
_U32 = struct.Struct(">L")
_PDV_ITEM = struct.Struct(">LB")  # PS3.8 9.3.5.1: item length, presentation context ID
_P_DATA_TF = 0x04
_PDU_TYPES = range(0x01, 0x08)  # PS3.8 9.3: A-ASSOCIATE-RQ (0x01) .. A-ABORT (0x07)
_ELEMENT = struct.Struct("<HHI")  # implicit VR little endian: group, element, value length
_US = struct.Struct("<H")
_PDV_OVERHEAD = 6  # PS3.8 9.3.5.1: item length (4), context ID (1), message control header (1)
_FIRST_BUFFER = 64 << 10  # a PDU body buffer starts this large and doubles as bytes arrive


@dataclass(frozen=True)
class PduLimits:
    """Bounds on what a peer may send (storage.settings.LimitSettings)."""

    max_pdu: int = 1 << 20  # the maximum length we announce (PS3.8 D.1), enforced after association
    max_request_pdu: int = 256 << 10  # any PDU before association
    partial_pdu_timeout: float = 30.0  # first byte to last byte of one PDU


class _PartialPdu(Exception):
    """A PDU did not arrive whole within the partial-PDU timeout."""


class ProtocolError(Exception):
    """The peer broke PS3.7/PS3.8 message structure: the association is aborted."""


def parse_command_set(data: bytes) -> dict[int, bytes]:
    """Element number -> raw value of an implicit VR little endian group 0000 command set (PS3.7 6.3.1).

    Raises ``ValueError`` when the bytes are not such a command set.
    """
    values: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _ELEMENT.size:
            raise ValueError("command set ends inside an element header")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += _ELEMENT.size
        if group != 0x0000 or length > end - offset:
            raise ValueError(f"({group:04X},{element:04X}) is not a command element of {length} bytes")
        values[element] = data[offset : offset + length]
        offset += length
    return values


def _text(value: bytes | None) -> str:
    """A UI/AE value without its padding (PS3.5 6.2); ``UnicodeDecodeError`` if it is not ASCII."""
    return (value or b"").rstrip(b"\x00 ").decode("ascii")


def _us(value: bytes | None) -> int | None:
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def _padded(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def encode_command_set(elements: list[tuple[int, bytes]]) -> bytes:
    """Encode group 0000 elements (ascending order) with their group length (PS3.7 6.3.1, E.1)."""
    body = b"".join(_ELEMENT.pack(0, element, len(value)) + value for element, value in elements)
    return _ELEMENT.pack(0, 0x0000, 4) + struct.pack("<I", len(body)) + body


def store_response(sop_class: str, sop_instance: str, message_id: int, status: int) -> bytes:
    """The C-STORE-RSP command set (PS3.7 9.3.1.2, table 9.3-2)."""
    return encode_command_set(
        [
            (_AFFECTED_SOP_CLASS, _padded(sop_class, b"\x00")),
            (_COMMAND_FIELD, _US.pack(C_STORE_RSP)),
            (_MESSAGE_ID_RESPONDED, _US.pack(message_id)),
            (_DATA_SET_TYPE, _US.pack(NO_DATA_SET)),
            (_STATUS, _US.pack(status)),
            (_AFFECTED_SOP_INSTANCE, _padded(sop_instance, b"\x00")),
        ]
    )


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 7.1.2)."""
    if vr == b"OB":
        return struct.pack("<HH2s2xI", group, element, vr, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def file_meta_header(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and the file meta group of a PS3.10 file (PS3.10 7.1).

    Byte for byte what pynetdicom writes for a spooled C-STORE (same implementation
    UID and version name), so the archived bytes do not depend on the receive path.
    """
    body = b"".join(
        (
            _explicit(0x0002, 0x0001, b"OB", b"\x00\x01"),
            _explicit(0x0002, 0x0002, b"UI", _padded(sop_class, b"\x00")),
            _explicit(0x0002, 0x0003, b"UI", _padded(sop_instance, b"\x00")),
            _explicit(0x0002, 0x0010, b"UI", _padded(transfer_syntax, b"\x00")),
            _explicit(0x0002, 0x0012, b"UI", _padded(str(PYNETDICOM_IMPLEMENTATION_UID), b"\x00")),
            _explicit(0x0002, 0x0013, b"SH", _padded(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
        )
    )
    return b"\x00" * 128 + b"DICM" + _explicit(0x0002, 0x0000, b"UL", struct.pack("<I", len(body))) + body


def _pdu(context_id: int, pdv: bytes) -> bytes:
    """A P-DATA-TF PDU of one PDV item (PS3.8 9.3.5)."""
    return _PDU_HEADER.pack(_P_DATA_TF, 0, 5 + len(pdv)) + _PDV_ITEM.pack(1 + len(pdv), context_id) + pdv


def _pdata(context_id: int, pdv: bytes) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list.append((context_id, bytes(pdv)))  # a memoryview from read_pdu
    return primitive


def _request(command: dict[int, bytes], message_id: int, priority: int, sop_class: str, sop_instance: str) -> C_STORE:
    """The C-STORE request primitive (PS3.7 9.1.1.1); its setters validate as for pynetdicom's own decoding."""
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    request.Priority = priority
    if _MOVE_ORIGINATOR_AE in command:
        request.MoveOriginatorApplicationEntityTitle = _text(command[_MOVE_ORIGINATOR_AE])
    if (originator_id := _us(command.get(_MOVE_ORIGINATOR_ID))) is not None:
        request.MoveOriginatorMessageID = originator_id
    return request


@dataclass
class _Incoming:
    """A C-STORE-RQ whose data set is being spooled."""

    context_id: int
    message_id: int
    sop_class: str
    sop_instance: str
    request: C_STORE  # what the EVT_C_STORE handlers get, as pynetdicom would have built it
    path: Path
    file: IO[bytes]
    digest: hashlib._Hash | None  # SHA-256 of what was written: the archive need not read the file again


class FastStoreReceiver:
    """Takes C-STORE-RQ messages of one acceptor association off pynetdicom's DIMSE path."""

    def __init__(
        self,
        assoc: Association,
        spool_dir: Path,
        storage_classes: Collection[str],
        *,
        hash_data: bool = True,
        limits: PduLimits | None = None,
        take_stores: bool = True,
    ) -> None:
        self.assoc = assoc
        self.spool_dir = spool_dir
        self.hash_data = hash_data  # SHA-256 while spooling, for an archive that hashes before it answers
        self.storage_classes = storage_classes
        self.limits = limits or PduLimits()
        self.take_stores = take_stores  # False: every message goes to pynetdicom, only reading is ours
        self._refused = False  # an invalid PDU was answered with A-ABORT: close on the next data
        self._forward: Callable[[P_DATA], None] = assoc.dimse.receive_primitive  # pynetdicom's own
        self._command: list[tuple[int, bytes]] = []  # fragments of the command set being received
        self._passing = False  # pynetdicom is in the middle of decoding a message
        self._incoming: _Incoming | None = None
        self._lock = threading.Lock()  # the DUL thread receives; `discard` may run on another

    def receive_primitive(self, primitive: P_DATA) -> None:
        """Stands in for ``DIMSEServiceProvider.receive_primitive`` (called on the DUL thread)."""
        self._receive_pdvs(primitive.presentation_data_value_list)

    def read_pdu(self) -> None:
        """Stands in for pynetdicom's PDU reader (the DUL thread, data waiting on the socket).

        Bounds every PDU (see the module docstring). In the established state (Sta6) a
        P-DATA-TF PDU only ever gives its PDVs to DIMSE (PS3.8 9.2, Evt10 -> DT-2 -> Sta6):
        its PDV items (PS3.8 9.3.5.1) go straight to :meth:`_receive_pdvs`, without
        pynetdicom's PDU objects, event queue and state machine pass. Every other PDU is
        decoded as pynetdicom does.
        """
        assoc = self.assoc
        peer = f"{assoc.requestor.address}:{assoc.requestor.port}"
        before_association = compat.awaiting_request(assoc)
        if self._refused:
            compat.close_transport(assoc)
            return
        deadline = time.monotonic() + self.limits.partial_pdu_timeout
        try:
            header = self._recv_exactly(6, deadline)
            if header is None:
                compat.signal(assoc, compat.CONNECTION_CLOSED)
                return
            pdu_type, _, length = _PDU_HEADER.unpack(header)
            limit = self.limits.max_request_pdu if before_association else self.limits.max_pdu
            if pdu_type not in _PDU_TYPES or length > limit:
                why = (
                    f"PDU type 0x{pdu_type:02X} is not DICOM (PS3.8 9.3)"
                    if pdu_type not in _PDU_TYPES
                    else f"PDU of {length} bytes exceeds the limit of {limit}"
                )
                self._refuse(peer, why, before_association)
                return
            body = self._recv_exactly(length, deadline)
        except _PartialPdu:
            log.warning("closing connection from %s: no whole PDU within %.0f s", peer, self.limits.partial_pdu_timeout)
            compat.close_transport(assoc)
            return
        if body is None:
            log.error("connection from %s closed before the entire PDU was received", peer)
            compat.signal(assoc, compat.CONNECTION_CLOSED)
            return
        if pdu_type != _P_DATA_TF or not compat.is_established(assoc):
            compat.decode_pdu(assoc, header + body)
            return
        items: list[tuple[int, bytes]] = []
        view, position = memoryview(body), 0
        while position < length:
            if position + 6 > length:
                compat.signal(assoc, compat.INVALID_PDU)  # a PDV item cut short: invalid PDU
                return
            (item_length,) = _U32.unpack_from(body, position)
            end = position + 4 + item_length
            if item_length < 2 or end > length:
                compat.signal(assoc, compat.INVALID_PDU)
                return
            items.append((body[position + 4], view[position + 5 : end]))  # type: ignore[arg-type]
            position = end
        self._receive_pdvs(items)

    def _refuse(self, peer: str, why: str, before_association: bool) -> None:
        """Close at once before association; A-ABORT after it (PS3.8 9.2, AA-8), then close."""
        log.warning("closing connection from %s: %s", peer, why)
        if before_association:
            compat.close_transport(self.assoc)
            return
        self._refused = True
        self.discard()
        compat.signal(self.assoc, compat.INVALID_PDU)

    def _recv_exactly(self, size: int, deadline: float) -> bytearray | None:
        """*size* bytes from the socket by *deadline*; None when the connection ended first.

        The buffer grows with what arrives (never allocated from a peer's announced length).
        Raises :class:`_PartialPdu` at the deadline.
        """
        sock = compat.raw_socket(self.assoc)
        if sock is None:
            return None
        buffer = bytearray(min(size, _FIRST_BUFFER))
        received = 0
        previous_timeout = sock.gettimeout()
        try:
            while received < size:
                if received == len(buffer):
                    buffer.extend(bytes(min(size, 2 * len(buffer)) - len(buffer)))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _PartialPdu
                sock.settimeout(remaining)
                with memoryview(buffer)[received:] as tail:
                    count = sock.recv_into(tail)
                if count == 0:
                    return None
                received += count
        except TimeoutError:
            raise _PartialPdu from None
        except OSError as exc:
            log.error("connection lost while receiving a PDU: %s", exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(previous_timeout)
        return buffer

    def _receive_pdvs(self, items: Iterable[tuple[int, bytes]]) -> None:
        try:
            for context_id, pdv in items:
                self._receive(context_id, pdv)
        except ProtocolError as exc:
            log.error("aborting association with %s: %s", self.assoc.requestor.ae_title, exc)
            self._abort()
        except OSError as exc:  # the spool directory failed us: same as pynetdicom failing to write
            log.error("aborting association with %s: cannot spool data set: %s", self.assoc.requestor.ae_title, exc)
            self._abort()

    def _abort(self) -> None:
        """Evt19 (invalid PDU / message): A-ABORT and A-P-ABORT indication (PS3.8 9.2, AA-8)."""
        self.discard()
        self._command = []
        self._passing = False
        compat.signal(self.assoc, compat.INVALID_PDU)

    def _receive(self, context_id: int, pdv: bytes) -> None:
        if not pdv:
            raise ProtocolError("PDV without a message control header")
        control = pdv[0]
        if self._passing:  # a message is pynetdicom's until pynetdicom has decoded all of it
            self._pass(context_id, pdv)
            return
        incoming = self._incoming
        if incoming is not None:
            if control & _COMMAND or context_id != incoming.context_id:
                raise ProtocolError("C-STORE data set interrupted by another message")
            with self._lock:
                if self._incoming is not incoming:  # discarded under us: the association is ending
                    return
                fragment = memoryview(pdv)[1:]
                incoming.file.write(fragment)
                if incoming.digest is not None:
                    incoming.digest.update(fragment)
            if control & _LAST:
                self._complete(incoming)
            return
        if not control & _COMMAND:
            raise ProtocolError("data set fragment without a command set")
        if self._command and self._command[0][0] != context_id:
            raise ProtocolError("command set fragments on different presentation contexts")
        self._command.append((context_id, pdv))
        if control & _LAST:
            fragments, self._command = self._command, []
            self._command_received(context_id, fragments)

    def _command_received(self, context_id: int, fragments: list[tuple[int, bytes]]) -> None:
        encoded = b"".join(memoryview(pdv)[1:] for _, pdv in fragments)
        try:
            command = parse_command_set(encoded)
        except ValueError:
            command = {}
        incoming = self._claim(context_id, command)
        if incoming is None:
            for cx, pdv in fragments:
                self._pass(cx, pdv)
            return
        with self._lock:
            self._incoming = incoming

    def _pass(self, context_id: int, pdv: bytes) -> None:
        """Give one PDV to pynetdicom; its DIMSE layer holds a ``message`` until the last fragment."""
        self._forward(_pdata(context_id, pdv))
        self._passing = compat.dimse_mid_message(self.assoc)

    def _claim(self, context_id: int, command: dict[int, bytes]) -> _Incoming | None:
        """A spool for this command if it is a plain C-STORE-RQ for us, else ``None`` (pynetdicom's)."""
        if not self.take_stores or _us(command.get(_COMMAND_FIELD)) != C_STORE_RQ or compat.unrestricted_storage():
            return None
        data_set_type = _us(command.get(_DATA_SET_TYPE))
        message_id = _us(command.get(_MESSAGE_ID))
        priority = _us(command.get(_PRIORITY))
        try:
            sop_class = _text(command.get(_AFFECTED_SOP_CLASS))
            sop_instance = _text(command.get(_AFFECTED_SOP_INSTANCE))
        except UnicodeDecodeError:
            return None
        context = compat.accepted_context(self.assoc, context_id)
        if (
            data_set_type in (None, NO_DATA_SET)
            or message_id is None
            or priority is None
            or not sop_instance
            or sop_class not in self.storage_classes
            or context is None
            or context.abstract_syntax != sop_class
            or not context.transfer_syntax
            or compat.release_sent(self.assoc)
        ):
            return None
        try:
            request = _request(command, message_id, priority, sop_class, sop_instance)
        except (ValueError, TypeError, UnicodeDecodeError):  # values pynetdicom refuses: its path decides
            return None
        fd, name = tempfile.mkstemp(dir=self.spool_dir, suffix=".dcm")
        file = os.fdopen(fd, "wb")
        header = file_meta_header(sop_class, sop_instance, str(context.transfer_syntax[0]))
        try:
            file.write(header)
        except OSError:
            file.close()
            os.unlink(name)
            raise
        return _Incoming(
            context_id=context_id,
            message_id=message_id,
            sop_class=sop_class,
            sop_instance=sop_instance,
            request=request,
            path=Path(name),
            file=file,
            digest=hashlib.sha256(header) if self.hash_data else None,
        )

    def _complete(self, incoming: _Incoming) -> None:
        """The data set is complete: run the C-STORE handlers and answer (PS3.4 B.2.3)."""
        with self._lock:
            self._incoming = None
            try:
                incoming.file.close()  # flushes the last buffered bytes
            except OSError:
                incoming.path.unlink(missing_ok=True)
                raise
        try:
            status = self._handle(incoming)
        finally:
            with contextlib.suppress(FileNotFoundError):
                incoming.path.unlink()  # the archive moved it unless the store failed
        # The DUL's state, not `assoc.is_established`: the association thread sets that flag only after
        # its EVT_ACCEPTED handlers ran, and a fast request can be answered before they finish.
        if self.assoc.is_aborted or not compat.is_established(self.assoc):
            return  # PS3.8 9.2: no P-DATA outside the established state (Sta6)
        response = store_response(incoming.sop_class, incoming.sop_instance, incoming.message_id, status)
        self._send(incoming.context_id, response)

    def _handle(self, incoming: _Incoming) -> int:
        """The bound ``EVT_C_STORE`` handler's status, validated as pynetdicom's storage SCP does."""
        context = compat.accepted_context(self.assoc, incoming.context_id)
        assert context is not None  # checked when the request was claimed
        try:
            request = incoming.request
            compat.set_dataset_path(request, incoming.path)
            if incoming.digest is not None:
                request._pacs_sha256 = incoming.digest.hexdigest()  # type: ignore[attr-defined]
            status: Any = evt.trigger(self.assoc, evt.EVT_C_STORE, {"request": request, "context": context.as_tuple})
        except Exception:
            log.exception("Exception in handler bound to 'evt.EVT_C_STORE'")
            return HANDLER_FAILED
        if isinstance(status, int) and not isinstance(status, bool):
            return int(status)
        rsp = StorageServiceClass(self.assoc).validate_status(status, C_STORE())  # a status Dataset, or invalid
        return int(rsp.Status or 0)

    def _send(self, context_id: int, command: bytes) -> None:
        """Send *command* as last-fragment-flagged PDVs within the peer's maximum PDU (PS3.8 9.3.5).

        On the DUL thread, established, with nothing queued before it, the P-DATA-TF PDUs are
        written to the socket at once, as DT-1 would write them on the DUL's next pass
        (PS3.8 9.2, Sta6 + Evt9); otherwise they are queued to the DUL behind what is there.
        """
        maximum = int(self.assoc.requestor.maximum_length or 0)
        size = len(command) if maximum == 0 else max(1, maximum - _PDV_OVERHEAD)
        pdvs = []
        for start in range(0, len(command), size):
            last = start + size >= len(command)
            pdvs.append((b"\x03" if last else b"\x01") + command[start : start + size])
        if compat.send_now(self.assoc, b"".join(_pdu(context_id, pdv) for pdv in pdvs)):
            return
        for pdv in pdvs:
            self.assoc.dul.send_pdu(_pdata(context_id, pdv))

    def discard(self) -> None:
        """Drop a partially received data set (association ended); nothing was handed to the archive."""
        with self._lock:
            incoming, self._incoming = self._incoming, None
        if incoming is None:
            return
        with contextlib.suppress(OSError):
            incoming.file.close()
        with contextlib.suppress(FileNotFoundError):
            incoming.path.unlink()
        log.warning("discarded partial C-STORE %s from %s", incoming.sop_instance, self.assoc.requestor.ae_title)


class FastStore:
    """Fits a :class:`FastStoreReceiver` on every connection the listener accepts."""

    def __init__(
        self,
        spool_dir: Path,
        storage_classes: Collection[str],
        *,
        hash_data: bool = True,
        limits: PduLimits | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.storage_classes = frozenset(storage_classes)
        self.hash_data = hash_data
        self.limits = limits or PduLimits()
        self.take_stores = True

    def handlers(self, *, take_stores: bool = True) -> list[Any]:
        """Notification handlers to bind on the listener; *take_stores* False: bounded reading only."""
        self.take_stores = take_stores
        return [(evt.EVT_CONN_OPEN, self.attach), (evt.EVT_CONN_CLOSE, self.detach)]

    def attach(self, event: Event) -> None:
        """``EVT_CONN_OPEN``: before the association runs, so before any PDU is read."""
        assoc = event.assoc
        if not assoc.is_acceptor or getattr(assoc, "_pacs_fast_store", None) is not None:
            return
        receiver = FastStoreReceiver(
            assoc,
            self.spool_dir,
            self.storage_classes,
            hash_data=self.hash_data,
            limits=self.limits,
            take_stores=self.take_stores,
        )
        receiver._forward = compat.replace_dimse_receiver(assoc, receiver.receive_primitive)
        compat.replace_pdu_reader(assoc, receiver.read_pdu)
        assoc._pacs_fast_store = receiver  # type: ignore[attr-defined]

    def detach(self, event: Event) -> None:
        """``EVT_CONN_CLOSE``: a data set cut off by abort or disconnect leaves no spool file."""
        receiver: FastStoreReceiver | None = getattr(event.assoc, "_pacs_fast_store", None)
        if receiver is not None:
            receiver.discard()
