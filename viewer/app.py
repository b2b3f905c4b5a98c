"""The FastAPI application: built around one archive core instance."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from storage import __version__
from storage.factory import Core
from viewer import api, ui
from viewer.api import strict_query
from viewer.auth import check_permissions
from viewer.dicomweb import install_error_handlers, qido, rendered, stow, wado, wado_uri


def create_app(core: Core, *, permissions: Iterable[str] | None = None) -> FastAPI:
    """The HTTP application serving the archive *core* (its services built by the composition root).

    *permissions*: grant callers only these (see :data:`viewer.auth.PERMISSIONS`); every
    permission when None (until accounts and roles exist).
    """
    app = FastAPI(title="ndt-pacs", version=__version__, summary="NDT image archive (DICOM / DICONDE)")
    archive = core.archive
    app.state.core = core
    app.state.archive = archive
    app.state.granted_permissions = None if permissions is None else check_permissions(permissions)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> JSONResponse:
        """Version and the state of the index database and the object store."""
        state: dict[str, Any] = archive.health()
        ok = all(state.values())
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "database": "up" if state["database"] else "down",
            "object_store": "up" if state["object_store"] else "down",
        }
        if archive.intake is not None:  # deferred indexing: acknowledged objects waiting for the indexer
            body["indexer"] = "running" if state["indexer"] else "not running"
            body["intake"] = {"waiting": len(archive.intake.entries()), "set_aside": len(archive.intake.rejected())}
        return JSONResponse(body, status_code=200 if ok else 503)

    api.install(app)
    strict_query.install(app)
    ui.install(app)
    install_error_handlers(app)
    app.include_router(stow.router)
    app.include_router(qido.router)
    app.include_router(wado.router)
    app.include_router(rendered.router)
    app.include_router(wado_uri.router)
    return app
