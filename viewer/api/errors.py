"""The ``/api`` error contract, in one place: archive errors and bad parameters to HTTP statuses.

Every ``/api`` route is an :class:`ApiRoute`, which maps a :mod:`storage.errors` error (raised by
the route, a dependency or the unit of work's commit) to ``{"detail": ...}`` with its status.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from storage.errors import ArchiveError, IndexUnavailable, InvalidQuery, NotFound, StorageUnavailable
from storage.records.annotations import AnnotationConflict, InvalidAnnotation
from viewer.api.models import ApiError

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Bad parameter (the reason is in detail)"},
    404: {"model": ApiError, "description": "Not found"},
    503: {"model": ApiError, "description": "Index or object store unavailable"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ApiError, "description": "The caller lacks the annotations:write permission"},
    409: {"model": ApiError, "description": "The image changed since it was drawn on, or already withdrawn"},
}


class ApiProblem(Exception):
    """An HTTP status with a reason, raised by a route for what is not an archive error."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def status_of(exc: ArchiveError) -> int:
    """The HTTP status of an archive error."""
    if isinstance(exc, InvalidQuery | InvalidAnnotation):
        return 400
    if isinstance(exc, AnnotationConflict):
        return 409
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IndexUnavailable | StorageUnavailable):
        return 503
    return 500


def problem(status: int, detail: str) -> Response:
    """The ``/api`` error body."""
    return JSONResponse({"detail": detail}, status_code=status)


class ApiRoute(APIRoute):
    """A route whose archive errors and :class:`ApiProblem` are answered as ``{"detail"}`` with their status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, wrapped in the one mapping of errors to statuses."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiProblem as exc:
                return problem(exc.status, exc.detail)
            except ArchiveError as exc:
                status = status_of(exc)
                return problem(status, str(exc) if status != 500 else "archive error")

        return route


def install(app: FastAPI) -> None:
    """400 (not 422) with the reason for bad ``/api`` parameters."""

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith("/api/"):
            reasons = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
            return problem(400, "; ".join(reasons))
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, invalid)
