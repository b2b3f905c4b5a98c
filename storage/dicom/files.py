"""Reading a received DICOM Part 10 file without decoding its pixel data.

PS3.10 §7: a 128-byte preamble, ``DICM``, the File Meta group (0002) in explicit
VR little endian, then the data set in the transfer syntax named by (0002,0010).
The archive keeps those bytes as they are; here it only hashes them, checks that
the element structure is complete (a truncated transfer is rejected, not
archived), and parses the header for indexing.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from storage.dicom.uids import is_valid_uid
from storage.errors import InvalidInstance
from storage.settings import limit_settings

# PS3.5 §7.1.2: explicit VRs with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_UNDEFINED = 0xFFFFFFFF
_KNOWN_SYNTAXES = frozenset(str(uid) for uid in AllTransferSyntaxes)

_ITEM, _ITEM_END, _SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)


class _Truncated(Exception):
    pass


class _TooDeep(Exception):
    pass


@dataclass(frozen=True)
class ReceivedFile:
    """What ingest needs to know about one received file."""

    path: Path
    size: int
    sha256: str
    transfer_syntax_uid: str
    dataset: Dataset  # header only: no Pixel Data and nothing after it


class _Walker:
    """Walks data elements by their headers (PS3.5 §7), skipping over values."""

    def __init__(self, buf: mmap.mmap | bytes, *, implicit: bool, little: bool, max_depth: int = 32) -> None:
        self.buf = buf
        self.max_depth = max_depth  # sequences in sequences: refused deeper than this
        self._depth = 0
        self.end = len(buf)
        self.implicit = implicit
        order = "<" if little else ">"
        # One unpack per element header: tag and 4-byte length (implicit VR, items), or tag,
        # VR and 2-byte length (explicit VR); the 4-byte length of a long explicit VR follows.
        self._tag_u32 = struct.Struct(order + "HHI")
        self._tag_vr_u16 = struct.Struct(order + "HH2sH")
        self._u32 = struct.Struct(order + "I")

    def dataset(self, pos: int, *, in_item: bool = False, implicit: bool | None = None) -> int:
        """Walk elements from *pos*; return the position after the data set (or item)."""
        implicit = self.implicit if implicit is None else implicit
        buf, end = self.buf, self.end
        tag_u32, tag_vr_u16, u32 = self._tag_u32.unpack_from, self._tag_vr_u16.unpack_from, self._u32.unpack_from
        while pos < end:
            if pos + 8 > end:
                raise _Truncated(f"element header at byte {pos} is cut off")
            vr: bytes | None
            if implicit:
                group, elem, length = tag_u32(buf, pos)
                vr = None
            else:
                group, elem, vr, length = tag_vr_u16(buf, pos)
            if group == 0xFFFE and elem == 0xE00D:
                if not in_item:
                    raise _Truncated(f"unexpected item delimiter at byte {pos}")
                return pos + 8
            if vr is None:
                pos += 8
            elif group == 0xFFFE:
                length, pos = u32(buf, pos + 4)[0], pos + 8
            elif vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Truncated(f"element header at byte {pos} is cut off")
                length, pos = u32(buf, pos + 8)[0], pos + 12
            else:
                pos += 8
            if length == _UNDEFINED:
                # PS3.5 §6.2.2: UN of undefined length holds implicit VR items.
                pos = self.sequence(pos, implicit=implicit or vr == b"UN")
            elif vr == b"SQ" and length:  # defined length: its items are walked too, to bound the nesting
                stop = pos + length
                if stop > end:
                    raise _Truncated(f"value of ({group:04X},{elem:04X}) runs past the end")
                pos = self.sequence(pos, implicit=False, stop=stop)
            else:
                pos += length
                if pos > end:
                    raise _Truncated(f"value of ({group:04X},{elem:04X}) runs past the end")
        if in_item:
            raise _Truncated("item without its delimiter")
        return pos

    def sequence(self, pos: int, *, implicit: bool, stop: int | None = None) -> int:
        """Walk the items of a sequence or encapsulated value (PS3.5 §7.5); *stop*: end of a defined length.

        Raises :class:`_TooDeep` when sequences nest deeper than ``max_depth``.
        """
        self._depth += 1
        if self._depth > self.max_depth:
            raise _TooDeep(f"sequences nested deeper than {self.max_depth} levels")
        try:
            return self._items(pos, implicit=implicit, stop=stop)
        finally:
            self._depth -= 1

    def _items(self, pos: int, *, implicit: bool, stop: int | None) -> int:
        buf, end, tag_u32 = self.buf, self.end, self._tag_u32.unpack_from
        while True:
            if stop is not None and pos >= stop:
                return pos
            if pos + 8 > end:
                raise _Truncated(f"element header at byte {pos} is cut off")
            group, elem, length = tag_u32(buf, pos)
            pos += 8
            if group == 0xFFFE and elem == 0xE0DD:
                return pos
            if group != 0xFFFE or elem != 0xE000:
                raise _Truncated(f"expected an item at byte {pos - 8}")
            if length == _UNDEFINED:
                pos = self.dataset(pos, in_item=True, implicit=implicit)
            elif stop is not None and not implicit:  # an item of a defined-length explicit VR sequence
                item_end = pos + length
                if item_end > end:
                    raise _Truncated("item runs past the end of the file")
                saved, self.end = self.end, item_end
                try:
                    pos = self.dataset(pos, implicit=implicit)
                finally:
                    self.end = saved
            else:
                pos += length
                if pos > end:
                    raise _Truncated("item runs past the end of the file")


_META_HEADER = struct.Struct("<H2x2sH")  # group, VR, 2-byte length (explicit VR little endian)
_META_LONG = struct.Struct("<I")


def dataset_offset(buf: mmap.mmap | bytes) -> int:
    """Position of the first data set byte after the File Meta group (PS3.10 §7.1)."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise InvalidInstance("not a DICOM Part 10 file (no DICM prefix)")
    pos, end = 132, len(buf)
    while pos + 8 <= end:
        group, vr, length = _META_HEADER.unpack_from(buf, pos)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            pos += 12 + _META_LONG.unpack_from(buf, pos + 8)[0]
        else:
            pos += 8 + length
    if pos > end:
        raise InvalidInstance("file meta information is truncated")
    return pos


def check_transfer_syntax(transfer_syntax: str) -> None:
    """Refuse a transfer syntax that is not a DICOM one (PS3.5 Annex A, PS3.6 Annex A; e.g. ``1.2.3.4.5.6``).

    Known syntaxes are pydicom's; any other must be a well-formed UID under the DICOM root
    ``1.2.840.10008.1.2`` (a newer standard syntax), else the bytes cannot be understood.
    """
    if transfer_syntax in _KNOWN_SYNTAXES:
        return
    if not (transfer_syntax.startswith("1.2.840.10008.1.2.") and is_valid_uid(transfer_syntax)):
        raise InvalidInstance(f"unknown transfer syntax {transfer_syntax[:80]!r} (0002,0010)")


def check_complete(buf: mmap.mmap | bytes, transfer_syntax: str) -> None:
    """Raise :class:`InvalidInstance` unless every element's value is fully present.

    Also refuses an unknown transfer syntax and sequences nested deeper than
    ``PACS_MAX_NESTING_DEPTH`` (before any recursive parser sees them).
    """
    check_transfer_syntax(transfer_syntax)
    start = dataset_offset(buf)
    max_depth = limit_settings().max_nesting_depth
    try:
        if transfer_syntax == DeflatedExplicitVRLittleEndian:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            body = inflater.decompress(bytes(buf[start:])) + inflater.flush()
            if not inflater.eof:
                raise _Truncated("deflated data set ends before its end-of-stream marker")
            _Walker(body, implicit=False, little=True, max_depth=max_depth).dataset(0)
            return
        implicit = transfer_syntax == ImplicitVRLittleEndian
        if not implicit and len(buf) >= start + 6:
            # Some devices write implicit VR under an explicit transfer syntax;
            # like pydicom, trust the bytes: a VR is two upper-case letters.
            implicit = (
                not bytes(buf[start + 4 : start + 6]).isalpha() or not bytes(buf[start + 4 : start + 6]).isupper()
            )
        walker = _Walker(buf, implicit=implicit, little=transfer_syntax != ExplicitVRBigEndian, max_depth=max_depth)
        walker.dataset(start)
    except (_Truncated, zlib.error, struct.error) as exc:
        raise InvalidInstance(f"truncated or malformed data set: {exc}") from exc
    except _TooDeep as exc:
        raise InvalidInstance(str(exc)) from exc


# Files up to this size are read into memory once (hashed, walked and parsed from there);
# larger ones are hashed by streaming reads and walked through a mapping, so memory stays flat.
IN_MEMORY_LIMIT = 8 * 1024 * 1024
_PARSE_ERRORS = (InvalidDicomError, EOFError, ValueError, KeyError, struct.error)


def _parse(fh: BinaryIO) -> tuple[Dataset, str]:
    """The header of the Part 10 file *fh* (never its pixel data) and its transfer syntax."""
    try:
        ds = dcmread(fh, stop_before_pixels=True)
    except _PARSE_ERRORS as exc:
        raise InvalidInstance(f"cannot parse DICOM header: {exc}") from exc
    except RecursionError:  # nesting the structure walk could not see (implicit VR, defined lengths)
        raise InvalidInstance("cannot parse DICOM header: sequences nested too deeply") from None
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    if not ts:
        raise InvalidInstance("file meta has no Transfer Syntax UID (0002,0010)")
    return ds, ts


def read_received_file(path: Path, sha256: str | None = None) -> ReceivedFile:
    """Hash *path*, check its structure and parse its header (never its pixel data).

    *sha256*: the file's SHA-256 (hex) when the caller already hashed the bytes (not hashed again).
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 132:
                raise InvalidInstance(f"file of {size} bytes is too short for DICOM Part 10")
            fh.seek(0)
            if size <= IN_MEMORY_LIMIT:
                data = fh.read()
                size = len(data)
                digest = sha256 or hashlib.sha256(data).hexdigest()
                ds, ts = _parse(io.BytesIO(data))
                check_complete(data, ts)
            else:
                # Hash by streaming reads, not through the mapping: hashing a mapping would map every
                # page of a 1 GB object into this process (RSS grows by the object's size). The
                # structure walk below touches only the pages holding element headers.
                digest = sha256 or hashlib.file_digest(fh, "sha256").hexdigest()
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    fh.seek(0)
                    ds, ts = _parse(fh)
                    check_complete(buf, ts)
    except OSError as exc:
        raise InvalidInstance(f"cannot read received file: {exc}") from exc
    return ReceivedFile(path=path, size=size, sha256=digest, transfer_syntax_uid=ts, dataset=ds)
