"""Authorization: every route declares the permission it needs, in one place.

Routes are added to :class:`SecuredRouter`, which refuses (at import time) any
route without a :func:`require` dependency. For now every permission is granted
and the caller is identified by address; the accounts issue fills in
:func:`_authorize` (tokens, HTTP Basic, sessions, NDT roles) without touching
any route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.params import Depends as DependsParam

from storage.audit import Actor


def request_actor(request: Request) -> Actor:
    """Who is calling: for now the client address (user names come with accounts)."""
    client = request.client
    host = client.host if client else "unknown"
    address = f"{host}:{client.port}" if client else None
    return Actor(name=host, address=address, kind="http")


def _authorize(request: Request, permission: str) -> Actor:
    # Accounts and roles arrive in a later issue; until then every permission is granted.
    actor = request_actor(request)
    request.state.actor = actor
    request.state.permission = permission
    return actor


def require(permission: str) -> Any:
    """Dependency declaring that a route needs *permission* (e.g. ``"studies:read"``)."""

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
