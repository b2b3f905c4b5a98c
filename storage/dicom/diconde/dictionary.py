"""DICONDE data dictionary additions for pydicom, registered at start-up where missing.

PS3.6 group 0014 holds the DICONDE (ASTM E2339 family) attributes; pydicom 3.0.2
lacks the thermography (0014,6xxx) and UT waveform (0014,41xx) entries and the
601.3-601.5 storage SOP class UIDs. Only *missing* tags and UIDs are added: no
existing keyword or name is ever changed (NDT display names belong to the API/UI,
see :mod:`storage.dicom.diconde.vocabulary`).
"""

from __future__ import annotations

import re
import threading

from pydicom import _uid_dict
from pydicom.datadict import DicomDictionary, add_dict_entries, keyword_dict

from storage.dicom.diconde._table import GROUP_0014

# PS3.6 Table A-1 entries for the DICONDE storage SOP classes pydicom may lack.
DICONDE_UIDS: dict[str, tuple[str, str]] = {
    "1.2.840.10008.5.1.4.1.1.601.1": ("Eddy Current Image Storage", "EddyCurrentImageStorage"),
    "1.2.840.10008.5.1.4.1.1.601.2": ("Eddy Current Multi-frame Image Storage", "EddyCurrentMultiFrameImageStorage"),
    "1.2.840.10008.5.1.4.1.1.601.3": ("Thermography Image Storage", "ThermographyImageStorage"),
    "1.2.840.10008.5.1.4.1.1.601.4": ("Thermography Multi-frame Image Storage", "ThermographyMultiFrameImageStorage"),
    "1.2.840.10008.5.1.4.1.1.601.5": ("Ultrasound Waveform Storage", "UltrasoundWaveformStorage"),
}
_UID_REFERENCE = {
    "601.1": "DICONDE ASTM E2934",
    "601.2": "DICONDE ASTM E2934",
    "601.3": "DICONDE ASTM E3440",
    "601.4": "DICONDE ASTM E3440",
    "601.5": "DICONDE ASTM E2663",
}

_lock = threading.Lock()
_done = False


def name_from_keyword(keyword: str) -> str:
    """A PS3.6-style name from a keyword: ``ComponentWelderIDs`` -> ``Component Welder IDs``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", keyword)
    name = re.sub(r"\b([A-Z]+) ([A-Z])s\b", r"\1\2s", name)  # plural acronyms: "I Ds" -> "IDs"
    return re.sub(r"(?<= )(Of|In|And|For|The|To|At|By|On|Or|With)\b", lambda m: m.group(1).lower(), name)


def missing_entries() -> dict[int, tuple[str, str, str, str, str]]:
    """Group-0014 entries the installed pydicom lacks (tag or keyword unknown to it)."""
    entries: dict[int, tuple[str, str, str, str, str]] = {}
    for tag, vr, vm, keyword, retired in GROUP_0014:
        if tag in DicomDictionary:
            continue
        if not retired and keyword in keyword_dict:
            continue  # the keyword names another tag already: never reassign it
        if retired:
            # pydicom keeps retired keywords too; give ours a distinct one so nothing collides.
            keyword = keyword if keyword not in keyword_dict else ""
        entries[tag] = (
            vr,
            vm,
            name_from_keyword(keyword) if keyword else f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
            "Retired" if retired else "",
            keyword,
        )
    return entries


def register_dictionary() -> dict[str, int]:
    """Add missing group-0014 attributes and DICONDE UIDs to pydicom (idempotent, thread-safe).

    Returns how many tags and UIDs this call added (zero on later calls).
    """
    global _done
    with _lock:
        if _done:
            return {"tags": 0, "uids": 0}
        tags = missing_entries()
        if tags:
            add_dict_entries(tags)
        uids = 0
        for uid, (name, keyword) in DICONDE_UIDS.items():
            if uid in _uid_dict.UID_dictionary:
                continue
            reference = _UID_REFERENCE[".".join(uid.split(".")[-2:])]
            _uid_dict.UID_dictionary[uid] = (name, "SOP Class", reference, "", keyword)
            uids += 1
        _done = True
        return {"tags": len(tags), "uids": uids}
