"""C-FIND at every level with wildcards, ranges, UID lists and DICONDE keys (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from pacs.server import DicomListener
from storage.archive import Archive
from storage.audit import Actor
from tests.support.factories import make_instance, write_part10
from tests.support.scu import PATIENT_ROOT_FIND, STUDY_ROOT_FIND, find, identifier

ACTOR = Actor("LOADER", "127.0.0.1")


@pytest.fixture
def corpus(archive: Archive, tmp_path: Path) -> dict[str, str]:
    """Two components; the first has two inspections (DX + CT series), the second one UT inspection."""
    uids = {k: generate_uid() for k in ("study1", "study2", "study3", "dx", "ct", "ut")}
    common1 = {
        "PatientID": "SN-1001",
        "PatientName": "Flange^Weld A",
        "EthnicGroup": "S355J2",
        "ComponentManufacturer": "Acme Forge",
        "ComponentWelderIDs": ["W-17", "W-22"],
        "MaterialThickness": "12.5",
    }
    files = [
        dict(
            common1,
            StudyInstanceUID=uids["study1"],
            SeriesInstanceUID=uids["dx"],
            Modality="DX",
            StudyDate="20240110",
            PhysiciansOfRecord="NDT Services Ltd",
            InstanceNumber=1,
        ),
        dict(
            common1,
            StudyInstanceUID=uids["study1"],
            SeriesInstanceUID=uids["dx"],
            Modality="DX",
            StudyDate="20240110",
            PhysiciansOfRecord="NDT Services Ltd",
            InstanceNumber=2,
        ),
        dict(
            common1,
            StudyInstanceUID=uids["study1"],
            SeriesInstanceUID=uids["ct"],
            Modality="CT",
            StudyDate="20240110",
            PhysiciansOfRecord="NDT Services Ltd",
            InstanceNumber=1,
        ),
        dict(
            common1,
            StudyInstanceUID=uids["study2"],
            SeriesInstanceUID=generate_uid(),
            Modality="DX",
            StudyDate="20250301",
            PhysiciansOfRecord="Other Inspect GmbH",
        ),
        dict(
            PatientID="SN-2002",
            PatientName="Casting^Housing B",
            EthnicGroup="AlSi7Mg",
            ComponentManufacturer="Foundry Two",
            StudyInstanceUID=uids["study3"],
            SeriesInstanceUID=uids["ut"],
            Modality="US",
            StudyDate="20251224",
            PerformingPhysicianName="Inspector^Jane",
        ),
    ]
    for n, attrs in enumerate(files):
        modality = attrs.pop("Modality")
        archive.store_file(write_part10(make_instance(modality=modality, **attrs), tmp_path / f"{n}.dcm"), ACTOR)
    return uids


def _values(results: list, keyword: str) -> list[str]:
    return sorted(str(r.get(keyword, "")) for r in results)


def test_patient_level_one_answer_per_component(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(
        dicom_listener.port,
        identifier("PATIENT", PatientID="", PatientName="", NumberOfPatientRelatedStudies=""),
        model=PATIENT_ROOT_FIND,
    )
    assert status == 0x0000
    assert _values(results, "PatientID") == ["SN-1001", "SN-2002"]
    counts = {str(r.PatientID): int(r.NumberOfPatientRelatedStudies) for r in results}
    assert counts == {"SN-1001": 2, "SN-2002": 1}


def test_study_level_with_wildcard_and_aggregates(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(
        dicom_listener.port,
        identifier(
            "STUDY",
            PatientID="SN-10*",
            StudyInstanceUID="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedSeries="",
            NumberOfStudyRelatedInstances="",
            StudyDescription="",
        ),
    )
    assert status == 0x0000
    assert len(results) == 2
    first = next(r for r in results if r.StudyInstanceUID == corpus["study1"])
    assert sorted(first.ModalitiesInStudy) == ["CT", "DX"]
    assert int(first.NumberOfStudyRelatedSeries) == 2
    assert int(first.NumberOfStudyRelatedInstances) == 3
    assert "StudyDescription" in first  # requested but unknown: returned empty


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"StudyDate": "20240101-20241231"}, ["study1"]),
        ({"StudyDate": "20250101-"}, ["study2", "study3"]),
        ({"StudyDate": "-20250301"}, ["study1", "study2"]),
        ({"StudyDate": "20990101-"}, []),
        ({"PatientName": "flange^*"}, ["study1", "study2"]),  # PN is matched case-insensitively
        ({"PatientName": "?asting*"}, ["study3"]),
        ({"ModalitiesInStudy": "CT"}, ["study1"]),
        ({"ModalitiesInStudy": "US\\CT"}, ["study1", "study3"]),
        ({"EthnicGroup": "AlSi7Mg"}, ["study3"]),  # DICONDE material name
        ({"ComponentManufacturer": "Acme*"}, ["study1", "study2"]),
        ({"ComponentWelderIDs": "W-22"}, ["study1", "study2"]),
        ({"ComponentWelderIDs": "W-99"}, []),
        ({"PhysiciansOfRecord": "Other*"}, ["study2"]),  # inspecting company
        ({"PatientID": "sn-1001"}, []),  # LO is case-sensitive
    ],
)
def test_study_matching(
    dicom_listener: DicomListener, corpus: dict[str, str], keys: dict[str, str], expected: list[str]
) -> None:
    results, status = find(dicom_listener.port, identifier("STUDY", StudyInstanceUID="", **keys))
    assert status == 0x0000
    by_uid = {v: k for k, v in corpus.items()}
    assert sorted(by_uid[str(r.StudyInstanceUID)] for r in results) == expected


def test_uid_list_matching(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    wanted = f"{corpus['study1']}\\{corpus['study3']}"
    results, _ = find(dicom_listener.port, identifier("STUDY", StudyInstanceUID=wanted))
    assert sorted(str(r.StudyInstanceUID) for r in results) == sorted([corpus["study1"], corpus["study3"]])


def test_series_level_one_answer_per_series(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(
        dicom_listener.port,
        identifier(
            "SERIES",
            StudyInstanceUID=corpus["study1"],
            SeriesInstanceUID="",
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert status == 0x0000
    counts = {str(r.Modality): int(r.NumberOfSeriesRelatedInstances) for r in results}
    assert counts == {"DX": 2, "CT": 1}


def test_series_level_by_inspector(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, _ = find(dicom_listener.port, identifier("SERIES", PerformingPhysicianName="inspector^*", Modality=""))
    assert _values(results, "Modality") == ["US"]


def test_image_level_returns_keys_from_the_stored_header(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(
        dicom_listener.port,
        identifier(
            "IMAGE",
            StudyInstanceUID=corpus["study1"],
            SeriesInstanceUID=corpus["dx"],
            SOPInstanceUID="",
            InstanceNumber="",
            Rows="",
            PhotometricInterpretation="",
        ),
    )
    assert status == 0x0000
    assert _values(results, "InstanceNumber") == ["1", "2"]
    assert {int(r.Rows) for r in results} == {64}
    assert {str(r.PhotometricInterpretation) for r in results} == {"MONOCHROME2"}  # not indexed: from the header


def test_invalid_level_is_refused(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(dicom_listener.port, identifier("PATIENT", PatientID=""), model=STUDY_ROOT_FIND)
    assert results == []
    assert status == 0xA900


def test_malformed_range_is_refused(dicom_listener: DicomListener, corpus: dict[str, str]) -> None:
    results, status = find(dicom_listener.port, identifier("STUDY", StudyDate="2024-XX"))
    assert results == []
    assert status == 0xC000
