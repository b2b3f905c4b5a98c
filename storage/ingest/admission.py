"""The checks a received file must pass before it is acknowledged (deferred indexing).

Under deferred indexing a C-STORE is answered once the bytes are durable, and the
index is written moments later by the indexer (storage/ingest/intake.py). Everything that
decides between "stored" and "refused" must therefore be known before the answer:
the file is a complete PS3.10 file (every element's value present, PS3.5 §7), its
transfer syntax is named, and the four UIDs that place it are present and well
formed (PS3.5 §9.1), with the file meta (0002,0003) naming the same SOP instance.

These are read straight from the bytes: the file meta group and the top-level
elements up to (0020,000E), without building a pydicom data set. Deflated and big
endian data sets (rare) take pydicom's path (:func:`storage.dicom.files.read_received_file`).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from storage.dicom.files import (
    _LONG_VRS,
    _UNDEFINED,
    IN_MEMORY_LIMIT,
    _text,
    _Truncated,
    _Walker,
    check_complete,
    check_size,
    file_meta_values,
    read_received_file,
)
from storage.dicom.uids import require_component_id, require_uid
from storage.errors import InvalidInstance
from storage.ingest.index_writer import Identity, identity_of

# Top-level data set elements that place an instance (PS3.3 C.12.1, C.7.2.1, C.7.3.1).
_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018
_STUDY = 0x0020000D
_SERIES = 0x0020000E
_PATIENT_ID = 0x00100020  # (0010,0020) LO: the component ID, checked for length (never truncated)
_WANTED = {_SOP_CLASS, _SOP_INSTANCE, _PATIENT_ID, _STUDY, _SERIES}
# File meta (PS3.10 §7.1)
_META_SOP_INSTANCE = 0x00020003
_META_TRANSFER_SYNTAX = 0x00020010


@dataclass(frozen=True)
class Admission:
    """A received file that may be acknowledged: complete, placed by valid UIDs."""

    identity: Identity
    size: int
    transfer_syntax_uid: str
    component_key: str  # PatientID, whole (never truncated)


def _placing_uids(buf: mmap.mmap | bytes, start: int, *, implicit: bool) -> dict[int, str]:
    """The SOP class/instance, study and series UIDs among the data set's top-level elements."""
    walker = _Walker(buf, implicit=implicit, little=True)
    found: dict[int, str] = {}
    pos, end = start, len(buf)
    while pos + 8 <= end:
        group, element = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | element
        if tag > _SERIES:
            break
        vr = None if implicit else bytes(buf[pos + 4 : pos + 6])
        if vr is None:
            length, pos = struct.unpack_from("<I", buf, pos + 4)[0], pos + 8
        elif vr in _LONG_VRS:
            length, pos = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        else:
            length, pos = struct.unpack_from("<H", buf, pos + 6)[0], pos + 8
        if length == _UNDEFINED:
            pos = walker.sequence(pos, implicit=implicit or vr == b"UN")
            continue
        if tag == _PATIENT_ID:
            found[tag] = require_component_id(bytes(buf[pos : pos + length]))
        elif tag in _WANTED:
            found[tag] = _text(bytes(buf[pos : pos + length]))
        pos += length
    return found


def _check(buf: mmap.mmap | bytes, path: Path) -> tuple[dict[int, str], dict[int, str], str] | Admission:
    """File meta and placing UIDs of *buf*, or the pydicom path's verdict for deflated / big endian data sets."""
    meta, start = file_meta_values(buf)
    ts = meta.get(_META_TRANSFER_SYNTAX, "")
    if not ts:
        raise InvalidInstance("file meta has no Transfer Syntax UID (0002,0010)")
    if ts in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
        return _admit_through_pydicom(path)
    check_complete(buf, ts)
    implicit = ts == ImplicitVRLittleEndian
    if not implicit and len(buf) >= start + 6:
        head = bytes(buf[start + 4 : start + 6])  # implicit VR under an explicit syntax (as check_complete)
        implicit = not head.isalpha() or not head.isupper()
    try:
        return meta, _placing_uids(buf, start, implicit=implicit), ts
    except (_Truncated, struct.error) as exc:
        raise InvalidInstance(f"truncated or malformed data set: {exc}") from exc


def examine_for_admission(path: Path) -> Admission:
    """Check *path* as ingest would refuse it (:class:`InvalidInstance`), reading only element headers."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 132:
                raise InvalidInstance(f"file of {size} bytes is too short for DICOM Part 10")
            check_size(size)
            fh.seek(0)
            if size <= IN_MEMORY_LIMIT:  # small: one read (it is in the page cache)
                checked = _check(fh.read(), path)
            else:  # large: only the pages holding element headers are touched
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    checked = _check(buf, path)
    except OSError as exc:
        raise InvalidInstance(f"cannot read received file: {exc}") from exc
    if isinstance(checked, Admission):
        return checked
    meta, uids, ts = checked
    identity = Identity(
        sop_class_uid=require_uid("SOPClassUID", uids.get(_SOP_CLASS)),
        sop_instance_uid=require_uid("SOPInstanceUID", uids.get(_SOP_INSTANCE)),
        study_instance_uid=require_uid("StudyInstanceUID", uids.get(_STUDY)),
        series_instance_uid=require_uid("SeriesInstanceUID", uids.get(_SERIES)),
    )
    meta_sop = meta.get(_META_SOP_INSTANCE)
    if meta_sop and meta_sop != identity.sop_instance_uid:
        raise InvalidInstance("file meta (0002,0003) names another SOP Instance UID than the data set (0008,0018)")
    return Admission(identity=identity, size=size, transfer_syntax_uid=ts, component_key=uids.get(_PATIENT_ID, ""))


def _admit_through_pydicom(path: Path) -> Admission:
    """Deflated or big endian data sets: pydicom reads the header (the synchronous path's checks)."""
    received = read_received_file(path)
    return Admission(
        identity=identity_of(received.dataset),
        size=received.size,
        transfer_syntax_uid=received.transfer_syntax_uid,
        component_key=require_component_id(received.dataset.get("PatientID", "")),
    )
