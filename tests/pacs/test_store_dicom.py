"""C-STORE into the archive over real associations: every valid pydicom test file, byte-exact."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pynetdicom import _config
from sqlalchemy import func, select

from pacs.server import DicomListener
from pacs.sop_classes import storage_sop_classes
from storage.archive import Archive
from storage.dicom.files import dataset_offset
from storage.dicom.uids import is_valid_uid
from storage.index.models import Instance, InstanceVersion
from storage.objects import read_bytes
from tests.support.scu import associate

STORAGE_CLASSES = set(storage_sop_classes())
# Files in pydicom's test data that are storage instances but damaged: the archive must refuse them.
KNOWN_DAMAGED = {
    "MR_truncated.dcm",  # pixel data cut short
    "emri_small_jpeg_2k_lossless_too_short.dcm",  # last fragment cut short
}


def _candidate_files() -> list[Path]:
    """Part 10 storage instances in pydicom's test data, with the four UIDs well formed."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(get_testdata_files("*")):
            path = Path(name)
            if not path.is_file() or path.suffix not in (".dcm", ""):
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not a DICOM file at all
                continue
            meta = getattr(ds, "file_meta", None)
            if meta is None or "TransferSyntaxUID" not in meta or path.read_bytes()[128:132] != b"DICM":
                continue
            uids = [ds.get(k) for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")]
            if str(ds.get("SOPClassUID")) not in STORAGE_CLASSES or not all(is_valid_uid(str(u)) for u in uids):
                continue
            if meta.get("MediaStorageSOPInstanceUID") not in (None, ds.SOPInstanceUID):
                continue
            found.append(path)
    return found


CANDIDATES = _candidate_files()


@pytest.fixture
def send_raw_files() -> Iterator[None]:
    """Make pynetdicom send the file's bytes as they are (no decode / re-encode by the client)."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def _dataset_bytes(data: bytes) -> bytes:
    return data[dataset_offset(data) :]


def test_there_is_a_real_corpus() -> None:
    assert len(CANDIDATES) > 80
    assert {p.name for p in CANDIDATES} >= KNOWN_DAMAGED


@pytest.mark.usefixtures("send_raw_files")
def test_every_valid_pydicom_file_is_stored_byte_exact(archive: Archive, dicom_listener: DicomListener) -> None:
    statuses: dict[str, int] = {}
    for path in CANDIDATES:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        contexts = [(str(meta.MediaStorageSOPClassUID), [str(meta.TransferSyntaxUID)])]
        with associate(dicom_listener.port, contexts) as assoc:
            status = assoc.send_c_store(path)
        statuses[path.name] = int(status.Status)

    refused = {name for name, code in statuses.items() if code != 0x0000}
    assert refused == KNOWN_DAMAGED, f"unexpected statuses: { {n: hex(statuses[n]) for n in refused} }"
    assert {statuses[name] for name in KNOWN_DAMAGED} == {0xC000}

    with archive.db.read_session() as session:
        for path in CANDIDATES:
            if path.name in KNOWN_DAMAGED:
                continue
            sent = _dataset_bytes(path.read_bytes())
            sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            versions = session.execute(
                select(InstanceVersion.object_key, InstanceVersion.sha256, InstanceVersion.size_bytes)
                .join(Instance, Instance.id == InstanceVersion.instance_id)
                .where(Instance.sop_instance_uid == sop)
            ).all()
            matching = []
            for key, sha, size in versions:
                stored = read_bytes(archive.objects, key)
                assert hashlib.sha256(stored).hexdigest() == sha, f"{path.name}: checksum differs"
                assert len(stored) == size
                if _dataset_bytes(stored) == sent:
                    matching.append(key)
            assert matching, f"{path.name}: no stored version holds the sent bytes"
    # Nothing of a damaged file was archived: no stored version holds its bytes.
    with archive.db.read_session() as session:
        keys = session.scalars(select(InstanceVersion.object_key)).all()
    stored = {hashlib.sha256(read_bytes(archive.objects, key)).hexdigest() for key in keys}
    for path in CANDIDATES:
        if path.name in KNOWN_DAMAGED:
            assert hashlib.sha256(path.read_bytes()).hexdigest() not in stored


def test_c_echo(dicom_listener: DicomListener) -> None:
    with associate(dicom_listener.port, [("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])]) as assoc:
        assert int(assoc.send_c_echo().Status) == 0x0000


def test_diconde_sop_class_reaches_the_archive(archive: Archive, dicom_listener: DicomListener, tmp_path: Path) -> None:
    from tests.support.factories import make_instance, write_part10

    eddy_current = "1.2.840.10008.5.1.4.1.1.601.1"
    ds = make_instance(sop_class_uid=eddy_current, modality="EC", PatientID="EC-PART-1")
    path = write_part10(ds, tmp_path / "ec.dcm")
    with associate(dicom_listener.port, [(eddy_current, ["1.2.840.10008.1.2.1"])]) as assoc:
        assert int(assoc.send_c_store(path).Status) == 0x0000
    with archive.db.read_session() as session:
        assert (
            session.scalar(select(func.count()).select_from(Instance).where(Instance.sop_class_uid == eddy_current))
            == 1
        )
