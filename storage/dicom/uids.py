"""UID validation (PS3.5 §9.1)."""

from __future__ import annotations

import re

from storage.errors import InvalidInstance

# PS3.5 9.1: components of digits separated by dots, no leading zeros in a
# multi-digit component, at most 64 characters in total.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: object) -> bool:
    """True when *value* is a well-formed DICOM UID (PS3.5 §9.1)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID.match(value))


def require_uid(name: str, value: object) -> str:
    """Return *value* when it is a valid UID, else raise :class:`InvalidInstance`."""
    if not is_valid_uid(value):
        raise InvalidInstance(f"{name} is missing or not a valid UID: {str(value)[:80]!r}")
    return str(value)
