"""DICONDE: dictionary additions, legacy private blocks, NDT vocabulary, NDT index keys."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from storage.archive import Archive
from storage.audit import Actor
from storage.dicom.diconde import register
from storage.dicom.diconde.legacy import CREATORS, has_legacy_blocks, legacy_value, to_legacy, value_of
from storage.dicom.diconde.vocabulary import TERMS, keyword_for_label, labels_for, ndt_label
from storage.index.attributes import Level
from storage.index.models import Base
from storage.index.query import Query
from tests.support.factories import make_instance, write_part10

ACTOR = Actor(kind="test", name="pytest")

_SNAPSHOT = r"""
import json, sys
from pydicom import _uid_dict
from pydicom.datadict import DicomDictionary, keyword_dict, private_dictionaries
def snap():
    return {
        "dict": {str(k): list(v) for k, v in DicomDictionary.items()},
        "keywords": dict(keyword_dict),
        "uids": {k: list(v) for k, v in _uid_dict.UID_dictionary.items()},
        "private": {c: {k: list(v) for k, v in d.items()} for c, d in private_dictionaries.items()},
    }
before = snap()
import storage.dicom.diconde as d
d.register(); d.register()
after = snap()
json.dump({"before": before, "after": after}, sys.stdout)
"""


def _ndt_instance(**attrs: object) -> Dataset:
    ds = make_instance(
        ComponentManufacturer="Nordwerk Pipe Fabrication GmbH",
        MaterialGrade="API 5L X65",
        MaterialThickness="12.7",
        EthnicGroup="Carbon steel",
        ExpiryDate="20300101",
        ApprovalStatus="REJECTED",
        NameOfPhysiciansReadingStudy="Brandt^Uwe",
        **attrs,
    )
    item = Dataset()
    item.IndicationNumber = 1
    item.IndicationLabel = "C1"
    item.IndicationType = ["CRACK", "LINEAR"]
    item.IndicationDisposition = "REJECT"
    item.IndicationDescription = "longitudinal crack, 12 mm"
    ds.IndicationSequence = Sequence([item])
    return ds


def test_dictionary_additions_change_no_existing_entry() -> None:
    """Every keyword, name, VR, UID and private entry pydicom had is unchanged; missing ones are added."""
    out = subprocess.run([sys.executable, "-c", _SNAPSHOT], capture_output=True, text=True, check=True, timeout=120)
    data = json.loads(out.stdout)
    before, after = data["before"], data["after"]
    for section in ("dict", "keywords", "uids", "private"):
        changed = [k for k, v in before[section].items() if after[section].get(k) != v]
        assert changed == [], f"{section}: existing entries changed: {changed[:5]}"
    added = set(after["dict"]) - set(before["dict"])
    assert str(0x00146001) in added or str(0x00146001) in before["dict"]  # thermography settings
    assert all(int(tag) >> 16 == 0x0014 for tag in added)
    assert "1.2.840.10008.5.1.4.1.1.601.5" in after["uids"]
    assert any(c.lower() == "astm.org/diconde/iod/component" for c in after["private"])
    # No keyword now resolves to another tag than before.
    assert all(after["keywords"][k] == v for k, v in before["keywords"].items())


def test_legacy_encoding_reads_back_as_group_0014() -> None:
    register()
    ds = _ndt_instance()
    legacy = to_legacy(ds)
    assert "ComponentManufacturer" not in legacy
    assert "IndicationSequence" not in legacy
    assert has_legacy_blocks(legacy)
    assert not has_legacy_blocks(ds)
    assert legacy_value(legacy, "ComponentManufacturer") == "Nordwerk Pipe Fabrication GmbH"
    assert legacy_value(legacy, "ExpiryDate") == "20300101"
    item = value_of(legacy, "IndicationSequence")[0]
    assert value_of(item, "IndicationDisposition") == "REJECT"
    assert list(value_of(item, "IndicationType")) == ["CRACK", "LINEAR"]
    # Creators are matched case-insensitively (DCMTK and vtk-dicom spell them differently).
    creator = next(e for e in legacy if e.tag.group == 0x0011 and e.tag.element < 0x100)
    creator.value = creator.value.upper()
    assert legacy_value(legacy, "MaterialGrade") == "API 5L X65"
    assert legacy_value(ds, "MaterialGrade") is None  # no legacy block: nothing invented
    assert {c.group for c in CREATORS} == {0x0009, 0x0011, 0x0021}


def test_vocabulary_and_in_file_label_override() -> None:
    register()
    assert ndt_label("PatientID") == "Component ID / Serial Number"
    assert ndt_label("EthnicGroup") == "Material Name"
    assert ndt_label("PerformingPhysicianName") == "Inspector"
    assert ndt_label("Rows") == "Rows"  # no NDT meaning: the PS3.6 name
    assert keyword_for_label("material name") == "EthnicGroup"
    from pydicom.datadict import tag_for_keyword

    assert all(tag_for_keyword(t.keyword) is not None for t in TERMS), "every keyword is a real DICOM keyword"
    ds = _ndt_instance()
    entry = Dataset()
    entry.DataElement = 0x00102160
    entry.DataElementName = "Alloy"
    ds.DataElementLabelSequence = Sequence([entry])
    labels = labels_for(ds)
    assert labels["EthnicGroup"] == "Alloy"
    assert labels["PatientID"] == "Component ID / Serial Number"
    assert labels_for()["EthnicGroup"] == "Material Name"  # the override is per file only


def _store(archive: Archive, ds: Dataset, path: Path) -> str:
    write_part10(ds, path)
    archive.store_file(path, ACTOR)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("transfer_syntax", ["explicit", "implicit"])
def test_legacy_file_and_its_twin_are_found_by_the_same_query(
    archive: Archive, tmp_path: Path, transfer_syntax: str
) -> None:
    """A 2010 private-block file indexes like its group-0014 twin, and is stored byte-exact."""
    register()
    modern = _ndt_instance(PatientID="SN-MODERN-1")
    legacy = to_legacy(_ndt_instance(PatientID="SN-LEGACY-1"))
    if transfer_syntax == "implicit":
        legacy.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    _store(archive, modern, tmp_path / "modern.dcm")
    digest = _store(archive, legacy, tmp_path / "legacy.dcm")

    def ids(level: Level, **filters: str) -> set[str]:
        return {m.values["PatientID"] for m in archive.find(Query(level, filters), ACTOR)}

    both = {"SN-MODERN-1", "SN-LEGACY-1"}
    assert ids(Level.PATIENT, ComponentManufacturer="Nordwerk*") == both
    assert ids(Level.PATIENT, MaterialGrade="API 5L X65", MaterialThickness="12.7") == both
    assert ids(Level.STUDY, ExpiryDate="20300101") == both
    assert ids(Level.STUDY, IndicationType="CRACK", IndicationDisposition="REJECT") == both
    assert ids(Level.IMAGE, IndicationType="LINEAR") == both
    [match] = archive.find(Query(Level.IMAGE, {"PatientID": "SN-LEGACY-1"}), ACTOR)
    assert match.object_key is not None
    assert hashlib.sha256(b"".join(archive.objects.get(match.object_key))).hexdigest() == digest


def test_ndt_query_keys_at_every_level(archive: Archive, tmp_path: Path) -> None:
    register()
    _store(archive, _ndt_instance(PatientID="SN-A"), tmp_path / "a.dcm")
    plain = make_instance(PatientID="SN-B", ApprovalStatus="APPROVED", EthnicGroup="Aluminium 2024")
    _store(archive, plain, tmp_path / "b.dcm")
    for level in Level:
        ids = {m.values.get("PatientID") for m in archive.find(Query(level, {"IndicationType": "CRACK"}), ACTOR)}
        assert ids == {"SN-A"}, level
        assert archive.find(Query(level, {"IndicationType": "CRACK", "IndicationDisposition": "ACCEPT"}), ACTOR) == []
    studies = archive.find(Query(Level.STUDY, {"ApprovalStatus": "APPROVED"}), ACTOR)
    assert [m.values["PatientID"] for m in studies] == ["SN-B"]
    readers = archive.find(Query(Level.STUDY, {"NameOfPhysiciansReadingStudy": "brandt*"}), ACTOR)
    assert [m.values["NameOfPhysiciansReadingStudy"] for m in readers] == ["Brandt^Uwe"]
    assert [m.values["PatientID"] for m in archive.find(Query(Level.PATIENT, {"EthnicGroup": "Alum*"}), ACTOR)] == [
        "SN-B"
    ]


def test_new_version_replaces_indications(archive: Archive, tmp_path: Path) -> None:
    ds = _ndt_instance(PatientID="SN-V")
    _store(archive, ds, tmp_path / "v1.dcm")
    ds.IndicationSequence[0].IndicationDisposition = "ACCEPT"
    _store(archive, ds, tmp_path / "v2.dcm")
    assert archive.find(Query(Level.IMAGE, {"IndicationDisposition": "REJECT"}), ACTOR) == []
    assert len(archive.find(Query(Level.IMAGE, {"IndicationDisposition": "ACCEPT"}), ACTOR)) == 1


def test_models_and_migrations_agree(archive: Archive) -> None:
    with archive.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_legacy_file_reads_with_pydicom_names(tmp_path: Path) -> None:
    register()
    path = write_part10(to_legacy(_ndt_instance()), tmp_path / "legacy.dcm")
    ds = dcmread(path)
    names = {e.name for e in ds if e.tag.is_private}
    assert {"[Component Manufacturer]", "[Indication Sequence]", "[Expiry Date]"} <= names


def test_odd_indication_sequences_are_stored_and_bounded(archive: Archive, tmp_path: Path) -> None:
    """Malformed optional values never make a file unstorable; a huge sequence is indexed up to the cap."""
    from sqlalchemy import func, select

    from storage.index.indications import MAX_INDICATIONS
    from storage.index.models import Indication

    ds = make_instance(PatientID="SN-ODD")
    odd = Dataset()
    odd.add_new(0x00142014, "IS", None)  # IndicationNumber empty
    odd.IndicationType = ""
    items = [odd]
    for n in range(MAX_INDICATIONS + 5):
        item = Dataset()
        item.IndicationNumber = n + 1
        item.IndicationType = "POROSITY"
        items.append(item)
    ds.IndicationSequence = Sequence(items)
    _store(archive, to_legacy(ds), tmp_path / "odd.dcm")
    with archive.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Indication)) == MAX_INDICATIONS
    assert len(archive.find(Query(Level.IMAGE, {"IndicationType": "POROSITY"}), ACTOR)) == 1


def test_vocabulary_rows_and_query_keywords() -> None:
    from storage.dicom.diconde.vocabulary import vocabulary
    from storage.index.query import matching_keywords

    rows = {r["keyword"]: r for r in vocabulary()}
    assert rows["EthnicGroup"] == {"keyword": "EthnicGroup", "tag": "00102160", "label": "Material Name",
                                   "module": "Component"}  # fmt: skip
    assert {"IndicationType", "IndicationDisposition", "ApprovalStatus", "ComponentWelderIDs"} <= matching_keywords()
