"""The audit room: who did what, when, from where — the append-only, hash-chained log.

Every core service writes its own entries here, in the caller's unit of work, so a
record and its audit entry commit together. Adapters only pass the :class:`Actor`.
The chain itself (hashing, appending, verifying) is :mod:`storage.audit.log`.
"""

from storage.audit import anchor, export
from storage.audit.log import (
    GENESIS,
    Actor,
    AuditRecord,
    ChainReport,
    actor_label,
    append,
    append_all,
    append_to,
    append_unless_seen,
    seen_since,
    utc,
    verify_chain,
)

__all__ = [
    "GENESIS",
    "anchor",
    "export",
    "Actor",
    "AuditRecord",
    "ChainReport",
    "actor_label",
    "append",
    "append_all",
    "append_to",
    "append_unless_seen",
    "seen_since",
    "utc",
    "verify_chain",
]
