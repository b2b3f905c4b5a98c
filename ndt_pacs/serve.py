"""``pacs serve``: the DICOM listener and the HTTP server, in one process or (``--no-http`` /
``--no-dicom``) as separate, separately scalable processes sharing one index and object store."""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
import threading
from collections.abc import Iterator

import uvicorn

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
) -> None:
    """Run until SIGINT/SIGTERM; then let open associations finish and close cleanly."""
    if not (dicom_enabled or http_enabled):
        raise ValueError("nothing to serve: --no-dicom and --no-http together")
    archive = open_archive(storage)
    # pynetdicom spools incoming data sets with tempfile: keep them on the data
    # volume so the archive can rename them into the object store.
    tempfile.tempdir = str(storage.spool_dir)
    listener = DicomListener(archive, dicom)
    if dicom_enabled:
        listener.start()
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
        listener.stop()
        archive.db.dispose()
        log.info("stopped")
