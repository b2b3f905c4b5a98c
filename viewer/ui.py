"""The web viewer's pages: static HTML, CSS and JavaScript modules from ``viewer/static`` (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from viewer.auth import PUBLIC, SecuredRouter, require

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = SecuredRouter(tags=["viewer"], include_in_schema=False)


@router.get("/", dependencies=[require("viewer:open")])
def index() -> FileResponse:
    """The single page of the viewer; routes are in the URL fragment (#/search, #/component/...)."""
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get("/ui/{name:path}", dependencies=[require("viewer:open")])
def static_file(name: str) -> FileResponse:
    """A file of the viewer (only files under viewer/static with a known type)."""
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file() or path.suffix not in _TYPES:
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


# What the login page needs, served without credentials.
LOGIN_FILES = frozenset({"login.js", "to-login.js", "style.css", "icon.svg"})


@router.get("/login", dependencies=[require(PUBLIC)])
def login_page() -> FileResponse:
    """The login page (no credentials needed)."""
    return FileResponse(STATIC / "login.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get("/login/{name}", dependencies=[require(PUBLIC)])
def login_file(name: str) -> FileResponse:
    """A file the login page uses (only those in LOGIN_FILES)."""
    if name not in LOGIN_FILES:
        raise HTTPException(404, "not found")
    path = STATIC / name
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the viewer at ``/``."""
    app.include_router(router)
