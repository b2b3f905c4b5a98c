"""In-process HTTP servers (uvicorn in a thread) serving an archive, and the accounts tests sign in with."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit, urlunsplit

import uvicorn
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass

from storage.archive import Archive
from tests.support.accounts import add_account, with_credentials
from tests.support.servers import free_port
from viewer.app import create_app
from viewer.settings import HttpSettings


def dicomweb_client(url: str) -> DICOMwebClient:
    """A dicomweb-client DICOMwebClient for *url*, signing in with HTTP Basic from its user:password part."""
    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}"))
    if parts.username is None:
        return DICOMwebClient(bare)
    session = create_session_from_user_pass(unquote(parts.username), unquote(parts.password or ""))
    return DICOMwebClient(bare, session=session)


@contextmanager
def http_server(
    archive: Archive,
    *,
    permissions: Iterable[str] | None = None,
    role: str | None = "device",
    user: str | None = None,
    settings: HttpSettings | None = None,
    trust_proxy: bool = False,
) -> Iterator[str]:
    """Serve *archive* on a free loopback port; yields the base URL.

    With *role*, the URL carries HTTP Basic credentials of an account with that role (named
    *user*, default ``test-ROLE``); ``role=None`` gives an anonymous URL. *permissions*: the
    server grants at most these.
    """
    port = free_port()
    app = create_app(archive, permissions=permissions, settings=settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        proxy_headers=trust_proxy,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("HTTP server did not start")
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    if role is not None:
        name = add_account(archive.db, user or f"test-{role}", role)
        base = with_credentials(base, name)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
