"""`pacs demo`: the synthetic DICONDE data set is valid, deterministic, stored over C-STORE and findable."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from ndt_pacs.demo import DEMO_SOP_CLASSES, components, generate_demo, missing_attributes
from pacs.push import PushError, parse_address, push_datasets
from pacs.server import DicomListener
from pacs.service_uids import PATIENT_ROOT_FIND
from storage.dicom.diconde.legacy import has_legacy_blocks
from storage.dicom.diconde.vocabulary import labels_for
from tests.support.servers import RunningServer

SCALE = 0.08  # DX ~164x82: fast, same structure as the full-size demo


def _find(port: int, level: str, **keys: object) -> list[Dataset]:
    """A real C-FIND (Patient Root) against our listener; returns the pending identifiers."""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(PATIENT_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="NDTPACS")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    try:
        return [
            ident
            for status, ident in assoc.send_c_find(query, PATIENT_ROOT_FIND)
            if status and status.Status in (0xFF00, 0xFF01) and ident is not None
        ]
    finally:
        assoc.release()


def test_demo_is_deterministic_and_every_iod_validates(tmp_path: Path) -> None:
    first = list(generate_demo(seed=7, count=3, scale=SCALE))
    again = list(generate_demo(seed=7, count=3, scale=SCALE))
    other = list(generate_demo(seed=8, count=3, scale=SCALE))
    assert [d.SOPInstanceUID for d in first] == [d.SOPInstanceUID for d in again]
    assert [d.PixelData for d in first] == [d.PixelData for d in again]
    assert {d.SOPInstanceUID for d in first}.isdisjoint(d.SOPInstanceUID for d in other)
    assert {str(d.SOPClassUID) for d in first} == set(DEMO_SOP_CLASSES)
    assert len({d.SOPInstanceUID for d in first}) == len(first)
    legacy = 0
    for number, ds in enumerate(first):
        path = tmp_path / f"{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        read = dcmread(path)
        assert missing_attributes(read) == [], (read.Modality, missing_attributes(read))
        assert read.pixel_array.shape == (read.Rows, read.Columns)
        spacing = read.get("PixelSpacing") or read.get("ImagerPixelSpacing")
        assert spacing is not None
        assert 0 < float(spacing[0]) < 5
        legacy += has_legacy_blocks(read)
    assert legacy > 0, "some files use the legacy private encoding"
    panel = next(d for d in first if d.Modality == "US")
    assert labels_for(panel)["EthnicGroup"] == "Alloy"  # the file's own label dictionary wins
    studies = {}
    for ds in first:
        studies.setdefault(ds.PatientID, set()).add(ds.StudyInstanceUID)
    assert all(len(s) >= 2 for s in studies.values()), "several inspections per component"


def test_demo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_demo(scale=0)
    with pytest.raises(ValueError):
        generate_demo(count=-1)
    with pytest.raises(ValueError):
        parse_address("localhost:notaport")
    assert parse_address("example.org:104") == ("example.org", 104)
    assert parse_address("[::1]:11112") == ("::1", 11112)


def test_push_to_closed_port_is_a_clear_error() -> None:
    from tests.support.servers import free_port

    with pytest.raises(PushError):
        push_datasets(iter([]), host="127.0.0.1", port=free_port(), sop_classes=DEMO_SOP_CLASSES, timeout=5)


@pytest.fixture
def pushed(dicom_listener: DicomListener) -> Iterator[tuple[DicomListener, list[Dataset]]]:
    datasets = list(generate_demo(seed=11, count=3, scale=SCALE))
    report = push_datasets(
        datasets, host="127.0.0.1", port=dicom_listener.port, sop_classes=DEMO_SOP_CLASSES, called_ae="NDTPACS"
    )
    assert report.failed == []
    assert report.sent == len(datasets)
    return dicom_listener, datasets


def test_every_demo_sop_class_is_stored_and_found_by_ndt_keys(pushed: tuple[DicomListener, list[Dataset]]) -> None:
    listener, datasets = pushed
    for sop_class in DEMO_SOP_CLASSES:
        of_class = [d for d in datasets if str(d.SOPClassUID) == sop_class]
        sample = next((d for d in of_class if "ComponentWelderIDs" in d), of_class[0])  # prefer one with a welder
        expected = {
            d.SOPInstanceUID for d in datasets if d.PatientID == sample.PatientID and d.SOPClassUID == sop_class
        }
        keys: dict[str, object] = {
            "PatientID": sample.PatientID,  # serial number
            "EthnicGroup": sample.EthnicGroup,  # material
            "SOPClassUID": sop_class,
            "StudyInstanceUID": "",
            "SeriesInstanceUID": "",
            "SOPInstanceUID": "",
        }
        if "ComponentWelderIDs" in sample:
            welders = sample.ComponentWelderIDs
            keys["ComponentWelderIDs"] = welders[0] if sample["ComponentWelderIDs"].VM > 1 else welders
        found = {str(i.SOPInstanceUID) for i in _find(listener.port, "IMAGE", **keys)}
        assert found == expected, sop_class
    # Component-level NDT keys: serial wildcard, material, welder.
    welds = [c for c in components(seed=11, count=3) if c.kind == "weld"]
    [weld] = welds
    by_welder = _find(listener.port, "PATIENT", PatientID="", ComponentWelderIDs=weld.welders[1], EthnicGroup="")
    assert [str(i.PatientID) for i in by_welder] == [weld.serial]
    assert str(by_welder[0].EthnicGroup) == weld.material
    by_material = _find(listener.port, "PATIENT", PatientID="", EthnicGroup=weld.material)
    assert weld.serial in {str(i.PatientID) for i in by_material}


def test_demo_indications_and_approval_are_query_keys(pushed: tuple[DicomListener, list[Dataset]]) -> None:
    listener, datasets = pushed
    rejected_cracks = {
        d.StudyInstanceUID
        for d in datasets
        if any(
            "CRACK" in list(i.IndicationType) or i.IndicationType == "CRACK" for i in d.get("IndicationSequence", [])
        )
    }
    assert rejected_cracks
    found = _find(
        listener.port,
        "STUDY",
        PatientID="",
        StudyInstanceUID="",
        IndicationType="CRACK",
        IndicationDisposition="REJECT",
        ApprovalStatus="",
    )
    assert {str(i.StudyInstanceUID) for i in found} == rejected_cracks
    assert {str(i.ApprovalStatus) for i in found} == {"REJECTED"}
    # The legacy (2010) inspection is found by its component's material grade like any other.
    legacy_studies = {d.StudyInstanceUID for d in datasets if has_legacy_blocks(d)}
    assert legacy_studies
    weld = next(d for d in datasets if has_legacy_blocks(d))
    found = _find(listener.port, "STUDY", PatientID=weld.PatientID, StudyInstanceUID="", StudyDate="-20101231")
    assert {str(i.StudyInstanceUID) for i in found} == legacy_studies & {
        d.StudyInstanceUID for d in datasets if d.PatientID == weld.PatientID
    }


def test_pacs_demo_cli_pushes_to_pacs_serve(pacs_server: RunningServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "demo", "--to", f"127.0.0.1:{pacs_server.dicom_port}",
         "--count", "3", "--seed", "2", "--scale", str(SCALE)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored at NDTPACS" in result.stdout
    serials = {c.serial for c in components(seed=2, count=3)}
    found = _find(pacs_server.dicom_port, "PATIENT", PatientID="", EthnicGroup="", ComponentWelderIDs="")
    assert {str(i.PatientID) for i in found} == serials
    bad = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "demo", "--to", "nowhere:xyz"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "HOST:PORT" in bad.stderr
