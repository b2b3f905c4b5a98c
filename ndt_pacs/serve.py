"""``pacs serve``: the DICOM listener and the HTTP server, in one process or (``--no-http`` /
``--no-dicom``) as separate, separately scalable processes sharing one index and object store."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator

import uvicorn

from ndt_pacs.logs import configure_logging
from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.archive import Archive
from storage.audit.forward import Forwarder, parse_target
from storage.factory import open_archive
from storage.ingest import indexer
from storage.ingest.intake import Intake
from storage.records import accounts
from storage.settings import StorageSettings
from viewer.app import create_app
from viewer.settings import HttpSettings

log = logging.getLogger("ndt_pacs")


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: we stop HTTP and DICOM together, then exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    storage: StorageSettings,
    dicom: DicomSettings,
    http: HttpSettings,
    *,
    dicom_enabled: bool = True,
    http_enabled: bool = True,
    spawn_workers: bool = True,
) -> None:
    """Run until SIGINT/SIGTERM; then let open associations finish and close cleanly."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to stderr
    if not (dicom_enabled or http_enabled):
        raise ValueError("nothing to serve: --no-dicom and --no-http together")
    archive = open_archive(storage)  # on the embedded default this applies migrations, before any worker starts
    if spawn_workers and http_enabled:
        _hint_first_admin(archive, storage)
    # pynetdicom spools incoming data sets with tempfile: keep them on the data
    # volume so the archive can rename them into the object store.
    tempfile.tempdir = str(storage.spool_dir)
    supervisor: _IndexerSupervisor | None = None
    if storage.indexes_deferred:
        # Stores are answered once durable in the intake; the indexer process indexes them and
        # every read here waits for what was acknowledged before it (storage/ingest/intake.py).
        intake = Intake(storage.intake_dir)
        archive.use_intake(intake)
        if spawn_workers:  # the first process of a `pacs serve`; receiver workers share its indexer
            supervisor = _IndexerSupervisor(storage, intake)
            supervisor.start()
    forwarding = _start_audit_forwarding(archive, storage, dicom.ae_title) if spawn_workers else None
    listener = DicomListener(archive, dicom)
    workers: list[multiprocessing.process.BaseProcess] = []
    if dicom_enabled:
        listener.start()
        if spawn_workers:
            workers = _start_workers(storage, dicom)
    server: _Server | None = None
    if http_enabled:
        config = uvicorn.Config(
            create_app(archive, settings=http),
            host=http.host,
            port=http.http_port,
            log_level="info",
            access_log=False,
            lifespan="on",
            # X-Forwarded-Proto / -For are honoured only from a configured, trusted reverse proxy.
            proxy_headers=http.trust_proxy,
            forwarded_allow_ips=http.forwarded_allow_ips,
        )
        server = _Server(config)
    stopped = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d received: stopping", signum)
        stopped.set()
        if server is not None:
            server.should_exit = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        if server is not None:
            server.run()  # returns once should_exit is set by a signal
        else:
            while not stopped.wait(1.0):  # receiver only: the listener runs in its own threads
                pass
    finally:
        log.info("shutting down: waiting for open DICOM associations")
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        listener.stop()
        for worker in workers:
            worker.join(dicom.shutdown_grace + 10)
            if worker.is_alive():
                log.error("receiver worker %s did not stop: killing it", worker.pid)
                worker.kill()
        if supervisor is not None:
            supervisor.stop()
        if forwarding is not None:
            forwarding[0].set()
            forwarding[1].join(30)
        archive.db.dispose()
        log.info("stopped")


def _hint_first_admin(archive: Archive, storage: StorageSettings) -> None:
    """Say once, at start-up, how to create the first admin when the archive has none."""
    from ndt_pacs.accounts_cli import first_admin_hint

    with archive.db.read_session() as session:
        if not accounts.has_active_admin(session):
            log.warning(first_admin_hint(storage.data_dir if storage.database_url is None else None))


def _start_audit_forwarding(
    archive: Archive, storage: StorageSettings, source_id: str
) -> tuple[threading.Event, threading.Thread] | None:
    """The syslog forwarder of the audit log (``PACS_AUDIT_SYSLOG``), on a thread of the first process."""
    if not storage.audit_syslog:
        return None
    target = parse_target(storage.audit_syslog)
    forwarder = Forwarder(archive.db, target, source_id=source_id, ca_file=storage.audit_syslog_ca)
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,), name="audit-forwarder", daemon=True)
    thread.start()
    log.info("forwarding the audit log to %s", target)
    return stop, thread


class _IndexerSupervisor:
    """The indexer process of a `pacs serve`: ready before the listener starts, restarted if it dies, stopped last."""

    def __init__(self, storage: StorageSettings, intake: Intake) -> None:
        self.storage = storage
        self.intake = intake
        self.process: multiprocessing.process.BaseProcess | None = None
        self._stopping = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="indexer-watchdog", daemon=True)

    def _spawn(self, ready_timeout: float = 120.0) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that already runs threads
        # daemon: never joined without end at interpreter exit (stop() drains it first)
        self.process = context.Process(target=_indexer_process, args=(self.storage,), name="indexer", daemon=True)
        self.process.start()
        deadline = time.monotonic() + ready_timeout
        while not self.intake.indexer_running():  # it (or another server's indexer) holds the lock
            if not self.process.is_alive():
                raise RuntimeError("the indexer process exited during start-up (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError("the indexer process did not start")
            time.sleep(0.05)

    def start(self) -> None:
        """Start the indexer and wait until an indexer holds the intake."""
        self._spawn()
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.process is not None and not self.process.is_alive() and not self._stopping.is_set():
                log.error("the indexer process exited (code %s): starting a new one", self.process.exitcode)
                try:
                    self._spawn()
                except RuntimeError as exc:
                    log.error("%s", exc)

    def stop(self, grace: float = 120.0) -> None:
        """SIGTERM: the indexer indexes what the intake holds, then exits (what it cannot finish stays)."""
        self._stopping.set()
        if self._watchdog.is_alive():
            self._watchdog.join(10)  # it can no longer start a new indexer behind our back
        process = self.process
        if process is None:
            return
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
        process.join(grace)
        if process.is_alive():
            log.error("indexer %s did not stop: killing it (the intake keeps its entries)", process.pid)
            process.kill()


def _indexer_process(storage: StorageSettings) -> None:
    """The indexer: indexes the intake until SIGTERM/SIGINT, then drains it and exits."""
    configure_logging(process="indexer")
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us last
    archive = open_archive(storage, migrate_embedded=False)
    try:
        indexer.run(archive, Intake(storage.intake_dir), stop)
    finally:
        archive.db.dispose()


def _start_workers(storage: StorageSettings, dicom: DicomSettings) -> list[multiprocessing.process.BaseProcess]:
    """Start ``dicom_workers - 1`` further receiver processes on the same port (this one is the first)."""
    if dicom.dicom_workers == 1:
        return []
    context = multiprocessing.get_context("spawn")  # never fork a process that already runs threads
    workers: list[multiprocessing.process.BaseProcess] = []
    for n in range(1, dicom.dicom_workers):
        worker = context.Process(target=_receiver_worker, args=(storage, dicom), name=f"dicom-worker-{n}", daemon=False)
        worker.start()
        workers.append(worker)
    log.info("%d further DICOM receiver processes share port %d", len(workers), dicom.dicom_port)
    return workers


def _receiver_worker(storage: StorageSettings, dicom: DicomSettings) -> None:
    """One further receiver process: the DICOM listener only (like ``--no-http``), stopped by SIGTERM.

    It binds with SO_REUSEPORT like the first one (``dicom_workers`` > 1) and starts no workers itself.
    """
    configure_logging(process="worker")
    serve(storage, dicom, HttpSettings(), dicom_enabled=True, http_enabled=False, spawn_workers=False)
