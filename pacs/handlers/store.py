"""C-STORE (PS3.4 Annex B): the received bytes go to the archive unchanged.

The data set is spooled to a Part 10 file while it arrives, by pacs/fast_store.py
(default) or by pynetdicom (``STORE_RECV_CHUNKED_DATASET``), and the archive moves
that file into the object store, so large objects never sit whole in memory.

With deferred indexing (``pacs serve`` default) the file is admitted to the intake
(``Archive.admit_file``: checked, durable) and answered; the indexer process indexes
it moments later. The peer's A-RELEASE is answered only once every instance of the
association is indexed, so a device that has released finds all it sent
(``PACS_PLAIN_PYNETDICOM``: each C-STORE is answered once its instance is indexed).
"""

from __future__ import annotations

import logging

from pynetdicom.association import Association
from pynetdicom.events import Event

from pacs import pynetdicom_compat
from pacs.actor import actor_of
from pacs.status import Status
from storage.archive import Archive
from storage.errors import IndexUnavailable, InvalidInstance, StorageUnavailable, TooLarge

log = logging.getLogger(__name__)


def handle_store(event: Event, archive: Archive, *, settle_each: bool = False) -> Status:
    """Archive one instance; success only once it is durable and indexed.

    With deferred indexing the A-RELEASE-RP waits for the association's instances, or,
    *settle_each* (plain pynetdicom, whose release cannot be held back), each answer does.
    """
    actor = actor_of(event)
    try:
        if archive.intake is not None:
            entry = archive.admit_file(event.dataset_path, actor)
            if settle_each:
                archive.intake.settle({entry.name})
            else:
                _admitted_on(event.assoc, archive).add(entry.name)
            log.debug("C-STORE %s from %s: admitted", entry.name, actor.name)
            return Status.SUCCESS
        sha256 = getattr(event.request, "_pacs_sha256", None)  # hashed while received (pacs/fast_store.py)
        result = archive.store_file(event.dataset_path, actor, move=True, sha256=sha256)
    except TooLarge as exc:
        log.warning("C-STORE from %s refused: %s", actor.name, exc)
        return Status.INSTANCE_TOO_LARGE
    except InvalidInstance as exc:
        log.warning("C-STORE from %s rejected: %s", actor.name, exc)
        return Status.CANNOT_UNDERSTAND
    except (StorageUnavailable, IndexUnavailable) as exc:
        log.error("C-STORE from %s refused, backend unavailable: %s", actor.name, exc)
        return Status.OUT_OF_RESOURCES
    except Exception:
        log.exception("C-STORE from %s failed", actor.name)
        return Status.PROCESSING_FAILURE
    log.debug("C-STORE %s from %s: %s", result.sop_instance_uid, actor.name, result.outcome)
    return Status.SUCCESS


def _admitted_on(assoc: Association, archive: Archive) -> set[str]:
    """The intake entries admitted on *assoc*; the first call makes its A-RELEASE wait for them."""
    admitted: set[str] | None = getattr(assoc, "_pacs_admitted", None)
    if admitted is not None:
        return admitted
    admitted = set()
    assoc._pacs_admitted = admitted  # type: ignore[attr-defined]
    intake = archive.intake

    def settle() -> None:
        # A device that has released finds all it sent.
        if intake is not None and admitted:
            intake.settle(set(admitted))

    pynetdicom_compat.answer_release_after(assoc, settle)
    return admitted
