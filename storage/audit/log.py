"""The append-only, hash-chained audit log.

Each entry's hash covers its content and the previous entry's hash, so editing or
deleting any entry breaks every hash after it (``pacs audit verify``). Appends
lock the single ``audit_head`` row, which serialises them across threads and
processes sharing the database. Later features add event kinds, never a new log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from storage.index.models import AuditEvent, AuditHead
from storage.index.prepared import PreparedStatement

GENESIS = "0" * 64

_EVENTS = cast(Table, AuditEvent.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_LOCK_HEAD = PreparedStatement(select(_HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update())
_INSERT_EVENT = PreparedStatement(insert(_EVENTS).returning(_EVENTS.c.id))
_INSERT_EVENTS = PreparedStatement(insert(_EVENTS))
_MOVE_HEAD = PreparedStatement(
    update(_HEAD).where(_HEAD.c.id == 1).values(last_event_id=bindparam("event_id"), last_hash=bindparam("hash"))
)


@dataclass(frozen=True)
class Actor:
    """Who did something: a calling AE title or a user, and from where."""

    name: str
    address: str | None = None
    kind: str = "ae"  # "ae", "user" (a person), "device" (a device account), "http", "system"
    role: str | None = None  # the account's role (storage.records.permissions.ROLES) for users and devices


@dataclass(frozen=True)
class AuditRecord:
    """What happened, before it is chained into the log."""

    actor: Actor
    action: str  # e.g. "store", "find", "retrieve", "commit"
    outcome: str  # "success", "duplicate", "failure", ...
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def utc(moment: datetime) -> datetime:
    """*moment* as an aware UTC datetime (SQLite hands back naive ones; everything we write is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _entry_hash(prev_hash: str, event: AuditEvent) -> str:
    return hash_fields(
        prev_hash,
        occurred_at=event.occurred_at,
        actor=event.actor,
        actor_address=event.actor_address,
        action=event.action,
        outcome=event.outcome,
        study_instance_uid=event.study_instance_uid,
        series_instance_uid=event.series_instance_uid,
        sop_instance_uid=event.sop_instance_uid,
        detail=event.detail,
    )


def hash_fields(prev_hash: str, **fields: Any) -> str:
    """The chain hash of one entry: SHA-256 of its fields and *prev_hash* as canonical JSON."""
    payload = {
        "prev": prev_hash,
        "at": utc(fields["occurred_at"]).isoformat(timespec="microseconds"),
        "actor": fields["actor"],
        "address": fields["actor_address"],
        "action": fields["action"],
        "outcome": fields["outcome"],
        "study": fields["study_instance_uid"],
        "series": fields["series_instance_uid"],
        "sop": fields["sop_instance_uid"],
        "detail": fields["detail"],
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def actor_label(actor: Actor) -> str:
    """How an actor is written in the log (and on records it authors): ``kind:name``."""
    return f"{actor.kind}:{actor.name}"


def append(session: Session, record: AuditRecord) -> int:
    """Chain *record* onto the log inside the caller's transaction; return the entry's id."""
    return append_to(session.connection(), record)


def seen_since(conn: Connection | Session, record: AuditRecord, since: datetime) -> bool:
    """True when the log has an entry like *record* since *since*.

    Like = same actor, action, outcome, study and series (the instance may differ).
    """
    found = conn.execute(
        select(_EVENTS.c.id)
        .where(
            _EVENTS.c.occurred_at >= since,
            _EVENTS.c.study_instance_uid == record.study_instance_uid,
            _EVENTS.c.series_instance_uid == record.series_instance_uid,
            _EVENTS.c.action == record.action,
            _EVENTS.c.actor == actor_label(record.actor),
            _EVENTS.c.outcome == record.outcome,
        )
        .limit(1)
    ).first()
    return found is not None


def append_unless_seen(session: Session, record: AuditRecord, since: datetime) -> int | None:
    """Chain *record* unless :func:`seen_since`; checked under the chain lock, so concurrent calls append once."""
    conn = session.connection()
    _LOCK_HEAD.rows(conn, {})
    if seen_since(conn, record, since):
        return None
    return append_to(conn, record)


def append_to(conn: Connection, record: AuditRecord) -> int:
    """:func:`append` on a Core connection (the ingest hot path)."""
    event_id = append_all(conn, [record])
    assert event_id is not None
    return event_id


def append_all(conn: Connection, records: Sequence[AuditRecord]) -> int | None:
    """Chain *records*, in order, onto the log inside the caller's transaction; the last entry's id.

    The chain head is locked and moved once for all of them, and all but the last are
    inserted in one driver call (a batch of stores).
    """
    if not records:
        return None
    [(prev_hash,)] = _LOCK_HEAD.rows(conn, {})
    rows: list[dict[str, Any]] = []
    for record in records:
        detail = record.detail
        if record.actor.role is not None and "actor_role" not in detail:
            detail = {**detail, "actor_role": record.actor.role}
        fields: dict[str, Any] = {
            "occurred_at": datetime.now(UTC),
            "actor": actor_label(record.actor),
            "actor_address": record.actor.address,
            "action": record.action,
            "outcome": record.outcome,
            "study_instance_uid": record.study_instance_uid,
            "series_instance_uid": record.series_instance_uid,
            "sop_instance_uid": record.sop_instance_uid,
            "detail": json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str),
        }
        entry_hash = hash_fields(prev_hash, **fields)
        rows.append({**fields, "prev_hash": prev_hash, "hash": entry_hash})
        prev_hash = entry_hash
    # Executed in order under the head lock, so ids follow the chain (verify_chain walks by id).
    _INSERT_EVENTS.run_many(conn, rows[:-1])
    [(event_id,)] = _INSERT_EVENT.rows(conn, rows[-1])
    _MOVE_HEAD.count(conn, {"event_id": event_id, "hash": prev_hash})
    return int(event_id)


@dataclass
class ChainReport:
    """Result of walking the chain."""

    entries: int
    ok: bool
    problems: list[str]


def _iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash; report entries that were changed, removed or reordered."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    for event in _iter_events(session):
        count += 1
        if event.prev_hash != prev:
            problems.append(f"entry {event.id}: previous-hash link broken (entry removed or reordered)")
        if _entry_hash(event.prev_hash, event) != event.hash:
            problems.append(f"entry {event.id}: content does not match its hash (entry edited)")
        prev = event.hash
    head = session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        problems.append("the newest entries were removed (chain head does not match)")
    return ChainReport(entries=count, ok=not problems, problems=problems)
