"""Object storage: the interface every store implements, and the helpers they share.

Implementations: :mod:`storage.objects.files` (the embedded default),
:mod:`storage.objects.s3` (MinIO / any S3 service), :mod:`storage.objects.memory` (tests).

Keys come from :func:`storage.objects.keys.object_key` (validated, hashed UIDs). The
same key layout is used by every implementation, so an archive can move between
them by copying objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

CHUNK = 1024 * 1024


class ObjectStore(Protocol):
    """Write-once object storage for original DICOM files."""

    def put_file(self, key: str, path: Path, *, move: bool = False, link: bool = False) -> None:
        """Store the file at *path* under *key* durably (moving it when *move* and possible).

        *link*: *path* is an already durable file that is never modified again (an intake
        entry): a store on the same file system may hard-link it instead of copying.
        """

    def put_linked(self, items: Sequence[tuple[str, Path]]) -> None:
        """Store several durable, never-modified files (intake entries) under their keys; durable on return.

        Like ``put_file(key, path, link=True)`` for each, with the directory syncs shared.
        """

    def get(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the object's bytes, optionally a range starting at *offset*."""

    def size(self, key: str) -> int:
        """Size of the object in bytes; :class:`NotFound` when missing."""

    def exists(self, key: str) -> bool:
        """True when the object exists."""

    def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    def check(self) -> bool:
        """True when the store is reachable and writable."""

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every stored key with its last-modified time (UTC), in no particular order."""

    def local_path(self, key: str) -> Path | None:
        """The object as a file on this machine that may be read in place, or None (it must be fetched)."""


def read_bytes(store: ObjectStore, key: str, offset: int = 0, length: int | None = None) -> bytes:
    """Read a whole object (or a range of it) into memory; for small objects only."""
    return b"".join(store.get(key, offset, length))


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path (a directory: its entries are on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
