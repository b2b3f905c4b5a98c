"""Validation of identifying values: UIDs (PS3.5 §9.1) and the component ID (PatientID, LO)."""

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


COMPONENT_ID_MAX = 64  # PS3.5 6.2: LO, at most 64 characters


def require_component_id(value: object) -> str:
    """*value* as the component key (PatientID, padding removed); refused when longer than LO allows.

    Never truncated: two serials that differ after character 64 must not become one component.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
    text = text.rstrip("\x00 ")
    if len(text) > COMPONENT_ID_MAX:
        raise InvalidInstance(
            f"PatientID (0010,0020) has {len(text)} characters, more than LO's {COMPONENT_ID_MAX}: "
            "refused rather than truncated into another component's ID"
        )
    return text
