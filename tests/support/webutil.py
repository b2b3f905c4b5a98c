"""An in-process HTTP server (uvicorn in a thread) serving an archive, for DICOMweb tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import uvicorn

from storage.archive import Archive
from storage.factory import build_core
from tests.support.servers import free_port
from viewer.app import create_app


@contextmanager
def http_server(archive: Archive, *, permissions: Iterable[str] | None = None) -> Iterator[str]:
    """Serve *archive* on a free loopback port (granting only *permissions* when given); yields the base URL."""
    port = free_port()
    app = create_app(build_core(archive), permissions=permissions)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
