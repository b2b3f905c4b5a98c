"""The audit log read back out (JSON Lines, CSV, DICOM audit messages) and anchored outside the database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from storage.archive import Archive
from storage.audit import Actor, AuditRecord, anchor, export
from storage.audit.log import hash_fields
from storage.index.models import AuditEvent
from tests.support.factories import make_instance, write_part10
from tests.support.servers import lift_audit_protection

DEVICE = Actor("DEVICE1", "127.0.0.1:4000")
INSPECTOR = Actor("jürgen", "10.0.0.7:51000", kind="user")


def _fill(archive: Archive, tmp_path: Path) -> None:
    """Three stores, a refused read and an entry with non-ASCII detail."""
    for n in range(3):
        archive.store_file(write_part10(make_instance(PatientID=f"SN-{n}"), tmp_path / f"{n}.dcm"), DEVICE)
    archive.record(
        AuditRecord(INSPECTOR, "access-denied", "failure", detail={"reason": "no <RT> Level 2", "path": "/api/x"})
    )
    archive.record(AuditRecord(INSPECTOR, "api-search", "success", detail={"criteria": {"name": "Schweißnaht"}}))


def _exported(archive: Archive, **window: datetime) -> list[export.ExportedEntry]:
    with archive.db.read_session() as session:
        return list(export.entries(session, **window))


def test_jsonl_export_carries_every_field_and_the_chain(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    text = export.render(_exported(archive), "jsonl")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["action"] for line in lines] == ["store"] * 3 + ["access-denied", "api-search"]
    assert lines[-1]["detail"] == {"criteria": {"name": "Schweißnaht"}}
    assert lines[0]["prev_hash"] == "0" * 64
    for before, after in zip(lines, lines[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    for entry in _exported(archive):  # every exported entry recomputes to its stored hash
        assert export.recomputed_hash(entry) == entry.hash


def test_a_changed_exported_field_no_longer_matches_its_hash(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    entry = _exported(archive)[3]
    forged = export.ExportedEntry(**{**entry.__dict__, "outcome": "success"})
    assert export.recomputed_hash(forged) != entry.hash


def test_csv_export_has_a_header_and_one_row_per_entry(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    rows = list(csv.DictReader(io.StringIO(export.render(_exported(archive), "csv"))))
    assert len(rows) == 5
    assert list(rows[0]) == export.CSV_COLUMNS
    assert rows[3]["actor"] == "user:jürgen"
    assert json.loads(rows[3]["detail"]) == {"path": "/api/x", "reason": "no <RT> Level 2"}
    assert rows[0]["actor_address"] == "127.0.0.1:4000"


def test_dicom_export_is_one_ps3_15_audit_message_per_entry(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    messages = [ET.fromstring(line) for line in export.render(_exported(archive), "dicom").splitlines()]
    assert [m.tag for m in messages] == ["AuditMessage"] * 5
    store, denied, search = messages[0], messages[3], messages[4]
    event = store.find("EventIdentification")
    assert event is not None
    assert event.get("EventActionCode") == "C"
    assert event.get("EventOutcomeIndicator") == "0"
    assert store.find("EventIdentification/EventID").get("csd-code") == "110104"  # type: ignore[union-attr]
    requestor = store.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor is not None
    assert requestor.get("UserID") == "DEVICE1"
    assert requestor.get("NetworkAccessPointID") == "127.0.0.1"
    study = store.find("ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='3']")
    assert study is not None
    assert study.get("ParticipantObjectID") == _exported(archive)[0].study_instance_uid
    assert denied.find("EventIdentification/EventID").get("csd-code") == "110113"  # type: ignore[union-attr]
    assert denied.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]
    assert denied.findtext("EventIdentification/EventOutcomeDescription") == "no <RT> Level 2"
    assert search.find("EventIdentification/EventID").get("csd-code") == "110112"  # type: ignore[union-attr]
    hashes = [m.find("ParticipantObjectIdentification/ParticipantObjectDetail[@type='hash']") for m in messages]
    assert [h.get("value") for h in hashes if h is not None] == [e.hash for e in _exported(archive)]


def test_export_time_window(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    all_entries = _exported(archive)
    middle = datetime.fromisoformat(all_entries[2].occurred_at)
    later = _exported(archive, since=middle)
    earlier = _exported(archive, until=middle)
    assert [e.id for e in earlier] + [e.id for e in later] == [e.id for e in all_entries]
    assert _exported(archive, since=datetime.now(UTC) + timedelta(days=1)) == []


def _rewrite_consistently(archive: Archive, from_id: int, **change: str) -> None:
    """What an attacker with database access does: change an entry and re-hash the chain after it."""
    with archive.db.engine.begin() as conn:
        lift_audit_protection(conn)
        conn.execute(update(AuditEvent).where(AuditEvent.id == from_id).values(**change))
        rows = conn.execute(select(AuditEvent).order_by(AuditEvent.id)).mappings().all()
        prev = "0" * 64
        for row in rows:
            fields = {k: row[k] for k in ("occurred_at", "actor", "actor_address", "action", "outcome")}
            fields.update(
                study_instance_uid=row["study_instance_uid"],
                series_instance_uid=row["series_instance_uid"],
                sop_instance_uid=row["sop_instance_uid"],
                detail=row["detail"],
            )
            new_hash = hash_fields(prev, **fields)
            conn.execute(update(AuditEvent).where(AuditEvent.id == row["id"]).values(prev_hash=prev, hash=new_hash))
            prev = new_hash
        conn.exec_driver_sql(f"UPDATE audit_head SET last_hash = '{prev}'")


def test_a_consistently_rewritten_chain_is_caught_by_its_anchor(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    with archive.db.read_session() as session:
        taken = anchor.head(session).anchor
        assert anchor.check(session, taken) is None
    _rewrite_consistently(archive, 2, outcome="failure")
    assert archive.verify_audit().ok  # the chain alone cannot tell
    with archive.db.read_session() as session:
        problem = anchor.check(session, taken)
    assert problem is not None
    assert f"anchored entry {taken.entry_id}" in problem
    assert "rewritten" in problem


def test_reordered_entries_break_the_chain(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    columns = ("occurred_at", "actor", "actor_address", "action", "outcome", "detail", "prev_hash", "hash")
    with archive.db.engine.begin() as conn:
        lift_audit_protection(conn)
        two, three = (
            conn.execute(select(*(getattr(AuditEvent, c) for c in columns)).where(AuditEvent.id == n)).one()
            for n in (2, 3)
        )
        conn.execute(update(AuditEvent).where(AuditEvent.id == 3).values(hash="f" * 64))  # free the unique hash
        conn.execute(update(AuditEvent).where(AuditEvent.id == 2).values(**dict(zip(columns, three, strict=True))))
        conn.execute(update(AuditEvent).where(AuditEvent.id == 3).values(**dict(zip(columns, two, strict=True))))
    report = archive.verify_audit()
    assert not report.ok
    assert any(p.startswith("entry 2:") and "link broken" in p for p in report.problems)


def test_anchor_text_round_trip() -> None:
    taken = anchor.Anchor(42, "ab" * 32)
    assert anchor.parse_anchor(str(taken)) == taken
    assert anchor.parse_anchor(f"entry 42 sha256:{'AB' * 32}") == taken
    with pytest.raises(ValueError, match="not an audit anchor"):
        anchor.parse_anchor("42:xyz")


def _pacs(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ndt_pacs", "audit", *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def test_cli_head_export_and_verify_with_an_anchor(tmp_path: Path) -> None:
    from storage.factory import open_archive
    from storage.settings import StorageSettings

    data_dir = tmp_path / "data"
    archive = open_archive(StorageSettings(data_dir=data_dir))
    _fill(archive, tmp_path)

    head = _pacs("head", data_dir=data_dir)
    assert head.returncode == 0, head.stderr
    taken = head.stdout.strip().splitlines()[-1]
    assert anchor.parse_anchor(taken).entry_id == 5

    exported = _pacs("export", "--format", "jsonl", "--from", "2000-01-01", data_dir=data_dir)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 5
    with archive.db.read_session() as session:  # the export itself is in the log
        action, detail = session.execute(
            select(AuditEvent.action, AuditEvent.detail).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert (action, json.loads(detail)["entries"]) == ("audit-export", 5)
    assert _pacs("export", "--to", "2000-01-01", data_dir=data_dir).stdout == ""

    ok = _pacs("verify", "--anchor", taken, data_dir=data_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 anchor checked, chain intact" in ok.stdout
    _rewrite_consistently(archive, 1, actor="ae:SOMEONE-ELSE")
    broken = _pacs("verify", "--anchor", taken, data_dir=data_dir)
    assert broken.returncode == 1
    assert "BROKEN: anchored entry 5" in broken.stdout
    assert _pacs("verify", "--anchor", "nonsense", data_dir=data_dir).returncode == 2
