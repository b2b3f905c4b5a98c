"""Known DICOM peers (AE title, address, permissions): the registry behind ``pacs peer``.

Peers are C-MOVE destinations, storage commitment report receivers and, with
``PACS_STRICT_AE``, the only application entities allowed to associate. Every
change is audited.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError, NotFound
from storage.index.db import Database
from storage.index.models import Peer, User

PERMISSIONS = ("store", "query", "retrieve", "move")


class InvalidPeer(ArchiveError):
    """A peer definition that cannot be stored (bad AE title, host, port or permission)."""


@dataclass(frozen=True)
class PeerInfo:
    """A known peer, detached from the database session."""

    ae_title: str
    host: str
    port: int
    description: str
    allow_store: bool
    allow_query: bool
    allow_retrieve: bool
    allow_move_destination: bool
    user: str | None = None  # the device account this AE title acts as (audit: one actor for DIMSE and HTTP)

    @property
    def permissions(self) -> list[str]:
        """The granted permissions by name (``store``, ``query``, ``retrieve``, ``move``)."""
        flags = (self.allow_store, self.allow_query, self.allow_retrieve, self.allow_move_destination)
        return [name for name, granted in zip(PERMISSIONS, flags, strict=True) if granted]


def validate_ae_title(value: str) -> str:
    """An AE title per PS3.5 6.2 (AE VR): 1-16 characters, no backslash or control characters."""
    title = value.strip(" ")
    if not title or len(title) > 16:
        raise InvalidPeer(f"AE title must have 1 to 16 characters: {value[:40]!r}")
    if any(ch == "\\" or ord(ch) < 0x20 or ord(ch) >= 0x7F for ch in title):
        raise InvalidPeer(f"AE title may not contain backslashes or control characters: {value[:40]!r}")
    return title


def validate_port(value: int) -> int:
    """A TCP port 1-65535."""
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidPeer(f"port must be 1-65535: {value!r}")
    return value


def validate_host(value: str) -> str:
    """A host name or IP address (no spaces, no scheme)."""
    host = value.strip()
    if not host or len(host) > 253 or any(ch.isspace() or ch in "/\\@" for ch in host):
        raise InvalidPeer(f"invalid host: {value[:80]!r}")
    return host


def _permissions(allow: Iterable[str]) -> dict[str, bool]:
    granted = {p.strip().lower() for p in allow if p.strip()}
    unknown = granted - set(PERMISSIONS)
    if unknown:
        raise InvalidPeer(f"unknown permission(s) {sorted(unknown)}; choose from {', '.join(PERMISSIONS)}")
    return {
        "allow_store": "store" in granted,
        "allow_query": "query" in granted,
        "allow_retrieve": "retrieve" in granted,
        "allow_move_destination": "move" in granted,
    }


def _info(row: Peer, user: str | None = None) -> PeerInfo:
    return PeerInfo(
        ae_title=row.ae_title,
        host=row.host,
        port=row.port,
        description=row.description,
        allow_store=row.allow_store,
        allow_query=row.allow_query,
        allow_retrieve=row.allow_retrieve,
        allow_move_destination=row.allow_move_destination,
        user=user,
    )


def _with_user() -> Any:
    return select(Peer, User.username).outerjoin(User, User.id == Peer.user_id)


def _addresses(host: str) -> set[str]:
    """Every IP address *host* names (itself when it is an address; empty when unresolvable)."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


class PeerRegistry:
    """Add, list, look up and remove known peers in the index."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        ae_title: str,
        host: str,
        port: int,
        actor: Actor,
        *,
        allow: Iterable[str] = PERMISSIONS,
        description: str = "",
        user: str | None = None,
    ) -> PeerInfo:
        """Register a new peer; :class:`InvalidPeer` when invalid or the AE title is taken.

        *user*: a ``device`` account the peer acts as, so that its C-STORE and its STOW-RS
        (with that account's token) are audited as one actor once the peer is recognised.
        """
        title = validate_ae_title(ae_title)
        fields = {
            "host": validate_host(host),
            "port": validate_port(port),
            "description": description[:1000],
            **_permissions(allow),
        }

        def write(session: Session) -> PeerInfo:
            if session.scalar(select(Peer.id).where(Peer.ae_title == title)) is not None:
                raise InvalidPeer(f"peer {title} already exists (remove it first)")
            user_id = None
            if user is not None:
                account = session.scalars(select(User).where(User.username == user.strip().lower())).one_or_none()
                if account is None or account.role != "device":
                    raise InvalidPeer(f"--user {user[:64]!r} must be an existing account with the device role")
                user_id = account.id
            row = Peer(ae_title=title, user_id=user_id, **fields)
            session.add(row)
            session.flush()
            info = _info(row, user.strip().lower() if user else None)
            audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="peer_add",
                    outcome="success",
                    detail={
                        "ae_title": title,
                        "host": info.host,
                        "port": info.port,
                        "allow": info.permissions,
                        "user": info.user,
                    },
                ),
            )
            return info

        return self.db.write(write)

    def remove(self, ae_title: str, actor: Actor) -> None:
        """Remove a peer; :class:`NotFound` when unknown."""
        title = validate_ae_title(ae_title)

        def write(session: Session) -> None:
            if session.execute(delete(Peer).where(Peer.ae_title == title)).rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"no peer {title}")
            audit.append(
                session,
                AuditRecord(actor=actor, action="peer_remove", outcome="success", detail={"ae_title": title}),
            )

        self.db.write(write)

    def list(self) -> list[PeerInfo]:
        """Every known peer, by AE title."""
        with self.db.read_session() as session:
            return [_info(row, user) for row, user in session.execute(_with_user().order_by(Peer.ae_title))]

    def get(self, ae_title: str) -> PeerInfo | None:
        """The peer called *ae_title*, or None."""
        title = ae_title.strip(" ")
        if not title or len(title) > 16:
            return None
        with self.db.read_session() as session:
            found = session.execute(_with_user().where(Peer.ae_title == title)).one_or_none()
            return _info(found[0], found[1]) if found is not None else None

    def recognise(self, ae_title: str, address: str) -> PeerInfo | None:
        """The known peer with *ae_title* whose host is *address*; None when either does not match."""
        peer = self.get(ae_title)
        if peer is None:
            return None
        try:
            remote = str(ipaddress.ip_address(address))
        except ValueError:
            return None
        return peer if remote in _addresses(peer.host) else None
