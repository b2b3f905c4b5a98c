"""Decimated frame reads (the viewer's preview of big radiographs): the same values as decoding the
whole frame and keeping every N-th row and column, for native and encapsulated pixel data, while
native data is read row by row (memory follows the preview, not the frame)."""

from __future__ import annotations

import io
import tracemalloc
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from tests.support.factories import make_instance
from viewer import frames


def encoded(ds: Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


def image(
    rows: int,
    columns: int,
    *,
    bits: int = 16,
    stored: int | None = None,
    signed: bool = False,
    samples: int = 1,
    count: int = 1,
    syntax: str = ExplicitVRLittleEndian,
    planar: int = 0,
) -> Dataset:
    """A random image whose values use every bit of Bits Allocated (high bits beyond Bits Stored too)."""
    rng = np.random.default_rng(rows * 1000 + columns)
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    shape = (count, rows, columns, samples)
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if samples == 3 and planar:
        values = np.ascontiguousarray(values.transpose(0, 3, 1, 2))
    ds = make_instance(rows=rows, columns=columns)
    ds.BitsAllocated = bits
    ds.BitsStored = stored or bits
    ds.HighBit = (stored or bits) - 1
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel = samples
    if samples == 3:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = planar
    if count > 1:
        ds.NumberOfFrames = count
    ds.PixelData = values.tobytes()
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax == RLELossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(RLELossless)
    return ds


CASES: dict[str, tuple[dict[str, Any], int, int]] = {
    # name: (image arguments, frame, step)
    "explicit 16-bit": ({"rows": 37, "columns": 53}, 1, 4),
    "implicit 16-bit signed, 12 stored": ({"rows": 40, "columns": 41, "stored": 12, "signed": True}, 1, 3),
    "explicit 16-bit unsigned, 12 stored": ({"rows": 33, "columns": 30, "stored": 12}, 1, 5),
    "8-bit": ({"rows": 31, "columns": 29, "bits": 8}, 1, 2),
    "8-bit signed, 6 stored": ({"rows": 20, "columns": 22, "bits": 8, "stored": 6, "signed": True}, 1, 3),
    "32-bit": ({"rows": 19, "columns": 23, "bits": 32}, 1, 4),
    "RGB interleaved": ({"rows": 25, "columns": 27, "bits": 8, "samples": 3}, 1, 4),
    "RGB planar (decoded whole)": ({"rows": 25, "columns": 27, "bits": 8, "samples": 3, "planar": 1}, 1, 4),
    "multi-frame, frame 3": ({"rows": 30, "columns": 34, "count": 4}, 3, 4),
    "step beyond the image": ({"rows": 12, "columns": 9}, 1, 64),
    "RLE (decoded whole)": ({"rows": 36, "columns": 40, "syntax": RLELossless}, 1, 3),
    "deflated (decoded whole)": ({"rows": 36, "columns": 40, "syntax": DeflatedExplicitVRLittleEndian}, 1, 3),
    "deflated multi-frame": ({"rows": 16, "columns": 18, "count": 3, "syntax": DeflatedExplicitVRLittleEndian}, 2, 2),
}
CASES["implicit 16-bit signed, 12 stored"][0]["syntax"] = ImplicitVRLittleEndian


@pytest.mark.parametrize("name", list(CASES))
def test_decimated_frame_equals_the_decimated_full_frame(name: str) -> None:
    arguments, number, step = CASES[name]
    stream = encoded(image(**arguments))
    full = frames.decode_frame(stream, number).array[::step, ::step]
    got = frames.decode_frame_decimated(stream, number, step).array
    assert got.dtype == full.dtype
    assert got.shape == full.shape
    assert np.array_equal(got, full)
    assert stream.tell() == 0


def test_deflated_frames_decode() -> None:
    """pydicom's pixel_array() cannot read a deflated stream; the decoder inflates the data set."""
    ds = image(16, 18, count=3, syntax=DeflatedExplicitVRLittleEndian)
    expected = np.frombuffer(ds.PixelData, dtype="<u2").reshape(3, 16, 18)
    stream = encoded(ds)
    for number in (1, 3):
        assert np.array_equal(frames.decode_frame(stream, number).array, expected[number - 1])


@pytest.mark.parametrize(("seek_gap", "block"), [(1, frames.BLOCK), (frames.SEEK_GAP, 500)])
def test_seek_and_block_reads_agree(monkeypatch: pytest.MonkeyPatch, seek_gap: int, block: int) -> None:
    """Rows far apart are fetched by seeking, near ones in blocks: both read the same values."""
    monkeypatch.setattr(frames, "SEEK_GAP", seek_gap)
    monkeypatch.setattr(frames, "BLOCK", block)
    stream = encoded(image(50, 47, stored=14))
    assert np.array_equal(
        frames.decode_frame_decimated(stream, 1, 3).array, frames.decode_frame(stream, 1).array[::3, ::3]
    )


def test_missing_frame_and_short_pixel_data() -> None:
    stream = encoded(image(20, 20, count=2))
    with pytest.raises(frames.FrameNotFound):
        frames.decode_frame_decimated(stream, 3, 2)
    truncated = io.BytesIO(stream.getvalue()[:-300])
    with pytest.raises(frames.FrameError):
        frames.decode_frame_decimated(truncated, 2, 2)


def test_native_preview_reads_rows_not_the_frame() -> None:
    """A 4000 x 4000 16-bit frame (32 MB) previewed at step 10 peaks far below the frame's size."""
    ds = image(8, 8)
    ds.Rows = ds.Columns = 4000
    ds.PixelData = np.arange(4000 * 4000, dtype="<u2").tobytes()
    stream = encoded(ds)
    del ds
    tracemalloc.start()
    try:
        preview = frames.decode_frame_decimated(stream, 1, 10).array
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert preview.shape == (400, 400)
    assert preview[1, 1] == (10 * 4000 + 10) % 65536
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB"
