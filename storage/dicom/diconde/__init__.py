"""DICONDE (ASTM E2339 family): dictionary additions, legacy private blocks, NDT vocabulary.

:func:`register` is called once at start-up (``storage.factory.open_archive``); it is
idempotent and only ever *adds* to pydicom's dictionaries.
"""

from __future__ import annotations

from storage.dicom.diconde.dictionary import register_dictionary
from storage.dicom.diconde.legacy import register_private_dictionaries


def register() -> None:
    """Add missing DICONDE tags/UIDs and the legacy private creators to pydicom's dictionaries."""
    register_dictionary()
    register_private_dictionaries()


__all__ = ["register"]
