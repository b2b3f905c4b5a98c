"""Authorization: every route declares the permission it needs, in one place.

Routes are added to :class:`SecuredRouter`, which refuses (at import time) any
route without a :func:`require` dependency, and :func:`require` refuses any
permission not listed in :data:`PERMISSIONS`. For now the caller is identified by
address and is granted every permission, or the fixed set an application was
built with (``create_app(..., permissions=...)``: a read-only node, and the tests
of refusals). A refusal is answered 403 and audited. The accounts issue fills in
:func:`_authorize` (tokens, HTTP Basic, sessions, NDT roles) without touching
any route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam

from storage.audit import Actor, AuditRecord

# Every permission a route may require, and what it allows.
PERMISSIONS: dict[str, str] = {
    "viewer:open": "load the web viewer's pages and scripts",
    "studies:read": "search and read records: REST API, QIDO-RS, WADO-RS / WADO-URI retrieve, metadata, renderings",
    "studies:write": "store instances (STOW-RS)",
    "images:read": "read pixel values for display (the viewer's raw frames) and the annotations kept on images",
    "annotations:write": "create and withdraw annotations (measurements kept on an image)",
    "audit:read": "search the audit log, read a component's history, export evidence bundles",
}


def request_actor(request: Request) -> Actor:
    """Who is calling: for now the client address (user names come with accounts)."""
    client = request.client
    host = client.host if client else "unknown"
    address = f"{host}:{client.port}" if client else None
    return Actor(name=host, address=address, kind="http")


def _authorize(request: Request, permission: str) -> Actor:
    # Accounts and roles arrive in a later issue; until then every caller holds the application's grants.
    actor = request_actor(request)
    request.state.actor = actor
    request.state.permission = permission
    granted: frozenset[str] | None = getattr(request.app.state, "granted_permissions", None)
    if granted is not None and permission not in granted:
        archive = getattr(request.app.state, "archive", None)
        if archive is not None:
            archive.record(
                AuditRecord(
                    actor=actor,
                    action="access-denied",
                    outcome="failure",
                    detail={"permission": permission, "method": request.method, "path": request.url.path[:300]},
                )
            )
        raise HTTPException(403, f"permission {permission!r} is required")
    return actor


def check_permissions(names: Iterable[str]) -> frozenset[str]:
    """*names* as a set of known permissions; ValueError for an unknown one."""
    chosen = frozenset(names)
    unknown = chosen - PERMISSIONS.keys()
    if unknown:
        raise ValueError(f"unknown permission(s) {sorted(unknown)}; known: {', '.join(PERMISSIONS)}")
    return chosen


def require(permission: str) -> Any:
    """Dependency declaring that a route needs *permission* (one of :data:`PERMISSIONS`)."""
    check_permissions([permission])

    def dependency(request: Request) -> Actor:
        return _authorize(request, permission)

    dependency.permission = permission  # type: ignore[attr-defined]
    return Depends(dependency)


def permission_of(dependencies: list[Any]) -> str | None:
    """The permission declared among a route's dependencies, if any."""
    for dep in dependencies:
        if isinstance(dep, DependsParam) and getattr(dep.dependency, "permission", None):
            return str(dep.dependency.permission)  # type: ignore[union-attr]
    return None


class SecuredRouter(APIRouter):
    """An APIRouter whose routes must each declare ``dependencies=[require("...")]``."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Register a route; raise if it declares no permission."""
        if permission_of(list(kwargs.get("dependencies") or [])) is None:
            raise RuntimeError(f"route {path} must declare its permission: dependencies=[require('...')]")
        super().add_api_route(path, endpoint, **kwargs)
