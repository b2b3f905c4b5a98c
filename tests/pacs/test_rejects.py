"""Bad input and unavailable backends: the right DIMSE status, and nothing indexed or served."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pacs.server import DicomListener
from storage.archive import Archive
from storage.index.models import AuditEvent, Instance
from storage.objects.files import FileObjectStore
from storage.records.fixity import find_orphans
from tests.support.factories import make_instance, write_part10
from tests.support.scu import associate
from tests.support.servers import stored_keys

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def _count(archive: Archive, model: type) -> int:
    with archive.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _object_files(archive: Archive) -> list[str]:
    return stored_keys(archive.objects)


def _store_raw(port: int, path: Path) -> int:
    from pynetdicom import _config

    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        with associate(port, [(CT, [EXPLICIT])]) as assoc:
            return int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = before


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("StudyInstanceUID", "1.2.3.abc"),
        ("SeriesInstanceUID", "1.2." + "3" * 70),
        ("StudyInstanceUID", "../../etc/passwd"),
    ],
)
def test_bad_uid_is_refused(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path, keyword: str, value: str
) -> None:
    ds = make_instance()
    setattr(ds, keyword, value)
    path = write_part10(ds, tmp_path / "bad.dcm")
    assert _store_raw(dicom_listener.port, path) == 0xC000
    assert _count(archive, Instance) == 0
    assert _object_files(archive) == []
    with archive.db.read_session() as session:
        outcome = session.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "store")).all()
    assert outcome == ["failure"]


def test_truncated_dataset_is_refused(archive: Archive, dicom_listener: DicomListener, tmp_path: Path) -> None:
    path = write_part10(make_instance(rows=128, columns=128), tmp_path / "whole.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-1000])
    assert _store_raw(dicom_listener.port, cut) == 0xC000
    assert _count(archive, Instance) == 0
    assert _object_files(archive) == []


def test_unwritable_object_store_gives_out_of_resources(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path
) -> None:
    if not isinstance(archive.objects, FileObjectStore):
        pytest.skip("file-store mechanism; the S3 outage is tests/test_production_e2e.py")
    root = archive.objects.root
    # Make the object store unwritable even for root: replace its root by a regular file.
    moved = root.with_name("objects-away")
    root.rename(moved)
    root.write_text("not a directory")
    try:
        path = write_part10(make_instance(), tmp_path / "ok.dcm")
        assert _store_raw(dicom_listener.port, path) == 0xA700
        assert _count(archive, Instance) == 0
    finally:
        root.unlink()
        moved.rename(root)
    archive.objects._known_dirs.clear()  # type: ignore[attr-defined]
    # The store is back: the same instance now goes in.
    assert _store_raw(dicom_listener.port, path) == 0x0000
    assert _count(archive, Instance) == 1


def _install_failing_trigger(archive: Archive) -> None:
    """Make the index refuse the last insert of a store, inside the database itself."""
    with archive.db.engine.begin() as conn:
        if archive.db.is_sqlite:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON instance_versions "
                "BEGIN SELECT RAISE(ABORT, 'index refuses writes'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'index refuses writes'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON instance_versions FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def test_index_failure_gives_out_of_resources_and_no_served_object(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path
) -> None:
    path = write_part10(make_instance(), tmp_path / "ok.dcm")
    _install_failing_trigger(archive)
    assert _store_raw(dicom_listener.port, path) == 0xA700
    assert _count(archive, Instance) == 0
    # The object stays, unindexed and never served (a concurrent store of the same bytes
    # may need it); the orphan sweep removes it once it is older than any store in flight.
    assert len(_object_files(archive)) == 1
    assert find_orphans(archive, min_age=timedelta(hours=1)).found == []
    orphans = find_orphans(archive, remove=True, min_age=timedelta(0))
    assert len(orphans.found) == 1
    assert orphans.removed == orphans.found
    assert _object_files(archive) == []
    with archive.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse" + ("" if archive.db.is_sqlite else " ON instance_versions"))
    assert _store_raw(dicom_listener.port, path) == 0x0000
    assert _count(archive, Instance) == 1
