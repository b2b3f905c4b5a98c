"""Raw frames for the browser: stored pixel values, little-endian, optionally decimated.

The viewer applies window/level itself on these values (a lookup table in JavaScript), so a
window change never costs a round trip. ``scale=N`` keeps every N-th row and column: a
10000-pixel radiograph opens from a small preview first, and for native (uncompressed) pixel
data the server reads only the kept rows (:func:`viewer.frames.decode_frame_decimated`).

Decoding is the shared frame decoder of the DICOMweb routes (:mod:`viewer.frames`), reading
only the requested frame from the stored object.
"""

from __future__ import annotations

import numpy as np

from storage.archive import Archive
from storage.errors import InvalidQuery
from storage.index.catalog import InstanceRecord
from storage.index.unit_of_work import UnitOfWork
from viewer import frames

MAX_SCALE = 64


def decode_frame(
    archive: Archive, record: InstanceRecord, frame: int, scale: int = 1, *, uow: UnitOfWork | None = None
) -> np.ndarray:
    """Frame *frame* (1-based) of the instance as stored values (rows x columns [x samples]),
    every *scale*-th row and column."""
    if scale < 1 or scale > MAX_SCALE:
        raise InvalidQuery(f"scale must be between 1 and {MAX_SCALE}")
    count = int(record.values.get("NumberOfFrames") or 1)
    if frame < 1 or frame > count:
        raise InvalidQuery(f"frame must be between 1 and {count}")
    [stored] = archive.instances(
        record.study_instance_uid, record.series_instance_uid, str(record.values["SOPInstanceUID"]), uow=uow
    )
    with archive.open_instance(stored) as stream:
        try:
            decoded = frames.decode_frame_decimated(stream, frame, scale)
        except frames.FrameError as exc:
            raise InvalidQuery(f"pixel data cannot be decoded: {exc}") from exc
    return np.asarray(decoded.array)


def raw_frame(arr: np.ndarray, scale: int) -> tuple[bytes, dict[str, str]]:
    """The little-endian bytes of *arr* (already decimated by *scale*), and headers describing them."""
    if arr.dtype.kind == "f":
        arr = arr.astype("<f4")
    elif arr.dtype.kind == "b":
        arr = arr.astype("u1")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    headers = {
        "X-Rows": str(arr.shape[0]),
        "X-Columns": str(arr.shape[1]),
        "X-Samples": str(arr.shape[2] if arr.ndim == 3 else 1),
        "X-Pixel-Type": {"u": "uint", "i": "int", "f": "float"}[arr.dtype.kind] + str(arr.dtype.itemsize * 8),
        "X-Scale": str(scale),
        "Access-Control-Expose-Headers": "X-Rows, X-Columns, X-Samples, X-Pixel-Type, X-Scale",
    }
    return arr.tobytes(), headers
