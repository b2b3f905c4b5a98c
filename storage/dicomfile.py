"""Reading a received DICOM Part 10 file without decoding its pixel data.

PS3.10 §7: a 128-byte preamble, ``DICM``, the File Meta group (0002) in explicit
VR little endian, then the data set in the transfer syntax named by (0002,0010).
The archive keeps those bytes as they are; here it only hashes them, checks that
the element structure is complete (a truncated transfer is rejected, not
archived), and parses the header for indexing.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from storage.errors import InvalidInstance

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
_ITEM, _ITEM_END, _SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)


class _Truncated(Exception):
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

    def __init__(self, buf: mmap.mmap | bytes, *, implicit: bool, little: bool) -> None:
        self.buf = buf
        self.end = len(buf)
        self.implicit = implicit
        self.fmt = "<" if little else ">"

    def _u16(self, pos: int) -> int:
        return int(struct.unpack_from(self.fmt + "H", self.buf, pos)[0])

    def _u32(self, pos: int) -> int:
        return int(struct.unpack_from(self.fmt + "I", self.buf, pos)[0])

    def _tag(self, pos: int) -> tuple[int, int]:
        if pos + 8 > self.end:
            raise _Truncated(f"element header at byte {pos} is cut off")
        return self._u16(pos), self._u16(pos + 2)

    def dataset(self, pos: int, *, in_item: bool = False, implicit: bool | None = None) -> int:
        """Walk elements from *pos*; return the position after the data set (or item)."""
        implicit = self.implicit if implicit is None else implicit
        while pos < self.end:
            tag = self._tag(pos)
            if tag == _ITEM_END:
                if not in_item:
                    raise _Truncated(f"unexpected item delimiter at byte {pos}")
                return pos + 8
            vr = None if implicit else bytes(self.buf[pos + 4 : pos + 6])
            if vr is None or tag[0] == 0xFFFE:
                length, pos = self._u32(pos + 4), pos + 8
            elif vr in _LONG_VRS:
                if pos + 12 > self.end:
                    raise _Truncated(f"element header at byte {pos} is cut off")
                length, pos = self._u32(pos + 8), pos + 12
            else:
                length, pos = self._u16(pos + 6), pos + 8
            if length == _UNDEFINED:
                # PS3.5 §6.2.2: UN of undefined length holds implicit VR items.
                pos = self.sequence(pos, implicit=implicit or vr == b"UN")
            else:
                pos += length
                if pos > self.end:
                    raise _Truncated(f"value of ({tag[0]:04X},{tag[1]:04X}) runs past the end")
        if in_item:
            raise _Truncated("item without its delimiter")
        return pos

    def sequence(self, pos: int, *, implicit: bool) -> int:
        """Walk the items of an undefined-length sequence or encapsulated value (PS3.5 §7.5)."""
        while True:
            tag = self._tag(pos)
            length = self._u32(pos + 4)
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise _Truncated(f"expected an item at byte {pos - 8}")
            if length == _UNDEFINED:
                pos = self.dataset(pos, in_item=True, implicit=implicit)
            else:
                pos += length
                if pos > self.end:
                    raise _Truncated("item runs past the end of the file")


def dataset_offset(buf: mmap.mmap | bytes) -> int:
    """Position of the first data set byte after the File Meta group (PS3.10 §7.1)."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise InvalidInstance("not a DICOM Part 10 file (no DICM prefix)")
    walker = _Walker(buf, implicit=False, little=True)
    pos = 132
    while pos + 8 <= len(buf) and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
        vr = bytes(buf[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            pos += 12 + struct.unpack_from("<I", buf, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", buf, pos + 6)[0]
    if pos > len(buf):
        raise InvalidInstance("file meta information is truncated")
    del walker
    return pos


def check_complete(buf: mmap.mmap | bytes, transfer_syntax: str) -> None:
    """Raise :class:`InvalidInstance` unless every element's value is fully present."""
    start = dataset_offset(buf)
    try:
        if transfer_syntax == DeflatedExplicitVRLittleEndian:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            body = inflater.decompress(bytes(buf[start:])) + inflater.flush()
            if not inflater.eof:
                raise _Truncated("deflated data set ends before its end-of-stream marker")
            _Walker(body, implicit=False, little=True).dataset(0)
            return
        implicit = transfer_syntax == ImplicitVRLittleEndian
        if not implicit and len(buf) >= start + 6:
            # Some devices write implicit VR under an explicit transfer syntax;
            # like pydicom, trust the bytes: a VR is two upper-case letters.
            implicit = (
                not bytes(buf[start + 4 : start + 6]).isalpha() or not bytes(buf[start + 4 : start + 6]).isupper()
            )
        walker = _Walker(buf, implicit=implicit, little=transfer_syntax != ExplicitVRBigEndian)
        walker.dataset(start)
    except (_Truncated, zlib.error, struct.error) as exc:
        raise InvalidInstance(f"truncated or malformed data set: {exc}") from exc


def read_received_file(path: Path) -> ReceivedFile:
    """Hash *path*, check its structure and parse its header (never its pixel data)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 132:
                raise InvalidInstance(f"file of {size} bytes is too short for DICOM Part 10")
            # Hash by streaming reads, not through the mapping: hashing a mapping would map every
            # page of a 1 GB object into this process (RSS grows by the object's size). The
            # structure walk below touches only the pages holding element headers.
            fh.seek(0)
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                fh.seek(0)
                try:
                    ds = dcmread(fh, stop_before_pixels=True)
                except (InvalidDicomError, EOFError, ValueError, KeyError, struct.error) as exc:
                    raise InvalidInstance(f"cannot parse DICOM header: {exc}") from exc
                ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
                if not ts:
                    raise InvalidInstance("file meta has no Transfer Syntax UID (0002,0010)")
                check_complete(buf, ts)
    except OSError as exc:
        raise InvalidInstance(f"cannot read received file: {exc}") from exc
    return ReceivedFile(path=path, size=size, sha256=digest, transfer_syntax_uid=ts, dataset=ds)
