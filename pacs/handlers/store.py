"""C-STORE (PS3.4 Annex B): the received bytes go to ``Archive.store_file`` unchanged.

The data set is spooled to a Part 10 file while it arrives, by pacs/fast_store.py
(default) or by pynetdicom (``STORE_RECV_CHUNKED_DATASET``), and the archive moves
that file into the object store, so large objects never sit whole in memory.
"""

from __future__ import annotations

import logging

from pynetdicom.events import Event

from pacs.actor import actor_of
from pacs.status import Status
from storage.archive import Archive
from storage.errors import IndexUnavailable, InvalidInstance, StorageUnavailable

log = logging.getLogger(__name__)


def handle_store(event: Event, archive: Archive) -> Status:
    """Archive one instance; success only once it is durable and indexed."""
    actor = actor_of(event)
    try:
        result = archive.store_file(event.dataset_path, actor, move=True)
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
