"""The DIMSE listener: application entity, presentation contexts, handlers, lifecycle."""

from __future__ import annotations

import copy
import logging
import socket
import socketserver
import threading
import time
from typing import Any

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, _config, evt, transport
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from pacs import reactor
from pacs.fast_store import FastStore
from pacs.handlers.commitment import CommitmentService
from pacs.handlers.echo import handle_echo
from pacs.handlers.find import handle_find
from pacs.handlers.retrieve import RetrieveService
from pacs.handlers.store import handle_store
from pacs.policy import AssociationPolicy
from pacs.service_uids import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STORAGE_COMMITMENT_PUSH,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
)
from pacs.settings import DicomSettings
from pacs.sop_classes import storage_sop_classes
from pacs.status import Status
from storage.archive import Archive
from storage.records.peers import PeerRegistry

log = logging.getLogger(__name__)

# Accept every transfer syntax pydicom knows, as sent: the archive stores, it does not transcode.
TRANSFER_SYNTAXES = [str(uid) for uid in AllTransferSyntaxes]


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Association server that disables Nagle's algorithm on accepted sockets.

    With Nagle on, each small PDU waits for the peer's delayed ACK and loopback
    throughput falls about 20x (measured on this machine, environment.md).
    """

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection and set TCP_NODELAY on it."""
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address


class SharedPortAssociationServer(NoDelayAssociationServer):
    """A listener that shares its port with the other receiver processes (SO_REUSEPORT).

    The kernel spreads incoming associations across the processes bound to the port, so
    ``PACS_DICOM_WORKERS`` receivers use as many cores; each one is a complete listener
    on the shared index and object store.
    """

    def server_bind(self) -> None:
        """Set SO_REUSEPORT, then bind as usual."""
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _copy_contexts(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``deepcopy`` for pynetdicom's transport module, quick for the one thing it copies.

    Each accepted association gets its own copy of the listener's ~200 presentation contexts
    (``RequestHandler._create_association``); a generic deep copy of them took ~50 ms per
    association here. A context holds immutable values and one list of transfer syntax UIDs
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


def build_ae(settings: DicomSettings) -> AE:
    """The application entity with every presentation context we accept as SCP."""
    reactor.install()  # event-driven idle waits instead of pynetdicom's 1 ms polling
    transport.deepcopy = _copy_contexts  # type: ignore[assignment]
    _config.STORE_RECV_CHUNKED_DATASET = True  # spool data sets to disk as they arrive
    _config.STORE_SEND_CHUNKED_DATASET = True  # C-GET/C-MOVE send stored files as they are, streamed
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger PDUs (pynetdicom#367)
    ae.network_timeout = settings.network_timeout
    ae.maximum_associations = settings.max_associations
    ae.require_called_aet = True
    ae.add_supported_context(VERIFICATION, TRANSFER_SYNTAXES)
    for uid in storage_sop_classes():
        # scp_role/scu_role: accept SCP/SCU role selection, so a C-GET requestor can take the
        # storage SCP role on its association (PS3.7 D.3.3.4, PS3.4 C.4.3).
        ae.add_supported_context(uid, TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    for model in (PATIENT_ROOT_FIND, STUDY_ROOT_FIND):
        ae.add_supported_context(model, TRANSFER_SYNTAXES)
    for model in (PATIENT_ROOT_GET, STUDY_ROOT_GET, PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE):
        ae.add_supported_context(model, TRANSFER_SYNTAXES)
    ae.add_supported_context(STORAGE_COMMITMENT_PUSH, TRANSFER_SYNTAXES)
    return ae


def build_handlers(archive: Archive, settings: DicomSettings) -> list[Any]:
    """The event handlers, each bound to the archive core."""
    peers = PeerRegistry(archive.db)
    policy = AssociationPolicy(archive, settings, peers, TRANSFER_SYNTAXES)
    retrieve = RetrieveService(archive, policy)
    commitment = CommitmentService(archive, peers, settings.ae_title)
    # Deferred indexing hashes in the indexer, off the sender's critical path (storage/ingest/intake.py).
    fast_store = FastStore(archive.spool_dir, storage_sop_classes(), hash_data=archive.intake is None)
    fast = fast_store.handlers() if settings.fast_store else []
    return [
        *fast,
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, policy.guard("store", handle_store, Status.NOT_AUTHORIZED), [archive]),
        (evt.EVT_C_FIND, policy.guard("query", handle_find, Status.NOT_AUTHORIZED), [archive, settings.ae_title]),
        (evt.EVT_C_GET, retrieve.handle_get),
        (evt.EVT_C_MOVE, retrieve.handle_move),
        *policy.handlers(),
        *commitment.handlers(),
    ]


class DicomListener:
    """Runs the listener in background threads; stops gracefully."""

    def __init__(self, archive: Archive, settings: DicomSettings) -> None:
        self.archive = archive
        self.settings = settings
        self.ae = build_ae(settings)
        self._server: NoDelayAssociationServer | None = None

    def start(self) -> None:
        """Bind and start accepting associations."""
        server = self.ae.make_server(
            (self.settings.host, self.settings.dicom_port),
            evt_handlers=build_handlers(self.archive, self.settings),
            server_class=SharedPortAssociationServer if self.settings.dicom_workers > 1 else NoDelayAssociationServer,
        )
        assert isinstance(server, NoDelayAssociationServer)
        self.ae._servers.append(server)
        threading.Thread(target=server.serve_forever, name="dicom-listener", daemon=True).start()
        self._server = server
        log.info("DICOM listener %s on %s:%d", self.settings.ae_title, self.settings.host, self.port)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for an ephemeral one)."""
        assert self._server is not None, "listener not started"
        return int(self._server.server_address[1])

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let open associations finish (up to *grace* s), then close."""
        server = self._server
        if server is None:
            return
        grace = self.settings.shutdown_grace if grace is None else grace
        socketserver.BaseServer.shutdown(server)  # leave the accept loop
        AssociationServer.server_close(server)  # close the listening socket: no new associations
        deadline = time.monotonic() + grace
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in server.active_associations:
            log.warning("aborting association with %s after %.0f s grace", assoc.requestor.ae_title, grace)
            assoc.abort()
        server.server_close()  # joins the association threads
        if server in self.ae._servers:
            self.ae._servers.remove(server)
        self._server = None
