"""C-FIND SCP (PS3.4 C.4.1): Patient Root and Study Root, one answer per entity at its level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.actor import actor_of
from pacs.identifiers import (
    PATIENT_ROOT_LEVELS,
    STUDY_ROOT_LEVELS,
    InvalidIdentifier,
    query_from_identifier,
    response_identifier,
)
from pacs.service_uids import PATIENT_ROOT_FIND
from pacs.status import Status
from storage.archive import Archive
from storage.errors import IndexUnavailable, InvalidQuery

log = logging.getLogger(__name__)


def handle_find(event: Event, archive: Archive, ae_title: str) -> Iterator[tuple[Status, Dataset | None]]:
    """Match the identifier against the index and yield one pending response per match."""
    model = str(event.request.AffectedSOPClassUID)
    levels = PATIENT_ROOT_LEVELS if model == PATIENT_ROOT_FIND else STUDY_ROOT_LEVELS
    actor = actor_of(event)
    try:
        identifier = event.identifier
        query = query_from_identifier(identifier, levels)
        matches = archive.find(query, actor)
    except InvalidIdentifier as exc:
        log.warning("C-FIND from %s: %s", actor.name, exc)
        yield Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, None
        return
    except InvalidQuery as exc:
        log.warning("C-FIND from %s: %s", actor.name, exc)
        yield Status.UNABLE_TO_PROCESS, None
        return
    except IndexUnavailable as exc:
        log.error("C-FIND from %s: %s", actor.name, exc)
        yield Status.FIND_OUT_OF_RESOURCES, None
        return
    except Exception:
        log.exception("C-FIND from %s failed", actor.name)
        yield Status.UNABLE_TO_PROCESS, None
        return
    for match in matches:
        if event.is_cancelled:
            yield Status.CANCEL, None
            return
        yield Status.PENDING, response_identifier(identifier, match, retrieve_ae_title=ae_title)
