"""Logging in and out of the viewer, and ``GET /api/me`` (DESIGN.md, Accounts).

``POST /api/session`` checks the name and password (rate-limited and audited by the core)
and sets the session cookie: HttpOnly, SameSite=Strict, Secure when the request came over
HTTPS. The answer carries the CSRF token that cookie-authenticated changes must send back
in ``X-CSRF-Token``. Scripts use ``Authorization: Bearer`` or HTTP Basic instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from storage.records import accounts
from storage.records.permissions import PERMISSIONS, QUALIFIED, Certificate, by_method
from viewer.auth import (
    INVALID_CREDENTIALS,
    PUBLIC,
    SESSION_COOKIE,
    Caller,
    SecuredRouter,
    client_address,
    decide,
    identify,
    request_actor,
    require,
)

router = SecuredRouter(prefix="/api", tags=["session"])


class Login(BaseModel):
    """A login form."""

    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


def _certificate(cert: Certificate, today: Any) -> dict[str, Any]:
    problem = cert.problem(today)
    return {
        "method": cert.method,
        "level": cert.level,
        "certificate": cert.certificate,
        "issuer": cert.issuer,
        "valid_from": cert.valid_from.isoformat() if cert.valid_from else None,
        "valid_until": cert.valid_until.isoformat(),
        "vision_test": cert.vision_test.isoformat() if cert.vision_test else None,
        "valid": problem is None,
        "problem": problem,
    }


def describe(request: Request, caller: Caller) -> dict[str, Any]:
    """Who the caller is and what it may do, with the reason for everything it may not."""
    identity = caller.identity
    today = accounts.now_utc().date()
    decisions = {p: decide(request, caller, p) for p in PERMISSIONS if p != PUBLIC}
    methods = by_method(identity.role, identity.certificates, today)
    return {
        "username": identity.username,
        "full_name": identity.full_name,
        "role": identity.role,
        "email": identity.email,
        "via": caller.via,
        "csrf_token": caller.csrf_token,
        "qualifications": [_certificate(c, today) for c in identity.certificates],
        "permissions": sorted(p for p, d in decisions.items() if d.allowed),
        "denied": {p: d.reason for p, d in decisions.items() if not d.allowed},
        "methods": {
            method: {p: {"allowed": d.allowed, "reason": d.reason} for p, d in checks.items() if p in QUALIFIED}
            for method, checks in methods.items()
        },
    }


def _secure(request: Request) -> bool:
    # The scheme comes from X-Forwarded-Proto only when serve trusts the proxy (uvicorn proxy_headers).
    return request.url.scheme == "https"


@router.post("/session", dependencies=[require(PUBLIC)], summary="Log in (browser session cookie)")
def login(request: Request, form: Login, response: Response) -> dict[str, Any]:
    """Check name and password; set the session cookie; answer who logged in and the CSRF token."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send the login as application/json")
    authenticator = accounts.Authenticator(request.app.state.archive.db)
    result, opened = authenticator.login(form.username, form.password, client_address(request))
    if result.throttled:
        raise HTTPException(429, "too many failed logins: try again later", headers={"Retry-After": "60"})
    if result.identity is None or opened is None:
        raise HTTPException(401, INVALID_CREDENTIALS)
    secret, csrf = opened
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="strict", secure=_secure(request), path="/", max_age=None
    )
    return describe(request, Caller(result.identity, "session", None, csrf))


@router.delete("/session", dependencies=[require("session")], status_code=204, summary="Log out")
def logout(request: Request, response: Response) -> Response:
    """End the browser session (its cookie is refused from now on) and clear the cookie."""
    caller = identify(request)
    if caller is not None and caller.session_id is not None:
        accounts.Authenticator(request.app.state.archive.db).logout(caller.session_id, request_actor(request))
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return out


@router.get("/me", dependencies=[require("session")], summary="Who am I, and what may I do")
def me(request: Request) -> dict[str, Any]:
    """Name, full name, role, qualifications, the permissions held, and why the others are not."""
    caller = identify(request)
    assert caller is not None  # require("session") refused anonymous callers
    return describe(request, caller)


def install(app: FastAPI) -> None:
    """Serve ``/api/session`` and ``/api/me``."""
    app.include_router(router)
