"""The index transaction of ingest: remembered series, exact aggregates, orphans of failed stores.

Each test runs on SQLite + file store and on PostgreSQL + S3 (the ``archive`` fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Connection, Table, bindparam, insert, select

from storage.archive import Archive, StoreOutcome
from storage.audit import Actor
from storage.factory import open_archive
from storage.index.db import Database
from storage.index.models import Component, Instance, Series, Study
from storage.index.prepared import PreparedStatement
from storage.objects.files import FileObjectStore
from storage.records.fixity import find_orphans
from tests.support.factories import make_instance, write_part10
from tests.support.servers import make_settings, stored_keys

ACTOR = Actor("DEVICE1", "127.0.0.1:4000")


def _series_of(study_uid: str, series_uid: str, patient_id: str, **attributes: object) -> Dataset:
    return make_instance(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, PatientID=patient_id, **attributes)


def _rows(archive: Archive, study_uid: str) -> tuple[Component, Study, list[Series]]:
    with archive.db.read_session() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == study_uid)).one()
        component = session.get_one(Component, study.component_id)
        series = list(session.scalars(select(Series).where(Series.study_id == study.id).order_by(Series.id)))
        session.expunge_all()  # keep the loaded values past the read session's rollback
    return component, study, series


def test_a_series_stored_instance_by_instance_keeps_exact_counts_and_the_newest_values(
    archive: Archive, tmp_path: Path
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    for n in range(5):
        ds = _series_of(study_uid, series_uid, "SN-CACHE-1", SeriesDescription="pass 1", PatientName="Valve^Body")
        archive.store_file(write_part10(ds, tmp_path / f"{n}.dcm"), ACTOR)
    # The device corrects the series description and the component name mid-series:
    # the remembered series must not hide the change.
    ds = _series_of(study_uid, series_uid, "SN-CACHE-1", SeriesDescription="pass 2", PatientName="Valve^Bonnet")
    archive.store_file(write_part10(ds, tmp_path / "changed.dcm"), ACTOR)
    component, study, series = _rows(archive, study_uid)
    assert component.patient_name == "Valve^Bonnet"
    assert [s.series_description for s in series] == ["pass 2"]
    assert (study.number_of_series, study.number_of_instances, series[0].number_of_instances) == (1, 6, 6)
    assert component.number_of_studies == 1
    assert study.modalities_in_study == "\\CT\\"


def test_a_new_version_in_another_series_moves_the_counts(archive: Archive, tmp_path: Path) -> None:
    study_uid, first_series, second_series = generate_uid(), generate_uid(), generate_uid()
    ds = _series_of(study_uid, first_series, "SN-CACHE-2")
    archive.store_file(write_part10(ds, tmp_path / "v1.dcm"), ACTOR)
    archive.store_file(write_part10(_series_of(study_uid, first_series, "SN-CACHE-2"), tmp_path / "o.dcm"), ACTOR)
    ds.SeriesInstanceUID, ds.Modality = second_series, "DX"
    result = archive.store_file(write_part10(ds, tmp_path / "v2.dcm"), ACTOR)
    assert (result.outcome, result.version) == (StoreOutcome.NEW_VERSION, 2)
    _component, study, series = _rows(archive, study_uid)
    assert [(s.series_instance_uid, s.number_of_instances) for s in series] == [(first_series, 1), (second_series, 1)]
    assert (study.number_of_series, study.number_of_instances) == (2, 2)
    assert study.modalities_in_study == "\\CT\\DX\\"


def test_two_archives_on_one_index_keep_exact_counts(archive: Archive, tmp_path: Path) -> None:
    """Two processes (here: two archive cores with their own engines) remember the same series."""
    other = Archive(Database(archive.db.url), archive.objects, spool_dir=tmp_path / "other-spool")
    try:
        study_uid, series_uid = generate_uid(), generate_uid()
        for n in range(6):
            core = archive if n % 2 == 0 else other
            name = "Pump^Casing" if n < 3 else "Pump^Casing rev B"
            ds = _series_of(study_uid, series_uid, "SN-CACHE-3", PatientName=name)
            core.store_file(write_part10(ds, tmp_path / f"{n}.dcm"), ACTOR)
        component, study, series = _rows(archive, study_uid)
        assert (study.number_of_instances, series[0].number_of_instances) == (6, 6)
        assert component.patient_name == "Pump^Casing rev B"
        with archive.db.read_session() as session:
            assert len(session.scalars(select(Instance.id)).all()) == 6
        assert archive.verify_audit().ok
    finally:
        other.db.dispose()


def test_orphans_are_swept_only_when_unindexed_and_old(archive: Archive, tmp_path: Path) -> None:
    indexed = archive.store_file(write_part10(make_instance(), tmp_path / "kept.dcm"), ACTOR)
    orphan = write_part10(make_instance(), tmp_path / "orphan.dcm")
    archive.objects.put_file("studies/00/orphan-of-a-failed-store.dcm", orphan)
    assert find_orphans(archive).found == []  # younger than an hour: maybe a store in flight
    report = find_orphans(archive, min_age=timedelta(0))
    assert report.found == ["studies/00/orphan-of-a-failed-store.dcm"]
    assert report.removed == []  # listing only
    swept = find_orphans(archive, remove=True, min_age=timedelta(0))
    assert swept.removed == ["studies/00/orphan-of-a-failed-store.dcm"]
    assert stored_keys(archive.objects) == [indexed.object_key]
    assert archive.verify_audit().ok


def test_cli_verify_lists_and_sweeps_orphans(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    archive = open_archive(make_settings(data_dir))
    archive.store_file(write_part10(make_instance(), tmp_path / "kept.dcm"), ACTOR)
    assert isinstance(archive.objects, FileObjectStore)
    orphan = archive.objects.root / "studies" / "00" / "left-by-a-failed-store.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"not indexed")
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    archive.db.dispose()
    cli = [sys.executable, "-m", "ndt_pacs", "verify", "--data-dir", str(data_dir)]
    listed = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "1 objects checked, 0 problems" in listed.stdout
    assert "orphan: studies/00/left-by-a-failed-store.dcm" in listed.stdout
    assert orphan.exists()
    swept = subprocess.run([*cli, "--sweep-orphans"], capture_output=True, text=True, check=False)
    assert swept.returncode == 0, swept.stderr
    assert "1 unindexed objects (failed stores) older than an hour, 1 removed" in swept.stdout
    assert not orphan.exists()


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_a_large_object_is_ingested_with_flat_memory(tmp_path: Path) -> None:
    """DESIGN.md: memory stays flat while a large object is stored (hash streamed, header-only parse)."""
    archive = open_archive(make_settings(tmp_path / "data"))
    frames = 1000  # 512 x 512 x 16-bit x 1000 frames: 524 MB
    ds = make_instance(rows=512, columns=512, NumberOfFrames=frames)
    ds.PixelData = bytes(512 * 512 * 2 * frames)
    path = write_part10(ds, tmp_path / "large.dcm")
    del ds
    before = _rss_mb()
    peak = before
    done = threading.Event()

    def sample() -> None:  # the peak while storing, not what is left afterwards
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, _rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = archive.store_file(path, ACTOR, move=True)
    finally:
        done.set()
        sampler.join()
    assert result.size > 500_000_000
    assert peak - before < 100, f"RSS grew by {peak - before:.0f} MB while storing a {result.size / 1e6:.0f} MB object"
    archive.db.dispose()


def test_prepared_statements_write_exactly_what_sqlalchemy_writes(archive: Archive) -> None:
    """The hot path's DBAPI-level statements keep the dialect's bind processing (e.g. SQLite datetimes)."""
    table = cast(Table, Component.__table__)
    moment = datetime(2026, 11, 21, 8, 30, 15, 123456, tzinfo=UTC)
    row = {"number_of_studies": 2, "created_at": moment, "updated_at": moment}
    prepared = PreparedStatement(insert(table).returning(table.c.id))
    lock = PreparedStatement(select(table.c.patient_id).where(table.c.id == bindparam("row_id")).with_for_update())

    def write(conn: Connection) -> tuple[int, int]:
        [(ours,)] = prepared.rows(conn, {"patient_id": "SN-PREPARED", **row})
        theirs = conn.execute(insert(table).values(patient_id="SN-CORE", **row).returning(table.c.id)).scalar_one()
        assert lock.rows(conn, {"row_id": ours}) == [("SN-PREPARED",)]
        return ours, theirs

    ours, theirs = archive.db.run(lambda uow: write(uow.connection))
    with archive.db.engine.connect() as conn:
        raw = {
            pid: (created, studies)
            for pid, created, studies in conn.exec_driver_sql(
                "SELECT patient_id, created_at, number_of_studies FROM components"
            )
        }
    assert raw["SN-PREPARED"] == raw["SN-CORE"]
    with archive.db.read_session() as session:
        assert session.get_one(Component, ours).created_at == session.get_one(Component, theirs).created_at
