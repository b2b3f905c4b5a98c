"""Hostile data sets through both doors of a real `pacs serve` (issue 18, findings 2, 6, 8 and 9).

Each is refused with a clear status (C-STORE 0xC000, STOW failure 0xC000 / HTTP 4xx), stores
nothing, and logs one line rather than a traceback.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import _config
from sqlalchemy import create_engine, select

from pacs.fast_store import file_meta_header
from pacs.status import Status
from storage.audit import Actor
from storage.dicom.files import dataset_offset, inflate_bounded
from storage.errors import TooLarge
from storage.factory import open_archive
from storage.index.models import AuditEvent, Instance
from storage.ingest import indexer
from storage.ingest.intake import Intake
from tests.support.factories import make_instance, write_part10
from tests.support.scu import associate
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from viewer.dicomweb.multipart import new_boundary

MIB = 1 << 20
MAX_INSTANCE = 16 * MIB  # PACS_MAX_INSTANCE_SIZE of the module's server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `pacs serve` (embedded default, deferred indexing) for the module."""
    limits = {"PACS_MAX_INSTANCE_SIZE": str(MAX_INSTANCE)}
    running = start_server(tmp_path_factory.mktemp("hostile") / "pacs-data", limits)
    yield running
    stop_server(running)


@pytest.fixture
def chunked_send() -> Iterator[None]:
    """The SCU sends files as they are (no pydicom decode of the hostile bytes on our side)."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def _c_store(server: RunningServer, path: Path, sop_class: str, syntax: str = ExplicitVRLittleEndian) -> int:
    with associate(server.dicom_port, [(sop_class, [syntax])]) as assoc:
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


def _peak_memory(pid: int) -> int:
    """Peak resident set (VmHWM, bytes) of *pid* and of each of its children (the indexer)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    total = 0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def _deflated(ds_path: Path, target: Path, zeros: int = 0) -> Path:
    """The instance at *ds_path* as Deflated Explicit VR Little Endian, its Pixel Data replaced by *zeros* bytes."""
    ds = pydicom.dcmread(ds_path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    del ds.PixelData
    data = write_part10(ds, target.with_suffix(".plain")).read_bytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [compressor.compress(data[dataset_offset(data) :])]
    if zeros:
        parts.append(compressor.compress(struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", zeros)))
        chunk = bytes(MIB)
        for _ in range(zeros // MIB):
            parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    meta = file_meta_header(str(ds.SOPClassUID), str(ds.SOPInstanceUID), DeflatedExplicitVRLittleEndian)
    target.write_bytes(meta + b"".join(parts))
    return target


@pytest.mark.usefixtures("chunked_send")
def test_deflate_bomb_is_refused_with_bounded_memory(server: RunningServer, tmp_path: Path) -> None:
    """Finding 2: ~0.5 MB deflated that inflates to 512 MiB: C-STORE 0xA700, STOW 413 with the reason, no +512 MB."""
    ds = make_instance()
    plain = write_part10(ds, tmp_path / "plain.dcm")
    bomb = _deflated(plain, tmp_path / "bomb.dcm", zeros=512 * MIB)
    assert bomb.stat().st_size < MIB
    before = _peak_memory(server.process.pid)
    assert _c_store(server, bomb, str(ds.SOPClassUID), DeflatedExplicitVRLittleEndian) == Status.INSTANCE_TOO_LARGE
    response = _stow(server, bomb.read_bytes())
    assert response.status_code == 413, response.text[:500]
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA700]
    assert failed["00081155"]["Value"] == [str(ds.SOPInstanceUID)]
    assert "PACS_MAX_INSTANCE_SIZE" in response.headers["Warning"]
    # Inflating in memory takes at least the 512 MiB (pydicom: twice); the bounded spool stays near its 1 MiB steps.
    assert _peak_memory(server.process.pid) - before < 64 * MIB
    assert _studies(server, StudyInstanceUID=str(ds.StudyInstanceUID)).json() == []
    assert "inflates beyond the maximum instance size" in server.log()
    assert list((server.data_dir / "spool").glob(".inflate-*")) == []  # the spool is unnamed: nothing left behind


@pytest.mark.usefixtures("chunked_send")
def test_deflated_instances_within_the_limits_are_stored(server: RunningServer, tmp_path: Path) -> None:
    """A legitimate deflated instance (pixel data included) is stored through both doors and found."""
    for door in ("c-store", "stow"):
        ds = make_instance()
        path = _deflated(write_part10(ds, tmp_path / f"{door}.dcm"), tmp_path / f"{door}-deflated.dcm", zeros=2 * MIB)
        if door == "c-store":
            assert _c_store(server, path, str(ds.SOPClassUID), DeflatedExplicitVRLittleEndian) == Status.SUCCESS
        else:
            assert _stow(server, path.read_bytes()).status_code == 200
        (found,) = _studies(server, StudyInstanceUID=str(ds.StudyInstanceUID)).json()
        assert found["00100020"]["Value"] == [str(ds.PatientID)]


def test_an_instance_beyond_the_maximum_size_is_refused(server: RunningServer, tmp_path: Path) -> None:
    """PACS_MAX_INSTANCE_SIZE bounds uncompressed instances too (STOW 413, C-STORE 0xA700)."""
    ds = make_instance(rows=3000, columns=3000)  # 18 MB of pixel data > 16 MiB
    path = write_part10(ds, tmp_path / "large.dcm")
    assert path.stat().st_size > MAX_INSTANCE
    assert _c_store(server, path, str(ds.SOPClassUID)) == Status.INSTANCE_TOO_LARGE
    response = _stow(server, path.read_bytes())
    assert response.status_code == 413
    assert "larger than the maximum instance size" in response.headers["Warning"]
    assert _studies(server, StudyInstanceUID=str(ds.StudyInstanceUID)).json() == []


class _Counting:
    """A sink that keeps only the count of what is written to it."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)


def test_the_inflation_ratio_is_bounded_below_the_maximum_size(tmp_path: Path) -> None:
    """PACS_MAX_DEFLATE_RATIO: 128 MiB of zeros (deflate ~1000:1) is refused after the 64 MiB floor, not inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(MIB)
    stream = b"".join(compressor.compress(chunk) for _ in range(128)) + compressor.flush()
    sink = _Counting()
    with pytest.raises(TooLarge, match="PACS_MAX_DEFLATE_RATIO"):
        inflate_bounded(BytesIO(stream), sink, compressed_size=len(stream))  # type: ignore[arg-type]
    assert 63 * MIB <= sink.written <= 65 * MIB  # stopped at the floor, not at 128 MiB
    sink = _Counting()
    moderate = zlib.compress(bytes(range(256)) * 4096)[2:-4]  # raw deflate of 1 MiB, ratio far below the bound
    inflate_bounded(BytesIO(moderate), sink, compressed_size=len(moderate))  # type: ignore[arg-type]
    assert sink.written == MIB


def _mismatch_audits(data_dir: Path, study: str) -> list[dict[str, str]]:
    """The detail of each 'store' failure audited for *study* with a component mismatch (read from the index)."""
    engine = create_engine(f"sqlite:///{data_dir / 'index.sqlite'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(AuditEvent.detail).where(
                    AuditEvent.action == "store",
                    AuditEvent.outcome == "failure",
                    AuditEvent.study_instance_uid == study,
                )
            ).all()
    finally:
        engine.dispose()
    return [detail for (raw,) in rows if (detail := json.loads(raw)).get("mismatch") == "component"]


def test_an_instance_naming_another_component_is_refused_and_audited(server: RunningServer, tmp_path: Path) -> None:
    """Finding 7: a study of SN-OWNER-1 is not extended by an instance naming SN-INTRUDER-2, over either door."""
    owner = make_instance(PatientID="SN-OWNER-1")
    assert _c_store(server, write_part10(owner, tmp_path / "owner.dcm"), str(owner.SOPClassUID)) == Status.SUCCESS
    study = str(owner.StudyInstanceUID)
    intruders = []
    for door in ("c-store", "stow"):
        intruder = make_instance(PatientID="SN-INTRUDER-2", StudyInstanceUID=study)
        path = write_part10(intruder, tmp_path / f"intruder-{door}.dcm")
        intruders.append(str(intruder.SOPInstanceUID))
        if door == "c-store":  # deferred indexing: refused before the acknowledgement
            assert _c_store(server, path, str(intruder.SOPClassUID)) == Status.CANNOT_UNDERSTAND
        else:
            response = _stow(server, path.read_bytes())
            _refused_by_stow(response)
            assert "component mismatch" in response.headers["Warning"]
    (found,) = _studies(server, StudyInstanceUID=study).json()
    assert found["00100020"]["Value"] == ["SN-OWNER-1"]
    assert found["00201208"]["Value"] == [1]  # Number of Study Related Instances: the owner's only
    assert _studies(server, PatientID="SN-INTRUDER-2").json() == []
    audits = _mismatch_audits(server.data_dir, study)
    assert [(a["owner"], a["named"]) for a in audits] == [("SN-OWNER-1", "SN-INTRUDER-2")] * 2
    assert server.log().count("component mismatch: study") >= 2
    same = make_instance(PatientID="SN-OWNER-1", StudyInstanceUID=study)  # the owner's own instances still go in
    assert _c_store(server, write_part10(same, tmp_path / "same.dcm"), str(same.SOPClassUID)) == Status.SUCCESS
    assert _studies(server, StudyInstanceUID=study).json()[0]["00201208"]["Value"] == [2]


def test_a_mismatch_still_in_the_intake_is_set_aside_not_relabelled(tmp_path: Path) -> None:
    """Finding 7, deferred: both instances acknowledged before either is indexed; the indexer keeps the second apart."""
    settings = make_settings(tmp_path / "data")
    receiving, indexing = open_archive(settings), open_archive(settings)
    intake = Intake(settings.intake_dir, settle_timeout=5)
    receiving.use_intake(intake)
    owner = make_instance(PatientID="SN-OWNER-1")
    intruder = make_instance(PatientID="SN-INTRUDER-2", StudyInstanceUID=owner.StudyInstanceUID)
    actor = Actor("MODALITY", "127.0.0.1:104")
    for ds in (owner, intruder):  # no indexer yet: the admission check cannot know the study
        receiving.admit_file(write_part10(ds, tmp_path / f"{ds.PatientID}.dcm"), actor)
    assert indexer.index_pending(indexing, intake) == 2
    assert intake.entries() == []
    (kept,) = intake.rejected()  # byte-exact, for an operator; `pacs verify` reports it
    assert pydicom.dcmread(kept).SOPInstanceUID == intruder.SOPInstanceUID
    with indexing.db.read_session() as session:
        rows = session.execute(select(Instance.sop_instance_uid)).scalars().all()
    assert rows == [owner.SOPInstanceUID]
    audits = _mismatch_audits(settings.data_dir.resolve(), str(owner.StudyInstanceUID))
    assert [(a["owner"], a["named"]) for a in audits] == [("SN-OWNER-1", "SN-INTRUDER-2")]
    for archive in (receiving, indexing):
        archive.db.dispose()
