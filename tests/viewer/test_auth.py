"""Authentication and authorization over real HTTP: every route, every role, sessions, tokens, Basic.

The route table below is the contract: a route added to the application without an entry here
fails :func:`test_route_table_is_complete`, and each entry's permission is checked against the
roles of :mod:`storage.records.permissions` (the matrix docs/security.md prints).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from requests.exceptions import HTTPError
from sqlalchemy import func, select

from storage.archive import Archive
from storage.factory import build_core
from storage.index.models import (
    Annotation,
    AuditEvent,
    Evaluation,
    Instance,
    LoginFailure,
    MarkedIndicationVersion,
    Signature,
)
from storage.records import accounts
from storage.records.permissions import QUALIFIED, ROLE_PERMISSIONS, decide
from tests.support.accounts import PASSWORD, TESTS, add_account, bearer, token_for, with_credentials
from tests.support.factories import make_instance, write_part10
from tests.support.viewer_data import ACTOR
from tests.support.webutil import dicomweb_client, http_server
from viewer.app import create_app
from viewer.auth import permission_of
from viewer.settings import HttpSettings

# (method, path) -> the permission the route declares. "public": no credentials needed.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/login"): "public",
    ("GET", "/login/{name}"): "public",
    ("POST", "/api/session"): "public",
    ("DELETE", "/api/session"): "session",
    ("GET", "/api/me"): "session",
    ("GET", "/openapi.json"): "session",
    ("GET", "/docs"): "session",
    ("GET", "/"): "viewer:open",
    ("GET", "/ui/{name:path}"): "viewer:open",
    ("GET", "/api/components"): "studies:read",
    ("GET", "/api/inspections"): "studies:read",
    ("GET", "/api/components/{serial:path}"): "studies:read",
    ("GET", "/api/inspections/{uid}"): "studies:read",
    ("GET", "/api/images/{uid}"): "studies:read",
    ("GET", "/api/vocabulary"): "studies:read",
    ("GET", "/api/images/{uid}/frames/{frame}/pixels"): "images:read",
    ("GET", "/api/images/{uid}/annotations"): "images:read",
    ("POST", "/api/images/{uid}/annotations"): "annotations:write",
    ("POST", "/api/annotations/{annotation_id}/withdraw"): "annotations:write",
    ("GET", "/api/indication-types"): "studies:read",
    ("GET", "/api/acceptance-standards"): "studies:read",
    ("GET", "/api/images/{uid}/indications"): "studies:read",
    ("POST", "/api/images/{uid}/indications"): "annotations:write",
    ("PUT", "/api/indications/{indication_id}"): "annotations:write",
    ("GET", "/api/indications/{indication_id}/history"): "studies:read",
    ("GET", "/api/inspections/{uid}/evaluation"): "studies:read",
    ("POST", "/api/inspections/{uid}/evaluation"): "evaluations:write",
    ("POST", "/api/inspections/{uid}/signatures"): "evaluations:write",
    ("GET", "/api/inspections/{uid}/report.pdf"): "studies:read",
    ("POST", "/dicom-web/studies"): "studies:write",
    ("POST", "/dicom-web/studies/{study}"): "studies:write",
    ("GET", "/dicom-web/studies"): "studies:read",
    ("GET", "/dicom-web/series"): "studies:read",
    ("GET", "/dicom-web/instances"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/instances"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances"): "studies:read",
    ("GET", "/dicom-web/studies/{study}"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/metadata"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/metadata"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{frames}"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/thumbnail"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/thumbnail"): "studies:read",
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{sop}/thumbnail"): "studies:read",
    ("GET", "/wado"): "studies:read",
    ("GET", "/api/audit"): "audit:read",
    ("GET", "/api/components/{serial}/history"): "audit:read",
    ("GET", "/api/components/{serial}/evidence"): "audit:read",
    ("GET", "/api/inspections/{uid}/evidence"): "audit:read",
    ("GET", "/api/quality/summary"): "quality:read",
    ("GET", "/api/quality/pareto"): "quality:read",
    ("GET", "/api/quality/p-chart"): "quality:read",
    ("GET", "/api/quality/u-chart"): "quality:read",
    ("GET", "/api/quality/turnaround"): "quality:read",
    ("GET", "/api/quality/qualifications"): "quality:read",
    ("GET", "/api/quality/inspections"): "quality:read",
}
ROLES = ("admin", "inspector", "auditor", "quality", "device")
SAFE = {"GET", "HEAD", "OPTIONS"}
# Changes of the caller's own session, not of records: an auditor may log in and out.
OWN_SESSION = {("POST", "/api/session"), ("DELETE", "/api/session")}
RT2 = {"method": "RT", "level": 2, "certificate": "RT2-1", "valid_until": "2099-01-01", "vision_test": None}


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _walk(list(nested.routes))
        else:
            yield route


def _declared(archive: Archive) -> dict[tuple[str, str], str]:
    app = create_app(build_core(archive))
    found: dict[tuple[str, str], str] = {}
    for route in _walk(list(app.routes)):
        for method in getattr(route, "methods", None) or ():
            permission = permission_of(list(route.dependencies)) if isinstance(route, APIRoute) else None
            found[(method, route.path)] = permission or "public"
    return found


class Site:
    """A live server of an archive holding one image, and a token per role."""

    def __init__(self, base: str, archive: Archive, sop: Any) -> None:
        self.base, self.archive, self.ds = base, archive, sop
        vision = (date.today() - timedelta(days=30)).isoformat()
        self.tokens = {role: token_for(archive.db, f"the-{role}", role) for role in ROLES}
        self.tokens["inspector-rt2"] = token_for(
            archive.db, "ines", "inspector", qualifications=[{**RT2, "vision_test": vision}]
        )

    def url(self, path: str) -> str:
        ds = self.ds
        values = {
            "study": ds.StudyInstanceUID,
            "series": ds.SeriesInstanceUID,
            "sop": ds.SOPInstanceUID,
            "uid": ds.SOPInstanceUID,
            "frames": "1",
            "frame": "1",
            "tag": "7FE00010",
            "serial:path": ds.PatientID,
            "serial": ds.PatientID,
            "name:path": "app.js",
            "name": "login.js",
            "annotation_id": "1",
            "indication_id": "1",
        }
        return self.base + re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)

    def call(self, method: str, path: str, role: str | None, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(bearer(self.tokens[role]) if role else {})}
        return httpx.request(method, self.url(path), headers=headers, timeout=30, **kwargs)


@pytest.fixture
def site(archive: Archive, tmp_path: Path) -> Iterator[Site]:
    ds = make_instance(Modality="DX")
    archive.store_file(write_part10(ds, tmp_path / "dx.dcm"), ACTOR)
    with http_server(archive, role=None) as base:
        yield Site(base, archive, ds)


def _count(archive: Archive, model: Any, *where: Any) -> int:
    with archive.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_route_table_is_complete(archive: Archive) -> None:
    """Every route of the application is in ROUTES with the permission it declares, and no other."""
    assert _declared(archive) == ROUTES


def test_every_route_every_role(site: Site) -> None:
    """Anonymous → 401 (but public routes); a role without the permission → 403; a role with it → neither.

    A qualified permission (evaluations:*) needs the role and a valid qualification of the level: the
    unqualified inspector gets 403, the RT Level 2 inspector passes evaluations:write.
    """
    for (method, path), permission in ROUTES.items():
        anonymous = site.call(method, path, None)
        if permission == "public":
            assert anonymous.status_code not in (401, 403), (method, path, anonymous.text)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        for role in (*ROLES, "inspector-rt2"):
            response = site.call(method, path, role)
            allowed = permission in ROLE_PERMISSIONS[role.removesuffix("-rt2")]
            if permission in QUALIFIED:  # the role alone is not enough: a valid qualification of the level
                allowed = allowed and role == "inspector-rt2" and QUALIFIED[permission] <= RT2["level"]
            if allowed:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.status_code)
                assert permission in response.json()["detail"]
    assert site.archive.verify_audit().ok


def test_auditor_changes_nothing(site: Site, tmp_path: Path) -> None:
    """The auditor tries every state-changing route with a valid request: 403 each time, nothing written."""
    ds = site.ds
    other = make_instance()
    body = write_part10(other, tmp_path / "new.dcm").read_bytes()
    stow = {
        "content": b"--b\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n--b--\r\n",
        "headers": {"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
    }
    draft = {"kind": "length", "points": [{"x": 1, "y": 1}, {"x": 5, "y": 5}], "frame": 1, "instance_version": 1}
    made = site.call("POST", f"/api/images/{ds.SOPInstanceUID}/annotations", "inspector", json=draft)
    assert made.status_code == 201, made.text
    annotation_id = made.json()["id"]
    seam = [{"x": 1, "y": 1}, {"x": 5, "y": 5}]
    indication = {"kind": "rect", "points": seam, "frame": 1, "type": "LACK_OF_FUSION", "label": "LOF-1"}
    marked = site.call("POST", f"/api/images/{ds.SOPInstanceUID}/indications", "inspector", json=indication)
    assert marked.status_code == 201, marked.text
    indication_id = marked.json()["id"]
    evaluation = {"disposition": "ACCEPT", "standard": "ISO5817:B", "indications": {str(indication_id): "ACCEPT"}}
    requests = {
        ("POST", "/dicom-web/studies"): stow,
        ("POST", "/dicom-web/studies/{study}"): stow,
        ("POST", "/api/images/{uid}/annotations"): {"json": draft},
        ("POST", "/api/annotations/{annotation_id}/withdraw"): {"json": {"reason": "audit"}},
        ("POST", "/api/images/{uid}/indications"): {"json": indication},
        ("PUT", "/api/indications/{indication_id}"): {"json": {"label": "LOF-2", "version": 1}},
        ("POST", "/api/inspections/{uid}/evaluation"): {"json": evaluation},
        ("POST", "/api/inspections/{uid}/signatures"): {"json": {"meaning": "evaluated", "password": PASSWORD}},
    }
    changing = {key for key in ROUTES if key[0] not in SAFE} - OWN_SESSION
    assert changing == set(requests), "a new state-changing route: add a valid request for it here"
    audit_before = _count(site.archive, AuditEvent, AuditEvent.action != "access-denied")
    for (method, path), kwargs in requests.items():
        url_path = path.replace("{annotation_id}", str(annotation_id)).replace("{indication_id}", str(indication_id))
        url_path = url_path.replace("/inspections/{uid}", f"/inspections/{ds.StudyInstanceUID}")
        response = site.call(method, url_path, "auditor", **kwargs)
        assert response.status_code == 403, (method, path, response.text)
    assert _count(site.archive, Instance) == 1
    assert _count(site.archive, Annotation, Annotation.withdrawn_at.is_(None)) == 1
    assert _count(site.archive, MarkedIndicationVersion) == 1
    assert _count(site.archive, Evaluation) == 0
    assert _count(site.archive, Signature) == 0
    assert _count(site.archive, AuditEvent, AuditEvent.action != "access-denied") == audit_before
    denied = _count(
        site.archive, AuditEvent, AuditEvent.action == "access-denied", AuditEvent.actor == "user:the-auditor"
    )
    assert denied == len(requests)


def _login(base: str, name: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/api/session", json={"username": name, "password": password}, headers=headers)


def test_session_cookie_csrf_and_logout(archive: Archive, tmp_path: Path) -> None:
    """The cookie is HttpOnly, SameSite=Strict; changes need X-CSRF-Token; after logout the cookie is refused."""
    ds = make_instance()
    archive.store_file(write_part10(ds, tmp_path / "a.dcm"), ACTOR)
    add_account(archive.db, "ines", "inspector", full_name="Ines Inspector")
    with http_server(archive, role=None) as base:
        response = _login(base, "ines")
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("pacs_session=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP, and no trusted proxy says otherwise
        assert not _login(base, "ines", **{"X-Forwarded-Proto": "https"}).headers["set-cookie"].lower().count("secure")
        me = response.json()
        assert (me["username"], me["full_name"], me["role"], me["via"]) == (
            "ines",
            "Ines Inspector",
            "inspector",
            "session",
        )
        csrf = me["csrf_token"]
        with httpx.Client(base_url=base, cookies={"pacs_session": response.cookies["pacs_session"]}) as browser:
            assert browser.get("/api/me").json()["username"] == "ines"
            url = f"/api/images/{ds.SOPInstanceUID}/annotations"
            draft = {
                "kind": "length",
                "points": [{"x": 1, "y": 1}, {"x": 5, "y": 5}],
                "frame": 1,
                "instance_version": 1,
            }
            assert browser.post(url, json=draft).status_code == 403  # no CSRF token
            assert browser.post(url, json=draft, headers={"X-CSRF-Token": "guess"}).status_code == 403
            assert _count(archive, Annotation) == 0
            saved = browser.post(url, json=draft, headers={"X-CSRF-Token": csrf})
            assert saved.status_code == 201
            assert saved.json()["author"] == "user:ines"
            assert browser.delete("/api/session").status_code == 403  # logging out is a change too
            assert browser.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
            assert browser.get("/api/me").status_code == 401
            assert browser.get("/").status_code == 401
        with archive.db.read_session() as session:
            actions = [
                (e.action, e.outcome)
                for e in session.scalars(
                    select(AuditEvent).where(AuditEvent.actor == "user:ines").order_by(AuditEvent.id)
                )
            ]
        assert ("login", "success") in actions
        assert ("logout", "success") in actions
        assert ("access-denied", "failure") in actions
    with http_server(archive, role=None, trust_proxy=True) as behind_proxy:
        forwarded = _login(behind_proxy, "ines", **{"X-Forwarded-Proto": "https"})
        assert "secure" in {p.strip().lower() for p in forwarded.headers["set-cookie"].split(";")}


def test_idle_session_expires(archive: Archive) -> None:
    """A session unused for longer than the idle timeout is refused."""
    add_account(archive.db, "quinn", "quality")
    with http_server(archive, role=None, settings=HttpSettings(session_idle_timeout=1.0)) as base:
        cookies = _login(base, "quinn").cookies
        assert httpx.get(f"{base}/api/me", cookies=cookies).status_code == 200
        time.sleep(1.3)
        assert httpx.get(f"{base}/api/me", cookies=cookies).status_code == 401


def test_revoked_token_and_disabled_account_are_refused_at_once(archive: Archive) -> None:
    """Revoking a token or disabling an account takes effect on the next request, on every way in."""
    token = token_for(archive.db, "scanner", "device")
    second = token_for(archive.db, "scanner", "device")
    add_account(archive.db, "anna", "auditor")
    with http_server(archive, role=None) as base:
        assert httpx.get(f"{base}/dicom-web/studies", headers=bearer(token)).status_code == 200
        with archive.db.read_session() as session:
            token_id = max(t.id for t in accounts.list_tokens(session) if t.username == "scanner")
        archive.db.run(lambda uow: accounts.revoke_token(uow.session, TESTS, token_id - 1))
        assert httpx.get(f"{base}/dicom-web/studies", headers=bearer(token)).status_code == 401
        assert httpx.get(f"{base}/dicom-web/studies", headers=bearer(second)).status_code == 200
        basic = with_credentials(base, "anna")
        cookies = _login(base, "anna").cookies
        assert httpx.get(f"{basic}/api/me").status_code == 200
        assert httpx.get(f"{base}/api/me", cookies=cookies).status_code == 200
        archive.db.run(lambda uow: accounts.disable_user(uow.session, TESTS, "anna"))
        archive.db.run(lambda uow: accounts.disable_user(uow.session, TESTS, "scanner"))
        assert httpx.get(f"{basic}/api/me").status_code == 401
        assert httpx.get(f"{base}/api/me", cookies=cookies).status_code == 401
        assert httpx.get(f"{base}/dicom-web/studies", headers=bearer(second)).status_code == 401
        assert _login(base, "anna").status_code == 401


def test_basic_auth_with_dicomweb_client(archive: Archive, tmp_path: Path) -> None:
    """dicomweb-client signs in with HTTP Basic; a wrong password is refused like an unknown name."""
    ds = make_instance()
    ds.preamble = b"\0" * 128
    with http_server(archive, role="device", user="dr-panel-2") as url:
        client = dicomweb_client(f"{url}/dicom-web")
        client.store_instances([ds])
        assert [s["0020000D"]["Value"][0] for s in client.search_for_studies()] == [ds.StudyInstanceUID]
        wrong = dicomweb_client(with_credentials(url, "dr-panel-2", "not-the-password") + "/dicom-web")
        with pytest.raises(HTTPError) as refused:
            wrong.search_for_studies()
        assert refused.value.response.status_code == 401
    with archive.db.read_session() as session:
        stored = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "store")).one()
    assert stored == "device:dr-panel-2"


def test_wrong_password_and_unknown_user_answer_alike(archive: Archive) -> None:
    """Login form and Basic: the same status and body whether the name exists or not; both audited."""
    add_account(archive.db, "ines", "inspector")
    with http_server(archive, role=None) as base:
        wrong = _login(base, "ines", "wrong-password-123")
        unknown = _login(base, "nobody-here", "wrong-password-123")
        assert (
            (wrong.status_code, wrong.json())
            == (unknown.status_code, unknown.json())
            == (
                401,
                {"detail": "invalid user name or password"},
            )
        )
        basic_wrong = httpx.get(f"{with_credentials(base, 'ines', 'wrong-password-123')}/api/me")
        basic_unknown = httpx.get(f"{with_credentials(base, 'nobody-here', 'wrong-password-123')}/api/me")
        assert (basic_wrong.status_code, basic_wrong.json()) == (basic_unknown.status_code, basic_unknown.json())
        assert basic_wrong.status_code == 401
    with archive.db.read_session() as session:
        failures = session.execute(
            select(AuditEvent.detail, AuditEvent.outcome, AuditEvent.actor).where(AuditEvent.action == "login")
        ).all()
    reasons = sorted(json.loads(e.detail)["reason"] for e in failures)
    assert reasons == ["unknown user", "unknown user", "wrong password", "wrong password"]
    assert all(e.outcome == "failure" and e.actor == "http:anonymous" for e in failures)


def test_failed_logins_are_rate_limited(archive: Archive) -> None:
    """After repeated failures the account is refused (even with the right password), then the address."""
    add_account(archive.db, "ines", "inspector")
    add_account(archive.db, "otto", "inspector")
    with http_server(archive, role=None) as base:
        for _ in range(accounts.MAX_FAILURES_PER_ACCOUNT):
            assert _login(base, "ines", "wrong-password-123").status_code == 401
        assert _login(base, "ines").status_code == 429  # the right password, too late
        assert httpx.get(f"{with_credentials(base, 'ines')}/api/me").status_code == 429
        assert _login(base, "otto").status_code == 200  # another account from the same address
        spent = _count(archive, LoginFailure)
        for k in range(accounts.MAX_FAILURES_PER_ADDRESS - spent):
            assert _login(base, f"guess-{k}", "wrong-password-123").status_code == 401
        assert _login(base, "otto").status_code == 429  # this address is now refused
    with archive.db.read_session() as session:
        limited = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "login")).all()
    assert any(json.loads(detail).get("reason") == "rate limited" for detail in limited)


def test_me_says_why_not(archive: Archive) -> None:
    """/api/me: Level 1, an expired certificate, an old vision test and another method each refuse evaluation."""
    today = date.today()
    recent = (today - timedelta(days=30)).isoformat()
    old = (today - timedelta(days=400)).isoformat()
    cases = {
        "level1": ([{**RT2, "level": 1, "vision_test": recent}], "RT Level 1 may not record a disposition"),
        "expired": (
            [{**RT2, "valid_until": "2026-01-31", "valid_from": "2021-02-01", "vision_test": recent}],
            "RT Level 2 certificate expired 2026-01-31",
        ),
        "vision": ([{**RT2, "vision_test": old}], f"RT Level 2: vision test of {old} is older than 12 months"),
        "ut-only": ([{**RT2, "method": "UT", "vision_test": recent}], "no RT qualification"),
    }
    tokens = {name: token_for(archive.db, name, "inspector", qualifications=q) for name, (q, _) in cases.items()}
    tokens["rt2"] = token_for(archive.db, "rt2", "inspector", qualifications=[{**RT2, "vision_test": recent}])
    with http_server(archive, role=None) as base:
        for name, (_, reason) in cases.items():
            me = httpx.get(f"{base}/api/me", headers=bearer(tokens[name])).json()
            rt = me["methods"]["RT"]["evaluations:write"]
            assert rt["allowed"] is False
            assert rt["reason"].startswith(reason), (name, rt)
            assert "evaluations:write" in me["denied"] or name == "ut-only"
            assert "annotations:write" in me["permissions"]  # every inspector measures and annotates
        me = httpx.get(f"{base}/api/me", headers=bearer(tokens["rt2"])).json()
        assert me["methods"]["RT"]["evaluations:write"] == {"allowed": True, "reason": None}
        assert me["methods"]["UT"]["evaluations:write"]["reason"].startswith("no UT qualification")
        assert (
            me["methods"]["RT"]["evaluations:approve"]["reason"]
            == "RT Level 2 may not approve an evaluation (Level 3 needed)"
        )
        assert "evaluations:write" in me["permissions"]
        assert me["qualifications"][0] | {"valid": True} == me["qualifications"][0]
        expired = httpx.get(f"{base}/api/me", headers=bearer(tokens["expired"])).json()["qualifications"][0]
        assert (expired["valid"], expired["problem"]) == (False, "RT Level 2 certificate expired 2026-01-31")
    # the core answers the same for a given day, whatever the door
    rt2 = accounts_certificates(archive, "rt2")
    assert decide("inspector", "evaluations:write", rt2, today, method="RT").allowed
    assert decide("inspector", "evaluations:write", rt2, date(2099, 1, 2), method="RT").reason == (
        "RT Level 2 certificate expired 2099-01-01"
    )
    assert not decide("auditor", "evaluations:write", rt2, today).allowed


def accounts_certificates(archive: Archive, name: str) -> Any:
    with archive.db.read_session() as session:
        return accounts.identity_of(session, name).certificates
