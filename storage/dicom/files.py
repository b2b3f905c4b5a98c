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
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from storage.dicom.uids import is_valid_uid
from storage.errors import InvalidInstance, TooLarge
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


def _text(value: bytes) -> str:
    """A UI value as pydicom reads it: ASCII, trailing NUL and space padding removed (PS3.5 §6.2)."""
    return value.decode("ascii", "replace").rstrip("\x00 ")


META_TRANSFER_SYNTAX = 0x00020010
META_SOP_CLASS = 0x00020002
META_SOP_INSTANCE = 0x00020003


def file_meta_values(buf: mmap.mmap | bytes) -> tuple[dict[int, str], int]:
    """The UI values of the file meta group (explicit VR little endian) and where the data set starts."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise InvalidInstance("not a DICOM Part 10 file (no DICM prefix)")
    values: dict[int, str] = {}
    pos = 132
    while pos + 8 <= len(buf):
        group, element = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = bytes(buf[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            if pos + 12 > len(buf):
                break
            length, value_at = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        else:
            length, value_at = struct.unpack_from("<H", buf, pos + 6)[0], pos + 8
        if value_at + length > len(buf):
            raise InvalidInstance("file meta information is truncated")
        if vr == b"UI":
            values[(group << 16) | element] = _text(bytes(buf[value_at : value_at + length]))
        pos = value_at + length
    return values, pos


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
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        raise ValueError("a deflated data set is checked by read_received_file (inflated into a bounded spool)")
    start = dataset_offset(buf)
    max_depth = limit_settings().max_nesting_depth
    try:
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


_INFLATE_CHUNK = 1 << 20  # compressed bytes read, and inflated bytes produced, per step
_RATIO_FLOOR = 64 << 20  # inflated bytes always allowed (up to the maximum instance size) whatever the ratio


def inflate_bounded(src: BinaryIO, dst: BinaryIO, *, compressed_size: int) -> int:
    """Inflate the raw deflate stream *src* into *dst* a chunk at a time; the inflated size.

    Never holds more than a chunk of either side in memory. Raises :class:`TooLarge` as soon
    as the output passes ``PACS_MAX_INSTANCE_SIZE`` or ``PACS_MAX_DEFLATE_RATIO`` times
    *compressed_size* (beyond the first 64 MiB): a deflate bomb is refused after writing at most
    that much, not after inflating all of it. :class:`InvalidInstance` for a broken stream.
    """
    limits = limit_settings()
    by_ratio = max(limits.max_deflate_ratio * compressed_size, _RATIO_FLOOR)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or src.read(_INFLATE_CHUNK)
            if not data:
                raise InvalidInstance("truncated or malformed data set: deflated data set ends before its end")
            out = inflater.decompress(data, _INFLATE_CHUNK)
            total += len(out)
            if total > limits.max_instance_size:
                raise TooLarge(
                    f"deflated data set inflates beyond the maximum instance size of {limits.max_instance_size} "
                    "bytes (PACS_MAX_INSTANCE_SIZE)"
                )
            if total > by_ratio:
                raise TooLarge(
                    f"deflated data set of {compressed_size} bytes inflates more than {limits.max_deflate_ratio} "
                    "times (PACS_MAX_DEFLATE_RATIO): refused as a deflate bomb"
                )
            dst.write(out)
    except zlib.error as exc:
        raise InvalidInstance(f"truncated or malformed data set: {exc}") from exc
    return total


_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


def _read_deflated(fh: BinaryIO, path: Path, start: int, size: int) -> Dataset:
    """The header of a Deflated Explicit VR Little Endian file (PS3.5 A.5), inflated into a bounded spool.

    The inflated data set goes to an unnamed temporary file beside *path* (never to memory),
    is walked there (complete, nesting bounded) and parsed from there up to the pixel data.
    """
    with tempfile.TemporaryFile(dir=path.parent, prefix=".inflate-") as spool:
        fh.seek(start)
        inflated = inflate_bounded(fh, spool, compressed_size=size - start)
        spool.flush()
        if inflated:
            with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as body:
                try:
                    _Walker(body, implicit=False, little=True, max_depth=limit_settings().max_nesting_depth).dataset(0)
                except (_Truncated, struct.error) as exc:
                    raise InvalidInstance(f"truncated or malformed data set: {exc}") from exc
                except _TooDeep as exc:
                    raise InvalidInstance(str(exc)) from exc
        spool.seek(0)
        try:
            meta = read_file_meta_info(path)
            dataset = read_dataset(spool, False, True, stop_when=_at_pixels)
        except RecursionError:
            raise InvalidInstance("cannot parse DICOM header: sequences nested too deeply") from None
        except _PARSE_ERRORS as exc:
            raise InvalidInstance(f"cannot parse DICOM header: {exc}") from exc
    ds = FileDataset(str(path), dataset, preamble=None, file_meta=meta, is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _deflated(path: Path) -> bool:
    """Whether pydicom would inflate the data set of *path*: its file meta, read as pydicom reads it, says so.

    Asked of pydicom itself (the file meta group only), so that no spelling of (0002,0010) our
    reader takes for another syntax sends a deflated data set to pydicom's in-memory inflate.
    """
    try:
        meta = read_file_meta_info(path)
        transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "")  # values convert lazily: inside the try
    except _PARSE_ERRORS as exc:
        raise InvalidInstance(f"cannot parse the file meta information: {str(exc)[:300]}") from exc
    return transfer_syntax == DeflatedExplicitVRLittleEndian


def read_header(path: Path) -> Dataset:
    """The header of the Part 10 file at *path* (never its pixel data), deflated data sets inflated bounded.

    For a door that must look inside a file before the archive takes it. :class:`InvalidInstance`
    (or :class:`TooLarge`) when it cannot be read within the limits.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 132:
                raise InvalidInstance(f"file of {size} bytes is too short for DICOM Part 10")
            if _deflated(path):
                fh.seek(0)
                start = dataset_offset(fh.read(min(size, 1 << 20)))
                return _read_deflated(fh, path, start, size)
            fh.seek(0)
            return _parse(fh)[0]
    except OSError as exc:
        raise InvalidInstance(f"cannot read received file: {exc}") from exc


def check_size(size: int) -> None:
    """Refuse (:class:`TooLarge`) an object larger than ``PACS_MAX_INSTANCE_SIZE``."""
    maximum = limit_settings().max_instance_size
    if size > maximum:
        raise TooLarge(
            f"object of {size} bytes is larger than the maximum instance size of {maximum} bytes "
            "(PACS_MAX_INSTANCE_SIZE)"
        )


# Files up to this size are read into memory once (hashed, walked and parsed from there);
# larger ones are hashed by streaming reads and walked through a mapping, so memory stays flat.
IN_MEMORY_LIMIT = 8 * 1024 * 1024
# pydicom reading hostile bytes raises many kinds (ValueError, KeyError, struct.error, EOFError,
# BytesLengthException, NotImplementedError, OverflowError, UnicodeDecodeError, ...): around its
# reading calls, any of them means the file cannot be understood (found by tests/storage/test_fuzz_admission.py).
_PARSE_ERRORS = (Exception,)


def _parse(fh: BinaryIO) -> tuple[Dataset, str]:
    """The header of the Part 10 file *fh* (never its pixel data) and its transfer syntax."""
    try:
        ds = dcmread(fh, stop_before_pixels=True)
    except RecursionError:  # nesting the structure walk could not see (implicit VR, defined lengths)
        raise InvalidInstance("cannot parse DICOM header: sequences nested too deeply") from None
    except _PARSE_ERRORS as exc:
        raise InvalidInstance(f"cannot parse DICOM header: {str(exc)[:300]}") from exc
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
            check_size(size)
            deflated = _deflated(path)
            fh.seek(0)
            if size <= IN_MEMORY_LIMIT:
                data = fh.read()
                size = len(data)
                digest = sha256 or hashlib.sha256(data).hexdigest()
                if deflated:
                    ds, ts = _read_deflated(fh, path, dataset_offset(data), size), str(DeflatedExplicitVRLittleEndian)
                else:
                    ds, ts = _parse(io.BytesIO(data))
                    check_complete(data, ts)
            else:
                # Hash by streaming reads, not through the mapping: hashing a mapping would map every
                # page of a 1 GB object into this process (RSS grows by the object's size). The
                # structure walk below touches only the pages holding element headers.
                digest = sha256 or hashlib.file_digest(fh, "sha256").hexdigest()
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    if deflated:
                        ds, ts = (
                            _read_deflated(fh, path, dataset_offset(buf), size),
                            str(DeflatedExplicitVRLittleEndian),
                        )
                    else:
                        fh.seek(0)
                        ds, ts = _parse(fh)
                        check_complete(buf, ts)
    except OSError as exc:
        raise InvalidInstance(f"cannot read received file: {exc}") from exc
    return ReceivedFile(path=path, size=size, sha256=digest, transfer_syntax_uid=ts, dataset=ds)
