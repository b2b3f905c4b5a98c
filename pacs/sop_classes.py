"""DICONDE SOP classes that pynetdicom may not know, registered at start-up where missing.

ASTM E2934 (eddy current) and E3440 (thermography) and DICOM 2025b (UT waveform)
define storage SOP classes 1.2.840.10008.5.1.4.1.1.601.1-601.5. Without a
registration pynetdicom accepts the association but never calls our C-STORE
handler for them.
"""

from __future__ import annotations

from pynetdicom import sop_class
from pynetdicom.service_class import StorageServiceClass

DICONDE_STORAGE_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.601.1": "EddyCurrentImageStorage",
    "1.2.840.10008.5.1.4.1.1.601.2": "EddyCurrentMultiFrameImageStorage",
    "1.2.840.10008.5.1.4.1.1.601.3": "ThermographyImageStorage",
    "1.2.840.10008.5.1.4.1.1.601.4": "ThermographyMultiFrameImageStorage",
    "1.2.840.10008.5.1.4.1.1.601.5": "UltrasoundWaveformStorage",
}


def register_diconde_sop_classes() -> list[str]:
    """Register the DICONDE storage classes pynetdicom lacks; return the UIDs added."""
    added = []
    for uid, keyword in DICONDE_STORAGE_CLASSES.items():
        if uid in sop_class._STORAGE_CLASSES.values():
            continue
        sop_class.register_uid(uid, keyword, StorageServiceClass)
        added.append(uid)
    return added


def storage_sop_classes() -> list[str]:
    """Every storage SOP class UID the listener accepts (pynetdicom's plus DICONDE)."""
    register_diconde_sop_classes()
    return sorted(set(sop_class._STORAGE_CLASSES.values()))
