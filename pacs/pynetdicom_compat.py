"""Every use of pynetdicom's internals, fenced in one module (tested with pynetdicom 3.0.x).

pynetdicom's public API has no hooks for what the archive needs on its receive path,
so three things reach into its internals, all of them here and nowhere else:

* **The fast receive path** (``pacs/fast_store.py``): the DUL's PDU reader
  (``DULServiceProvider._read_pdu_data``) and DIMSE's ``receive_primitive`` are
  replaced per association; the reader asks the state machine for its state
  (``"Sta2"``, ``"Sta6"``, PS3.8 9.2), puts events (``"Evt17"``, ``"Evt19"``) on its
  queue, decodes other PDUs with ``_decode_pdu`` and hands them over by ``_recv_pdu``;
  C-STORE requests look up ``Association._accepted_cx`` and ``_sent_release``.
* **Event-driven idle waits** (:func:`install_patches`): the association and DUL
  modules get a ``time`` whose idle sleep ends as soon as there is work (see
  :class:`_ReactorClock`), and ``transport.deepcopy`` a quick copy of presentation
  contexts (:func:`_copy_contexts`).
* **A-RELEASE after indexing** (:func:`answer_release_after`): ``ACSE.send_release``
  is wrapped so the A-RELEASE-RP waits until the association's instances are indexed.

:func:`check_version` refuses, at start-up, a pynetdicom outside :data:`SUPPORTED`.
``PACS_PLAIN_PYNETDICOM=true`` runs on plain pynetdicom instead: none of the above is
installed (slower C-STORE, no PDU size bounds or partial-PDU timeouts on the read path,
see docs/reliability.md), and every C-STORE is answered once its instance is indexed.

Event-driven idle waits, in detail: pynetdicom runs two polling loops per association.
The association reactor sleeps 1 ms between looks at its DIMSE message queue; the DUL
reactor sleeps 1 ms whenever a pass found nothing to do. Every C-STORE waits on both
loops, once for the request and once for the response: about 1.5 ms of idle latency
per instance (bench/README.md), as much as storing a small instance costs. The
association reactor waits instead on its DIMSE message queue's condition, which the
DUL notifies the moment a message is complete. The DUL reactor waits in ``select`` on
its socket and on a pipe that its outgoing queue rings on every put. An idle
association reactor wakes every 50 ms (pynetdicom: every 1 ms).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pynetdicom
from pynetdicom import _config, association, dul, transport
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationServer

log = logging.getLogger(__name__)

# The pynetdicom releases this module was written against and tested with (pyproject.toml pins the same).
SUPPORTED = (3, 0)
SUPPORTED_RANGE = ">=3.0,<3.1"


class IncompatiblePynetdicom(RuntimeError):
    """The installed pynetdicom is not one whose internals this module knows."""


def check_version(version: str | None = None) -> None:
    """Refuse a pynetdicom outside :data:`SUPPORTED` (called at start-up unless running plain).

    Raises :class:`IncompatiblePynetdicom` naming the supported range and the switch.
    """
    found = version if version is not None else str(pynetdicom.__version__)
    parts = found.split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        major_minor = (-1, -1)
    if major_minor != SUPPORTED:
        raise IncompatiblePynetdicom(
            f"pynetdicom {SUPPORTED[0]}.{SUPPORTED[1]}.x ({SUPPORTED_RANGE}) is required for the fast receive "
            f"path; found {found}. Install a supported release, or set PACS_PLAIN_PYNETDICOM=true to run on "
            "plain pynetdicom without the fast path."
        )


_REACTOR_SLEEP = 0.001  # the idle sleep of Association._run_reactor and DULServiceProvider
# How long an idle association reactor sleeps when nothing wakes it. Everything it reacts to
# wakes it at once (a DIMSE message, a release or abort indication from the DUL, a send_* from
# another thread); only the DUL thread's death and the network idle timer are noticed late,
# by at most this much. Waking every 1 ms instead cost ~15% of C-STORE throughput: each wake
# takes the GIL from the thread storing the instance.
_IDLE_WAIT = 0.05


class _ReactorClock:
    """Stands in for :mod:`time` inside pynetdicom's association and DUL modules."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        """The reactors' idle sleep ends early when there is work; every other sleep is real."""
        thread = threading.current_thread()
        if isinstance(thread, association.Association) and seconds == _REACTOR_SLEEP:
            _wait_for_message(thread, _IDLE_WAIT)
        elif isinstance(thread, dul.DULServiceProvider):
            _wait_for_traffic(thread, seconds)
        else:
            # A send_* on another thread polls (0.1 ms sleeps) until the reactor has paused:
            # wake the reactor, so it pauses now rather than at the end of its idle wait.
            caller = sys._getframe(1).f_locals.get("self")
            if isinstance(caller, association.Association) and caller is not thread:
                _wake(caller)
            time.sleep(seconds)


def _wait_for_message(assoc: association.Association, seconds: float) -> None:
    messages = getattr(assoc.dimse, "msg_queue", None)
    if not isinstance(messages, queue.Queue):
        time.sleep(seconds)
        return
    with messages.not_empty:  # the queue's own lock: `put` notifies this condition
        if not messages.queue:
            messages.not_empty.wait(seconds)
        if messages.queue:
            # `put` wakes ONE waiter. A thread of ours blocked in `get` (a send_* call
            # waiting for its response) may be waiting too: pass the wake-up on, or it
            # sleeps through its own response while the reactor, paused, never takes it.
            messages.not_empty.notify()


def _wake(assoc: association.Association) -> None:
    """End the idle wait of *assoc*'s reactor (it re-checks everything it watches)."""
    messages = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
    if isinstance(messages, queue.Queue):
        with messages.not_empty:
            messages.not_empty.notify_all()


@dataclass
class _Doorbell:
    """A pipe the DUL sleeps on next to its socket; ringing it means "a primitive is queued"."""

    read_fd: int
    write_fd: int

    def ring(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.write_fd, b"!")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.read_fd, 64):
                pass


def _doorbell(provider: dul.DULServiceProvider) -> _Doorbell:
    """The provider's doorbell, fitted on first use: its outgoing queue rings it on every put."""
    bell: _Doorbell | None = getattr(provider, "_pacs_doorbell", None)
    if bell is not None:
        return bell
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    bell = _Doorbell(read_fd, write_fd)
    weakref.finalize(provider, os.close, read_fd)
    weakref.finalize(provider, os.close, write_fd)
    outgoing = provider.to_provider_queue
    plain_put = outgoing.put

    def put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        plain_put(item, block, timeout)
        bell.ring()

    # Same queue object (nothing queued before or during the swap is lost); only its put rings.
    outgoing.put = put  # type: ignore[method-assign]

    # Release and abort indications reach the association through the DUL's to_user_queue:
    # wake the association reactor for them, as a DIMSE message does.
    incoming = provider.to_user_queue
    plain_deliver = incoming.put

    def deliver(item: Any, block: bool = True, timeout: float | None = None) -> None:
        plain_deliver(item, block, timeout)
        assoc = getattr(provider, "assoc", None)
        if assoc is not None:
            _wake(assoc)

    incoming.put = deliver  # type: ignore[method-assign]
    provider._pacs_doorbell = bell  # type: ignore[attr-defined]
    return bell


def _wait_for_traffic(provider: dul.DULServiceProvider, seconds: float) -> None:
    wrapped = getattr(provider, "socket", None)
    sock = getattr(wrapped, "socket", None)
    if sock is None:
        time.sleep(seconds)
        return
    bell = _doorbell(provider)
    if provider.to_provider_queue.queue:
        return
    try:
        readable, _, _ = select.select([sock, bell.read_fd], [], [], seconds)
    except (OSError, ValueError):  # socket closed under us: sleep, then let the reactor notice
        time.sleep(seconds)
        return
    if bell.read_fd in readable:
        bell.drain()


def _install_reactor_clock() -> None:
    """Give pynetdicom's association and DUL modules the event-driven clock (idempotent)."""
    clock = _ReactorClock()
    for module in (association, dul):
        current = module.time
        if isinstance(current, ModuleType):
            module.time = clock  # type: ignore[attr-defined]


def _copy_contexts(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``deepcopy`` for pynetdicom's transport module, quick for the one thing it copies.

    Each accepted association gets its own copy of the listener's ~200 presentation contexts
    (``RequestHandler._create_association``); a generic deep copy of them took ~50 ms per
    association. A context holds immutable values and one list of transfer syntax UIDs
    (immutable ``str``), so a shallow copy with its own list is a deep copy.
    """
    if isinstance(value, list) and all(type(cx) is PresentationContext for cx in value):
        copies = []
        for context in value:
            duplicate = copy.copy(context)
            duplicate._transfer_syntax = list(context._transfer_syntax)
            copies.append(duplicate)
        return copies
    return copy.deepcopy(value, memo)


def install_patches() -> None:
    """Check the version, then install the event-driven reactor clock and the quick context copy."""
    check_version()
    _install_reactor_clock()
    transport.deepcopy = _copy_contexts  # type: ignore[assignment]


def use_chunked_datasets() -> None:
    """Spool received data sets to disk and send stored files as they are (pynetdicom's ``_config`` options).

    Documented configuration, needed in both modes: ``Event.dataset_path`` exists only with
    ``STORE_RECV_CHUNKED_DATASET``.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True


def unrestricted_storage() -> bool:
    """pynetdicom's ``UNRESTRICTED_STORAGE_SERVICE`` option (then every C-STORE is pynetdicom's)."""
    return bool(_config.UNRESTRICTED_STORAGE_SERVICE)


def register_server(ae: Any, server: AssociationServer) -> None:
    """Let *ae* know a server it did not start itself (``AE.shutdown`` stops it)."""
    ae._servers.append(server)


def unregister_server(ae: Any, server: AssociationServer) -> None:
    """Forget a server stopped by us."""
    if server in ae._servers:
        ae._servers.remove(server)


# -- the association's DUL, for the fast receive path (PS3.8 9.2 state machine) --------------

CONNECTION_CLOSED = "Evt17"  # PS3.8 9.2.1: transport connection closed indication
INVALID_PDU = "Evt19"  # PS3.8 9.2.1: unrecognized or invalid PDU received


def raw_socket(assoc: Association) -> socket.socket | None:
    """The association's TCP socket, or None once closed."""
    wrapped = assoc.dul.socket
    return None if wrapped is None else wrapped.socket


def awaiting_request(assoc: Association) -> bool:
    """Sta2: transport open, no A-ASSOCIATE-RQ received yet (PS3.8 9.2, table 9-10)."""
    return bool(assoc.dul.state_machine.current_state == "Sta2")


def is_established(assoc: Association) -> bool:
    """Sta6: association established, ready for data transfer (PS3.8 9.2)."""
    return bool(assoc.dul.state_machine.current_state == "Sta6")


def signal(assoc: Association, event: str) -> None:
    """Put a state machine event (:data:`CONNECTION_CLOSED`, :data:`INVALID_PDU`) on the DUL's queue."""
    assoc.dul.event_queue.put(event)


def close_transport(assoc: Association) -> None:
    """Close the connection now and tell the state machine (Evt17): no A-ABORT is sent."""
    sock = raw_socket(assoc)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    signal(assoc, CONNECTION_CLOSED)


def decode_pdu(assoc: Association, data: bytes | bytearray) -> None:
    """Decode a whole PDU as pynetdicom's reader does and hand it to the state machine (Evt19 if invalid)."""
    provider = assoc.dul
    try:
        pdu, event = provider._decode_pdu(bytearray(data))
    except Exception:  # pynetdicom's decoders raise anything on a malformed PDU
        log.exception("unable to decode the received PDU data")
        provider.event_queue.put(INVALID_PDU)
        return
    provider.event_queue.put(event)
    provider._recv_pdu.put(pdu)


def replace_pdu_reader(assoc: Association, reader: Callable[[], None]) -> Callable[[], None]:
    """Make *reader* the DUL's PDU reader (called when data is waiting); returns pynetdicom's own."""
    plain: Callable[[], None] = assoc.dul._read_pdu_data
    assoc.dul._read_pdu_data = reader  # type: ignore[method-assign]
    return plain


def replace_dimse_receiver(assoc: Association, receiver: Callable[[P_DATA], None]) -> Callable[[P_DATA], None]:
    """Make *receiver* take DIMSE's P-DATA indications; returns pynetdicom's own."""
    plain: Callable[[P_DATA], None] = assoc.dimse.receive_primitive
    assoc.dimse.receive_primitive = receiver  # type: ignore[method-assign,assignment]
    return plain


def dimse_mid_message(assoc: Association) -> bool:
    """pynetdicom's DIMSE layer holds a partly received message."""
    return assoc.dimse.message is not None


def accepted_context(assoc: Association, context_id: int) -> PresentationContext | None:
    """The accepted presentation context with *context_id*, if any."""
    context: PresentationContext | None = assoc._accepted_cx.get(context_id)
    return context


def release_sent(assoc: Association) -> bool:
    """We already asked to release the association."""
    return bool(assoc._sent_release)


def set_dataset_path(request: C_STORE, path: Path) -> None:
    """What ``Event.dataset_path`` returns for *request* (``STORE_RECV_CHUNKED_DATASET``)."""
    request._dataset_path = path


def send_now(assoc: Association, data: bytes) -> bool:
    """Write encoded PDUs to the socket at once if on the DUL thread, established, nothing queued.

    That is what DT-1 would do on the DUL's next pass (PS3.8 9.2, Sta6 + Evt9). Returns False
    (nothing written) otherwise: the caller queues them with ``dul.send_pdu``.
    """
    provider = assoc.dul
    if (
        threading.current_thread() is provider
        and is_established(assoc)
        and not provider.to_provider_queue.queue
        and provider.socket is not None
    ):
        provider.socket.send(data)
        return True
    return False


def answer_release_after(assoc: Association, wait: Callable[[], None]) -> None:
    """Run *wait* before the A-RELEASE-RP is sent (PS3.8 7.2: the response may follow when we are ready)."""
    send_release = assoc.acse.send_release

    def release_when_ready(is_response: bool = False) -> None:
        if is_response:
            wait()
        send_release(is_response)

    assoc.acse.send_release = release_when_ready  # type: ignore[method-assign]
