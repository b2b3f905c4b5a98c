"""Objects held in memory: the object store of unit tests (as Orthanc keeps ``MemoryStorageArea``).

Same contract as :class:`storage.objects.files.FileObjectStore`: write-once by key,
ranged reads, :class:`NotFound` for a missing key. Nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from storage.errors import NotFound
from storage.objects import CHUNK


class MemoryObjectStore:
    """Every object a ``bytes`` value in a dictionary, guarded by a lock."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, datetime]] = {}
        self._lock = threading.Lock()

    def put_file(self, key: str, path: Path, *, move: bool = False, link: bool = False) -> None:
        """Keep the bytes of *path* under *key*; *move* removes the file afterwards."""
        data = path.read_bytes()
        with self._lock:
            self._objects[key] = (data, datetime.now(UTC))
        if move:
            path.unlink(missing_ok=True)

    def put_linked(self, items: Sequence[tuple[str, Path]]) -> None:
        """Keep each durable intake entry's bytes under its key."""
        for key, path in items:
            self.put_file(key, path)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The object's bytes (or the range *offset*, *length*) in chunks."""
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise NotFound(f"object {key} not found")
        data = found[0]
        end = len(data) if length is None else min(len(data), offset + length)
        return (data[start : min(start + CHUNK, end)] for start in range(offset, end, CHUNK))

    def size(self, key: str) -> int:
        """Size of the object in bytes."""
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise NotFound(f"object {key} not found")
        return len(found[0])

    def exists(self, key: str) -> bool:
        """True when *key* is held."""
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        """Forget *key* (no error when it is already gone)."""
        with self._lock:
            self._objects.pop(key, None)

    def local_path(self, key: str) -> Path | None:
        """Never a file: the bytes are in memory."""
        return None

    def check(self) -> bool:
        """Always reachable."""
        return True

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every key with the time it was stored."""
        with self._lock:
            items = [(key, stored) for key, (_, stored) in self._objects.items()]
        return iter(items)
