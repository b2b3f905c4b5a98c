"""The DIMSE listener: application entity, presentation contexts, handlers, lifecycle."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from functools import partial
from typing import Any

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom import __version__ as pynetdicom_version
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from pacs import pynetdicom_compat
from pacs.fast_store import FastStore, PduLimits
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
    """Association server that disables Nagle's algorithm and bounds connections per peer address.

    With Nagle on, each small PDU waits for the peer's delayed ACK and loopback
    throughput falls about 20x (bench/README.md). A peer address holding
    ``max_per_address`` connections gets its next one closed at once, so half-open
    junk connections from one host cannot take every association slot (pynetdicom counts
    them against ``maximum_associations`` and then refuses real devices with
    "local-limit-exceeded", PS3.8 9.3.4).
    """

    max_per_address = 1 << 30  # DicomListener sets the configured limit

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: dict[str, list[socket.socket]] = {}  # per peer address, the connections not yet closed
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection and set TCP_NODELAY on it."""
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Count the connection against its address; refuse (close) it over the limit.

        A connection counts until its socket is closed (pynetdicom closes it when the
        association ends, however it ends).
        """
        host = str(client_address[0])
        with self._open_lock:
            for address in list(self._open):
                still_open = [sock for sock in self._open[address] if sock.fileno() != -1]
                if still_open:
                    self._open[address] = still_open
                else:
                    del self._open[address]
            connections = self._open.setdefault(host, [])
            if len(connections) >= self.max_per_address:
                log.warning("closing connection from %s: already %d open from that address", host, len(connections))
                return False
            connections.append(request)
        return True


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


def build_ae(settings: DicomSettings) -> AE:
    """The application entity with every presentation context we accept as SCP."""
    if settings.plain_pynetdicom:
        log.info("running on plain pynetdicom %s: no fast receive path (PACS_PLAIN_PYNETDICOM)", pynetdicom_version)
    else:
        pynetdicom_compat.install_patches()  # version check, event-driven idle waits, quick context copies
    pynetdicom_compat.use_chunked_datasets()  # spool received data sets; send stored files as they are
    ae = AE(ae_title=settings.ae_title)
    # Large PDUs (pynetdicom#367: small ones are slow), but bounded: the fast path refuses longer ones.
    ae.maximum_pdu_size = settings.limits.max_pdu
    ae.network_timeout = settings.network_timeout
    ae.acse_timeout = settings.limits.pre_association_timeout  # ARTIM (PS3.8 9.1.5)
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
    limits = PduLimits(
        max_pdu=settings.limits.max_pdu,
        max_request_pdu=settings.limits.max_request_pdu,
        partial_pdu_timeout=settings.limits.partial_pdu_timeout,
    )
    fast_store = FastStore(archive.spool_dir, storage_sop_classes(), hash_data=archive.intake is None, limits=limits)
    fast = fast_store.handlers(take_stores=settings.fast_store) if not settings.plain_pynetdicom else []
    store = partial(handle_store, settle_each=settings.plain_pynetdicom)
    return [
        *fast,
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, policy.guard("store", store, Status.NOT_AUTHORIZED), [archive]),
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
        server.max_per_address = self.settings.limits.max_associations_per_address
        pynetdicom_compat.register_server(self.ae, server)
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
        pynetdicom_compat.unregister_server(self.ae, server)
        self._server = None
