"""Duplicates, versions, the audit hash chain and fixity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select, update

from storage.archive import Archive, StoreOutcome
from storage.audit import Actor
from storage.index.models import AuditEvent, Instance, InstanceVersion
from storage.objects import read_bytes
from storage.records.fixity import verify_objects
from tests.support.factories import make_instance, write_part10
from tests.support.servers import lift_audit_protection

ACTOR = Actor("DEVICE1", "127.0.0.1:4000")


def test_identical_resend_stores_nothing_new(archive: Archive, tmp_path: Path) -> None:
    path = write_part10(make_instance(), tmp_path / "a.dcm")
    first = archive.store_file(path, ACTOR)
    again = archive.store_file(path, ACTOR)
    assert (first.outcome, again.outcome) == (StoreOutcome.STORED, StoreOutcome.DUPLICATE)
    assert again.object_key == first.object_key
    with archive.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(InstanceVersion)) == 1
        outcomes = session.scalars(select(AuditEvent.outcome).order_by(AuditEvent.id)).all()
    assert outcomes == ["success", "duplicate"]


def test_same_uid_different_bytes_becomes_a_new_served_version(archive: Archive, tmp_path: Path) -> None:
    ds = make_instance(StudyDescription="first shot")
    v1 = write_part10(ds, tmp_path / "v1.dcm")
    ds.StudyDescription = "re-shot after repair"
    v2 = write_part10(ds, tmp_path / "v2.dcm")
    first = archive.store_file(v1, ACTOR)
    second = archive.store_file(v2, ACTOR)
    assert second.outcome is StoreOutcome.NEW_VERSION
    assert second.version == 2
    assert first.object_key != second.object_key
    # Both versions are kept, byte-exact; the index serves the newest.
    assert read_bytes(archive.objects, first.object_key) == v1.read_bytes()
    assert read_bytes(archive.objects, second.object_key) == v2.read_bytes()
    with archive.db.read_session() as session:
        instance = session.scalars(select(Instance)).one()
        assert (instance.version, instance.object_key) == (2, second.object_key)
        assert session.scalar(select(func.count()).select_from(InstanceVersion)) == 2
    # Resending the first version again is a duplicate, not a third version.
    assert archive.store_file(v1, ACTOR).outcome is StoreOutcome.DUPLICATE


def test_audit_chain_detects_edits_and_deletions(archive: Archive, tmp_path: Path) -> None:
    for n in range(3):
        archive.store_file(write_part10(make_instance(), tmp_path / f"{n}.dcm"), ACTOR)
    report = archive.verify_audit()
    assert report.ok
    assert report.entries == 3

    with archive.db.engine.begin() as conn:
        lift_audit_protection(conn)
        conn.execute(update(AuditEvent).where(AuditEvent.id == 2).values(actor="ae:SOMEONE-ELSE"))
    report = archive.verify_audit()
    assert not report.ok
    assert any("entry 2" in p and "edited" in p for p in report.problems)


def test_audit_chain_detects_a_removed_entry(archive: Archive, tmp_path: Path) -> None:
    for n in range(3):
        archive.store_file(write_part10(make_instance(), tmp_path / f"{n}.dcm"), ACTOR)
    with archive.db.engine.begin() as conn:
        lift_audit_protection(conn)
        conn.exec_driver_sql("DELETE FROM audit_events WHERE id = 2")
    report = archive.verify_audit()
    assert not report.ok
    assert any("entry 3" in p and "link" in p for p in report.problems)


def test_fixity_finds_a_changed_object(archive: Archive, tmp_path: Path) -> None:
    result = archive.store_file(write_part10(make_instance(), tmp_path / "a.dcm"), ACTOR)
    assert verify_objects(archive).problems == []
    data = bytearray(read_bytes(archive.objects, result.object_key))
    data[-1] ^= 0xFF
    (tmp_path / "tampered.dcm").write_bytes(bytes(data))
    archive.objects.delete(result.object_key)  # an S3 store does not re-upload an existing key
    archive.objects.put_file(result.object_key, tmp_path / "tampered.dcm")  # file store or S3
    report = verify_objects(archive)
    assert report.checked == 1
    assert report.problems == [f"{result.object_key}: checksum differs from the index"]


def test_cli_audit_verify_exit_codes(tmp_path: Path) -> None:
    from storage.factory import open_archive
    from storage.settings import StorageSettings

    data_dir = tmp_path / "data"
    archive = open_archive(StorageSettings(data_dir=data_dir))
    archive.store_file(write_part10(make_instance(), tmp_path / "a.dcm"), ACTOR)
    archive.db.dispose()
    command = [sys.executable, "-m", "ndt_pacs", "audit", "verify", "--data-dir", str(data_dir)]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 audit entries, chain intact" in ok.stdout
    with archive.db.engine.begin() as conn:
        lift_audit_protection(conn)
        conn.exec_driver_sql("UPDATE audit_events SET outcome = 'failure'")
    broken = subprocess.run(command, capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout
