"""``pacs serve``: the DICOM listener and the HTTP server in one process."""

from __future__ import annotations

import logging
import tempfile

import uvicorn

from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.factory import open_archive
from storage.settings import StorageSettings
from viewer.app import create_app
from viewer.settings import HttpSettings

log = logging.getLogger("ndt_pacs")


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
    server = uvicorn.Server(config)
    try:
        server.run()  # returns after SIGINT/SIGTERM (uvicorn installs the handlers)
    finally:
        log.info("shutting down: waiting for open DICOM associations")
        listener.stop()
        archive.db.dispose()
        log.info("stopped")
