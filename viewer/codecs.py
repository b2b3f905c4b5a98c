"""Decoder plugins for pydicom beyond the maintained ones, registered once by :func:`register`.

pydicom tries its plugins in order (GDCM, pylibjpeg, pyjpegls, Pillow, ...) and this module adds
one last resort for sequential JPEG (PS3.5 §A.4.1, 1.2.840.10008.1.2.4.50 and .51): a Start of
Scan whose spectral selection is not 0..63. ITU-T T.81 §B.2.3 fixes Ss = 0 and Se = 63 for the
sequential DCT processes, so the value carries no information; some encoders write Se = 0
(pydicom's ``JPEG-lossy.dcm``, 12-bit JPEG Extended), which libjpeg rejects and the IJG decoder
ignores. The plugin rewrites those two bytes in a copy of the frame and decodes it with
pylibjpeg-libjpeg. Every other frame is left to the other plugins: this one raises for it.
"""

from __future__ import annotations

import struct
import threading

from pydicom.pixels.decoders import JPEGBaseline8BitDecoder, JPEGExtended12BitDecoder
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.pixels.decoders.pylibjpeg import DECODER_DEPENDENCIES as _PYLIBJPEG_DEPENDENCIES
from pydicom.pixels.decoders.pylibjpeg import _decode_frame as _pylibjpeg_decode_frame
from pydicom.pixels.decoders.pylibjpeg import is_available as _pylibjpeg_is_available
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

LABEL = "ndt-pacs-sequential-jpeg"
_SEQUENTIAL_SOF = (0xC0, 0xC1)  # baseline and extended sequential DCT, Huffman (T.81 Table B.1)
_lock = threading.Lock()
_registered = False

DECODER_DEPENDENCIES = {uid: _PYLIBJPEG_DEPENDENCIES[uid] for uid in (JPEGBaseline8Bit, JPEGExtended12Bit)}


def is_available(uid: str) -> bool:
    """pydicom's plugin protocol: usable when pylibjpeg with libjpeg is."""
    return uid in DECODER_DEPENDENCIES and _pylibjpeg_is_available(uid)


def repair_spectral_selection(frame: bytes) -> bytes | None:
    """*frame* with every sequential-mode SOS set to Ss=0, Se=63, Ah=Al=0; None if nothing needed it."""
    data = bytearray(frame)
    position, sequential, changed = 2, False, False
    if data[:2] != b"\xff\xd8":
        return None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None  # entropy-coded data or garbage: only the marker segments before a scan are read
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte (T.81 §B.1.1.2)
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sequential = marker in _SEQUENTIAL_SOF
        if marker == 0xDA:  # SOS: Ls, Ns, Ns * (Cs, Td/Ta), Ss, Se, Ah/Al
            if not sequential:
                return None
            tail = position + 2 + length - 3
            if tail + 3 > len(data):
                return None
            if data[tail : tail + 3] != b"\x00\x3f\x00":
                data[tail : tail + 3] = b"\x00\x3f\x00"
                changed = True
            break  # one scan in a sequential single-component or interleaved frame
        position += 2 + length
    return bytes(data) if changed else None


def decode_frame(src: bytes, runner: DecodeRunner) -> bytearray:
    """pydicom's plugin protocol: decode one frame whose only defect is the SOS spectral selection."""
    repaired = repair_spectral_selection(src)
    if repaired is None:
        raise ValueError("not a sequential JPEG frame with a repairable Start of Scan")
    return _pylibjpeg_decode_frame(repaired, runner)


def register() -> None:
    """Add the plugin (last) to pydicom's JPEG Baseline and Extended decoders; idempotent."""
    global _registered
    with _lock:
        if _registered:
            return
        for decoder in (JPEGBaseline8BitDecoder, JPEGExtended12BitDecoder):
            if LABEL not in decoder.available_plugins and is_available(decoder.UID):
                decoder.add_plugin(LABEL, (__name__, "decode_frame"))
        _registered = True
