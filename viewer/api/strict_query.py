"""Unknown query parameters on ``/api/`` routes are a 400, not silently ignored.

``/api/inspections?approval=REJECTED`` must not answer every inspection as if no filter had
been asked. One middleware for every ``/api/`` route, whichever router declares it: the query
parameters a route documents in the OpenAPI description are the ones it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

_PLACEHOLDER = re.compile(r"\{[^}/]+\}")


def _table(app: FastAPI) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
    """(path pattern, method, accepted query names) for every ``/api/`` operation."""
    table = []
    for path, operations in app.openapi().get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        pattern = re.compile(
            "^" + _PLACEHOLDER.sub("[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        )
        for method, operation in operations.items():
            names = frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")
            table.append((pattern, method.upper(), names))
    return table


def install(app: FastAPI) -> None:
    """Answer 400 naming the unknown parameters of any ``/api/`` request."""
    cache: list[list[tuple[re.Pattern[str], str, frozenset[str]]]] = []

    @app.middleware("http")
    async def reject_unknown_parameters(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/api/") and request.query_params:
            if not cache:
                cache.append(_table(app))
            method = "GET" if request.method == "HEAD" else request.method
            for pattern, operation_method, accepted in cache[0]:
                if operation_method == method and pattern.match(request.url.path):
                    unknown = sorted(set(request.query_params) - accepted)
                    if unknown:
                        listed = ", ".join(sorted(accepted)) or "none"
                        return JSONResponse(
                            {"detail": f"unknown query parameter(s): {', '.join(unknown)} (accepted: {listed})"},
                            status_code=400,
                        )
                    break
        return await call_next(request)
