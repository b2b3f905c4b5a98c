"""``pacs user`` and ``pacs token`` (DESIGN.md, Accounts), run as the command line runs them."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ndt_pacs.cli import main
from storage.factory import open_archive
from storage.index.models import AuditEvent, User
from tests.support.servers import make_settings
from tests.support.webutil import http_server


@pytest.fixture
def pacs(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*args, "--data-dir", str(tmp_path / "data")])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_users_qualifications_and_tokens(pacs, tmp_path: Path) -> None:
    # passwords: too short and too common are refused, and nothing is created
    assert pacs("user", "add", "ada", "--role", "admin", "--password-stdin", stdin="short\n")[2].startswith(
        "error: password too short"
    )
    code, _, err = pacs("user", "add", "ada", "--role", "admin", "--password-stdin", stdin="password1234\n")
    assert (code, err) == (2, "error: password too common: choose another\n")
    assert "ada" not in pacs("user", "list")[1]
    code, out, err = pacs(
        "user", "add", "Ada", "--role", "admin", "--full-name", "Ada Admin", "--email", "ada@example.org",
        "--password-stdin", stdin="a-long-pass-phrase-7\n",
    )  # fmt: skip
    assert code == 0, err
    assert out == "added ada (admin); password set\n"
    assert pacs("user", "add", "ada", "--role", "auditor")[0] == 2  # taken (names are case-insensitive)
    assert pacs("user", "add", "ines", "--role", "inspector", "--full-name", "Ines Inspector")[0] == 0
    assert pacs("user", "add", "anna", "--role", "auditor")[0] == 0
    assert pacs("user", "add", "ct-bay-3", "--role", "device")[0] == 0

    # NDT qualifications
    code, out, err = pacs(
        "user", "qualify", "ines", "--method", "rt", "--level", "2", "--cert", "RT2-0042", "--issuer", "DGZfP",
        "--valid-until", "2099-12-31", "--vision-test", "2026-11-01",
    )  # fmt: skip
    assert code == 0, err
    assert out == "ines: RT Level 2, certificate RT2-0042, valid until 2099-12-31\n"
    bad_date = pacs("user", "qualify", "ines", "--method", "UT", "--level", "2", "--cert", "X", "--valid-until", "soon")
    assert bad_date[0] == 2
    assert "YYYY-MM-DD" in bad_date[2]
    rt2 = ("--method", "RT", "--level", "2", "--cert", "X", "--valid-until", "2099-01-01")
    auditor = pacs("user", "qualify", "anna", *rt2)
    assert auditor[2] == "error: only inspectors hold NDT qualifications; anna is auditor\n"
    listing = pacs("user", "list")[1]
    assert "ines                  inspector   active    Ines Inspector" in listing
    assert "RT Level 2  cert RT2-0042  DGZfP  until 2099-12-31  vision test 2026-11-01" in listing

    # tokens: printed once, alone on the last line; listed by prefix; revoked at once
    code, out, err = pacs("token", "create", "ct-bay-3", "--expires-days", "30")
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("pacs_")
    assert len(token) > 40
    listed = pacs("token", "list")[1]
    assert token not in listed
    assert token[:12] + "…" in listed
    assert "active" in listed
    archive = open_archive(make_settings(tmp_path / "data"))
    with http_server(archive, role=None) as base:
        me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert (me.status_code, me.json()["username"], me.json()["role"]) == (200, "ct-bay-3", "device")
        assert pacs("token", "revoke", "1")[0] == 0
        assert httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert pacs("token", "revoke", "1")[0] == 2
        assert "revoked" in pacs("token", "list")[1]
        # passwords change; disabled accounts are refused and never deleted
        assert pacs("user", "passwd", "ines", "--password-stdin", stdin="another-long-phrase-9\n")[0] == 0
        ines = httpx.get(f"{base}/api/me", auth=("ines", "another-long-phrase-9"))
        assert ines.json()["full_name"] == "Ines Inspector"
        assert pacs("user", "disable", "ines")[0] == 0
        assert httpx.get(f"{base}/api/me", auth=("ines", "another-long-phrase-9")).status_code == 401
    assert "ines                  inspector   disabled" in pacs("user", "list")[1]
    assert pacs("user", "disable", "nobody")[2] == "error: no user nobody\n"

    # every change is in the audit log, attributed to the command line, chain intact
    with archive.db.read_session() as session:
        actions = [(e.action, e.actor) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert session.scalar(select(User.password_hash).where(User.username == "ada")).startswith("$argon2id$")
    assert [a for a, _ in actions if a.startswith(("user_", "token_"))] == [
        "user_add", "user_add", "user_add", "user_add", "user_qualify", "token_create", "token_revoke",
        "user_passwd", "user_disable",
    ]  # fmt: skip
    assert all(actor.startswith("system:pacs ") for a, actor in actions if a.startswith(("user_", "token_")))
    assert pacs("audit", "verify")[0] == 0
    archive.db.dispose()
