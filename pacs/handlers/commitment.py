"""Storage Commitment Push Model SCP (PS3.4 Annex J): N-ACTION in, N-EVENT-REPORT out.

The N-ACTION is answered at once (the request is accepted); the archive then
decides per instance (:func:`storage.records.commitment.commit`: indexed, object present,
checksum verified) and the result goes out as an N-EVENT-REPORT: on the same
association when it is still open (J.3.3), else on a new association to the
requesting AE, which must be a known peer (its host and port come from there).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import N_ACTION
from pynetdicom.events import Event
from pynetdicom.presentation import build_context, build_role

from pacs.actor import actor_of
from pacs.policy import set_nodelay
from pacs.service_uids import STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE
from pacs.status import Status
from storage.archive import Archive, CommitmentFailure
from storage.audit import Actor, AuditRecord
from storage.dicom.uids import is_valid_uid
from storage.records.commitment import CommitmentReport, Reference, commit
from storage.records.peers import PeerRegistry

log = logging.getLogger(__name__)

REQUEST_COMMITMENT = 1  # PS3.4 J.3.2.1: Action Type ID "Request Storage Commitment"
EVENT_ALL_SUCCESS = 1  # PS3.4 J.3.3.1: Event Type ID
EVENT_FAILURES_EXIST = 2
MAX_REFERENCES = 50_000
SAME_ASSOCIATION_WAIT = 3.0  # seconds to wait for the N-EVENT-REPORT-RSP on the requesting association

FAILURE_REASON: dict[CommitmentFailure, Status] = {
    CommitmentFailure.NO_SUCH_INSTANCE: Status.NO_SUCH_OBJECT_INSTANCE,
    CommitmentFailure.CLASS_MISMATCH: Status.CLASS_INSTANCE_CONFLICT,
    CommitmentFailure.MISSING_OBJECT: Status.PROCESSING_FAILURE,
    CommitmentFailure.CHECKSUM_MISMATCH: Status.PROCESSING_FAILURE,
    CommitmentFailure.UNAVAILABLE: Status.PROCESSING_FAILURE,
}


@dataclass
class _Job:
    assoc: Association
    actor: Actor
    calling_ae: str
    transaction_uid: str
    references: list[Reference]


def event_report(report: CommitmentReport, retrieve_ae_title: str) -> Dataset:
    """The N-EVENT-REPORT Event Information (PS3.4 J.3.3.1)."""
    ds = Dataset()
    ds.TransactionUID = report.transaction_uid
    ds.RetrieveAETitle = retrieve_ae_title
    if report.committed:
        ds.ReferencedSOPSequence = Sequence()
        for ref in report.committed:
            item = Dataset()
            item.ReferencedSOPClassUID = ref.sop_class_uid
            item.ReferencedSOPInstanceUID = ref.sop_instance_uid
            ds.ReferencedSOPSequence.append(item)
    if report.failed:
        ds.FailedSOPSequence = Sequence()
        for ref, check in report.failed:
            item = Dataset()
            item.ReferencedSOPClassUID = ref.sop_class_uid
            item.ReferencedSOPInstanceUID = ref.sop_instance_uid
            reason = FAILURE_REASON[check.failure] if check.failure else Status.PROCESSING_FAILURE
            item.FailureReason = int(reason)
            ds.FailedSOPSequence.append(item)
    return ds


class CommitmentService:
    """N-ACTION handler plus the delivery of the N-EVENT-REPORT."""

    def __init__(self, archive: Archive, peers: PeerRegistry, ae_title: str) -> None:
        self.archive = archive
        self.peers = peers
        self.ae_title = ae_title
        self._pending: dict[tuple[int, int], _Job] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def handlers(self) -> list[Any]:
        """Event handlers to bind on the listener."""
        return [(evt.EVT_N_ACTION, self.handle_action), (evt.EVT_DIMSE_SENT, self.on_sent)]

    def handle_action(self, event: Event) -> tuple[Status, Dataset | None]:
        """EVT_N_ACTION: validate the request and queue the commitment (PS3.4 J.3.2)."""
        request = cast(N_ACTION, event.request)
        actor = actor_of(event)
        if str(request.RequestedSOPClassUID) != STORAGE_COMMITMENT_PUSH:
            return Status.PROCESSING_FAILURE, None
        if str(request.RequestedSOPInstanceUID) != STORAGE_COMMITMENT_PUSH_INSTANCE:
            return Status.NO_SUCH_OBJECT_INSTANCE, None
        if request.ActionTypeID != REQUEST_COMMITMENT:
            return Status.NO_SUCH_ACTION, None
        try:
            info = event.action_information
        except Exception:  # noqa: BLE001 - undecodable action information
            log.warning("N-ACTION from %s: undecodable action information", actor.name)
            return Status.PROCESSING_FAILURE, None
        transaction_uid = str(info.get("TransactionUID", "") or "")
        if "ReferencedSOPSequence" not in info or not transaction_uid:
            return Status.MISSING_ATTRIBUTE, None
        if not is_valid_uid(transaction_uid):
            return Status.INVALID_ARGUMENT_VALUE, None
        if len(info.ReferencedSOPSequence) > MAX_REFERENCES:
            return Status.RESOURCE_LIMITATION, None
        references = [
            Reference(
                str(item.get("ReferencedSOPClassUID", "") or "")[:64],
                str(item.get("ReferencedSOPInstanceUID", "") or "")[:64],
            )
            for item in info.ReferencedSOPSequence
        ]
        job = _Job(event.assoc, actor, str(event.assoc.requestor.ae_title).strip(), transaction_uid, references)
        with self._lock:
            # Forget requests whose association died before their response went out.
            for key in [k for k, j in self._pending.items() if not j.assoc.is_established]:
                del self._pending[key]
            self._pending[(id(event.assoc), int(request.MessageID or 0))] = job
        return Status.SUCCESS, None

    def on_sent(self, event: Event) -> None:
        """EVT_DIMSE_SENT: once the N-ACTION response is out, decide and report in the background."""
        message = event.message
        if type(message).__name__ != "N_ACTION_RSP":
            return
        msg_id = int(getattr(message.command_set, "MessageIDBeingRespondedTo", -1))
        with self._lock:
            job = self._pending.pop((id(event.assoc), msg_id), None)
        if job is None:
            return
        thread = threading.Thread(target=self._deliver, args=(job,), name="commitment-report", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _deliver(self, job: _Job) -> None:
        report = commit(self.archive, job.transaction_uid, job.references, job.actor)
        dataset = event_report(report, self.ae_title)
        event_type = EVENT_ALL_SUCCESS if not report.failed else EVENT_FAILURES_EXIST
        log.info(
            "storage commitment %s for %s: %d committed, %d failed",
            job.transaction_uid,
            job.calling_ae,
            len(report.committed),
            len(report.failed),
        )
        if job.assoc.is_established:
            # A requestor that releases right after the N-ACTION-RSP never answers; its release
            # waits behind our request, so do not wait the full DIMSE timeout for it.
            timeout = job.assoc.dimse_timeout
            job.assoc.dimse_timeout = min(timeout or SAME_ASSOCIATION_WAIT, SAME_ASSOCIATION_WAIT)
            try:
                delivered = self._send(job.assoc, dataset, event_type)
            finally:
                job.assoc.dimse_timeout = timeout
            if delivered:
                self._audit_delivery(job, "success", "same association")
                return
        peer = self.peers.get(job.calling_ae)
        if peer is None:
            log.error("commitment report for %s undeliverable: association closed, not a known peer", job.calling_ae)
            self._audit_delivery(job, "failure", "association closed and requestor is not a known peer")
            return
        assoc = job.assoc.ae.associate(
            peer.host,
            peer.port,
            ae_title=peer.ae_title,
            contexts=[build_context(STORAGE_COMMITMENT_PUSH)],
            ext_neg=[build_role(STORAGE_COMMITMENT_PUSH, scp_role=True)],
            evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
        )
        if not assoc.is_established:
            self._audit_delivery(job, "failure", f"cannot associate with {peer.ae_title}@{peer.host}:{peer.port}")
            return
        try:
            delivered = self._send(assoc, dataset, event_type)
        finally:
            assoc.release()
        self._audit_delivery(
            job, "success" if delivered else "failure", f"new association to {peer.ae_title}@{peer.host}:{peer.port}"
        )

    @staticmethod
    def _send(assoc: Association, dataset: Dataset, event_type: int) -> bool:
        try:
            status, _ = assoc.send_n_event_report(
                dataset, event_type, STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE
            )
        except Exception as exc:  # noqa: BLE001 - no usable context, association lost
            log.warning("N-EVENT-REPORT not sent: %s", exc)
            return False
        return bool(status) and int(getattr(status, "Status", -1)) == Status.SUCCESS

    def _audit_delivery(self, job: _Job, outcome: str, how: str) -> None:
        self.archive.record(
            AuditRecord(
                actor=job.actor,
                action="commit_report",
                outcome=outcome,
                detail={"transaction_uid": job.transaction_uid, "delivery": how, "references": len(job.references)},
            )
        )
