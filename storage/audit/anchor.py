"""The chain head anchored outside the database: a rewritten chain is detectable too.

Editing, removing or reordering an entry breaks the hash chain (:func:`storage.audit.log.verify_chain`).
Someone with write access to the database could still rewrite the whole chain consistently
from the first changed entry on. An *anchor* — an entry's id and hash, printed by
``pacs audit head``, in every PDF report and evidence bundle — kept outside the database
(on paper, in a ticket, in another system) defeats that: after a rewrite, the anchored
entry no longer has the anchored hash. ``pacs audit verify --anchor ID:HASH`` checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.audit.log import GENESIS
from storage.index.models import AuditEvent

_ANCHOR = re.compile(r"^\s*(?:entry\s+)?(\d+)\s*[:=/ ]\s*(?:sha256:)?([0-9a-f]{64})\s*$")


@dataclass(frozen=True)
class Anchor:
    """An entry of the chain, by id, with the hash it had when the anchor was taken."""

    entry_id: int
    hash: str

    def __str__(self) -> str:
        return f"{self.entry_id}:{self.hash}"


@dataclass(frozen=True)
class Head:
    """The newest entry of the chain and how many entries there are."""

    anchor: Anchor
    entries: int
    occurred_at: str | None


def parse_anchor(text: str) -> Anchor:
    """``ID:HASH`` (as ``pacs audit head`` prints it) as an :class:`Anchor`; ValueError otherwise."""
    match = _ANCHOR.match(text.lower())
    if match is None:
        raise ValueError(f"not an audit anchor (ID:SHA256, 64 hex digits): {text[:100]!r}")
    return Anchor(int(match.group(1)), match.group(2))


def head(session: Session) -> Head:
    """The newest entry (an empty log's head is entry 0 with the genesis hash)."""
    newest = session.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.occurred_at).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    if newest is None:
        return Head(Anchor(0, GENESIS), 0, None)
    entry_id, entry_hash, occurred_at = newest
    return Head(Anchor(int(entry_id), str(entry_hash)), int(count), occurred_at.isoformat())


def check(session: Session, anchor: Anchor) -> str | None:
    """Why the chain does not hold *anchor* (a problem to report), or None when it does."""
    if anchor.entry_id == 0:
        return None if anchor.hash == GENESIS else "anchor 0 must carry the genesis hash"
    found = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == anchor.entry_id))
    if found is None:
        return f"anchored entry {anchor.entry_id} is missing (the chain was cut or rewritten)"
    if found != anchor.hash:
        return (
            f"anchored entry {anchor.entry_id} has hash {found[:16]}…, anchored {anchor.hash[:16]}…: "
            "the chain was rewritten since the anchor was taken"
        )
    return None
