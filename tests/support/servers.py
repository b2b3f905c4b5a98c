"""Test helpers that start and stop real servers and build settings: `pacs serve`, dcmtk tools, S3."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.index.db import Database
from storage.objects import ObjectStore
from storage.settings import StorageSettings
from tests.support.accounts import add_account, token_for, with_credentials
from tests.support.s3util import ACCESS_KEY, SECRET_KEY, new_bucket_name

PG_URL = os.environ.get("PACS_TEST_DATABASE_URL")
DCMTK_BIN = Path("/usr/bin")  # Debian's dcmtk; pynetdicom installs same-named Python apps on PATH


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


def make_settings(data_dir: Path, database_url: str | None = None, **extra: object) -> StorageSettings:
    """Storage settings for a test archive (migrations applied by open_archive)."""
    return StorageSettings(data_dir=data_dir, database_url=database_url, **extra)  # type: ignore[arg-type]


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


def s3_settings_for(data_dir: Path, env: dict[str, str], database_url: str | None = None) -> StorageSettings:
    """Storage settings equivalent to the ``PACS_*`` variables in *env*."""
    fields = {k.removeprefix("PACS_").lower(): v for k, v in env.items() if k.startswith("PACS_S3_")}
    fields["storage_url"] = env["PACS_STORAGE_URL"]
    return make_settings(data_dir, database_url, **fields)


def stored_keys(store: ObjectStore) -> list[str]:
    """Every key in *store* (file or S3), for tests that check nothing was left behind."""
    from storage.objects.files import FileObjectStore
    from storage.objects.s3 import S3ObjectStore

    if isinstance(store, FileObjectStore):
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3ObjectStore)
    listing = store.client.list_objects(store.bucket, prefix=store.prefix or None, recursive=True)
    return sorted(str(o.object_name).removeprefix(store.prefix) for o in listing)


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
        url = (self.env or {}).get("PACS_DATABASE_URL")
        return Database(StorageSettings(data_dir=self.data_dir, database_url=url).resolved_database_url)

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


def lift_audit_protection(conn: Any) -> None:
    """Do what an attacker with the database owner's rights can: switch off the append-only triggers.

    The tests of tamper *detection* edit the log directly; *conn* is an open SQLAlchemy connection.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
    else:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
