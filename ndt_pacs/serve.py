"""``pacs serve``: the DICOM listener and the HTTP server, in one process or (``--no-http`` /
``--no-dicom``) as separate, separately scalable processes sharing one index and object store."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import tempfile
import threading
from collections.abc import Iterator

import uvicorn

from ndt_pacs.logs import configure_logging
from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.factory import open_archive
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
    if not (dicom_enabled or http_enabled):
        raise ValueError("nothing to serve: --no-dicom and --no-http together")
    archive = open_archive(storage)  # on the embedded default this applies migrations, before any worker starts
    # pynetdicom spools incoming data sets with tempfile: keep them on the data
    # volume so the archive can rename them into the object store.
    tempfile.tempdir = str(storage.spool_dir)
    listener = DicomListener(archive, dicom)
    workers: list[multiprocessing.process.BaseProcess] = []
    if dicom_enabled:
        listener.start()
        if spawn_workers:
            workers = _start_workers(storage, dicom)
    server: _Server | None = None
    if http_enabled:
        config = uvicorn.Config(
            create_app(archive),
            host=http.host,
            port=http.http_port,
            log_level="info",
            access_log=False,
            lifespan="on",
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
        archive.db.dispose()
        log.info("stopped")


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
