"""The audit log read back out: by time range, as JSON Lines, CSV or DICOM audit messages.

JSON Lines and CSV carry every stored field, the chain hashes included, so an exported
segment can be checked offline (each entry's ``prev_hash`` is the ``hash`` before it, and
each ``hash`` recomputes from the entry's fields: :func:`recomputed_hash`).
``dicom`` writes one PS3.15 A.5 audit message (the RFC 3881 schema, DICOM event codes as
PS3.15 A.5.3 defines them and dcm4chee uses them) per entry, for audit record repositories.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO
from xml.sax.saxutils import quoteattr

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from storage.audit.log import hash_fields, utc
from storage.index.models import AuditEvent

FORMATS = ("jsonl", "csv", "dicom")


@dataclass(frozen=True)
class ExportedEntry:
    """One audit entry as stored, detached from the database."""

    id: int
    occurred_at: str  # ISO 8601, UTC, microseconds (as hashed)
    actor: str
    actor_address: str | None
    action: str
    outcome: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    sop_instance_uid: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def _exported(event: AuditEvent) -> ExportedEntry:
    try:
        detail = json.loads(event.detail or "{}")
    except ValueError:
        detail = {"unparsed": event.detail}
    return ExportedEntry(
        id=event.id,
        occurred_at=utc(event.occurred_at).isoformat(timespec="microseconds"),
        actor=event.actor,
        actor_address=event.actor_address,
        action=event.action,
        outcome=event.outcome,
        study_instance_uid=event.study_instance_uid,
        series_instance_uid=event.series_instance_uid,
        sop_instance_uid=event.sop_instance_uid,
        detail=detail if isinstance(detail, dict) else {"value": detail},
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


def entries(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    batch: int = 2000,
) -> Iterator[ExportedEntry]:
    """Audit entries in chain order (by id), optionally limited to ``since <= time < until``; streamed in batches."""
    last = after_id
    while True:
        query = select(AuditEvent).where(AuditEvent.id > last)
        if since is not None:
            query = query.where(AuditEvent.occurred_at >= since)
        if until is not None:
            query = query.where(AuditEvent.occurred_at < until)
        rows = session.scalars(query.order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield _exported(row)
        last = rows[-1].id


def recomputed_hash(entry: ExportedEntry) -> str:
    """The chain hash of an exported entry, computed again from its fields (equal to ``entry.hash`` when intact)."""
    return hash_fields(
        entry.prev_hash,
        occurred_at=datetime.fromisoformat(entry.occurred_at),
        actor=entry.actor,
        actor_address=entry.actor_address,
        action=entry.action,
        outcome=entry.outcome,
        study_instance_uid=entry.study_instance_uid,
        series_instance_uid=entry.series_instance_uid,
        sop_instance_uid=entry.sop_instance_uid,
        detail=json.dumps(entry.detail, sort_keys=True, separators=(",", ":")),
    )


def entries_of(session: Session, query: Select[Any]) -> list[ExportedEntry]:
    """The entries a ``select(AuditEvent)`` finds (e.g. those about one component), exported."""
    return [_exported(row) for row in session.scalars(query)]


def as_json_line(entry: ExportedEntry) -> str:
    """One entry as a JSON object on one line (keys sorted)."""
    return json.dumps(asdict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


CSV_COLUMNS = [
    "id",
    "occurred_at",
    "actor",
    "actor_address",
    "action",
    "outcome",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "detail",
    "prev_hash",
    "hash",
]


def write_csv(items: Iterable[ExportedEntry], out: TextIO) -> int:
    """Write *items* as CSV with a header line; the details column holds their JSON. Returns the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in items:
        row = asdict(entry)
        row["detail"] = json.dumps(entry.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        count += 1
    return count


# -- DICOM audit messages (PS3.15 A.5) ----------------------------------------------------------

# (code, meaning) of the DICOM audit event IDs (PS3.15 A.5.3; code system "DCM").
APPLICATION_ACTIVITY = ("110100", "Application Activity")
INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
EXPORT = ("110106", "Export")
QUERY = ("110112", "Query")
SECURITY_ALERT = ("110113", "Security Alert")
USER_AUTHENTICATION = ("110114", "User Authentication")
STUDY_DELETED = ("110105", "DICOM Study Deleted")


def dicom_event(action: str) -> tuple[tuple[str, str], str]:
    """The DICOM audit event ID and EventActionCode (C, R, U, D, E) of one of our audit actions.

    Follows dcm4chee's choices (anchors.md §4): stores and retrieves are "Instances Transferred"
    (C / R), reads in the viewer "Instances Accessed", searches "Query", logins "User
    Authentication", refusals and configuration changes "Security Alert".
    """
    name = action.lower().replace("_", "-")
    if name in ("store", "commit", "commit-report"):
        return INSTANCES_TRANSFERRED, "C"
    if name in ("retrieve", "retrieve-match", "c-get", "c-move", "render", "metadata"):
        return INSTANCES_TRANSFERRED, "R"
    if name in ("find", "api-search", "query"):
        return QUERY, "E"
    if name.startswith(("login", "logout", "session")):
        return USER_AUTHENTICATION, "E"
    if name.startswith("export") or name == "evidence":
        return EXPORT, "R"
    if name.startswith(("dispose", "disposal")):
        return STUDY_DELETED, "D"
    if name.startswith("api-") or name.endswith("-read"):
        return INSTANCES_ACCESSED, "R"
    if name.startswith(("annotation", "indication", "evaluation", "signature", "reject")):
        return INSTANCES_ACCESSED, "U" if name.endswith(("withdraw", "update")) else "C"
    if name in ("access-denied", "associate") or name.startswith(("peer", "user", "token", "account")):
        return SECURITY_ALERT, "E"
    return APPLICATION_ACTIVITY, "E"


def _outcome_indicator(outcome: str) -> str:
    """EventOutcomeIndicator: 0 success, 4 minor failure (the request was refused or failed), 8 serious failure."""
    if outcome in ("failure", "refused", "denied"):
        return "4"
    if outcome == "error":
        return "8"
    return "0"


def _code(element: str, code: tuple[str, str]) -> str:
    return f'<{element} csd-code="{code[0]}" codeSystemName="DCM" originalText={quoteattr(code[1])}/>'


def _participant_object(uid: str, id_type: tuple[str, str], type_code: str, role: str, detail: str = "") -> str:
    inner = _code("ParticipantObjectIDTypeCode", id_type) + detail
    return (
        f"<ParticipantObjectIdentification ParticipantObjectID={quoteattr(uid)} "
        f'ParticipantObjectTypeCode="{type_code}" ParticipantObjectTypeCodeRole="{role}">{inner}'
        "</ParticipantObjectIdentification>"
    )


def as_dicom_audit_message(entry: ExportedEntry, source_id: str) -> str:
    """One entry as a DICOM audit message (PS3.15 A.5.1, XML, one line).

    The requestor is the actor (a user name or a calling AE title, with its address); the
    archive (*source_id*, its AE title) is the other active participant. The entry's id and
    chain hash travel in the EventTypeCode-free ``ParticipantObjectDetail`` of an extra
    "audit entry" object, so a message can be matched with the hash-chained original.
    """
    event, action_code = dicom_event(entry.action)
    kind, _, name = entry.actor.partition(":")
    user = name or entry.actor
    address = (entry.actor_address or "").rsplit(":", 1)[0] if entry.actor_address else ""
    requestor = (
        f'<ActiveParticipant UserID={quoteattr(user)} UserIsRequestor="true"'
        + (f' NetworkAccessPointID={quoteattr(address)} NetworkAccessPointTypeCode="2"' if address else "")
        + ">"
        + _code("RoleIDCode", ("110153", "Source Role ID"))
        + "</ActiveParticipant>"
    )
    archive = (
        f'<ActiveParticipant UserID={quoteattr(source_id)} UserIsRequestor="false">'
        + _code("RoleIDCode", ("110152", "Destination Role ID"))
        + "</ActiveParticipant>"
    )
    objects = []
    if entry.study_instance_uid:
        sop = entry.sop_instance_uid
        description = (
            f"<ParticipantObjectDescription>SOP Instance UID {sop}</ParticipantObjectDescription>" if sop else ""
        )
        objects.append(
            _participant_object(entry.study_instance_uid, ("110180", "Study Instance UID"), "2", "3", description)
        )
    serial = entry.detail.get("serial")
    if isinstance(serial, str) and serial:
        objects.append(_participant_object(serial, ("2", "Patient Number"), "1", "1"))
    detail = json.dumps(entry.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    objects.append(
        f'<ParticipantObjectIdentification ParticipantObjectID="{entry.id}" ParticipantObjectTypeCode="4" '
        'ParticipantObjectTypeCodeRole="13">'
        + _code("ParticipantObjectIDTypeCode", ("ndt-pacs-audit-entry", "ndt-pacs audit entry"))
        + f"<ParticipantObjectName>{_text(entry.action)}</ParticipantObjectName>"
        + f'<ParticipantObjectDetail type="hash" value={quoteattr(entry.hash)}/>'
        + f'<ParticipantObjectDetail type="prev_hash" value={quoteattr(entry.prev_hash)}/>'
        + f'<ParticipantObjectDetail type="actor_kind" value={quoteattr(kind if name else "")}/>'
        + f'<ParticipantObjectDetail type="detail" value={quoteattr(detail)}/>'
        + "</ParticipantObjectIdentification>"
    )
    failed = _outcome_indicator(entry.outcome) != "0"
    reason = _text(str(entry.detail.get("reason", entry.outcome)))
    identification = (
        f'<EventIdentification EventActionCode="{action_code}" EventDateTime="{entry.occurred_at}" '
        f'EventOutcomeIndicator="{_outcome_indicator(entry.outcome)}">'
        + _code("EventID", event)
        + (f"<EventOutcomeDescription>{reason}</EventOutcomeDescription>" if failed else "")
        + "</EventIdentification>"
    )
    return (
        "<AuditMessage>"
        + identification
        + requestor
        + archive
        + f"<AuditSourceIdentification AuditSourceID={quoteattr(source_id)}/>"
        + "".join(objects)
        + "</AuditMessage>"
    )


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write(items: Iterable[ExportedEntry], out: TextIO, fmt: str, *, source_id: str = "NDTPACS") -> int:
    """Write *items* to *out* in *fmt* (one of :data:`FORMATS`); the number written."""
    if fmt == "csv":
        return write_csv(items, out)
    count = 0
    for entry in items:
        if fmt == "jsonl":
            out.write(as_json_line(entry) + "\n")
        elif fmt == "dicom":
            out.write(as_dicom_audit_message(entry, source_id) + "\n")
        else:
            raise ValueError(f"unknown audit export format {fmt!r}; one of {', '.join(FORMATS)}")
        count += 1
    return count


def render(items: Iterable[ExportedEntry], fmt: str, *, source_id: str = "NDTPACS") -> str:
    """:func:`write` into a string."""
    buffer = io.StringIO()
    write(items, buffer, fmt, source_id=source_id)
    return buffer.getvalue()
