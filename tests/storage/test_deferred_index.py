"""Deferred indexing: acknowledged once durable in the intake, indexed by the indexer, never lost."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_files
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import func, select

from pacs.server import DicomListener
from pacs.settings import DicomSettings
from pacs.status import Status
from storage import audit
from storage.archive import Archive
from storage.audit import Actor
from storage.dicom.files import read_received_file
from storage.errors import InvalidInstance
from storage.factory import open_archive
from storage.index.attributes import Level
from storage.index.models import AuditEvent, Instance, InstanceVersion, Series, Study
from storage.index.query import Query
from storage.ingest import indexer
from storage.ingest.admission import examine_for_admission
from storage.ingest.index_writer import identity_of
from storage.ingest.intake import Intake
from storage.objects import read_bytes
from tests.support.factories import make_instance, write_part10
from tests.support.scu import find, identifier
from tests.support.servers import dcmtk, make_settings, s3_settings_for, start_server, stop_server

ACTOR = Actor("MODALITY", "127.0.0.1:104")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RunningIndexer:
    """storage.ingest.indexer.run on a thread, stopped (and drained) at the end."""

    def __init__(self, archive: Archive, intake: Intake) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=indexer.run, args=(archive, intake, self.stop), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def deferred(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[tuple[Archive, Archive, Intake]]:
    """(receiving archive with the intake, indexer's archive, intake): SQLite + files, or PostgreSQL + S3."""
    settings = make_settings(tmp_path / "data", database_url)
    if not database_url.startswith("sqlite"):
        settings = s3_settings_for(tmp_path / "data", request.getfixturevalue("s3_env"), database_url)
        from storage.index import migrate
        from storage.index.db import Database

        migrate.upgrade(Database(database_url).engine)
    receiving, indexing = open_archive(settings), open_archive(settings)
    intake = Intake(settings.intake_dir, settle_timeout=30)
    receiving.use_intake(intake)
    yield receiving, indexing, intake
    receiving.db.dispose()
    indexing.db.dispose()


def _spooled(archive: Archive, tmp: Path, count: int, **attributes: object) -> list[Path]:
    paths = []
    for n in range(count):
        ds = make_instance(InstanceNumber=n + 1, **attributes)
        source = write_part10(ds, tmp / f"src-{ds.SOPInstanceUID}.dcm")
        spooled = archive.spool_dir / f"in-{ds.SOPInstanceUID}.dcm"
        shutil.copyfile(source, spooled)
        paths.append(spooled)
    return paths


def _instances(archive: Archive) -> int:
    with archive.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Instance)).scalar_one())


# -- admission ------------------------------------------------------------------


def _dicom_test_files() -> list[Path]:
    found = []
    for name in sorted(get_testdata_files("*")):
        path = Path(name)
        if path.is_file() and path.read_bytes()[128:132] == b"DICM":
            found.append(path)
    return found


def test_admission_refuses_and_accepts_exactly_what_the_synchronous_store_does() -> None:
    """Every Part 10 file in pydicom's test data: same verdict, same identity, without pydicom's parser."""
    files = _dicom_test_files()
    assert len(files) > 100
    accepted = refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                expected: object = identity_of(read_received_file(path).dataset)
            except InvalidInstance:
                expected = InvalidInstance
            try:
                got: object = examine_for_admission(path).identity
            except InvalidInstance:
                got = InvalidInstance
            assert got == expected, path.name
            accepted += expected is not InvalidInstance
            refused += expected is InvalidInstance
    assert accepted > 80
    assert refused > 5


def test_bad_input_is_refused_at_admission_and_leaves_nothing(
    deferred: tuple[Archive, Archive, Intake], tmp_path: Path
) -> None:
    receiving, _, intake = deferred
    bad_uid = write_part10(make_instance(SeriesInstanceUID="1.2.abc"), tmp_path / "bad-uid.dcm")
    good = write_part10(make_instance(), tmp_path / "good.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:-100])
    for path in (bad_uid, truncated):
        with pytest.raises(InvalidInstance):
            receiving.admit_file(path, ACTOR)
    assert intake.entries() == []
    assert _instances(receiving) == 0
    with receiving.db.engine.connect() as conn:
        outcomes = conn.execute(select(AuditEvent.outcome).where(AuditEvent.action == "store")).scalars().all()
    assert outcomes == ["failure", "failure"]


# -- the intake and the indexer -----------------------------------------------------


def test_admitted_objects_are_durable_then_indexed_byte_exact(
    deferred: tuple[Archive, Archive, Intake], tmp_path: Path
) -> None:
    receiving, indexing, intake = deferred
    spooled = _spooled(receiving, tmp_path, 5, StudyInstanceUID="1.2.826.0.1.3680043.10.1.77", PatientID="SN-77")
    digests = [_sha(p) for p in spooled]
    entries = [receiving.admit_file(p, ACTOR) for p in spooled]
    assert sorted(_sha(e.path) for e in entries) == sorted(digests)  # byte-exact in the intake
    assert all(not p.exists() for p in spooled)  # moved into the intake
    assert [e.name for e in intake.entries()] == [e.name for e in entries]  # oldest first
    assert _instances(receiving) == 0  # nothing indexed yet

    assert indexer.index_pending(indexing, intake) == 5
    assert intake.entries() == []
    with receiving.db.read_session() as session:
        rows = session.execute(select(Instance.object_key, Instance.sha256)).all()
        study = session.execute(select(Study.number_of_instances, Study.number_of_series)).one()
        who = session.execute(select(AuditEvent.actor).where(AuditEvent.action == "store")).scalars().all()
    assert sorted(sha for _, sha in rows) == sorted(digests)
    for key, sha in rows:
        assert hashlib.sha256(read_bytes(receiving.objects, key)).hexdigest() == sha
    assert tuple(study) == (5, 5)
    assert who == [audit.actor_label(ACTOR)] * 5
    assert receiving.verify_audit().ok


def test_a_read_waits_for_what_was_acknowledged_before_it(
    deferred: tuple[Archive, Archive, Intake], tmp_path: Path
) -> None:
    receiving, indexing, intake = deferred
    for path in _spooled(receiving, tmp_path, 3, PatientID="SN-WAIT"):
        receiving.admit_file(path, ACTOR)
    started = threading.Event()
    found: list[int] = []

    def query() -> None:
        started.set()
        found.append(len(receiving.find(Query(level=Level.IMAGE, filters={"PatientID": "SN-WAIT"}), ACTOR)))

    # Hold the indexer lock as a running indexer would, so the read waits instead of giving up.
    stop = threading.Event()
    with indexer.exclusive(intake, stop):
        reader = threading.Thread(target=query)
        reader.start()
        started.wait(5)
        time.sleep(0.5)
        assert reader.is_alive(), "the read did not wait for the intake"
        assert indexer.index_pending(indexing, intake) == 3
        reader.join(30)
    assert found == [3]


def test_a_read_does_not_hang_when_no_indexer_runs(deferred: tuple[Archive, Archive, Intake], tmp_path: Path) -> None:
    receiving, _, intake = deferred
    receiving.admit_file(_spooled(receiving, tmp_path, 1)[0], ACTOR)
    assert not intake.indexer_running()
    begun = time.monotonic()
    assert intake.settle(timeout=30) is False
    assert time.monotonic() - begun < 10
    assert len(intake.entries()) == 1  # still kept for the next indexer


def test_a_crash_before_indexing_loses_nothing(tmp_path: Path) -> None:
    """Entries admitted by a process that then died are indexed by the next indexer, exactly once."""
    settings = make_settings(tmp_path / "data")
    first = open_archive(settings)
    first.use_intake(Intake(settings.intake_dir))
    spooled = _spooled(first, tmp_path, 4)
    digests = sorted(_sha(p) for p in spooled)
    for path in spooled:
        first.admit_file(path, ACTOR)
    first.db.dispose()  # the receiving process is gone; its acknowledged objects are in the intake

    second = open_archive(settings)
    intake = Intake(settings.intake_dir)
    running = RunningIndexer(second, intake)
    try:
        assert intake.settle(timeout=60)
    finally:
        running.close()
    with second.db.read_session() as session:
        assert sorted(session.execute(select(InstanceVersion.sha256)).scalars()) == digests
    # Indexing the same bytes again (a crash after the commit, before the entry was removed) is a no-op.
    again = second.spool_dir / "again.dcm"
    for path in sorted(tmp_path.glob("src-*.dcm"))[:1]:
        shutil.copyfile(path, again)
    second.use_intake(intake)
    second.admit_file(again, ACTOR)
    assert indexer.index_pending(second, intake) == 1
    assert _instances(second) == 4
    second.db.dispose()


def test_duplicates_and_new_versions_follow_the_synchronous_policy(
    deferred: tuple[Archive, Archive, Intake], tmp_path: Path
) -> None:
    receiving, indexing, intake = deferred
    ds = make_instance()
    first = write_part10(ds, tmp_path / "v1.dcm")
    ds.StudyDescription = "re-inspection"
    second = write_part10(ds, tmp_path / "v2.dcm")
    for n, source in enumerate((first, first, second)):
        spooled = receiving.spool_dir / f"{n}.dcm"
        shutil.copyfile(source, spooled)
        receiving.admit_file(spooled, ACTOR)
    assert indexer.index_pending(indexing, intake) == 3
    with receiving.db.read_session() as session:
        versions = session.execute(select(InstanceVersion.version, InstanceVersion.sha256)).all()
        served = session.execute(select(Instance.version, Instance.sha256)).one()
        series_count = session.execute(select(Series.number_of_instances)).scalar_one()
        outcomes = (
            session.execute(select(AuditEvent.outcome).where(AuditEvent.action == "store").order_by(AuditEvent.id))
            .scalars()
            .all()
        )
    assert sorted(v for v, _ in versions) == [1, 2]
    assert tuple(served) == (2, _sha(second))
    assert series_count == 1
    assert outcomes == ["success", "duplicate", "new_version"]


def test_an_entry_that_cannot_be_indexed_is_set_aside_and_the_rest_indexed(
    deferred: tuple[Archive, Archive, Intake], tmp_path: Path
) -> None:
    receiving, indexing, intake = deferred
    entries = [receiving.admit_file(p, ACTOR) for p in _spooled(receiving, tmp_path, 3)]
    damaged = entries[1].path
    damaged.write_bytes(damaged.read_bytes()[:200])  # the disk lost it after admission
    assert indexer.index_pending(indexing, intake) == 3
    assert intake.entries() == []
    assert [p.name for p in intake.rejected()] == [entries[1].name]
    assert _instances(receiving) == 2
    with receiving.db.read_session() as session:
        failure = session.execute(
            select(AuditEvent.detail).where(AuditEvent.action == "store", AuditEvent.outcome == "failure")
        ).scalar_one()
    assert "not indexable" in str(failure)
    if receiving.db.is_sqlite:  # `pacs verify` reports it and fails (the CLI reads the data dir's own index)
        verify = subprocess.run(
            [sys.executable, "-m", "ndt_pacs", "verify", "--data-dir", str(intake.directory.parent)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verify.returncode == 1, verify.stdout
        assert f"SET ASIDE: {intake.directory / 'rejected' / entries[1].name}" in verify.stdout


def test_one_indexer_per_intake(deferred: tuple[Archive, Archive, Intake]) -> None:
    _, _, intake = deferred
    stop = threading.Event()
    with indexer.exclusive(intake, stop) as owner:
        assert owner
        assert intake.indexer_running()
        standby_stop = threading.Event()
        got: list[bool] = []
        standby = threading.Thread(target=lambda: got.append(indexer.exclusive(intake, standby_stop).__enter__()))
        standby.start()
        time.sleep(1.0)
        assert standby.is_alive(), "a second indexer took the lock"
        standby_stop.set()
        standby.join(10)
    assert got == [False]
    assert not intake.indexer_running()


# -- over DICOM ------------------------------------------------------------------------


@pytest.fixture
def deferred_listener(deferred: tuple[Archive, Archive, Intake]) -> Iterator[DicomListener]:
    receiving, indexing, intake = deferred
    running = RunningIndexer(indexing, intake)
    listener = DicomListener(receiving, DicomSettings(host="127.0.0.1", dicom_port=0, ae_title="NDTPACS"))
    listener.start()
    yield listener
    listener.stop(grace=5)
    running.close()


def test_a_released_association_finds_everything_it_stored(
    deferred: tuple[Archive, Archive, Intake], deferred_listener: DicomListener, tmp_path: Path
) -> None:
    """dcmtk storescu: once the association is released, every instance is indexed (A-RELEASE waits)."""
    receiving, _, intake = deferred
    folder = tmp_path / "push"
    folder.mkdir()
    study = "1.2.826.0.1.3680043.10.1.88"
    for n in range(40):
        write_part10(
            make_instance(StudyInstanceUID=study, PatientID="SN-REL", InstanceNumber=n + 1), folder / f"{n}.dcm"
        )
    subprocess.run(
        [dcmtk("storescu"), "-aec", "NDTPACS", "+sd", "127.0.0.1", str(deferred_listener.port), str(folder)],
        check=True,
        capture_output=True,
        timeout=120,
        env={"TCP_NODELAY": "1"},
    )
    # Straight to the database, past every read barrier: the release waited for the indexer.
    assert _instances(receiving) == 40
    assert intake.entries() == []
    found, status = find(deferred_listener.port, identifier("IMAGE", StudyInstanceUID=study, SOPInstanceUID=""))
    assert status == Status.SUCCESS
    assert len(found) == 40


def test_a_store_is_found_by_another_association_at_once(
    deferred: tuple[Archive, Archive, Intake], deferred_listener: DicomListener
) -> None:
    ds = make_instance(PatientID="SN-NOW")
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", deferred_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ds).Status == Status.SUCCESS
        # The storing association is still open; a second one asks at once.
        found, status = find(deferred_listener.port, identifier("IMAGE", PatientID="SN-NOW", SOPInstanceUID=""))
    finally:
        assoc.release()
    assert status == Status.SUCCESS
    assert [str(f.SOPInstanceUID) for f in found] == [ds.SOPInstanceUID]


def test_pacs_serve_indexes_the_intake_before_it_exits(tmp_path: Path) -> None:
    """`pacs serve` (deferred by default): SIGTERM right after the push; nothing acknowledged is lost."""
    server = start_server(tmp_path / "pacs-data")
    health = httpx.get(f"{server.http}/healthz", timeout=10).json()
    assert health["indexer"] == "running"
    assert health["intake"] == {"waiting": 0, "set_aside": 0}
    folder = tmp_path / "push"
    folder.mkdir()
    for n in range(60):
        write_part10(make_instance(PatientID="SN-TERM", InstanceNumber=n + 1), folder / f"{n}.dcm")
    try:
        subprocess.run(
            [dcmtk("storescu"), "-aec", "NDTPACS", "+sd", "127.0.0.1", str(server.dicom_port), str(folder)],
            check=True,
            capture_output=True,
            timeout=120,
            env={"TCP_NODELAY": "1"},
        )
    finally:
        assert stop_server(server, timeout=120) == 0, server.log()
    settings = make_settings(server.data_dir)
    assert Intake(settings.intake_dir).entries() == []
    archive = open_archive(settings)
    try:
        assert _instances(archive) == 60
        assert archive.verify_audit().ok
    finally:
        archive.db.dispose()


def test_only_the_file_object_store_defers(tmp_path: Path) -> None:
    """With S3 the object must be in the bucket before the answer: S3 deployments index immediately."""
    assert make_settings(tmp_path).indexes_deferred
    assert not make_settings(tmp_path, deferred_index=False).indexes_deferred
    assert not make_settings(tmp_path, storage_url="s3://bucket", s3_endpoint="127.0.0.1:9000").indexes_deferred
