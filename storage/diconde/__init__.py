"""DICONDE (ASTM E2339 family): dictionary additions, legacy private blocks, NDT vocabulary.

:func:`register` is called once at start-up (``storage.factory.open_archive``); it is
idempotent and only ever *adds* to pydicom's dictionaries.
"""

from __future__ import annotations

from storage import attributes
from storage.diconde.dictionary import register_dictionary
from storage.diconde.legacy import legacy_reader, register_private_dictionaries


def register() -> None:
    """Add missing DICONDE tags/UIDs, the legacy private creators, and the legacy index reader."""
    register_dictionary()
    register_private_dictionaries()
    if legacy_reader not in attributes.FALLBACK_READERS:
        attributes.FALLBACK_READERS.append(legacy_reader)


__all__ = ["register"]
