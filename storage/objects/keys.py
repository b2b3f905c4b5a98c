"""Object keys: deterministic and opaque, derived from validated UIDs (DESIGN.md "Storing an instance")."""

from __future__ import annotations

import hashlib
import re

from storage.dicom.uids import require_uid


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("ascii")).hexdigest()[:40]


def study_prefix(study_uid: str) -> str:
    """Key prefix shared by every object of one study (for listing or bulk deletion)."""
    study = _digest(require_uid("StudyInstanceUID", study_uid))
    return f"studies/{study[:2]}/{study}/"


def object_key(study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """Deterministic, opaque object key of one stored instance version.

    The key never contains a UID verbatim: UIDs are validated, then hashed, so no
    peer-supplied text ever reaches a file path or S3 key. The content digest is
    part of the key, so two different versions of one SOP instance can never
    share (and overwrite) an object, even when they arrive at the same moment.
    """
    require_uid("SeriesInstanceUID", series_uid)
    require_uid("SOPInstanceUID", sop_uid)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("sha256 must be 64 lower-case hex digits")
    series = _digest(study_uid, series_uid)
    instance = _digest(study_uid, series_uid, sop_uid)
    return f"{study_prefix(study_uid)}{series}/{instance}.{sha256[:16]}.dcm"
