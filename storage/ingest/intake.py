"""The intake: received objects that are durable and acknowledged, waiting for the indexer.

Deferred indexing splits a store in two (DESIGN.md "Storing an instance"). The
receiver checks the file (storage/ingest/admission.py), makes its bytes durable here —
fsync the file, rename it into the intake directory, fsync the directory — and
answers success. The indexer (:func:`storage.ingest.indexer.run`, a process of its own,
so it works on the second core while the receiver takes the next instance) links
each entry into the object store, indexes it, and only then removes the entry.
A crash at any point leaves the entry in the intake and the indexer takes it again
on start; indexing the same bytes twice is a no-op (duplicate policy).

Entry names sort by admission time: ``<ns>.<pid>.<seq>.<actor>.dcm``, the actor
encoded (base64url JSON) so the audit entry written by the indexer names who sent it.
Readers that must see every acknowledged instance call :meth:`Intake.settle` first: it
waits until the entries admitted before the call have been indexed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from storage.audit import Actor
from storage.errors import StorageUnavailable
from storage.objects import fsync_path

log = logging.getLogger(__name__)

_SUFFIX = ".dcm"
REJECTED = "rejected"  # entries the indexer could not index at all (kept, reported by `pacs verify`)


@dataclass(frozen=True)
class Entry:
    """One admitted object in the intake."""

    path: Path
    admitted_ns: int

    @property
    def name(self) -> str:
        """The entry's file name (unique)."""
        return self.path.name

    @property
    def actor(self) -> Actor:
        """Who sent it."""
        return _decode_actor(self.name.split(".")[3])


def _encode_actor(actor: Actor) -> str:
    fields = [actor.name, actor.address, actor.kind] + ([actor.role] if actor.role is not None else [])
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_actor(token: str) -> Actor:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    name, address, kind, *role = json.loads(raw)
    return Actor(str(name), None if address is None else str(address), str(kind), str(role[0]) if role else None)


def _parse(path: Path) -> Entry | None:
    """The entry named by *path*, or None for anything else in the directory."""
    parts = path.name.split(".")
    if len(parts) != 5 or "." + parts[4] != _SUFFIX or not parts[0].isdigit():
        return None
    return Entry(path=path, admitted_ns=int(parts[0]))


class Intake:
    """The intake directory of one data directory (shared by every receiver process on it)."""

    def __init__(self, directory: Path, *, settle_timeout: float = 60.0, high_water: int = 2000) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / REJECTED).mkdir(exist_ok=True)
        self.settle_timeout = settle_timeout
        self.high_water = high_water
        self._sequence = itertools.count()
        self._admitted = 0
        self._lock = threading.Lock()

    def admit(self, path: Path, actor: Actor) -> Entry:
        """Make the complete file at *path* durable in the intake (it is moved); the caller may then acknowledge."""
        with self._lock:
            sequence = next(self._sequence)
            self._admitted += 1
            check_backlog = self._admitted % 64 == 0
        if check_backlog:
            self._wait_below_high_water()
        admitted_ns = time.time_ns()
        target = self.directory / f"{admitted_ns:020d}.{os.getpid()}.{sequence}.{_encode_actor(actor)}{_SUFFIX}"
        try:
            # fsync the data, rename, fsync the directory: both the bytes and the name are on disk.
            fsync_path(path)
            os.replace(path, target)
            fsync_path(self.directory)
        except OSError as exc:
            raise StorageUnavailable(f"cannot admit the received object: {exc.strerror or exc}") from exc
        return Entry(path=target, admitted_ns=admitted_ns)

    def entries(self) -> list[Entry]:
        """The entries waiting for the indexer, oldest first."""
        try:
            with os.scandir(self.directory) as found:
                entries = [e for e in (_parse(Path(item.path)) for item in found if item.is_file()) if e is not None]
        except FileNotFoundError:
            return []
        return sorted(entries, key=lambda e: (e.admitted_ns, e.name))

    def rejected(self) -> list[Path]:
        """Entries the indexer set aside (kept byte-exact; see :meth:`reject`)."""
        return sorted(p for p in (self.directory / REJECTED).iterdir() if p.is_file())

    def done(self, entry: Entry) -> None:
        """The entry is indexed: remove it (a lost removal only repeats a no-op index on restart)."""
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def reject(self, entry: Entry) -> Path:
        """Set an entry aside that cannot be indexed; it stays byte-exact for an operator."""
        target = self.directory / REJECTED / entry.name
        os.replace(entry.path, target)
        fsync_path(target.parent)
        return target

    def pending_before(self, instant_ns: int, names: set[str] | None = None) -> int:
        """How many entries admitted up to *instant_ns* (or among *names*) are not indexed yet."""
        entries = self.entries()
        if names is not None:
            return sum(1 for e in entries if e.name in names)
        return sum(1 for e in entries if e.admitted_ns <= instant_ns)

    def settle(self, names: set[str] | None = None, *, timeout: float | None = None) -> bool:
        """Wait until every entry admitted before now (or each of *names*) is indexed; False on timeout.

        Called before reads, so whatever was acknowledged before a query began is found by it.
        """
        now = time.time_ns()
        deadline = time.monotonic() + (self.settle_timeout if timeout is None else timeout)
        delay, waited = 0.0005, 0.0
        while self.pending_before(now, names):
            if time.monotonic() >= deadline:
                log.error("intake not indexed within %.0f s: is the indexer running?", self.settle_timeout)
                return False
            if waited >= 0.25 and not self.indexer_running():
                log.warning("intake has unindexed entries and no indexer runs: reading without them")
                return False
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.02)
        return True

    @property
    def lock_path(self) -> Path:
        """The file the running indexer holds an exclusive ``flock`` on."""
        return self.directory / ".indexer.lock"

    def indexer_running(self) -> bool:
        """True when some process holds the indexer lock."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _wait_below_high_water(self) -> None:
        """Backpressure: a receiver far ahead of the indexer waits until half the backlog is indexed."""
        if len(self.entries()) < self.high_water:
            return
        log.warning("intake backlog of %d entries: receivers wait for the indexer", self.high_water)
        deadline = time.monotonic() + self.settle_timeout
        while len(self.entries()) > self.high_water // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
