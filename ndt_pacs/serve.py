"""``pacs serve``: the DICOM listener and the HTTP server in one process."""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
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


def serve(storage: StorageSettings, dicom: DicomSettings, http: HttpSettings) -> None:
    """Run until SIGINT/SIGTERM; then let open associations finish and close cleanly."""
    archive = open_archive(storage)
    # pynetdicom spools incoming data sets with tempfile: keep them on the data
    # volume so the archive can rename them into the object store.
    tempfile.tempdir = str(storage.spool_dir)
    listener = DicomListener(archive, dicom)
    listener.start()
    config = uvicorn.Config(
        create_app(archive),
        host=http.host,
        port=http.http_port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
    server = _Server(config)

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d received: stopping", signum)
        server.should_exit = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.run()  # returns once should_exit is set by a signal
    finally:
        log.info("shutting down: waiting for open DICOM associations")
        listener.stop()
        archive.db.dispose()
        log.info("stopped")
