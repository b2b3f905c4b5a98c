"""Every transfer syntax decodes: each pixel-bearing pydicom test file, stored, served as frame and rendering.

The frame (WADO-RS ``/frames``, PS3.18 §10.4.1.1.3), the rendering (``/rendered``, PS3.18 §10.4.1.1.4)
and the viewer's raw pixels come from a real HTTP server over the real archive. The few files that
cannot be served are listed below with the reason, and their answer is checked too.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from storage.archive import Archive
from storage.audit import Actor
from storage.errors import InvalidInstance
from storage.factory import open_archive
from tests.support.servers import make_settings
from tests.support.webutil import dicomweb_client, http_server
from viewer import codecs
from viewer.frames import decode_frame

ACTOR = Actor("codec-test", kind="system")

# Files the archive refuses as sent (the store raises, nothing is stored), with the reason it gives.
# Their pixel data is still decoded: a copy with the identity repaired (header only) is stored.
REFUSED = {
    "OT-PAL-8-face.dcm": "missing DICOM File Meta Information",
    "JPEGLSNearLossless_08.dcm": "StudyInstanceUID is missing",
    "JPEGLSNearLossless_16.dcm": "StudyInstanceUID is missing",
    "SC_rgb_jls_lossy_line.dcm": "StudyInstanceUID is missing",
    "SC_rgb_jls_lossy_sample.dcm": "StudyInstanceUID is missing",
    "bad_sequence.dcm": "SOPInstanceUID is missing or not a valid UID",
    "badVR.dcm": "file meta (0002,0003) names another SOP Instance UID",
    "rtdose.dcm": "file meta (0002,0003) names another SOP Instance UID",
    "rtdose_1frame.dcm": "file meta (0002,0003) names another SOP Instance UID",
    "rtdose_expb.dcm": "file meta (0002,0003) names another SOP Instance UID",
    "rtdose_expb_1frame.dcm": "file meta (0002,0003) names another SOP Instance UID",
}
# Refused, and not repairable: the Pixel Data element is cut short (the file is truncated).
TRUNCATED = {"MR_truncated.dcm": "truncated or malformed data set"}
# Stored as sent, but no decoder can read the pixel data: 406 (and 400 for the viewer's pixels).
UNDECODABLE = {
    # a Sequence Delimiter item inside the encapsulated frame: the codestream is cut where it starts
    "JPEG2000-embedded-sequence-delimiter.dcm": "cannot decode frame 1: ",
    # Number of Frames is "1A": the pixel data cannot be sized
    "badVR.dcm": "Number of Frames (0028,0008) is not an integer: '1A'",
}


def _repaired_copy(path: Path, tmp: Path) -> Path:
    """*path* with the identity the archive needs (UIDs, File Meta); the Pixel Data element unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        ds.ensure_file_meta()
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # how pydicom read it
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            value = str(ds.get(keyword) or "")
            if not value or len(value) > 64 or not all(c in "0123456789." for c in value):
                setattr(ds, keyword, generate_uid(entropy_srcs=[path.name, keyword]))
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = tmp / f"repaired-{path.name}"
        ds.save_as(out, enforce_file_format=True)
    return out


def _pixel_files() -> list[str]:
    """The names of pydicom's test files (and pydicom-data's) that hold pixel data."""
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(set(get_testdata_files("*"))):
            try:
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:  # noqa: BLE001 - not DICOM (pydicom ships other test files too)
                continue
            if "Rows" in header and "BitsAllocated" in header and _has_pixels(path):
                names.append(Path(path).name)
    return sorted(set(names))


def _has_pixels(path: str) -> bool:
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=64)
    except Exception:  # noqa: BLE001 - a header that reads but a body that does not: still a candidate
        return True
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


PIXEL_FILES = _pixel_files()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, str]]:
    tmp = tmp_path_factory.mktemp("codecs")
    archive = open_archive(make_settings(tmp / "data", f"sqlite:///{tmp / 'index.sqlite'}"))
    with http_server(archive, role="inspector") as url:  # reads pixels for display: images:read
        yield archive, url
    archive.db.dispose()


def test_the_list_is_the_full_test_set() -> None:
    assert len(PIXEL_FILES) > 100
    for name in [*REFUSED, *TRUNCATED, *UNDECODABLE, "JPEG-lossy.dcm", "JPEGLSNearLossless_16.dcm"]:
        assert name in PIXEL_FILES


@pytest.mark.parametrize("name", PIXEL_FILES)
def test_stored_then_frame_and_rendering_served(served: tuple[Archive, str], name: str, tmp_path: Path) -> None:
    archive, url = served
    path = Path(str(get_testdata_file(name)))
    if name in REFUSED or name in TRUNCATED:
        with pytest.raises(InvalidInstance, match=re.escape({**REFUSED, **TRUNCATED}[name])):
            archive.store_file(path, ACTOR)
        if name in TRUNCATED:
            return
        path = _repaired_copy(path, tmp_path)
    result = archive.store_file(path, ACTOR)
    study, series, sop = result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid
    base = f"{url}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    rows, columns = int(header.Rows), int(header.Columns)

    frame = httpx.get(f"{base}/frames/1", timeout=60)
    rendered = httpx.get(f"{base}/rendered", headers={"Accept": "image/png"}, timeout=60)
    pixels = httpx.get(f"{url}/api/images/{sop}/frames/1/pixels", timeout=60)
    if name in UNDECODABLE:
        assert frame.status_code == 406, frame.text
        assert UNDECODABLE[name] in frame.json()["00000902"]["Value"][0]
        assert rendered.status_code == 406
        assert pixels.status_code == 400
        assert "cannot be decoded" in pixels.text
        return
    assert frame.status_code == 200, frame.text
    assert rendered.status_code == 200, rendered.text
    assert pixels.status_code == 200, pixels.text
    image = Image.open(io.BytesIO(rendered.content))
    assert image.format == "PNG"
    assert image.size == (columns, rows)
    assert (int(pixels.headers["X-Rows"]), int(pixels.headers["X-Columns"])) == (rows, columns)
    # the frame part is pydicom's own decoding of the stored bytes, sample for sample
    with path.open("rb") as stream:
        expected = decode_frame(stream, 1).array
    assert len(pixels.content) == expected.size * max(expected.dtype.itemsize, 1) or expected.dtype.kind == "f"
    client = dicomweb_client(f"{url}/dicom-web")
    (data,) = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    assert data == np.ascontiguousarray(expected, dtype=expected.dtype.newbyteorder("<")).tobytes()


def test_jpeg_extended_12_bit_with_a_malformed_scan_header_decodes() -> None:
    """pydicom's ``JPEG-lossy.dcm`` writes Se=0 in its Start of Scan; T.81 §B.2.3 says 63."""
    path = str(get_testdata_file("JPEG-lossy.dcm"))
    with open(path, "rb") as stream:
        array = decode_frame(stream, 1).array
    assert array.shape == (1024, 256)
    assert array.dtype == np.uint16
    assert 0 < int(array.max()) < 4096  # 12-bit values, not noise from a wrong decode
    # the reference decoder (GDCM / IJG) gives a mean of 14.37 for this image
    assert abs(float(array.mean()) - 14.37) < 0.1


def test_repair_leaves_well_formed_and_progressive_frames_alone() -> None:
    good = b"\xff\xd8\xff\xc1\x00\x0b\x0c\x00\x01\x00\x01\x01\x01\x11\x00\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    assert codecs.repair_spectral_selection(good) is None
    progressive = good.replace(b"\xff\xc1", b"\xff\xc2").replace(b"\x00\x3f\x00", b"\x00\x00\x00")
    assert codecs.repair_spectral_selection(progressive) is None
    bad = good.replace(b"\x00\x3f\x00", b"\x00\x00\x00")
    assert codecs.repair_spectral_selection(bad) == good
    assert codecs.repair_spectral_selection(b"not a jpeg") is None
