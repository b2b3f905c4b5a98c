"""The index on PostgreSQL: `pacs db upgrade`, READ COMMITTED pool, unique UIDs, concurrent writers.

(Models == migrations on both engines is tests/test_migrations.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.archive import Archive, StoreOutcome
from storage.audit import Actor
from storage.errors import IndexUnavailable
from storage.factory import open_archive
from storage.index import migrate
from storage.index.attributes import split_multi
from storage.index.db import Database
from storage.index.models import Component, Instance, InstanceVersion, Series, Study
from tests.support.factories import make_instance, write_part10
from tests.support.servers import make_settings


def _pacs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ndt_pacs", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pacs_db_upgrade_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    env = {"PACS_DATABASE_URL": postgres_url, "PACS_DATA_DIR": str(tmp_path)}
    db = Database(postgres_url)
    assert not migrate.is_current(db.engine)
    with pytest.raises(RuntimeError, match="pacs db upgrade"):
        open_archive(make_settings(tmp_path, postgres_url))
    first = _pacs("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert migrate.is_current(db.engine)
    again = _pacs("db", "upgrade", env=env)  # idempotent: a second run changes nothing
    assert again.returncode == 0, again.stderr
    assert "current" in again.stdout
    open_archive(make_settings(tmp_path, postgres_url)).db.dispose()
    db.dispose()


def test_pacs_db_upgrade_unreachable_database_fails_clearly(tmp_path: Path) -> None:
    env = {"PACS_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "PACS_DATA_DIR": str(tmp_path)}
    result = _pacs("db", "upgrade", env=env)
    assert result.returncode != 0
    assert "127.0.0.1" in result.stderr or "connect" in result.stderr.lower()


def test_postgres_runs_read_committed_with_a_pool(postgres_url: str) -> None:
    db = Database(postgres_url)
    with db.read_session() as session:
        level = session.connection().get_isolation_level()
    assert level == "READ COMMITTED"
    assert db.engine.pool.size() >= 8  # type: ignore[attr-defined]
    db.dispose()


def test_unique_uids_refuse_duplicate_rows(archive: Archive) -> None:
    """The UID unique constraints hold in the database itself, whatever the application does."""
    component_id = str(make_instance().PatientID)

    def twice(session: Session) -> None:
        for _ in range(2):
            session.add(Component(patient_id=component_id, number_of_studies=0))
        session.flush()

    with pytest.raises(IndexUnavailable):
        archive.db.run(lambda uow: twice(uow.session), attempts=2)
    with archive.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Component).where(Component.patient_id == component_id)) == 0


def test_concurrent_stores_of_one_study_make_one_row_per_entity(archive: Archive, tmp_path: Path) -> None:
    """Many threads store the same study (every instance twice): one row each, counters exact."""
    study_uid, component = "1.2.826.0.1.3680043.9.7777.1", "SN-RACE"
    series_uids = ["1.2.826.0.1.3680043.9.7777.1.1", "1.2.826.0.1.3680043.9.7777.1.2"]
    paths = []
    for n in range(48):
        ds = make_instance(
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series_uids[n % 2],
            PatientID=component,
            Modality=["CT", "DX"][n % 2],
            InstanceNumber=n + 1,
        )
        paths.append(write_part10(ds, tmp_path / f"{n}.dcm"))
    errors: list[BaseException] = []
    outcomes: list[StoreOutcome] = []

    def worker(chunk: list[Path]) -> None:
        for path in chunk:
            try:
                outcomes.append(archive.store_file(path, Actor("RACER", kind="ae")).outcome)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

    chunks = [paths[i::6] for i in range(6)] * 2  # 12 threads, each instance sent by two of them
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes).count(StoreOutcome.STORED) == 48
    assert outcomes.count(StoreOutcome.DUPLICATE) == 48
    with archive.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Component).where(Component.patient_id == component)) == 1
        assert s.scalar(select(func.count()).select_from(Study)) == 1
        assert s.scalar(select(func.count()).select_from(Series)) == 2
        assert s.scalar(select(func.count()).select_from(Instance)) == 48
        assert s.scalar(select(func.count()).select_from(InstanceVersion)) == 48
        study = s.scalars(select(Study)).one()
        assert study.number_of_instances == 48
        assert study.number_of_series == 2
        assert sorted(split_multi(study.modalities_in_study)) == ["CT", "DX"]
        assert sorted(s.scalars(select(Series.number_of_instances))) == [24, 24]
        assert s.scalars(select(Component.number_of_studies)).one() == 1
        keys = list(s.scalars(select(InstanceVersion.object_key)))
    for key in keys:
        assert archive.objects.exists(key)
