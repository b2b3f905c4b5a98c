"""Association policy: who may associate, and an audit entry for every association (PS3.8 7.1.1.9).

The called AE title must be ours. With ``PACS_STRICT_AE`` only known peers may
associate, recognised by calling AE title *and* network address; anyone else gets
an A-ASSOCIATE-RJ (rejected-permanent, source service-user, reason
calling-AE-title-not-recognized; PS3.8 9.3.4). Rejection happens in
``EVT_REQUESTED``, before any presentation context is negotiated.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.events import Event

from pacs.actor import ACCOUNT_ATTRIBUTE
from pacs.settings import DicomSettings
from pacs.status import Status
from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError
from storage.records.peers import PeerInfo, PeerRegistry

log = logging.getLogger(__name__)

# PS3.8 9.3.4 A-ASSOCIATE-RJ fields
REJECTED_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
REASON_CALLING_AE_NOT_RECOGNIZED = 0x03
REASON_CALLED_AE_NOT_RECOGNIZED = 0x07


def set_nodelay(event: Event) -> None:
    """``EVT_CONN_OPEN`` handler for associations we request: disable Nagle (environment.md)."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # TLS wrappers or closed sockets
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _requestor(event: Event) -> tuple[str, str, str]:
    """Calling AE title, called AE title and address of an association being requested."""
    primitive = event.assoc.requestor.primitive
    calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
    called = str(getattr(primitive, "called_ae_title", "") or "").strip()
    return calling, called, str(event.assoc.requestor.address)


def _log_refusal(event: Event, permission: str) -> None:
    log.warning("%s from %s refused: no %r permission", event.event.name, event.assoc.requestor.ae_title, permission)


def prefer_requestor_order(event: Event, supported: frozenset[str]) -> None:
    """Negotiate each presentation context to the requestor's first transfer syntax we support.

    pynetdicom picks by the acceptor's order; a requestor lists its preferred syntax first
    (dcmtk's ``+x`` options): usually the one its data are in. Honouring it means a C-STORE
    arrives as the sender's bytes and a C-GET can send stored objects without conversion.
    """
    primitive = event.assoc.requestor.primitive
    if not supported or primitive is None:
        return
    for context in primitive.presentation_context_definition_list:
        preferred: list[str | bytes | UID] = [ts for ts in context.transfer_syntax if str(ts) in supported]
        if len(preferred) > 1:
            context.transfer_syntax = preferred[:1]


class AssociationPolicy:
    """Accepts or rejects association requests and audits each one."""

    def __init__(
        self, archive: Archive, settings: DicomSettings, peers: PeerRegistry, supported_syntaxes: Iterable[str] = ()
    ) -> None:
        self.archive = archive
        self.settings = settings
        self.peers = peers
        self.supported_syntaxes = frozenset(str(ts) for ts in supported_syntaxes)
        self._granted: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def handlers(self) -> list[Any]:
        """The event handlers to bind on the listener."""
        return [(evt.EVT_REQUESTED, self.on_requested), (evt.EVT_ACCEPTED, self.on_accepted)]

    def _audit(self, event: Event, outcome: str, **detail: Any) -> None:
        calling, called, address = _requestor(event)
        actor = Actor(name=calling or "?", address=f"{address}:{event.assoc.requestor.port}")
        self.archive.record(
            AuditRecord(actor=actor, action="associate", outcome=outcome, detail={"called_ae": called, **detail})
        )

    def _reject(self, event: Event, reason: int, why: str) -> None:
        calling, _, address = _requestor(event)
        log.warning("rejecting association from %s at %s: %s", calling, address, why)
        self._audit(event, "rejected", reason=why)
        event.assoc.acse.send_reject(REJECTED_PERMANENT, SOURCE_SERVICE_USER, reason)
        event.assoc.kill()

    def on_requested(self, event: Event) -> None:
        """``EVT_REQUESTED``: check called and calling AE (and address in strict mode)."""
        calling, called, address = _requestor(event)
        if called != self.settings.ae_title.strip():
            self._reject(event, REASON_CALLED_AE_NOT_RECOGNIZED, f"called AE title {called!r} is not ours")
            return
        if self.settings.strict_ae:
            try:
                peer = self.peers.recognise(calling, address)
            except ArchiveError as exc:
                log.error("peer lookup failed, rejecting %s: %s", calling, exc)
                peer = None
            if peer is None:
                why = f"{calling!r} from {address} is not a known peer (strict mode)"
                self._reject(event, REASON_CALLING_AE_NOT_RECOGNIZED, why)
                return
        prefer_requestor_order(event, self.supported_syntaxes)

    def on_accepted(self, event: Event) -> None:
        """``EVT_ACCEPTED``: audit the association; a recognised peer tied to a device account acts as it."""
        peer = self.peer_of(event) if event.assoc.requestor.ae_title else None
        if peer is not None and peer.user:
            setattr(event.assoc, ACCOUNT_ATTRIBUTE, peer.user)
        account = {"account": peer.user} if peer is not None and peer.user else {}
        self._audit(event, "accepted", contexts=len(event.assoc.accepted_contexts), **account)

    def peer_of(self, event: Event) -> PeerInfo | None:
        """The known peer behind *event*'s association (by AE title and address), if any."""
        requestor = event.assoc.requestor
        return self.peers.recognise(str(requestor.ae_title).strip(), str(requestor.address))

    def may(self, event: Event, permission: str) -> bool:
        """Whether the requestor may use *permission* (``store``/``query``/``retrieve``).

        A known peer has exactly the permissions it was given; an unknown AE is
        only ever here when strict mode is off, and then may store, query and retrieve.
        Looked up once per association.
        """
        assoc = event.assoc
        with self._lock:
            granted = self._granted.get(assoc)
        if granted is None:
            peer = self.peers.get(str(assoc.requestor.ae_title).strip())
            if peer is None:
                granted = frozenset() if self.settings.strict_ae else frozenset(("store", "query", "retrieve"))
            else:
                granted = frozenset(peer.permissions)
            with self._lock:
                self._granted[assoc] = granted
        return permission in granted

    def guard(self, permission: str, handler: Callable[..., Any], refusal: Status) -> Callable[..., Any]:
        """Wrap a C-STORE / C-FIND handler so peers without *permission* get *refusal*."""
        if inspect.isgeneratorfunction(handler):

            def guarded_generator(event: Event, *args: Any) -> Iterator[Any]:
                if not self.may(event, permission):
                    _log_refusal(event, permission)
                    yield refusal, None
                    return
                yield from handler(event, *args)

            return guarded_generator

        def guarded(event: Event, *args: Any) -> Any:
            if not self.may(event, permission):
                _log_refusal(event, permission)
                return refusal
            return handler(event, *args)

        return guarded
