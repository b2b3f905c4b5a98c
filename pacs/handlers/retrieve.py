"""C-GET and C-MOVE SCP (PS3.4 C.4.2, C.4.3): Patient Root and Study Root.

The identifier becomes the archive's one query model (a :class:`Query` at IMAGE
level); every match is sent as a C-STORE sub-operation, from the stored object as
it is. pynetdicom's Query/Retrieve service class drives the sub-operations and
the pending/final responses with their counts; for each sub-operation it calls
``send_c_store`` on the storing association. We replace that method on that one
association object with :class:`SubOperations.send`, which:

* sends the stored Part 10 file unchanged (``STORE_SEND_CHUNKED_DATASET``) when
  the peer accepted the instance's SOP class in its stored transfer syntax;
* otherwise decodes it and sends it uncompressed, when the peer accepted an
  uncompressed transfer syntax and the pixel data can be decoded;
* otherwise fails the sub-operation (counted as failed, listed in (0008,0058)).

It also records each sub-operation's outcome for the audit log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from pacs.actor import actor_of
from pacs.identifiers import PATIENT_ROOT_LEVELS, STUDY_ROOT_LEVELS, InvalidIdentifier, query_from_identifier
from pacs.policy import AssociationPolicy, set_nodelay
from pacs.service_uids import PATIENT_ROOT_GET, PATIENT_ROOT_MOVE
from pacs.status import Status
from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError, IndexUnavailable, InvalidQuery
from storage.index.attributes import UNIQUE_KEYS, Level
from storage.index.query import Match, Query

log = logging.getLogger(__name__)

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)
MAX_SUBOPERATIONS = 65535  # (0000,1020)-(0000,1023) are US (PS3.7 E.1)
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255

Response = tuple[Status, Dataset | None]


class RetrieveRefused(Exception):
    """The request is refused before any sub-operation, with this status."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _stub(match: Match) -> Dataset:
    """What the Q/R service class sees of one sub-operation: just its UIDs."""
    ds = Dataset()
    ds.SOPClassUID = str(match.values["SOPClassUID"])
    ds.SOPInstanceUID = str(match.values["SOPInstanceUID"])
    return ds


@dataclass
class SubOperations:
    """The C-STORE sub-operations of one retrieve: what to send, how, and what happened."""

    archive: Archive
    matches: dict[str, Match]
    completed: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, assoc: Association) -> None:
        """Make *assoc* send our sub-operations through :meth:`send`."""
        # The class's method bound to this association: never an earlier retrieve's wrapper
        # (several C-GETs may run one after the other on one association).
        original: Callable[..., Dataset] = Association.send_c_store.__get__(assoc)

        def send(dataset: Dataset, *args: Any, **kwargs: Any) -> Dataset:
            return self.send(assoc, original, dataset, *args, **kwargs)

        assoc.send_c_store = send  # type: ignore[method-assign,assignment]

    def send(
        self, assoc: Association, original: Callable[..., Dataset], stub: Dataset, *args: Any, **kwargs: Any
    ) -> Dataset:
        """Send one stored instance; record the C-STORE response status."""
        uid = str(stub.SOPInstanceUID)
        try:
            rsp = self._send(assoc, original, self.matches[uid], *args, **kwargs)
        except Exception as exc:
            log.warning("C-STORE sub-operation for %s failed: %s", uid, exc)
            self._note(self.failed, uid)
            raise
        status = int(getattr(rsp, "Status", 0xFFFF))
        if status == Status.SUCCESS:
            self._note(self.completed, uid)
        elif status in (0x0001, Status.WARNING_SUBOPS_FAILED) or status & 0xF000 == 0xB000:
            self._note(self.warning, uid)
        else:
            self._note(self.failed, uid)
        return rsp

    def _note(self, bucket: list[str], uid: str) -> None:
        with self._lock:
            bucket.append(uid)

    def _send(
        self, assoc: Association, original: Callable[..., Dataset], match: Match, *args: Any, **kwargs: Any
    ) -> Dataset:
        sop_class = str(match.values["SOPClassUID"])
        stored_ts = str(match.transfer_syntax_uid or "")
        accepted = _accepted_syntaxes(assoc.accepted_contexts, sop_class)
        with self.archive.instance_file(str(match.object_key)) as path:
            if stored_ts in accepted:
                return original(path, *args, **kwargs)  # the stored bytes, unchanged
            if not any(ts in accepted for ts in UNCOMPRESSED):
                raise ValueError(
                    f"peer accepts SOP class {sop_class} only in {sorted(accepted) or 'no'} transfer syntax, "
                    f"stored as {stored_ts}"
                )
            ds = dcmread(path)
            if UID(stored_ts).is_compressed:
                ds.decompress()  # raises when the pixel data cannot be decoded: the sub-operation fails
            self._note(self.converted, str(match.values["SOPInstanceUID"]))
            return original(ds, *args, **kwargs)


def _accepted_syntaxes(contexts: list[PresentationContext], sop_class: str) -> set[str]:
    """Transfer syntaxes in which we may send *sop_class* as storage SCU on this association."""
    return {
        str(cx.transfer_syntax[0])
        for cx in contexts
        if cx.abstract_syntax == sop_class and cx.as_scu and cx.transfer_syntax
    }


def storage_contexts(matches: list[Match]) -> list[PresentationContext]:
    """Presentation contexts to propose to a move destination: the stored syntax, else uncompressed."""
    contexts: list[PresentationContext] = []
    seen: set[tuple[str, str]] = set()
    fallback: set[str] = set()
    for match in matches:
        sop_class = str(match.values["SOPClassUID"])
        stored = str(match.transfer_syntax_uid or ExplicitVRLittleEndian)
        if (sop_class, stored) not in seen:  # the stored syntax alone: the destination cannot pick another
            seen.add((sop_class, stored))
            contexts.append(build_context(sop_class, [stored]))
        fallback.add(sop_class)
    for sop_class in sorted(fallback):
        contexts.append(build_context(sop_class, list(UNCOMPRESSED)))
    if len(contexts) > MAX_CONTEXTS:
        # Too many combinations: uncompressed for every class (sent decoded when needed).
        contexts = [build_context(sop_class, list(UNCOMPRESSED)) for sop_class in sorted(fallback)]
    return contexts[:MAX_CONTEXTS]


class RetrieveService:
    """The C-GET and C-MOVE handlers, bound to the archive and the peer registry."""

    def __init__(self, archive: Archive, policy: AssociationPolicy) -> None:
        self.archive = archive
        self.policy = policy

    def _matches(self, event: Event, model: str, actor: Actor) -> tuple[Query, list[Match]]:
        levels = PATIENT_ROOT_LEVELS if model in (PATIENT_ROOT_GET, PATIENT_ROOT_MOVE) else STUDY_ROOT_LEVELS
        try:
            requested = query_from_identifier(event.identifier, levels)
        except InvalidIdentifier as exc:
            raise RetrieveRefused(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)) from exc
        except Exception as exc:  # undecodable identifier
            raise RetrieveRefused(Status.UNABLE_TO_PROCESS, f"cannot decode identifier: {exc}") from exc
        unique = UNIQUE_KEYS[requested.level]
        value = requested.filters.get(unique, "")
        if not value or "*" in value or "?" in value:
            # PS3.4 C.4.2.2.1 / C.4.3.2.1: the unique key of the retrieve level is required.
            raise RetrieveRefused(
                Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"{unique} is required (without wildcards) at level {requested.level}",
            )
        # Page through the matches (the archive caps one query at max_results) so a retrieve is never
        # silently incomplete; more than the DIMSE counters can express is refused.
        matches: list[Match] = []
        try:
            while True:
                page = Query(level=Level.IMAGE, filters=requested.filters, offset=len(matches))
                batch = self.archive.find(page, actor, action="retrieve_match")
                matches.extend(batch)
                if len(matches) > MAX_SUBOPERATIONS:
                    raise RetrieveRefused(
                        Status.OUT_OF_RESOURCES_MATCHES, f"more than {MAX_SUBOPERATIONS} instances match"
                    )
                if len(batch) < self.archive.max_results or not batch:
                    break
        except InvalidQuery as exc:
            raise RetrieveRefused(Status.UNABLE_TO_PROCESS, str(exc)) from exc
        except IndexUnavailable as exc:
            raise RetrieveRefused(Status.OUT_OF_RESOURCES_MATCHES, str(exc)) from exc
        return requested, matches

    def _audit(
        self,
        actor: Actor,
        service: str,
        query: Query | None,
        matches: list[Match],
        subops: SubOperations | None,
        *,
        destination: str,
        outcome: str,
        reason: str = "",
    ) -> None:
        studies = sorted({str(m.values.get("StudyInstanceUID")) for m in matches})
        detail: dict[str, Any] = {
            "service": service,
            "destination": destination,
            "level": query.level.value if query else None,
            "filters": dict(query.filters) if query else {},
            "matches": len(matches),
            "studies": studies[:100],
        }
        if subops is not None:
            detail.update(
                completed=len(subops.completed),
                warning=len(subops.warning),
                failed=len(subops.failed),
                failed_instances=subops.failed[:100],
                converted=len(subops.converted),
            )
        if reason:
            detail["reason"] = reason[:500]
        self.archive.record(
            AuditRecord(
                actor=actor,
                action="retrieve",
                outcome=outcome,
                study_instance_uid=studies[0] if len(studies) == 1 else None,
                detail=detail,
            )
        )

    def _run(
        self, event: Event, subops: SubOperations, actor: Actor, service: str, query: Query, destination: str
    ) -> Iterator[Any]:
        """Yield one pending response per match; stop on C-CANCEL; audit the outcome."""
        cancelled = False
        try:
            for uid in list(subops.matches):
                if event.is_cancelled:
                    cancelled = True
                    yield Status.CANCEL, None
                    return
                yield Status.PENDING, _stub(subops.matches[uid])
        finally:
            outcome = "cancelled" if cancelled else ("success" if not subops.failed else "partial")
            if subops.failed and not subops.completed and not subops.warning:
                outcome = "failure"
            self._audit(
                actor, service, query, list(subops.matches.values()), subops, destination=destination, outcome=outcome
            )

    def handle_get(self, event: Event) -> Iterator[Any]:
        """EVT_C_GET: send every match back over the requesting association (PS3.4 C.4.3)."""
        actor = actor_of(event)
        model = str(event.request.AffectedSOPClassUID)
        try:
            if not self.policy.may(event, "retrieve"):
                raise RetrieveRefused(Status.NOT_AUTHORIZED, f"{actor.name} may not retrieve")
            query, matches = self._matches(event, model, actor)
        except RetrieveRefused as exc:
            log.warning("C-GET from %s refused: %s", actor.name, exc)
            self._audit(actor, "C-GET", None, [], None, destination=actor.name, outcome="failure", reason=str(exc))
            # pynetdicom wants a sub-operation count first; a failure status then ends the request.
            yield 1
            yield exc.status, None
            return
        subops = SubOperations(self.archive, {str(m.values["SOPInstanceUID"]): m for m in matches})
        if not subops.matches:  # pynetdicom answers success without resuming us
            self._audit(actor, "C-GET", query, [], subops, destination=actor.name, outcome="success")
        yield len(subops.matches)
        if not subops.matches:
            return
        subops.attach(event.assoc)
        yield from self._run(event, subops, actor, "C-GET", query, actor.name)

    def handle_move(self, event: Event) -> Iterator[Any]:
        """EVT_C_MOVE: open an association to a known destination and send every match (PS3.4 C.4.2)."""
        actor = actor_of(event)
        model = str(event.request.AffectedSOPClassUID)
        destination = str(event.move_destination or "").strip()
        peer = None
        try:
            peer = self.policy.peers.get(destination)
            if peer is None or not peer.allow_move_destination:
                raise RetrieveRefused(Status.MOVE_DESTINATION_UNKNOWN, f"move destination {destination!r} unknown")
            if not self.policy.may(event, "retrieve"):
                raise RetrieveRefused(Status.NOT_AUTHORIZED, f"{actor.name} may not retrieve")
            query, matches = self._matches(event, model, actor)
        except (RetrieveRefused, ArchiveError) as exc:
            status = exc.status if isinstance(exc, RetrieveRefused) else Status.OUT_OF_RESOURCES_MATCHES
            log.warning("C-MOVE from %s refused: %s", actor.name, exc)
            self._audit(actor, "C-MOVE", None, [], None, destination=destination, outcome="failure", reason=str(exc))
            if status == Status.MOVE_DESTINATION_UNKNOWN or peer is None:
                yield None, None  # pynetdicom answers 0xA801 Move Destination Unknown
                return
            # pynetdicom wants the destination and a count before a failure status can end the request.
            yield peer.host, peer.port, {"ae_title": peer.ae_title, "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay)]}
            yield 1
            yield status, None
            return
        subops = SubOperations(self.archive, {str(m.values["SOPInstanceUID"]): m for m in matches})

        def on_open(open_event: Event) -> None:
            set_nodelay(open_event)
            subops.attach(open_event.assoc)

        yield (
            peer.host,
            peer.port,
            {
                "ae_title": peer.ae_title,
                "contexts": storage_contexts(matches),
                "evt_handlers": [(evt.EVT_CONN_OPEN, on_open)],
            },
        )
        if not subops.matches:  # pynetdicom answers success without resuming us
            self._audit(actor, "C-MOVE", query, [], subops, destination=destination, outcome="success")
        try:
            yield len(subops.matches)
        except GeneratorExit:
            # pynetdicom could not associate with the destination (it answered 0xA801) and dropped us.
            if subops.matches:
                self._audit(
                    actor, "C-MOVE", query, matches, subops, destination=destination, outcome="failure",
                    reason="cannot associate with the move destination",
                )  # fmt: skip
            raise
        if not subops.matches:
            return
        yield from self._run(event, subops, actor, "C-MOVE", query, f"{peer.ae_title}@{peer.host}:{peer.port}")
