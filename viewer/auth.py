"""Authentication and authorization of every HTTP route, in one place.

Routes are added to :class:`SecuredRouter`, which refuses (at import time) any route
without a :func:`require` dependency, and :func:`require` refuses any permission not
listed in :data:`PERMISSIONS` (the core's table, :mod:`storage.records.permissions`).

:func:`_authorize` establishes who calls — a browser session cookie, ``Authorization:
Bearer <token>`` or HTTP Basic — and asks the core whether that account may use the
route's permission. Anonymous callers get 401 (except on ``public`` routes: the login
page, its files, logging in), callers lacking the permission 403 (audited), and a
cookie-authenticated state-changing request without the session's ``X-CSRF-Token``
header 403. Bad credentials are counted and rate-limited by the core; a wrong password
and an unknown name give the same answer. ``create_app(..., permissions=...)`` can
further restrict a whole server (a read-only node).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.records import accounts
from storage.records.accounts import Identity
from storage.records.permissions import PERMISSIONS as CORE_PERMISSIONS
from storage.records.permissions import Decision

# Every permission a route may require, and what it allows (the core's table).
PERMISSIONS: dict[str, str] = CORE_PERMISSIONS
PUBLIC = "public"
SESSION_COOKIE = "pacs_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INVALID_CREDENTIALS = "invalid user name or password"
# No Basic challenge: a browser would answer a Basic challenge with its own password dialog.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ndt-pacs"'}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller and how it proved who it is."""

    identity: Identity
    via: str  # "session", "bearer", "basic"
    session_id: int | None = None
    csrf_token: str | None = None


def client_address(request: Request) -> str:
    """The client's IP address (from the trusted proxy's X-Forwarded-For when configured, see serve)."""
    return request.client.host if request.client else "unknown"


def request_actor(request: Request) -> Actor:
    """Who is calling: the authenticated account, else the client address."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is not None:
        return actor
    client = request.client
    host = client.host if client else "unknown"
    address = f"{host}:{client.port}" if client else None
    return Actor(name=host, address=address, kind="http")


def _address(request: Request) -> str | None:
    client = request.client
    return f"{client.host}:{client.port}" if client else None


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _idle(request: Request) -> timedelta:
    settings = getattr(request.app.state, "http_settings", None)
    return timedelta(seconds=settings.session_idle_timeout if settings is not None else 1800)


def _unauthorized(detail: str = "authentication required") -> HTTPException:
    return HTTPException(401, detail, headers=_CHALLENGE)


def _throttled() -> HTTPException:
    return HTTPException(429, "too many failed logins: try again later", headers={"Retry-After": "60"})


def _authenticator(request: Request) -> accounts.Authenticator:
    return accounts.Authenticator(_archive(request).db)


def _by_token(request: Request, secret: str) -> Caller:
    result = _authenticator(request).token(secret, client_address(request))
    if result.throttled:
        raise _throttled()
    if result.identity is None:
        raise _unauthorized("invalid or expired token")
    return Caller(result.identity, "bearer")


def _by_password(request: Request, encoded: str) -> Caller:
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed Basic credentials") from None
    if not sep:
        raise _unauthorized("malformed Basic credentials")
    result = _authenticator(request).password(username, password, client_address(request), how="basic")
    if result.throttled:
        raise _throttled()
    if result.identity is None:
        raise _unauthorized(INVALID_CREDENTIALS)
    return Caller(result.identity, "basic")


def _by_session(request: Request, secret: str) -> Caller | None:
    found = _authenticator(request).session(secret, _idle(request))
    if found is None:
        return None
    return Caller(found.identity, "session", found.session_id, found.csrf_token)


def identify(request: Request) -> Caller | None:
    """The authenticated caller of *request* (cached on it); None when anonymous.

    Raises 401 for credentials that are wrong, 429 when failed logins are rate-limited.
    """
    if hasattr(request.state, "caller"):
        cached: Caller | None = request.state.caller
        return cached
    caller: Caller | None = None
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            caller = _by_token(request, value.strip())
        elif scheme.lower() == "basic" and value.strip():
            caller = _by_password(request, value.strip())
        else:
            raise _unauthorized("unsupported Authorization scheme: use Bearer or Basic")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            caller = _by_session(request, cookie)
    request.state.caller = caller
    return caller


def decide(request: Request, caller: Caller, permission: str) -> Decision:
    """The core's decision for *caller*, within what this server grants at all."""
    decision = caller.identity.decide(permission)
    granted: frozenset[str] | None = getattr(request.app.state, "granted_permissions", None)
    if decision.allowed and granted is not None and permission not in granted:
        return Decision(False, f"this server does not grant {permission!r}")
    return decision


def _deny(request: Request, actor: Actor, permission: str, reason: str) -> HTTPException:
    _archive(request).record(
        AuditRecord(
            actor=actor,
            action="access-denied",
            outcome="failure",
            detail={
                "permission": permission,
                "method": request.method,
                "path": request.url.path[:300],
                "reason": reason,
            },
        )
    )
    return HTTPException(403, f"permission {permission!r} is required: {reason}")


def _authorize(request: Request, permission: str) -> Actor:
    request.state.permission = permission
    if permission == PUBLIC:
        return request_actor(request)
    caller = identify(request)
    if caller is None:
        raise _unauthorized()
    actor = caller.identity.actor(_address(request))
    request.state.actor = actor
    if caller.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not caller.csrf_token or not accounts.same_secret(sent, caller.csrf_token):
            _archive(request).record(
                AuditRecord(
                    actor=actor,
                    action="access-denied",
                    outcome="failure",
                    detail={"method": request.method, "path": request.url.path[:300], "reason": "CSRF token"},
                )
            )
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (cookie sessions send it on changes)")
    decision = decide(request, caller, permission)
    if not decision.allowed:
        raise _deny(request, actor, permission, decision.reason or "not allowed")
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
