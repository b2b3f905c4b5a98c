"""Production configuration end to end: `pacs serve` on PostgreSQL + S3, pushed to by dcmtk.

The S3 service is moto's standalone server over HTTP; PostgreSQL is the real one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import func, select

from storage.factory import open_object_store
from storage.index.db import Database
from storage.index.models import Component, Instance, InstanceVersion, Series, Study
from storage.objects import ObjectStore, read_bytes
from storage.objects.keys import study_prefix
from storage.objects.s3 import S3ObjectStore
from tests.support.factories import make_instance, write_part10
from tests.support.s3util import MotoServer, TcpProxy
from tests.support.servers import (
    RunningServer,
    dcmtk,
    free_port,
    s3_env_for,
    s3_settings_for,
    start_server,
    stop_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.dcmtk]

STUDY = "1.2.826.0.1.3680043.9.7777.20"
SERIES = ["1.2.826.0.1.3680043.9.7777.20.1", "1.2.826.0.1.3680043.9.7777.20.2"]


@pytest.fixture
def prod_env(postgres_url: str, s3_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Environment of a production deployment: PostgreSQL index migrated by `pacs db upgrade`, S3 objects."""
    env = {**s3_env, "PACS_DATABASE_URL": postgres_url}
    done = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "db", "upgrade", "--data-dir", str(tmp_path / "migrate")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture
def index(prod_env: dict[str, str]) -> Iterator[Database]:
    db = Database(prod_env["PACS_DATABASE_URL"])
    yield db
    db.dispose()


def _probe(kind: str, server: RunningServer) -> int:
    """Exit code of the container health probe `python -m ndt_pacs.healthcheck KIND` against *server*."""
    env = {**os.environ, "PACS_DICOM_PORT": str(server.dicom_port), "PACS_HTTP_PORT": str(server.http_port)}
    probe = [sys.executable, "-m", "ndt_pacs.healthcheck", kind]
    return subprocess.run(probe, env=env, capture_output=True, timeout=60, check=False).returncode


def _bucket(env: dict[str, str], tmp_path: Path) -> ObjectStore:
    return open_object_store(s3_settings_for(tmp_path / "reader", env))


def _study_files(directory: Path, count: int, **extra: object) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        ds = make_instance(
            StudyInstanceUID=STUDY,
            SeriesInstanceUID=SERIES[n % 2],
            PatientID="SN-PROD-1",
            InstanceNumber=n + 1,
            **extra,
        )
        paths.append(write_part10(ds, directory / f"{n:03d}.dcm"))
    return paths


def _data_set_bytes(blob: bytes) -> bytes:
    """The data set after the Part 10 preamble and file meta group (PS3.10 §7.1)."""
    assert blob[128:132] == b"DICM"
    assert blob[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length, explicit VR UL
    (group_length,) = struct.unpack("<I", blob[140:144])
    return blob[144 + group_length :]


def _storescu(port: int, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dcmtk("storescu"), "-aec", "NDTPACS", "-aet", "NDTDEVICE", "127.0.0.1", str(port), *map(str, paths)],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _counts(db: Database) -> dict[str, int]:
    with db.read_session() as s:
        return {
            name: int(s.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in [
                ("components", Component),
                ("studies", Study),
                ("series", Series),
                ("instances", Instance),
                ("versions", InstanceVersion),
            ]
        }


def test_store_find_and_read_back_from_the_bucket(prod_env: dict[str, str], index: Database, tmp_path: Path) -> None:
    small = _study_files(tmp_path / "in", 6)
    big = write_part10(
        make_instance(
            rows=3000, columns=3000, StudyInstanceUID=STUDY, SeriesInstanceUID=SERIES[0], PatientID="SN-PROD-1"
        ),
        tmp_path / "in" / "big.dcm",
    )
    init = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "storage", "init"], env={**os.environ, **prod_env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    bucket = S3ObjectStore(
        prod_env["PACS_STORAGE_URL"].removeprefix("s3://"),
        endpoint=prod_env["PACS_S3_ENDPOINT"],
        access_key=prod_env["PACS_S3_ACCESS_KEY"],
        secret_key=prod_env["PACS_S3_SECRET_KEY"],
        create_bucket=False,
    )
    assert bucket.check()  # `pacs storage init` created the bucket
    server = start_server(tmp_path / "node", prod_env)
    try:
        assert _probe("dicom", server) == 0
        assert _probe("http", server) == 0
        pushed = _storescu(server.dicom_port, *small, big)
        assert pushed.returncode == 0, pushed.stderr
        out = tmp_path / "find"
        out.mkdir()
        found = subprocess.run(
            [
                dcmtk("findscu"), "-aec", "NDTPACS", "-S", "-X", "-od", str(out),
                "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=SN-PROD-*", "-k", "StudyInstanceUID",
                "-k", "NumberOfStudyRelatedInstances", "127.0.0.1", str(server.dicom_port),
            ],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        responses = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
        assert [(r.StudyInstanceUID, int(r.NumberOfStudyRelatedInstances)) for r in responses] == [(STUDY, 7)]
        health = httpx.get(f"{server.http}/healthz", timeout=10).json()
        assert health["object_store"] == "up"
        assert health["database"] == "up"
    finally:
        assert stop_server(server) in (0, -15)  # uvicorn re-raises SIGTERM after its clean shutdown
    assert not list((tmp_path / "node" / "objects").glob("**/*.dcm"))  # nothing went to local files
    assert not [p for p in (tmp_path / "node" / "spool").iterdir() if p.is_file()]  # spool drained
    with index.read_session() as s:
        rows = s.execute(
            select(Instance.sop_instance_uid, InstanceVersion.object_key, InstanceVersion.sha256).join(
                InstanceVersion, InstanceVersion.instance_id == Instance.id
            )
        ).all()
    sources = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in [*small, big]}
    assert {uid for uid, _, _ in rows} == set(sources)
    for uid, key, sha in rows:
        stored = read_bytes(bucket, key)
        assert hashlib.sha256(stored).hexdigest() == sha
        assert _data_set_bytes(stored) == _data_set_bytes(sources[uid].read_bytes())


def _start_receiver(data_dir: Path, env: dict[str, str]) -> RunningServer:
    """`pacs serve --no-http`: a DICOM receiver only; ready when its port accepts."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"receiver-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ndt_pacs", "serve", "--no-http", "--data-dir", str(data_dir),
         "--host", "127.0.0.1", "--dicom-port", str(port)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "TCP_NODELAY": "1", **env},
    )  # fmt: skip
    server = RunningServer(process, data_dir, port, 0, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited early:\n{server.log()}")
        # A bare TCP probe would hold an association slot until the ARTIM timer: echo instead.
        ae = AE(ae_title="PROBE")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="NDTPACS")
        if assoc.is_established:
            assoc.release()
            return server
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"receiver did not start:\n{server.log()}")


def test_two_nodes_receive_the_same_study_at_once(prod_env: dict[str, str], index: Database, tmp_path: Path) -> None:
    """Two processes on one PostgreSQL and one bucket, the same study pushed to both at the same time."""
    files = _study_files(tmp_path / "in", 30)
    nodes = [start_server(tmp_path / "node-a", prod_env), _start_receiver(tmp_path / "node-b", prod_env)]
    results: list[subprocess.CompletedProcess[str]] = []
    try:
        pushes = [threading.Thread(target=lambda n=n: results.append(_storescu(n.dicom_port, *files))) for n in nodes]
        for t in pushes:
            t.start()
        for t in pushes:
            t.join()
    finally:
        codes = [stop_server(n) for n in nodes]
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert codes[0] in (0, -15)
    assert codes[1] == 0  # the receiver-only process exits cleanly on SIGTERM
    assert _counts(index) == {"components": 1, "studies": 1, "series": 2, "instances": 30, "versions": 30}
    with index.read_session() as s:
        study = s.scalars(select(Study)).one()
        assert (study.number_of_series, study.number_of_instances) == (2, 30)
        assert sorted(s.scalars(select(Series.number_of_instances))) == [15, 15]
        keys = set(s.scalars(select(InstanceVersion.object_key)))
    bucket = _bucket(prod_env, tmp_path)
    assert isinstance(bucket, S3ObjectStore)
    listed = {
        o.object_name for o in bucket.client.list_objects(bucket.bucket, prefix=study_prefix(STUDY), recursive=True)
    }
    assert listed == keys  # every instance present once, nothing orphaned


def _c_store(port: int, paths: list[Path]) -> list[int]:
    """Send *paths* over one association with pynetdicom; the status of each C-STORE."""
    ae = AE(ae_title="NDTDEVICE")
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="NDTPACS")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(dcmread(p)).Status) for p in paths]
    finally:
        assoc.release()


def test_object_store_outage_refuses_then_recovers(moto_server: MotoServer, postgres_url: str, tmp_path: Path) -> None:
    """S3 unreachable mid-run: C-STORE 0xA7xx (never success), nothing lost, a resend succeeds."""
    proxy = TcpProxy(moto_server.port, free_port())
    env = {**s3_env_for(proxy.endpoint), "PACS_DATABASE_URL": postgres_url}
    done = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "db", "upgrade"], env={**os.environ, **env, "PACS_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = _study_files(tmp_path / "in", 6)
    db = Database(postgres_url)
    server = start_server(tmp_path / "node", env)
    try:
        assert _c_store(server.dicom_port, files[:3]) == [0, 0, 0]
        proxy.down()
        statuses = _c_store(server.dicom_port, files[3:])
        assert all(0xA700 <= s <= 0xA7FF for s in statuses), [hex(s) for s in statuses]
        assert httpx.get(f"{server.http}/healthz", timeout=10).status_code == 503
        assert _counts(db)["instances"] == 3  # nothing indexed that is not in the bucket
        proxy.up()
        assert _c_store(server.dicom_port, files) == [0] * 6  # the resend (and the duplicates) succeed
    finally:
        proxy.down()
        stop_server(server)
    assert _counts(db)["instances"] == 6
    proxy.up()
    bucket = _bucket(env, tmp_path)
    with db.read_session() as s:
        rows = s.execute(select(InstanceVersion.object_key, InstanceVersion.sha256)).all()
    db.dispose()
    for key, sha in rows:
        assert hashlib.sha256(read_bytes(bucket, key)).hexdigest() == sha
    proxy.down()


def test_http_only_node_has_no_dicom_listener(tmp_path: Path) -> None:
    """`pacs serve --no-dicom`: an HTTP node (here on the embedded default) binds no DICOM port."""
    dicom_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ndt_pacs", "serve", "--no-dicom", "--data-dir", str(tmp_path / "data"),
         "--host", "127.0.0.1", "--dicom-port", str(dicom_port), "--http-port", str(http_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RunningServer(process, tmp_path / "data", dicom_port, http_port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.http}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("HTTP-only node did not become healthy")
        ae = AE(ae_title="PROBE")
        ae.add_requested_context("1.2.840.10008.1.1")
        assert not ae.associate("127.0.0.1", dicom_port, ae_title="NDTPACS").is_established
        assert _probe("http", server) == 0
        assert _probe("dicom", server) == 1
    finally:
        stop_server(server)


def test_serve_refuses_no_dicom_and_no_http_together(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "serve", "--no-dicom", "--no-http", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not allowed with" in result.stderr


def test_serve_with_unreachable_object_store_fails_clearly(tmp_path: Path) -> None:
    env = {**s3_env_for(f"127.0.0.1:{free_port()}"), "PACS_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "serve", "--no-http", "--dicom-port", "0"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "S3 bucket" in result.stderr
