"""DICOMweb (PS3.18): STOW-RS, QIDO-RS, WADO-RS, rendered resources and WADO-URI.

Thin: routes translate HTTP into the archive core's ingest path (``Archive.store_file``),
its query model (``storage.index.query.Query``) and its retrieval methods, and the core's
results and errors back into PS3.18 responses.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from storage.errors import IndexUnavailable, InvalidQuery, NotFound, StorageUnavailable
from viewer.dicomweb.common import DicomWebError, error_response
from viewer.frames import FrameError, FrameNotFound
from viewer.rendering import RenderError


async def _dicomweb_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DicomWebError)
    return error_response(exc.status, exc.reason, exc.headers)


async def _not_found(_request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def _bad_request(_request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _unavailable(_request: Request, exc: Exception) -> Response:
    return error_response(503, str(exc), {"Retry-After": "5"})


async def _not_renderable(_request: Request, exc: Exception) -> Response:
    return error_response(406, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Map DICOMweb and archive errors to HTTP statuses with a DICOM JSON reason (never a 500)."""
    app.add_exception_handler(DicomWebError, _dicomweb_error)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(FrameNotFound, _not_found)
    app.add_exception_handler(InvalidQuery, _bad_request)
    app.add_exception_handler(RenderError, _bad_request)
    app.add_exception_handler(FrameError, _not_renderable)
    app.add_exception_handler(IndexUnavailable, _unavailable)
    app.add_exception_handler(StorageUnavailable, _unavailable)
