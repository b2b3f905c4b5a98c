"""Retrieval: which stored objects make up a study, series or instance, and reading them.

Used by every retrieve front door (WADO-RS, WADO-URI, rendered images); the
served version of each instance is the one the index row names (see
:mod:`storage.archive` for the duplicate / version policy).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.index.models import Instance, Series, Study
from storage.objects import CHUNK, ObjectStore, read_bytes


@dataclass(frozen=True)
class StoredInstance:
    """One served instance: its identity, where its object is, and (optionally) its header."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    object_key: str
    size: int
    number_of_frames: int | None
    rows: int | None
    header_json: str | None = None


def list_instances(
    session: Session,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    with_header: bool = False,
) -> list[StoredInstance]:
    """The instances of a study (or one series of it, or one instance), in series/instance order."""
    columns: list[Any] = [
        Study.study_instance_uid,
        Series.series_instance_uid,
        Instance.sop_instance_uid,
        Instance.sop_class_uid,
        Instance.transfer_syntax_uid,
        Instance.object_key,
        Instance.size_bytes,
        Instance.number_of_frames,
        Instance.rows,
    ]
    if with_header:
        columns.append(Instance.header_json)
    stmt = (
        select(*columns)
        .select_from(Instance)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(Study.study_instance_uid == study_uid)
    )
    if series_uid is not None:
        stmt = stmt.where(Series.series_instance_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(Instance.sop_instance_uid == sop_uid)
    stmt = stmt.order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
    return [StoredInstance(*row) for row in session.execute(stmt)]


class ObjectReader(io.RawIOBase):
    """A read-only, seekable file over one stored object, reading ranges on demand.

    Decoders that need one frame (pydicom's ``pixel_array(..., index=)``) seek to it,
    so a single frame of a multi-GB object is read without fetching the whole object.
    """

    def __init__(self, store: ObjectStore, key: str, size: int) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0

    @property
    def name(self) -> str:
        """The object key (file-like objects carry a name; pydicom records it)."""
        return self._key

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (whence as for :meth:`io.IOBase.seek`)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read up to ``len(buffer)`` bytes at the current position."""
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = read_bytes(self._store, self._key, self._pos, want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_object(store: ObjectStore, key: str, size: int) -> io.BufferedReader:
    """A buffered, seekable binary stream over the stored object *key* of *size* bytes."""
    return io.BufferedReader(ObjectReader(store, key, size), buffer_size=CHUNK)


def iter_object(store: ObjectStore, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The stored bytes of *key* (or a range of them) in chunks."""
    return store.get(key, offset, length)
