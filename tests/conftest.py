"""Shared fixtures: archives on SQLite and PostgreSQL, a live DICOM listener, a live `pacs serve`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.archive import Archive
from storage.db import Database
from storage.factory import open_archive, open_object_store
from storage.objects import ObjectStore
from storage.settings import StorageSettings
from tests.accounts_util import add_account, token_for, with_credentials
from tests.s3util import ACCESS_KEY, SECRET_KEY, MotoServer, new_bucket_name

PG_URL = os.environ.get("PACS_TEST_DATABASE_URL")
DCMTK_BIN = Path("/usr/bin")  # Debian's dcmtk; pynetdicom installs same-named Python apps on PATH

warnings.filterwarnings("ignore", module="pydicom")


def dcmtk(tool: str) -> str:
    """Absolute path of a dcmtk tool; skips the test when dcmtk is not installed."""
    path = DCMTK_BIN / tool
    if not path.exists():
        pytest.skip(f"dcmtk {tool} not installed (apt-get install -y dcmtk)")
    return str(path)


def free_port() -> int:
    """An ephemeral TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def make_settings(data_dir: Path, database_url: str | None = None, **extra: object) -> StorageSettings:
    """Storage settings for a test archive (migrations applied by open_archive)."""
    return StorageSettings(data_dir=data_dir, database_url=database_url, **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3-protocol server (moto standalone) on loopback, shared by the session."""
    server = MotoServer(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def s3_env_for(endpoint: str, bucket: str | None = None) -> dict[str, str]:
    """``PACS_*`` variables for an S3 object store at *endpoint* in a fresh ``test-`` bucket."""
    return {
        "PACS_STORAGE_URL": f"s3://{bucket or new_bucket_name()}",
        "PACS_S3_ENDPOINT": endpoint,
        "PACS_S3_ACCESS_KEY": ACCESS_KEY,
        "PACS_S3_SECRET_KEY": SECRET_KEY,
        "PACS_S3_SECURE": "false",
        "PACS_S3_REGION": "us-east-1",
    }


@pytest.fixture
def s3_env(moto_server: MotoServer) -> dict[str, str]:
    """Environment for `pacs` processes storing objects in a fresh bucket on the test S3 server."""
    return s3_env_for(moto_server.endpoint)


def s3_settings_for(data_dir: Path, env: dict[str, str], database_url: str | None = None) -> StorageSettings:
    """Storage settings equivalent to the ``PACS_*`` variables in *env*."""
    fields = {k.removeprefix("PACS_").lower(): v for k, v in env.items() if k.startswith("PACS_S3_")}
    fields["storage_url"] = env["PACS_STORAGE_URL"]
    return make_settings(data_dir, database_url, **fields)


@pytest.fixture
def s3_settings(tmp_path: Path, s3_env: dict[str, str]) -> StorageSettings:
    """Storage settings with the objects in a fresh bucket on the test S3 server."""
    return s3_settings_for(tmp_path / "data", s3_env)


def stored_keys(store: ObjectStore) -> list[str]:
    """Every key in *store* (file or S3), for tests that check nothing was left behind."""
    from storage.objects import FileObjectStore
    from storage.s3 import S3ObjectStore

    if isinstance(store, FileObjectStore):
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3ObjectStore)
    listing = store.client.list_objects(store.bucket, prefix=store.prefix or None, recursive=True)
    return sorted(str(o.object_name).removeprefix(store.prefix) for o in listing)


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
        from storage import migrate
        from storage.db import Database

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


@dataclass
class RunningServer:
    """A `pacs serve` subprocess."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    dicom_port: int
    http_port: int
    ae_title: str = "NDTPACS"
    log_path: Path | None = None
    env: dict[str, str] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def database(self) -> Database:
        """The server's index (the same PACS_* settings), to create accounts in."""
        fields = {k.removeprefix("PACS_").lower(): v for k, v in (self.env or {}).items() if k == "PACS_DATABASE_URL"}
        return Database(StorageSettings(data_dir=self.data_dir, **fields).resolved_database_url)  # type: ignore[arg-type]

    def url_as(self, role: str, name: str | None = None) -> str:
        """The base URL carrying HTTP Basic credentials of an account with *role* (created when missing)."""
        db = self.database()
        try:
            return with_credentials(self.http, add_account(db, name or f"test-{role}", role))
        finally:
            db.dispose()

    def token(self, role: str, name: str | None = None) -> str:
        """A bearer token of an account with *role* (created when missing)."""
        db = self.database()
        try:
            return token_for(db, name or f"test-{role}", role)
        finally:
            db.dispose()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def start_server(data_dir: Path, env_extra: dict[str, str] | None = None) -> RunningServer:
    """Start `pacs serve` on free ports and wait until /healthz answers."""
    dicom_port, http_port = free_port(), free_port()
    env = {**os.environ, "TCP_NODELAY": "1", **(env_extra or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"serve-{http_port}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ndt_pacs",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--dicom-port",
            str(dicom_port),
            "--http-port",
            str(http_port),
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = RunningServer(process, data_dir, dicom_port, http_port, log_path=log_path, env=env_extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pacs serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.http}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"pacs serve did not become healthy:\n{server.log()}")


def stop_server(server: RunningServer, sig: int = 15, timeout: float = 60) -> int:
    """Send *sig* (default SIGTERM) and wait for the exit code; on a hang, its threads' stacks go to its log."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
    try:
        return server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.send_signal(signal.SIGUSR1)  # faulthandler in `pacs serve`: every thread's stack
        time.sleep(1)
        server.process.kill()
        raise AssertionError(f"pacs serve did not stop within {timeout} s:\n{server.log()[-20000:]}") from None


@pytest.fixture
def pacs_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`pacs serve` on its embedded default, in a subprocess."""
    server = start_server(tmp_path / "pacs-data")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def dcmtk_available() -> bool:
    return shutil.which(str(DCMTK_BIN / "storescu")) is not None
