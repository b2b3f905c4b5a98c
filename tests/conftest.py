"""Shared fixtures: archives on SQLite and PostgreSQL, a live DICOM listener, a live `pacs serve`."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.archive import Archive
from storage.factory import open_archive, open_object_store
from storage.objects import ObjectStore
from storage.settings import StorageSettings
from tests.support.s3util import MotoServer
from tests.support.servers import (
    DCMTK_BIN,
    PG_URL,
    RunningServer,
    free_port,
    make_settings,
    s3_env_for,
    s3_settings_for,
    start_server,
    stop_server,
)

warnings.filterwarnings("ignore", module="pydicom")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip("PACS_TEST_DATABASE_URL not set (PostgreSQL tests)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each index test runs on the embedded SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3-protocol server (moto standalone) on loopback, shared by the session."""
    server = MotoServer(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_env(moto_server: MotoServer) -> dict[str, str]:
    """Environment for `pacs` processes storing objects in a fresh bucket on the test S3 server."""
    return s3_env_for(moto_server.endpoint)


@pytest.fixture
def s3_settings(tmp_path: Path, s3_env: dict[str, str]) -> StorageSettings:
    """Storage settings with the objects in a fresh bucket on the test S3 server."""
    return s3_settings_for(tmp_path / "data", s3_env)


@pytest.fixture(params=["file", "s3"])
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each object-store test runs on the file store and on a real S3 server."""
    if request.param == "file":
        return open_object_store(make_settings(tmp_path / "data"))
    return open_object_store(request.getfixturevalue("s3_settings"))


@pytest.fixture
def archive(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Archive]:
    """An archive core on the parametrised index: SQLite + file store, or PostgreSQL + S3 (production).

    ``PACS_TEST_OBJECT_STORE=file`` keeps PostgreSQL archives on the file store.
    """
    settings = make_settings(tmp_path / "data", database_url)
    if not database_url.startswith("sqlite") and os.environ.get("PACS_TEST_OBJECT_STORE", "s3") == "s3":
        settings = s3_settings_for(tmp_path / "data", request.getfixturevalue("s3_env"), database_url)
    if not database_url.startswith("sqlite"):
        from storage.index import migrate
        from storage.index.db import Database

        migrate.upgrade(Database(database_url).engine)
    arc = open_archive(settings)
    yield arc
    arc.db.dispose()


@pytest.fixture
def dicom_listener(archive: Archive) -> Iterator[DicomListener]:
    """Our DIMSE listener on an ephemeral loopback port, serving *archive*."""
    listener = DicomListener(archive, DicomSettings(host="127.0.0.1", dicom_port=0, ae_title="NDTPACS"))
    listener.start()
    yield listener
    listener.stop(grace=5)


@pytest.fixture
def pacs_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`pacs serve` on its embedded default, in a subprocess."""
    server = start_server(tmp_path / "pacs-data")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def dcmtk_available() -> bool:
    return shutil.which(str(DCMTK_BIN / "storescu")) is not None
