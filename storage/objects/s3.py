"""S3 object store (MinIO or any S3-compatible service) with the ``minio`` SDK.

The only module that imports ``minio``. Objects use the same keys as
:class:`storage.objects.FileObjectStore`, so an archive moves between the two by
copying objects. Write-through: :meth:`S3ObjectStore.put_file` returns only after
the service acknowledged the PUT (or the multipart completion), which is what S3
defines as durable; the archive then commits the index and only then reports
success to the sender.

Large objects are uploaded from the spooled file in parts of ``PART_SIZE``
(never the whole object in memory); reads stream the response body in chunks
and always close the response and release its connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from storage.errors import NotFound, StorageUnavailable
from storage.objects import CHUNK

log = logging.getLogger(__name__)

PART_SIZE = 16 * 1024 * 1024  # multipart part size: memory per upload is about PART_SIZE x PARALLEL_PARTS
PARALLEL_PARTS = 1  # sequential parts: memory stays flat per upload; concurrency comes from associations
CONTENT_TYPE = "application/dicom"
_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
# Network failures surface from urllib3 (and the OS) rather than from minio.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    OSError,
    MinioException,
)


def _http_client(connect_timeout: float, read_timeout: float) -> urllib3.PoolManager:
    """Connection pool with bounded timeouts and few retries: an outage fails fast (0xA7xx)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=32,
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class _ObjectStream:
    """Iterator over a GET response's body; closes and releases the connection when done."""

    def __init__(self, response: Any) -> None:
        self._response: Any | None = response
        self._chunks: Iterator[bytes] = response.stream(CHUNK)

    def __iter__(self) -> _ObjectStream:
        return self

    def __next__(self) -> bytes:
        if self._response is None:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except _TRANSPORT_ERRORS as exc:
            self.close()
            raise StorageUnavailable(f"object read interrupted: {exc}") from exc

    def close(self) -> None:
        """Close the response and hand its connection back to the pool."""
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
            with contextlib.suppress(Exception):
                response.release_conn()

    def __enter__(self) -> _ObjectStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class S3ObjectStore:
    """Objects in one S3 bucket (``PACS_STORAGE_URL=s3://BUCKET``), created when missing."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        secure: bool = False,
        region: str | None = None,
        prefix: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        create_bucket: bool = True,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required (PACS_STORAGE_URL=s3://BUCKET)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = Minio(
            _endpoint_host(endpoint),
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(connect_timeout, read_timeout),
        )
        if create_bucket:
            self.ensure_bucket()

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (concurrent creators are fine)."""
        try:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"S3 bucket {self.bucket!r} unavailable: {exc}") from exc

    def _name(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return self.prefix + key

    def put_linked(self, items: Sequence[tuple[str, Path]]) -> None:
        """Upload each file (an upload is always a copy); durable on return."""
        for key, path in items:
            self.put_file(key, path)

    def put_file(self, key: str, path: Path, *, move: bool = False, link: bool = False) -> None:
        """Upload *path* (multipart above ``PART_SIZE``); return once S3 acknowledged it.

        With *move* the local file is removed after the upload succeeded; *link* changes
        nothing here (an upload is always a copy).
        """
        name = self._name(key)
        size = os.stat(path).st_size
        # Keys are content-addressed (the SHA-256 is part of the key): a resend of bytes
        # already uploaded needs no second upload. Asking costs a round trip on every
        # store, about what uploading a small object costs, so only multipart-sized
        # objects ask first.
        if size >= PART_SIZE and self._has_object(key, size):
            if move:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
        try:
            self.client.fput_object(
                self.bucket,
                name,
                str(path),
                content_type=CONTENT_TYPE,
                part_size=PART_SIZE,
                num_parallel_uploads=PARALLEL_PARTS,
            )
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"cannot write object {key} to S3: {exc}") from exc
        if move:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the object (or the range *offset*, *length*); :class:`NotFound` when missing."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        name = self._name(key)
        if length == 0:
            self._stat(key)
            return iter(())
        try:
            response = self.client.get_object(self.bucket, name, offset=offset, length=length or 0)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"object {key} not found") from exc
            if exc.code == "InvalidRange":  # offset at or past the end: nothing to read
                self._stat(key)
                return iter(())
            raise StorageUnavailable(f"cannot read object {key} from S3: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"cannot read object {key} from S3: {exc}") from exc
        return _ObjectStream(response)

    def _stat(self, key: str) -> Any:
        try:
            return self.client.stat_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"object {key} not found") from exc
            raise StorageUnavailable(f"cannot stat object {key} in S3: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"cannot stat object {key} in S3: {exc}") from exc

    def _has_object(self, key: str, size: int) -> bool:
        try:
            return int(self._stat(key).size) == size
        except NotFound:
            return False

    def size(self, key: str) -> int:
        """Size of the stored object in bytes."""
        return int(self._stat(key).size)

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        try:
            self._stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the object (S3 DELETE of a missing key succeeds)."""
        try:
            self.client.remove_object(self.bucket, self._name(key))
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"cannot delete object {key} from S3: {exc}") from exc

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every object under the store's prefix with its last-modified time."""
        try:
            for item in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
                if item.object_name is None or item.is_dir:
                    continue
                modified = item.last_modified or datetime.now(UTC)
                yield item.object_name[len(self.prefix) :], modified
        except _TRANSPORT_ERRORS as exc:
            raise StorageUnavailable(f"cannot list objects in S3: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        """Never a local file: objects are fetched over HTTP."""
        return None

    def check(self) -> bool:
        """True when the service answers and the bucket exists."""
        try:
            return bool(self.client.bucket_exists(self.bucket))
        except _TRANSPORT_ERRORS as exc:
            log.debug("S3 health probe failed: %s", exc)
            return False


def _endpoint_host(endpoint: str) -> str:
    """``host:port`` from ``PACS_S3_ENDPOINT`` (a bare host:port or an http(s):// URL)."""
    if "://" in endpoint:
        parsed = urlparse(endpoint)
        if parsed.path not in ("", "/"):
            raise ValueError(f"PACS_S3_ENDPOINT must not have a path: {endpoint!r}")
        return parsed.netloc
    return endpoint


def secure_from_endpoint(endpoint: str, default: bool) -> bool:
    """An explicit ``https://`` / ``http://`` scheme on the endpoint wins over ``PACS_S3_SECURE``."""
    if endpoint.startswith("https://"):
        return True
    if endpoint.startswith("http://"):
        return False
    return default


__all__ = ["S3ObjectStore"]
