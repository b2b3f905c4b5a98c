"""Hostile data sets through both doors of a real `pacs serve` (issue 18, findings 6, 8 and 9).

Each is refused with a clear status (C-STORE 0xC000, STOW failure 0xC000 / HTTP 4xx), stores
nothing, and logs one line rather than a traceback.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import _config

from pacs.status import Status
from tests.support.factories import make_instance, write_part10
from tests.support.scu import associate
from tests.support.servers import RunningServer, start_server, stop_server
from viewer.dicomweb.multipart import new_boundary


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `pacs serve` (embedded default, deferred indexing) for the module."""
    running = start_server(tmp_path_factory.mktemp("hostile") / "pacs-data")
    yield running
    stop_server(running)


@pytest.fixture
def chunked_send() -> Iterator[None]:
    """The SCU sends files as they are (no pydicom decode of the hostile bytes on our side)."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def _c_store(server: RunningServer, path: Path, sop_class: str) -> int:
    with associate(server.dicom_port, [(sop_class, [ExplicitVRLittleEndian])]) as assoc:
        status = assoc.send_c_store(path)
    assert status
    return int(status.Status)


def _stow(server: RunningServer, data: bytes) -> httpx.Response:
    boundary = new_boundary()
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode()
    )
    return httpx.post(
        f"{server.url_as('device')}/dicom-web/studies",
        content=body,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
        timeout=60,
    )


def _studies(server: RunningServer, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url_as('device')}/dicom-web/studies", params=params, timeout=60)


def _refused_by_stow(response: httpx.Response) -> None:
    """STOW answered the part as failed (PS3.18 10.5.3: 409, Failed SOP Sequence, reason 0xC000)."""
    assert response.status_code == 409, response.text[:500]
    (failed,) = response.json()["00081198"]["Value"]  # Failed SOP Sequence
    assert failed["00081197"]["Value"] == [0xC000]  # Failure Reason: cannot understand


def _nested(depth: int, tmp_path: Path) -> tuple[Path, str, str]:
    """A small instance ending in *depth* nested undefined-length sequences (explicit VR little endian)."""
    ds = make_instance()
    del ds.PixelData  # so that (0040,A730) Content Sequence is the last element
    path = write_part10(ds, tmp_path / f"nested-{depth}.dcm")
    opening = struct.pack("<HH2s2xI", 0x0040, 0xA730, b"SQ", 0xFFFFFFFF) + struct.pack(
        "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    path.write_bytes(path.read_bytes() + opening * depth + closing * depth)
    return path, str(ds.SOPClassUID), str(ds.StudyInstanceUID)


@pytest.mark.usefixtures("chunked_send")
def test_deep_nesting_is_refused_with_a_clear_status(server: RunningServer, tmp_path: Path) -> None:
    """Finding 8: 1000 nested sequences: C-STORE 0xC000 and STOW failure, no RecursionError, nothing stored."""
    path, sop_class, study = _nested(1000, tmp_path)
    assert _c_store(server, path, sop_class) == Status.CANNOT_UNDERSTAND
    _refused_by_stow(_stow(server, path.read_bytes()))
    assert _studies(server, StudyInstanceUID=study).json() == []
    log = server.log()
    assert "sequences nested deeper than 32 levels" in log
    assert "RecursionError" not in log
    shallow, sop_class, study = _nested(5, tmp_path)  # legitimate nesting is stored
    assert _c_store(server, shallow, sop_class) == Status.SUCCESS
    assert len(_studies(server, StudyInstanceUID=study).json()) == 1


def test_component_ids_beyond_lo_are_refused_not_merged(server: RunningServer, tmp_path: Path) -> None:
    """Finding 6: two PatientIDs differing after character 64 are refused, never stored as one component."""
    serial = "SN-" + "7" * 61  # 64 characters: stored
    paths = []
    for suffix in ("A", "B"):
        ds = make_instance(PatientID=serial + suffix)
        paths.append((write_part10(ds, tmp_path / f"long-{suffix}.dcm"), ds))
    (first, ds_a), (second, ds_b) = paths
    assert _c_store(server, first, str(ds_a.SOPClassUID)) == Status.CANNOT_UNDERSTAND
    _refused_by_stow(_stow(server, second.read_bytes()))
    for ds in (ds_a, ds_b):
        assert _studies(server, StudyInstanceUID=str(ds.StudyInstanceUID)).json() == []
    assert "more than LO's 64" in server.log()
    ok = make_instance(PatientID=serial)
    assert _c_store(server, write_part10(ok, tmp_path / "ok.dcm"), str(ok.SOPClassUID)) == Status.SUCCESS
    assert len(_studies(server, PatientID=serial).json()) == 1


def test_unknown_transfer_syntax_is_refused(server: RunningServer, tmp_path: Path) -> None:
    """Finding 9: a file whose (0002,0010) is not a DICOM transfer syntax is not stored over STOW."""
    ds = make_instance()
    data = write_part10(ds, tmp_path / "ts.dcm").read_bytes()
    explicit = b"1.2.840.10008.1.2.1\x00"
    assert data.count(explicit) == 1
    response = _stow(server, data.replace(explicit, b"1.2.3.4.5.6.7.8.9.1\x00"))
    _refused_by_stow(response)
    assert _studies(server, StudyInstanceUID=str(ds.StudyInstanceUID)).json() == []


def test_an_empty_uid_list_is_not_universal_matching(server: RunningServer, tmp_path: Path) -> None:
    """Finding 9: ``StudyInstanceUID=,,,`` is a 400, not every study."""
    ds = make_instance()
    assert _c_store(server, write_part10(ds, tmp_path / "any.dcm"), str(ds.SOPClassUID)) == Status.SUCCESS
    response = _studies(server, StudyInstanceUID=",,,")
    assert response.status_code == 400
    assert "lists no UID" in response.text
