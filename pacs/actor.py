"""Who is on the other end of an association, for the audit log."""

from __future__ import annotations

from pynetdicom.events import Event

from storage.audit import Actor

# Set on an association by the policy when its peer is recognised and tied to a device account.
ACCOUNT_ATTRIBUTE = "ndt_device_account"


def actor_of(event: Event) -> Actor:
    """Who is on the other end: the device account of a recognised peer, else the calling AE title; and its address."""
    requestor = event.assoc.requestor
    address = f"{requestor.address}:{requestor.port}"
    account = getattr(event.assoc, ACCOUNT_ATTRIBUTE, None)
    if account:
        return Actor(name=str(account), address=address, kind="device", role="device")
    return Actor(name=str(requestor.ae_title).strip(), address=address)
