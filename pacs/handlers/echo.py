"""C-ECHO (PS3.4 Annex A, Verification SOP Class)."""

from __future__ import annotations

from pynetdicom.events import Event

from pacs.status import Status


def handle_echo(event: Event) -> Status:
    """Answer a verification request."""
    return Status.SUCCESS
