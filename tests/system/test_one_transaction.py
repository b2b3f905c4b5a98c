"""A record written through any door commits with its audit entry in one transaction, or neither is kept.

The database itself refuses the audit entry (a trigger on ``audit_events``), so the record's
own statements have already run when the unit of work fails: nothing of it may remain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from ndt_pacs.cli import main
from storage.archive import Archive
from storage.audit import Actor
from storage.errors import IndexUnavailable
from storage.index.models import Annotation, AuditEvent, Instance, Peer
from tests.support.accounts import add_account
from tests.support.factories import make_instance, write_part10
from tests.support.webutil import http_server

INSPECTOR = Actor(name="inspector", kind="user")
_SQLITE_REFUSE = (
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
)
_PG_REFUSE = [
    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
    " LANGUAGE plpgsql",
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
]


def _count(archive: Archive, model: Any) -> int:
    with archive.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def image(archive: Archive, tmp_path: Path) -> str:
    ds = make_instance(rows=100, columns=200)
    archive.store_file(write_part10(ds, tmp_path / "img.dcm"), INSPECTOR)
    return str(ds.SOPInstanceUID)


@pytest.fixture
def refuse_audit(archive: Archive) -> Iterator[None]:
    """From now on the database refuses every audit entry."""
    with archive.db.engine.begin() as conn:
        for statement in [_SQLITE_REFUSE] if archive.db.is_sqlite else _PG_REFUSE:
            conn.execute(text(statement))
    yield
    with archive.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_audit" + ("" if archive.db.is_sqlite else " ON audit_events")))
        if not archive.db.is_sqlite:
            conn.execute(text("DROP FUNCTION refuse_audit()"))


def _annotate(base: str, image: str) -> httpx.Response:
    body = {"kind": "length", "points": [{"x": 0, "y": 0}, {"x": 20, "y": 10}], "frame": 1}
    return httpx.post(f"{base}/api/images/{image}/annotations", json=body, timeout=30)


@pytest.fixture
def inspector(archive: Archive) -> str:
    """The account the HTTP tests annotate as (created before any trigger refuses audit entries)."""
    return add_account(archive.db, "test-inspector", "inspector")


def test_http_annotation_commits_with_its_audit_entry(archive: Archive, image: str, inspector: str) -> None:
    entries = _count(archive, AuditEvent)
    with http_server(archive, role="inspector", user=inspector) as base:
        assert _annotate(base, image).status_code == 201
    assert _count(archive, Annotation) == 1
    with archive.db.read_session() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.id > entries)).all()
    assert "annotation-create" in actions


def test_http_annotation_without_its_audit_entry_is_not_kept(
    archive: Archive, image: str, inspector: str, refuse_audit: None
) -> None:
    entries = _count(archive, AuditEvent)
    with http_server(archive, role="inspector", user=inspector) as base:
        response = _annotate(base, image)
    assert response.status_code == 503, response.text
    assert _count(archive, Annotation) == 0
    assert _count(archive, AuditEvent) == entries


def test_cli_peer_without_its_audit_entry_is_not_kept(
    archive: Archive, refuse_audit: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_DATABASE_URL", archive.db.engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("PACS_STORAGE_URL", raising=False)
    data_dir = archive.spool_dir.parent
    assert main(["peer", "add", "CT01", "--host", "127.0.0.1", "--port", "104", "--data-dir", str(data_dir)]) == 1
    assert "unavailable" in capsys.readouterr().err
    assert _count(archive, Peer) == 0
    assert _count(archive, AuditEvent) == 0


def test_stored_instance_without_its_audit_entry_is_not_indexed(
    archive: Archive, tmp_path: Path, refuse_audit: None
) -> None:
    with pytest.raises(IndexUnavailable):
        archive.store_file(write_part10(make_instance(), tmp_path / "one.dcm"), INSPECTOR)
    assert _count(archive, Instance) == 0
    assert _count(archive, AuditEvent) == 0
