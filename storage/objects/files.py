"""Objects as files under a root directory: the embedded default's object store."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from storage.errors import NotFound, StorageUnavailable
from storage.objects import CHUNK, fsync_path


class FileObjectStore:
    """Objects as files under a root directory; atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return self.root / key

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if created:
            # Make the new directory entries durable up to the root.
            node = directory
            while node != self.root and node.parent != node:
                fsync_path(node.parent)
                node = node.parent
        self._known_dirs.add(directory)

    def _link(self, key: str, path: Path) -> Path | None:
        """Give the durable file *path* the name *key* (atomically); its directory, or None across devices."""
        target = self._path(key)
        self._ensure_dir(target.parent)
        if os.stat(path).st_dev != os.stat(target.parent).st_dev:
            return None
        try:
            os.link(path, target)
        except FileExistsError:
            # The key exists (a resend of these bytes, or the leftover of a write cut off by a
            # crash): replace it atomically with the durable file.
            second_name = target.parent / f".put-{os.getpid()}-{threading.get_ident()}-{target.name}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(second_name)
            os.link(path, second_name)
            os.replace(second_name, target)
        return target.parent

    def put_linked(self, items: Sequence[tuple[str, Path]]) -> None:
        """Hard-link each durable file to its key, then fsync each directory once (copies across devices)."""
        directories: set[Path] = set()
        for key, path in items:
            try:
                directory = self._link(key, path)
            except OSError as exc:
                self._known_dirs.discard(self._path(key).parent)
                raise StorageUnavailable(f"cannot write object {key}: {exc.strerror or exc}") from exc
            if directory is None:
                self.put_file(key, path)
            else:
                directories.add(directory)
        try:
            for directory in directories:
                fsync_path(directory)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write objects: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path, *, move: bool = False, link: bool = False) -> None:
        """Durably place *path* at *key*: file data and directory entry are fsynced before returning."""
        if link:
            self.put_linked([(key, path)])
            return
        target = self._path(key)
        try:
            self._ensure_dir(target.parent)
            if move and os.stat(path).st_dev == os.stat(target.parent).st_dev:
                # Rename first, then fsync the file and its directory: on a journaling file
                # system the file's fsync then commits the rename too, and the directory
                # fsync finds nothing left to do (one journal commit instead of two). A crash
                # before the fsync can leave an incomplete file under the key, but nothing is
                # indexed before put_file returns: it is an orphan that a resend replaces and
                # `pacs verify --sweep-orphans` removes.
                os.replace(path, target)
                fd = os.open(target, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
                try:
                    with os.fdopen(fd, "wb") as dst, open(path, "rb") as src:
                        shutil.copyfileobj(src, dst, CHUNK)
                        dst.flush()
                        os.fsync(dst.fileno())
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            fsync_path(target.parent)
        except OSError as exc:
            self._known_dirs.discard(target.parent)
            raise StorageUnavailable(f"cannot write object {key}: {exc.strerror or exc}") from exc

    def local_path(self, key: str) -> Path | None:
        """The object's own file; :class:`NotFound` when it is missing."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key} not found")
        return path

    def get(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the object (or the range *offset*, *length*) in chunks."""
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} not found") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read object {key}: {exc.strerror}") from exc
        return self._chunks(fh, offset, length)

    @staticmethod
    def _chunks(fh: BinaryIO, offset: int, length: int | None) -> Iterator[bytes]:
        with fh:
            fh.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                block = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not block:
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def size(self, key: str) -> int:
        """Size of the stored object."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} not found") from exc

    def exists(self, key: str) -> bool:
        """True when the object file exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the object file if present."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def check(self) -> bool:
        """True when the root directory exists and is writable."""
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every object file under the root (temporary ``.put-`` files of interrupted writes included)."""
        try:
            for directory, _dirs, files in os.walk(self.root):
                for name in files:
                    path = Path(directory) / name
                    with contextlib.suppress(FileNotFoundError):
                        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                        yield path.relative_to(self.root).as_posix(), modified
        except OSError as exc:
            raise StorageUnavailable(f"cannot list objects: {exc.strerror or exc}") from exc
