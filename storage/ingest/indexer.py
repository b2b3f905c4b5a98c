"""The indexer: indexes what receivers admitted to the intake (deferred indexing, storage/ingest/intake.py).

One indexer works on an intake at a time (an exclusive ``flock`` on ``.indexer.lock``):
a second ``pacs serve`` on the same data directory waits as a standby. Entries are
taken oldest first. A backend that is down (index or object store) stops the pass;
the entries stay and are retried, so nothing acknowledged is lost. An entry that
cannot be indexed at all is set aside in ``intake/rejected/`` and audited.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from storage.audit import AuditRecord
from storage.errors import ComponentMismatch, IndexUnavailable, InvalidInstance, StorageUnavailable
from storage.ingest.index_writer import IndexItem, StoreResult
from storage.ingest.intake import Entry, Intake

log = logging.getLogger(__name__)


class Archive(Protocol):
    """What the indexer needs of the archive (:class:`storage.archive.Archive` provides it)."""

    def examine_entry(self, entry: Entry) -> IndexItem:
        """The full header parse of an intake entry."""

    def index_entries(self, intake: Intake, batch: Sequence[tuple[Entry, IndexItem]]) -> list[StoreResult]:
        """Place, index and drop a batch of entries in one transaction."""

    def record(self, record: AuditRecord) -> None:
        """Append one audit entry in its own transaction."""


IDLE_POLL = 0.002  # seconds between looks at an empty intake
RETRY_AFTER = 1.0  # seconds before retrying when a backend is down


@contextlib.contextmanager
def exclusive(intake: Intake, stop: threading.Event) -> Iterator[bool]:
    """Hold the intake's indexer lock (waiting as a standby); yields False if stopped before getting it."""
    fd = os.open(intake.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(0.5):
                    yield False
                    return
        yield True
    finally:
        os.close(fd)  # releases the lock


ATTEMPTS = 3  # an entry that fails this often for an unexpected reason is set aside
BATCH = 64  # entries indexed in one transaction (one commit, one sync per object directory)


def _set_aside(archive: Archive, intake: Intake, entry: Entry, reason: str, exc: Exception | None = None) -> None:
    where = intake.reject(entry)
    log.error("admitted object set aside, it cannot be indexed: %s (%s)", where, reason)
    detail = {"reason": f"admitted but not indexable: {reason}"[:500], "kept_at": str(where)}
    study = None
    if isinstance(exc, ComponentMismatch):  # acknowledged, then found to name another component: never re-labelled
        detail.update(mismatch="component", owner=exc.owner, named=exc.named)
        study = exc.study_instance_uid
    archive.record(
        AuditRecord(actor=entry.actor, action="store", outcome="failure", study_instance_uid=study, detail=detail)
    )


def index_pending(archive: Archive, intake: Intake, failures: dict[str, int] | None = None) -> int:
    """Index every entry now in *intake*, BATCH at a time; return how many were taken. Backend errors propagate."""
    failures = {} if failures is None else failures
    entries = intake.entries()
    taken = 0
    for start in range(0, len(entries), BATCH):
        batch: list[tuple[Entry, IndexItem]] = []
        for entry in entries[start : start + BATCH]:
            try:
                batch.append((entry, archive.examine_entry(entry)))
            except InvalidInstance as exc:
                _set_aside(archive, intake, entry, str(exc))
                taken += 1
        try:
            archive.index_entries(intake, batch)
        except (IndexUnavailable, StorageUnavailable):
            raise
        except Exception as exc:  # isolate the entry that fails; index the others
            if isinstance(exc, InvalidInstance):
                log.warning("indexing a batch of %d refused (%s): indexing its entries one by one", len(batch), exc)
            else:
                log.exception("indexing a batch of %d failed: indexing its entries one by one", len(batch))
            taken += _one_by_one(archive, intake, batch, failures)
            continue
        taken += len(batch)
    return taken


def _one_by_one(
    archive: Archive, intake: Intake, batch: list[tuple[Entry, IndexItem]], failures: dict[str, int]
) -> int:
    taken = 0
    for entry, item in batch:
        try:
            archive.index_entries(intake, [(entry, item)])
        except (IndexUnavailable, StorageUnavailable):
            raise
        except InvalidInstance as exc:  # a conflict with the index (component mismatch): retrying cannot help
            _set_aside(archive, intake, entry, str(exc), exc)
            failures.pop(entry.name, None)
            taken += 1
            continue
        except Exception as exc:  # one bad entry must not stop the others
            failures[entry.name] = failures.get(entry.name, 0) + 1
            log.exception("indexing %s failed (attempt %d)", entry.name, failures[entry.name])
            if failures[entry.name] >= ATTEMPTS:
                _set_aside(archive, intake, entry, repr(exc))
                failures.pop(entry.name, None)
            continue
        taken += 1
    return taken


def run(archive: Archive, intake: Intake, stop: threading.Event) -> None:
    """Index the intake until *stop* is set; then index what is left once more and return."""
    with exclusive(intake, stop) as owner:
        if not owner:
            return
        log.info("indexer running on %s", intake.directory)
        failures: dict[str, int] = {}
        while True:
            stopping = stop.is_set()  # after a stop request: one more full pass, then return
            try:
                taken = index_pending(archive, intake, failures)
            except (IndexUnavailable, StorageUnavailable) as exc:
                log.error("indexer: backend unavailable, retrying: %s", exc)
                if stopping:
                    return  # the entries stay in the intake for the next start
                stop.wait(RETRY_AFTER)
                continue
            if stopping:
                return
            if not taken:
                stop.wait(IDLE_POLL)
