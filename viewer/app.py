"""The FastAPI application: built around one archive core instance."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage import __version__
from storage.archive import Archive
from viewer import ui
from viewer.api import evaluations as evaluation_routes
from viewer.api import indications as indication_routes
from viewer.api import quality as quality_routes
from viewer.api import routes as api_routes
from viewer.api import session as session_routes
from viewer.api import strict_query
from viewer.auth import SecuredRouter, check_permissions, require
from viewer.dicomweb import install_error_handlers, qido, rendered, stow, wado, wado_uri
from viewer.settings import HttpSettings

_TO_LOGIN = (
    '<!doctype html><meta charset="utf-8"><title>ndt-pacs</title><script src="/login/to-login.js"></script>'
    '<noscript><meta http-equiv="refresh" content="0; url=/login"></noscript><p>Please <a href="/login">log in</a>.</p>'
)


def create_app(
    archive: Archive, *, permissions: Iterable[str] | None = None, settings: HttpSettings | None = None
) -> FastAPI:
    """The HTTP application serving *archive*.

    Every caller is authenticated and authorized per route (:mod:`viewer.auth`).
    *permissions*: this server grants at most these (a read-only node), whatever the roles allow.
    *settings*: session idle timeout and the like (default: from the environment).
    """
    app = FastAPI(
        title="ndt-pacs",
        version=__version__,
        summary="NDT image archive (DICOM / DICONDE)",
        openapi_url=None,  # served below, to signed-in callers only
        docs_url=None,
        redoc_url=None,
    )
    app.state.archive = archive
    app.state.granted_permissions = None if permissions is None else check_permissions(permissions)
    app.state.http_settings = settings or HttpSettings()
    described = SecuredRouter(include_in_schema=False)

    @described.get("/openapi.json", dependencies=[require("session")])
    def openapi() -> JSONResponse:
        """The OpenAPI description of the REST API."""
        return JSONResponse(app.openapi())

    @described.get("/docs", dependencies=[require("session")])
    def docs() -> HTMLResponse:
        """Interactive API documentation (Swagger UI)."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ndt-pacs API")

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

    app.include_router(described)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser opening the viewer without a session is sent to the login page (still a 401).
        if exc.status_code == 401 and request.method == "GET" and request.url.path == "/":
            return HTMLResponse(_TO_LOGIN, status_code=401, headers=exc.headers)
        return await http_exception_handler(request, exc)

    session_routes.install(app)
    app.include_router(indication_routes.router)
    app.include_router(evaluation_routes.router)
    api_routes.install(app)
    quality_routes.install(app)
    strict_query.install(app)
    ui.install(app)
    install_error_handlers(app)
    app.include_router(stow.router)
    app.include_router(qido.router)
    app.include_router(wado.router)
    app.include_router(rendered.router)
    app.include_router(wado_uri.router)
    return app
