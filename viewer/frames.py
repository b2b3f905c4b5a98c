"""Frame decoding: a stored DICOM object -> one frame as a numpy array, with its pixel description.

Reads only what a frame needs from a seekable binary stream (PS3.5 §8: native or
encapsulated Pixel Data); compressed transfer syntaxes are decoded by pydicom's
pixel handlers with the maintained plugins (pylibjpeg with libjpeg, openjpeg and rle; pyjpegls;
Pillow) and, last, :mod:`viewer.codecs` for sequential JPEG with a malformed Start of Scan.
Shared by WADO-RS ``/frames``, ``/rendered`` and the web viewer's raw frame endpoint.

API::

    header = read_header(stream)            # data set without Pixel Data
    info = pixel_info(header)               # PixelInfo (rows, bits, photometric, ...)
    frame = decode_frame(stream, 1)         # Frame(array, info, header), 1-based frame number
    frame = decode_frame_decimated(stream, 1, 10)   # every 10th row and column, reading only those
    frame = load_frame(archive, archive.instances(study, series, sop)[0], 1)   # from the archive
    frame_bytes(frame)                      # little-endian samples (WADO-RS /frames)
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array
from pydicom.uid import UID

from storage.archive import Archive
from storage.index.retrieve import StoredInstance
from viewer import codecs

codecs.register()


class FrameError(Exception):
    """The object has no decodable pixel data, or the frame does not exist."""


class FrameNotFound(FrameError):
    """The requested frame number is outside 1..NumberOfFrames (PS3.18 §9.4)."""


def _floats(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel module (PS3.3 C.7.6.3) and the values rendering needs."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int  # 0 unsigned, 1 two's complement
    photometric_interpretation: str
    number_of_frames: int
    transfer_syntax_uid: str
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_centers: tuple[float, ...] = ()
    window_widths: tuple[float, ...] = ()
    voi_lut_function: str = "LINEAR"
    has_voi_lut: bool = False
    has_modality_lut: bool = False

    @property
    def compressed(self) -> bool:
        """True for an encapsulated (compressed) transfer syntax."""
        return bool(self.transfer_syntax_uid) and UID(self.transfer_syntax_uid).is_compressed

    @property
    def grayscale(self) -> bool:
        """MONOCHROME1 or MONOCHROME2."""
        return self.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")


def _read_header(stream: BinaryIO) -> tuple[Dataset, int]:
    """The data set up to Pixel Data and the stream position where the Pixel Data element starts."""
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(stream, stop_before_pixels=True, force=True)
        position = stream.tell()  # pydicom stops at the start of the pixel data element
    except (InvalidDicomError, EOFError, ValueError, KeyError, struct.error) as exc:
        raise FrameError(f"cannot parse the stored object: {exc}") from exc
    finally:
        stream.seek(0)
    return ds, position


def read_header(stream: BinaryIO) -> Dataset:
    """The data set up to (not including) Pixel Data; the stream is rewound afterwards."""
    return _read_header(stream)[0]


def pixel_info(header: Dataset) -> PixelInfo:
    """Describe the pixel data of *header*; :class:`FrameError` when it is not an image."""
    if "Rows" not in header or "Columns" not in header or "BitsAllocated" not in header:
        raise FrameError("the instance has no image pixel data")
    try:
        frames = int(header.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        # PS3.5 §6.2: IS is an integer string; the decoders cannot size the pixel data without it
        raw = header.get_item(0x00280008)
        shown = raw.value.decode("ascii", "replace") if isinstance(raw.value, bytes) else raw.value
        raise FrameError(f"Number of Frames (0028,0008) is not an integer: {shown!r}") from None
    centers = _floats(header.get("WindowCenter"))
    widths = _floats(header.get("WindowWidth"))
    meta = getattr(header, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    slope = _floats(header.get("RescaleSlope")) or [1.0]
    intercept = _floats(header.get("RescaleIntercept")) or [0.0]
    return PixelInfo(
        rows=int(header.Rows),
        columns=int(header.Columns),
        samples_per_pixel=int(header.get("SamplesPerPixel") or 1),
        bits_allocated=int(header.BitsAllocated),
        bits_stored=int(header.get("BitsStored") or header.BitsAllocated),
        pixel_representation=int(header.get("PixelRepresentation") or 0),
        photometric_interpretation=str(header.get("PhotometricInterpretation") or "MONOCHROME2").strip(),
        number_of_frames=max(1, frames),
        transfer_syntax_uid=ts,
        rescale_slope=slope[0] or 1.0,
        rescale_intercept=intercept[0],
        window_centers=tuple(centers),
        window_widths=tuple(widths),
        voi_lut_function=str(header.get("VOILUTFunction") or "LINEAR").strip().upper(),
        has_voi_lut="VOILUTSequence" in header,
        has_modality_lut="ModalityLUTSequence" in header,
    )


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    ``array`` is (rows, columns) for one sample per pixel and (rows, columns, samples)
    otherwise, in the stored value range (Bits Stored masked, sign-extended when signed);
    colour data arrives as RGB (YCbCr is converted by the decoder).
    """

    array: np.ndarray
    info: PixelInfo
    header: Dataset

    @property
    def photometric_interpretation(self) -> str:
        """The photometric interpretation of ``array`` (YBR is decoded to RGB)."""
        pi = self.info.photometric_interpretation
        return "RGB" if pi.startswith("YBR") else pi


def decode_frame(stream: BinaryIO, number: int, header: Dataset | None = None) -> Frame:
    """Decode frame *number* (1-based, PS3.18 §10.4.1.1.5) from the Part 10 object in *stream*."""
    header = header if header is not None else read_header(stream)
    info = pixel_info(header)
    if number < 1 or number > info.number_of_frames:
        raise FrameNotFound(f"frame {number} does not exist (the instance has {info.number_of_frames})")
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if info.transfer_syntax_uid and UID(info.transfer_syntax_uid).is_deflated:
                # pixel_array() cannot read a deflated stream: inflate the whole data set instead
                array = dcmread(stream, force=True).pixel_array
                array = array[number - 1] if info.number_of_frames > 1 else array
            else:
                try:
                    array = pixel_array(stream, index=number - 1 if info.number_of_frames > 1 else None)
                except Exception:  # noqa: BLE001 - the frame reader is stricter than the data set parser
                    # e.g. encapsulated Pixel Data whose item tags the frame reader cannot place
                    # (pydicom's SC_rgb_jpeg.dcm): read the whole data set, then decode.
                    stream.seek(0)
                    array = dcmread(stream, force=True).pixel_array
                    array = array[number - 1] if info.number_of_frames > 1 else array
    except FrameError:
        raise
    except Exception as exc:  # any decoder failure means "cannot decode", not a crash
        raise FrameError(f"cannot decode frame {number}: {_first_line(exc)}") from exc
    finally:
        stream.seek(0)
    if info.number_of_frames > 1 and array.ndim == (2 if info.samples_per_pixel == 1 else 3) + 1:
        array = array[0]
    return Frame(array=array, info=info, header=header)


def _first_line(exc: BaseException) -> str:
    """A decoder's message in one line (pydicom lists every plugin's failure on lines of their own)."""
    return " ".join(str(exc).split())


# Native reads: kept rows closer together than this are read in blocks, farther apart by seeking.
SEEK_GAP = 1 << 20
BLOCK = 4 << 20


def _native_frame_offset(stream: BinaryIO, info: PixelInfo, position: int, number: int) -> int | None:
    """Where frame *number* starts when the pixel data is native little-endian and laid out
    pixel by pixel (PS3.5 §8.1.1, §8.2); None for anything else (encapsulated, deflated, big
    endian, planar colour, packed 1-bit, YBR, float)."""
    if not info.transfer_syntax_uid:
        return None
    ts = UID(info.transfer_syntax_uid)
    if ts.is_compressed or ts.is_deflated or not ts.is_little_endian or ts.is_encapsulated:
        return None
    if info.bits_allocated not in (8, 16, 32) or info.photometric_interpretation not in _NATIVE_PHOTOMETRIC:
        return None
    stream.seek(position)
    head = stream.read(8)
    if len(head) < 8 or struct.unpack("<HH", head[:4]) != (0x7FE0, 0x0010):
        return None
    if ts.is_implicit_VR:
        (length,) = struct.unpack("<L", head[4:8])
        start = position + 8
    else:
        if head[4:6] not in (b"OB", b"OW"):
            return None
        (length,) = struct.unpack("<L", stream.read(4))
        start = position + 12
    frame_bytes = info.rows * info.columns * info.samples_per_pixel * info.bits_allocated // 8
    if length == 0xFFFFFFFF or number * frame_bytes > length:
        return None
    return start + (number - 1) * frame_bytes


_NATIVE_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB")


def decode_frame_decimated(stream: BinaryIO, number: int, step: int) -> Frame:
    """Frame *number* (1-based) keeping every *step*-th row and column: ``array[::step, ::step]``.

    Native pixel data is read row by row (the kept rows only, or the blocks holding them when
    they lie close together), so memory follows the result rather than the frame: a 10000 x 10000
    16-bit radiograph previews at step 10 from 2 MB of values instead of a 200 MB frame. Values are
    masked to Bits Stored and sign-extended like :func:`decode_frame`. Other encodings decode the
    whole frame and then decimate.
    """
    if step < 1:
        raise ValueError("step must be at least 1")
    header, position = _read_header(stream)
    info = pixel_info(header)
    if number < 1 or number > info.number_of_frames:
        raise FrameNotFound(f"frame {number} does not exist (the instance has {info.number_of_frames})")
    planar = int(header.get("PlanarConfiguration") or 0) if info.samples_per_pixel > 1 else 0
    offset = _native_frame_offset(stream, info, position, number) if step > 1 and not planar else None
    if offset is None:
        frame = decode_frame(stream, number, header)
        return Frame(array=frame.array[::step, ::step], info=info, header=header)
    itemsize = info.bits_allocated // 8
    dtype = np.dtype(f"<{'i' if info.pixel_representation else 'u'}{itemsize}")
    samples = info.samples_per_pixel
    row_bytes = info.columns * samples * itemsize
    kept = []
    try:
        if step * row_bytes >= SEEK_GAP:
            for row in range(0, info.rows, step):
                stream.seek(offset + row * row_bytes)
                kept.append(_rows(stream.read(row_bytes), 1, info, dtype)[:, ::step].copy())
        else:
            group = max(1, BLOCK // (step * row_bytes)) * step  # rows per read, a multiple of step
            stream.seek(offset)
            for first in range(0, info.rows, group):
                count = min(group, info.rows - first)
                # copy: a view would keep the whole block alive
                kept.append(_rows(stream.read(count * row_bytes), count, info, dtype)[::step, ::step].copy())
    finally:
        stream.seek(0)
    array = np.concatenate(kept) if len(kept) > 1 else kept[0]
    if info.bits_stored < info.bits_allocated:
        shift = info.bits_allocated - info.bits_stored
        # sign-extend from Bits Stored, or clear the unused high bits
        array = (array << shift) >> shift if info.pixel_representation else array & ((1 << info.bits_stored) - 1)
    return Frame(array=array, info=info, header=header)


def _rows(data: bytes, count: int, info: PixelInfo, dtype: np.dtype[Any]) -> np.ndarray:
    """*count* rows of native pixel data as (rows, columns[, samples]); FrameError when short."""
    expected = count * info.columns * info.samples_per_pixel * dtype.itemsize
    if len(data) < expected:
        raise FrameError("the pixel data is shorter than its frames")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize)
    if info.samples_per_pixel == 1:
        return array.reshape(count, info.columns)
    return array.reshape(count, info.columns, info.samples_per_pixel)


def load_frame(archive: Archive, instance: StoredInstance, number: int) -> Frame:
    """Decode frame *number* (1-based) of a stored instance, reading only what the frame needs."""
    with archive.open_instance(instance) as stream:
        return decode_frame(stream, number)


def frame_bytes(frame: Frame) -> bytes:
    """The frame as uncompressed little-endian samples, colour-by-pixel (PS3.18 §8.7.3.3.2)."""
    array = frame.array
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
