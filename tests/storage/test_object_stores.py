"""The ObjectStore contract, run against the file store and a real S3 server (moto over HTTP)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from storage.errors import NotFound, StorageUnavailable
from storage.factory import open_object_store
from storage.objects import ObjectStore, read_bytes
from storage.objects.s3 import PART_SIZE, S3ObjectStore
from storage.settings import StorageSettings
from tests.support.s3util import ACCESS_KEY, SECRET_KEY, MotoServer, TcpProxy, new_bucket_name
from tests.support.servers import free_port, make_settings, s3_env_for, s3_settings_for

KEY = "studies/ab/abcdef/0123/4567.89ab.dcm"


def _file(tmp_path: Path, data: bytes, name: str = "in.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_get_roundtrip(object_store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    object_store.put_file(KEY, _file(tmp_path, data))
    assert object_store.exists(KEY)
    assert object_store.size(KEY) == len(data)
    assert read_bytes(object_store, KEY) == data


def test_put_move_consumes_the_source(object_store: ObjectStore, tmp_path: Path) -> None:
    source = _file(tmp_path, b"DICM" * 1000)
    object_store.put_file(KEY, source, move=True)
    assert not source.exists()
    assert read_bytes(object_store, KEY) == b"DICM" * 1000


def test_put_linked_keeps_the_sources_and_replaces_a_stale_object(object_store: ObjectStore, tmp_path: Path) -> None:
    """Intake entries are placed in one batch; the entries stay until the indexer removes them."""
    object_store.put_file(KEY, _file(tmp_path, b"stale, cut-off write", "stale.dcm"))
    other = KEY.replace(".dcm", "0.dcm")
    first, second = _file(tmp_path, os.urandom(5000), "a.dcm"), _file(tmp_path, os.urandom(7000), "b.dcm")
    object_store.put_linked([(KEY, first), (other, second)])
    assert first.exists()
    assert second.exists()
    assert read_bytes(object_store, KEY) == first.read_bytes()
    assert read_bytes(object_store, other) == second.read_bytes()
    first.unlink()  # the intake entry is removed: the object keeps its bytes
    assert object_store.size(KEY) == 5000


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (10, 90), (999, None), (500, 10_000), (1000, None), (1000, 5), (0, 0), (0, None)],
)
def test_ranged_reads(object_store: ObjectStore, tmp_path: Path, offset: int, length: int | None) -> None:
    data = bytes(range(256)) * 4 + b"tail"  # 1028 bytes
    object_store.put_file(KEY, _file(tmp_path, data))
    end = None if length is None else offset + length
    assert read_bytes(object_store, KEY, offset, length) == data[offset:end]


def test_missing_object(object_store: ObjectStore) -> None:
    missing = "studies/00/0000/none.dcm"
    assert not object_store.exists(missing)
    with pytest.raises(NotFound):
        object_store.size(missing)
    with pytest.raises(NotFound):
        read_bytes(object_store, missing)
    object_store.delete(missing)  # deleting what is gone is not an error


def test_delete(object_store: ObjectStore, tmp_path: Path) -> None:
    object_store.put_file(KEY, _file(tmp_path, b"x" * 10))
    object_store.delete(KEY)
    assert not object_store.exists(KEY)


@pytest.mark.parametrize("key", ["/etc/passwd", "studies/../../escape.dcm", "a/../b"])
def test_hostile_keys_are_refused(object_store: ObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        object_store.put_file(key, _file(tmp_path, b"x"))


def test_check(object_store: ObjectStore) -> None:
    assert object_store.check()


def test_partly_read_stream_releases_its_connection(object_store: ObjectStore, tmp_path: Path) -> None:
    """Abandoned reads must not leak pooled connections: many of them still leave the store usable."""
    data = os.urandom(3 * 1024 * 1024)
    object_store.put_file(KEY, _file(tmp_path, data))
    for _ in range(40):
        stream = object_store.get(KEY)
        next(iter(stream))
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    assert read_bytes(object_store, KEY, 5, 7) == data[5:12]


def test_large_object_is_uploaded_in_parts(s3_settings: StorageSettings, tmp_path: Path) -> None:
    """Above PART_SIZE the upload is multipart (an S3 multipart ETag ends in -N), read back intact."""
    store = open_object_store(s3_settings)
    assert isinstance(store, S3ObjectStore)
    size = PART_SIZE * 2 + 12345
    path = tmp_path / "big.dcm"
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(size // (1024 * 1024) + 1):
            fh.write(os.urandom(1024 * 1024))
        fh.truncate(size)
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    store.put_file(KEY, path)
    stat = store.client.stat_object(store.bucket, KEY)
    assert stat.size == size
    assert str(stat.etag).endswith("-3")
    read = hashlib.sha256()
    for block in store.get(KEY):
        assert len(block) <= 1024 * 1024
        read.update(block)
    assert read.hexdigest() == digest.hexdigest()


def test_existing_large_object_is_not_uploaded_again(s3_settings: StorageSettings, tmp_path: Path) -> None:
    """Content-addressed keys: a multipart-sized object already under its key is not sent again."""
    store = open_object_store(s3_settings)
    assert isinstance(store, S3ObjectStore)
    first, second = tmp_path / "first.dcm", tmp_path / "second.dcm"
    first.write_bytes(b"\x01" * PART_SIZE)
    second.write_bytes(b"\x02" * PART_SIZE)  # same size: only an upload could change the object
    store.put_file(KEY, first)
    store.put_file(KEY, second, move=True)
    assert not second.exists()  # moved means consumed, uploaded or not
    assert read_bytes(store, KEY, 0, 4) == b"\x01" * 4


def test_bucket_is_created_when_missing(moto_server: MotoServer, tmp_path: Path) -> None:
    env = s3_env_for(moto_server.endpoint)
    bucket = env["PACS_STORAGE_URL"].removeprefix("s3://")
    store = open_object_store(s3_settings_for(tmp_path, env))
    assert isinstance(store, S3ObjectStore)
    assert store.client.bucket_exists(bucket)
    # A second process opening the same bucket finds it and shares it.
    other = open_object_store(s3_settings_for(tmp_path, env))
    store.put_file(KEY, _file(tmp_path, b"shared"))
    assert read_bytes(other, KEY) == b"shared"


def test_prefix_in_storage_url_is_kept_apart(moto_server: MotoServer, tmp_path: Path) -> None:
    bucket = new_bucket_name()
    plain = open_object_store(s3_settings_for(tmp_path, s3_env_for(moto_server.endpoint, bucket)))
    env = {**s3_env_for(moto_server.endpoint), "PACS_STORAGE_URL": f"s3://{bucket}/archive-a"}
    prefixed = open_object_store(s3_settings_for(tmp_path, env))
    prefixed.put_file(KEY, _file(tmp_path, b"a"))
    assert plain.exists(f"archive-a/{KEY}")
    assert not plain.exists(KEY)


@pytest.mark.parametrize(
    ("url", "endpoint", "message"),
    [
        ("s3://", "127.0.0.1:9", "names no bucket"),
        ("s3://test-x", None, "PACS_S3_ENDPOINT"),
        ("ftp://x", None, "scheme"),
    ],
)
def test_bad_storage_url_is_a_clear_error(tmp_path: Path, url: str, endpoint: str | None, message: str) -> None:
    settings = make_settings(tmp_path, storage_url=url, s3_endpoint=endpoint)
    with pytest.raises(ValueError, match=message):
        open_object_store(settings)


def test_unreachable_s3_is_storage_unavailable(moto_server: MotoServer, tmp_path: Path) -> None:
    """A service that goes away gives StorageUnavailable (never a hang, never another error)."""
    proxy = TcpProxy(moto_server.port, free_port())
    store = S3ObjectStore(
        new_bucket_name(), endpoint=proxy.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, connect_timeout=2
    )
    store.put_file(KEY, _file(tmp_path, b"before"))
    proxy.down()
    try:
        assert not store.check()
        with pytest.raises(StorageUnavailable):
            store.put_file("studies/00/other.dcm", _file(tmp_path, b"during", "during.dcm"))
        with pytest.raises(StorageUnavailable):
            read_bytes(store, KEY)
        with pytest.raises(StorageUnavailable):
            store.size(KEY)
    finally:
        proxy.up()
    assert read_bytes(store, KEY) == b"before"
    proxy.down()


def test_unreachable_s3_at_start_is_storage_unavailable(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        storage_url="s3://test-nobody-home",
        s3_endpoint=f"127.0.0.1:{free_port()}",
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )
    with pytest.raises(StorageUnavailable):
        open_object_store(settings)


def test_large_upload_never_holds_the_object_in_memory(s3_settings: StorageSettings, tmp_path: Path) -> None:
    """An 8-part object is streamed from disk: peak Python allocations stay a few parts, not the object."""
    import tracemalloc

    store = open_object_store(s3_settings)
    size = PART_SIZE * 8
    path = tmp_path / "huge.dcm"
    with path.open("wb") as fh:
        fh.truncate(size)  # sparse file: no memory spent making it
    tracemalloc.start()
    try:
        store.put_file(KEY, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.size(KEY) == size
    store.delete(KEY)  # moto keeps objects in memory
    assert peak < 3 * PART_SIZE, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB upload"
