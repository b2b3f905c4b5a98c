"""Who is on the other end of an association, for the audit log."""

from __future__ import annotations

from pynetdicom.events import Event

from storage.audit import Actor


def actor_of(event: Event) -> Actor:
    """The calling AE title and address of the association that raised *event*."""
    requestor = event.assoc.requestor
    return Actor(name=str(requestor.ae_title).strip(), address=f"{requestor.address}:{requestor.port}")
