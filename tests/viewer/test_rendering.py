"""Frame decoding and rendering (PS3.3 C.11 grayscale pipeline, PS3.18 §8.3.5 parameters)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from tests.support.factories import make_instance, write_part10
from viewer.dicomweb.multipart import MultipartError, iter_parts
from viewer.frames import Frame, FrameNotFound, decode_frame, frame_bytes
from viewer.rendering import RenderError, RenderOptions, Viewport, parse_viewport, parse_window, render


def _frame(tmp_path: Path, pixels: np.ndarray, **attrs: object) -> Frame:
    rows, columns = pixels.shape[:2]
    ds = make_instance(rows=rows, columns=columns, **attrs)
    ds.PixelData = pixels.tobytes()
    path = write_part10(ds, tmp_path / "f.dcm")
    with open(path, "rb") as stream:
        return decode_frame(stream, 1)


def _png(frame: Frame, **options: object) -> np.ndarray:
    data = render(frame, RenderOptions(media_type="image/png", **options))  # type: ignore[arg-type]
    return np.asarray(Image.open(io.BytesIO(data)))


def _ramp(dtype: type, start: int, count: int = 4096) -> np.ndarray:
    return (np.arange(count, dtype=np.int64) + start).astype(dtype).reshape(64, -1)


def test_window_linear_on_16_bit_unsigned(tmp_path: Path) -> None:
    frame = _frame(tmp_path, _ramp(np.uint16, 0))
    out = _png(frame, window=parse_window("2048,1024"))
    flat = out.reshape(-1)
    assert flat[1000] == 0
    assert flat[3000] == 255
    assert abs(int(flat[2048]) - 128) <= 1
    assert np.all(np.diff(flat.astype(int)) >= 0)  # monotonic on a ramp


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    frame = _frame(tmp_path, _ramp(np.uint16, 0), PhotometricInterpretation="MONOCHROME1")
    flat = _png(frame, window=parse_window("2048,1024")).reshape(-1)
    assert flat[1000] == 255
    assert flat[3000] == 0


def test_signed_with_rescale_windows_in_modality_units(tmp_path: Path) -> None:
    # Stored -2048..2047, slope 2, intercept 100 -> modality values -3996..4194.
    frame = _frame(tmp_path, _ramp(np.int16, -2048), PixelRepresentation=1, RescaleSlope=2, RescaleIntercept=100)
    flat = _png(frame, window=parse_window("100,400")).reshape(-1)
    # Stored 0 -> 100 (the centre); stored -100 -> -100 (the lower edge); stored 100 -> 300 (upper edge).
    assert abs(int(flat[2048]) - 128) <= 1
    assert flat[2048 - 101] == 0
    assert flat[2048 + 101] == 255


def test_stored_window_used_unless_one_is_asked_for(tmp_path: Path) -> None:
    pixels = _ramp(np.uint16, 0)
    frame = _frame(tmp_path, pixels, BitsStored=12, HighBit=11, WindowCenter=1000, WindowWidth=200)
    flat = _png(frame).reshape(-1)
    assert flat[899] == 0
    assert flat[1101] == 255
    asked = _png(frame, window=parse_window("3000,200")).reshape(-1)
    assert asked[1101] == 0


def test_no_window_uses_the_frame_range_and_sigmoid(tmp_path: Path) -> None:
    frame = _frame(tmp_path, _ramp(np.uint16, 10000))
    flat = _png(frame).reshape(-1)
    assert flat[0] == 0
    assert flat[-1] == 255
    sigmoid = _png(frame, window=parse_window("12048,1000,SIGMOID")).reshape(-1)
    assert abs(int(sigmoid[2048]) - 128) <= 1


def test_rgb_passes_through_and_viewport(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    frame = _frame(
        tmp_path,
        rgb,
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
    )
    assert np.array_equal(_png(frame), rgb)
    assert frame_bytes(frame) == rgb.tobytes()
    assert _png(frame, viewport=Viewport(30, 30)).shape == (20, 30, 3)
    cropped = _png(frame, viewport=parse_viewport("10,10,5,5,10,10"))
    assert np.array_equal(cropped, rgb[5:15, 5:15])


def test_multi_frame_and_compressed_frames() -> None:
    with open(str(get_testdata_file("emri_small.dcm")), "rb") as stream:
        frame = decode_frame(stream, 10)
        assert frame.array.shape == (64, 64)
        with pytest.raises(FrameNotFound):
            decode_frame(stream, 11)
    with open(str(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")), "rb") as stream:
        frame = decode_frame(stream, 1)
    assert frame.photometric_interpretation == "RGB"
    assert Image.open(io.BytesIO(render(frame, RenderOptions()))).size == (100, 100)


@pytest.mark.parametrize("text", ["1", "a,b", "1,0", "1,-5", "1,2,cubic", "nan,10"])
def test_bad_window_is_rejected(text: str) -> None:
    with pytest.raises(RenderError):
        parse_window(text)


@pytest.mark.parametrize("text", ["1", "0,10", "10,x", "1,2,3"])
def test_bad_viewport_is_rejected(text: str) -> None:
    with pytest.raises(RenderError):
        parse_viewport(text)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _collect(data: bytes, boundary: str, size: int, tmp_path: Path) -> list[tuple[str | None, bytes]]:
    async def run() -> list[tuple[str | None, bytes]]:
        out = []
        async for part in iter_parts(_chunks(data, size), boundary, tmp_path):
            out.append((part.content_type, part.path.read_bytes()))
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_multipart_reader_is_incremental(tmp_path: Path, size: int) -> None:
    """Parts come out identical whatever the chunking (delimiters split across chunks)."""
    boundary = "b0undary"
    payloads = [b"\r\n--b0undar" * 50, b"", bytes(range(256)) * 10]
    body = b"preamble\r\n"
    for payload in payloads:
        body += b"--b0undary\r\nContent-Type: application/dicom\r\n\r\n" + payload + b"\r\n"
    body += b"--b0undary--"
    parts = _collect(body, boundary, size, tmp_path)
    assert [p[1] for p in parts] == payloads
    assert {p[0] for p in parts} == {"application/dicom"}
    assert list(tmp_path.iterdir()) == []  # spool files cleaned up


def test_multipart_reader_rejects_truncated_body(tmp_path: Path) -> None:
    with pytest.raises(MultipartError):
        _collect(b"--x\r\nContent-Type: application/dicom\r\n\r\npartial", "x", 3, tmp_path)
    assert list(tmp_path.iterdir()) == []
