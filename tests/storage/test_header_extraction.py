"""The ingest header steps give exactly what plain pydicom keyword access gives.

`read_received_file`, `identity_of`, `IndexValues.of` and `header_json` take shortcuts (integer
tags, one conversion per element, legacy DICONDE blocks looked up once, own JSON encoding of
the common VRs). Here every pydicom test file the archive accepts, and synthetic DICONDE files
in the public (group 0014) and the legacy private-block encodings, are read both ways.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from storage.archive import BULK_DATA_THRESHOLD, Archive, header_json
from storage.audit import Actor
from storage.dicom import files as dicomfile
from storage.dicom.diconde import register
from storage.dicom.diconde.legacy import to_legacy
from storage.dicom.files import read_received_file
from storage.dicom.uids import require_uid
from storage.errors import InvalidInstance
from storage.index.attributes import Level, attributes_at, join_multi
from storage.index.indications import IndicationValues
from storage.ingest.index_writer import Identity, IndexValues, identity_of
from tests.support.factories import make_instance, write_part10

UID_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def _part10_test_files() -> list[Path]:
    return [
        Path(name)
        for name in sorted(get_testdata_files("*"))
        if Path(name).is_file() and Path(name).read_bytes()[128:132] == b"DICM"
    ]


# -- the straightforward reading: pydicom, by keyword -------------------------------------------


def _identity_by_keyword(ds: Dataset) -> Identity | str:
    try:
        uids = [require_uid(keyword, ds.get(keyword)) for keyword in UID_KEYWORDS]
    except InvalidInstance as exc:
        return str(exc)
    meta = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if meta and str(meta) != uids[1]:
        return "file meta (0002,0003) names another SOP Instance UID than the data set (0008,0018)"
    return Identity(*uids)


def _column(column_type: type, multi: bool, value: Any) -> Any:
    if value is None or value == "":
        return None
    if multi:
        items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        return join_multi([str(v).replace("\x00", "") for v in items])
    if isinstance(value, MultiValue):
        value = "\\".join(str(v).replace("\x00", "") for v in value)
    if column_type is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value).replace("\x00", "")


def _text(value: Any, limit: int) -> str | None:
    return None if value in (None, "") else (str(value).strip()[:limit] or None)


def _indications_by_keyword(ds: Dataset) -> list[IndicationValues]:
    found = []
    for item in ds.get("IndicationSequence") or []:
        number = item.get("IndicationNumber")
        types = item.get("IndicationType")
        types = [] if types in (None, "") else list(types) if isinstance(types, MultiValue) else [types]
        disposition = _text(item.get("IndicationDisposition"), 16)
        found.append(
            IndicationValues(
                number=int(number) if number not in (None, "") else None,
                label=_text(item.get("IndicationLabel"), 64),
                types=join_multi([str(t).strip().upper() for t in types]) or None,
                disposition=disposition.upper() if disposition else None,
                description=_text(item.get("IndicationDescription"), 1024),
            )
        )
    return found


def _index_by_keyword(ds: Dataset) -> IndexValues:
    levels = {}
    for level in Level:
        values = {}
        for a in attributes_at(level):
            if not a.derived:
                value = _column(a.column.type.python_type, a.multi, ds.get(a.keyword))
                if value is not None and value != "":
                    values[a.column.key] = value
        levels[level] = values
    return IndexValues(
        component_key=str(ds.get("PatientID", "") or "")[:64],
        patient=levels[Level.PATIENT],
        study=levels[Level.STUDY],
        series=levels[Level.SERIES],
        image=levels[Level.IMAGE],
        indications=_indications_by_keyword(ds),
    )


def _json_by_pydicom(ds: Dataset) -> str:
    body = ds.to_json_dict(
        bulk_data_threshold=BULK_DATA_THRESHOLD,
        bulk_data_element_handler=lambda e: f"bulkdata/{e.tag:08X}",
        suppress_invalid_tags=True,
    )
    return json.dumps(body, separators=(",", ":"))


def _by_keyword(path: Path) -> tuple[Identity | str, IndexValues, str]:
    """Identity, index values and header JSON read from a fresh parse, as ingest reads them (in order)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    identity = _identity_by_keyword(ds)
    values = _index_by_keyword(ds)
    return identity, values, _json_by_pydicom(ds)


def _ingested(path: Path, **read: Any) -> tuple[Identity | str, IndexValues, str]:
    received = read_received_file(path, **read)
    assert received.size == path.stat().st_size
    assert received.sha256 == read.get("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    assert received.transfer_syntax_uid == str(received.dataset.file_meta.TransferSyntaxUID)
    try:
        identity: Identity | str = identity_of(received.dataset)
    except InvalidInstance as exc:
        identity = str(exc)
    return identity, IndexValues.of(received.dataset), header_json(received.dataset)


# -- pydicom's test files -----------------------------------------------------------------------


def test_every_accepted_pydicom_file_reads_like_pydicom() -> None:
    register()
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _part10_test_files():
            try:
                ours = _ingested(path)
            except InvalidInstance:
                continue  # refused (damaged): tests/test_store_dicom.py and test_rejects.py
            assert ours == _by_keyword(path), path.name
            compared += 1
    assert compared > 100


def test_large_files_read_like_small_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the in-memory limit a file is hashed by streaming and walked through a mapping: same results."""
    paths = [p for p in _part10_test_files() if p.stat().st_size > 100_000][:10]
    assert paths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = {p: _ingested(p) for p in paths}
        monkeypatch.setattr(dicomfile, "IN_MEMORY_LIMIT", 0)
        assert {p: _ingested(p) for p in paths} == small


def test_a_given_sha256_is_used_as_it_is(tmp_path: Path) -> None:
    path = write_part10(make_instance(), tmp_path / "a.dcm")
    assert read_received_file(path, sha256="ab" * 32).sha256 == "ab" * 32
    assert read_received_file(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_store_file_takes_the_sha256_from_the_caller(archive: Archive, tmp_path: Path) -> None:
    path = write_part10(make_instance(), tmp_path / "a.dcm")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = archive.store_file(path, Actor(kind="test", name="pytest"), sha256=digest)
    assert result.sha256 == digest
    assert result.object_key.endswith(f".{digest[:16]}.dcm")


# -- DICONDE: group 0014 and the legacy private blocks -------------------------------------------


def _ndt_instance(patient_id: str) -> Dataset:
    ds = make_instance(
        PatientID=patient_id,
        ComponentManufacturer="Nordwerk Pipe Fabrication GmbH",
        MaterialGrade="API 5L X65",
        MaterialThickness=["12.7", "3.5"],
        ComponentWelderIDs=["W-17", "W-18"],
        EthnicGroup="Carbon steel",
        ExpiryDate="20300101",
        ApprovalStatus="REJECTED",
        NameOfPhysiciansReadingStudy="Brandt^Uwe",
        ReferringPhysicianName="Weld^Ann=W^A=w^a",  # alphabetic, ideographic and phonetic groups
        PerformingPhysicianName=["Roth^Eva", "Lang^Tim=L^T"],
        ImagerPixelSpacing=[0.2, 0.2],
        NumberOfFrames="1",
    )
    items = []
    for n in range(3):
        item = Dataset()
        item.IndicationNumber = n + 1
        item.IndicationLabel = f"C{n}"
        item.IndicationType = ["CRACK", "LINEAR"] if n else "porosity"
        item.IndicationDisposition = "reject"
        item.IndicationDescription = f"longitudinal crack, {n + 12} mm "
        items.append(item)
    ds.IndicationSequence = Sequence(items)
    return ds


@pytest.mark.parametrize("transfer_syntax", [None, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_diconde_files_read_like_pydicom_in_both_encodings(tmp_path: Path, transfer_syntax: str | None) -> None:
    register()
    modern = _ndt_instance("SN-TWIN")
    legacy = to_legacy(modern)
    assert "IndicationSequence" not in legacy
    assert "ComponentManufacturer" not in legacy
    paths = {}
    for name, ds in (("modern", modern), ("legacy", legacy)):
        if transfer_syntax:
            ds.file_meta.TransferSyntaxUID = transfer_syntax
        paths[name] = write_part10(ds, tmp_path / f"{name}.dcm")
    identity, values, header = _by_keyword(paths["modern"])
    assert isinstance(identity, Identity)
    assert values.patient["material_thickness"] == "\\12.7\\3.5\\"
    assert len(values.indications) == 3
    assert _ingested(paths["modern"]) == (identity, values, header)
    # The legacy file indexes as its group-0014 twin; its header JSON is pydicom's own.
    legacy_identity, legacy_values, legacy_header = _ingested(paths["legacy"])
    assert (legacy_identity, legacy_values) == (identity, values)
    assert legacy_header == _json_by_pydicom(pydicom.dcmread(paths["legacy"], stop_before_pixels=True))
    assert "ComponentManufacturer" not in legacy_header
    assert "Nordwerk" in legacy_header


def test_legacy_blocks_spelled_or_encoded_unusually(tmp_path: Path) -> None:
    """Upper-case creators, values read as UN, a public value present but empty, a foreign creator first."""
    register()
    ds = make_instance(PatientID="SN-ODD", MaterialGrade="")
    ds.add_new(0x00090010, "LO", "GEMS_IDEN_01")
    ds.add_new(0x000900FF, "LO", "astm.org/diconde/iod/ComponentStudy")  # the last block there is
    ds.add_new(0x00091020, "LO", "not legacy")
    ds.add_new(0x0009FF20, "UN", b"20300101")
    ds.add_new(0x00110010, "LO", "ASTM.ORG/DICONDE/IOD/COMPONENT ")
    ds.add_new(0x00110012, "LO", "astm.org/diconde/iod/Component")  # a second block: the first one counts
    ds.add_new(0x00111028, "ST", "Maker")
    ds.add_new(0x00111042, "ST", "X70")
    ds.add_new(0x00111228, "ST", "Other maker")
    path = write_part10(ds, tmp_path / "odd.dcm")
    identity, values, header = _ingested(path)
    assert values.study["expiry_date"] == "20300101"
    assert values.patient["component_manufacturer"] == "Maker"
    assert values.patient["material_grade"] == "X70"
    assert identity == _identity_by_keyword(pydicom.dcmread(path, stop_before_pixels=True))
    assert header == _json_by_pydicom(pydicom.dcmread(path, stop_before_pixels=True))


def test_invalid_values_are_indexed_and_serialised_like_pydicom(tmp_path: Path) -> None:
    """Values pydicom only warns about when read, and drops from strict JSON when read there first."""
    register()
    ds = make_instance(PatientID="SN-BAD", InstanceNumber="12.5", StudyDate="2026-01-01", Modality="ct ")
    del ds.SeriesNumber
    for tag, value in ((0x00200011, b"x1"), (0x00200012, b"x2")):  # written as they are: pydicom refuses to
        ds[tag] = RawDataElement(BaseTag(tag), "IS", len(value), value, 0, False, True)
    ds.StudyDescription = ds.ProtocolName = "a" * 80  # too long for LO
    ds.add_new(0x00142014, "IS", None)
    path = write_part10(ds, tmp_path / "bad.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = _ingested(path)
        assert ours == _by_keyword(path)
    body = json.loads(ours[2])
    # StudyDescription is indexed, so read leniently first: kept in the JSON; ProtocolName is read
    # strictly, for the JSON only: dropped. A bad IS is dropped either way (no JSON number).
    assert "00081030" in body
    assert "00181030" not in body
    assert "00200011" not in body
    assert "00200012" not in body


def test_identity_failures_read_like_pydicom(tmp_path: Path) -> None:
    for changes in ({"SOPInstanceUID": "1.2.3.abc"}, {"SeriesInstanceUID": ""}, {"StudyInstanceUID": "1." + "2" * 70}):
        ds = make_instance(**changes)
        path = write_part10(ds, tmp_path / "bad.dcm")
        ours = _ingested(path)
        assert isinstance(ours[0], str)
        assert ours == _by_keyword(path)
    ds = make_instance()
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.preamble = bytes(128)
    path = tmp_path / "meta.dcm"
    ds.save_as(path, enforce_file_format=False)  # as it is: enforcing would correct (0002,0003)
    assert (
        _ingested(path)[0]
        == _by_keyword(path)[0]
        == ("file meta (0002,0003) names another SOP Instance UID than the data set (0008,0018)")
    )


def test_identity_is_a_dataclass_of_the_four_uids(tmp_path: Path) -> None:
    path = write_part10(make_instance(), tmp_path / "a.dcm")
    identity = _ingested(path)[0]
    assert isinstance(identity, Identity)
    assert set(dataclasses.asdict(identity)) == {
        "sop_class_uid",
        "sop_instance_uid",
        "study_instance_uid",
        "series_instance_uid",
    }


def test_equal_bytes_in_other_character_sets_read_like_pydicom(tmp_path: Path) -> None:
    """Converted values are reused across files: never across character sets or VRs."""
    name = "Müller^Jörg".encode()
    paths = []
    for n, charset in enumerate(("ISO_IR 192", "ISO_IR 100", None, "ISO_IR 192")):
        ds = make_instance(PatientID=f"SN-CS-{n}")
        if charset:
            ds.SpecificCharacterSet = charset
        for tag, vr in ((0x00100010, "PN"), (0x00081030, "LO"), (0x00080090, "PN")):
            ds[tag] = RawDataElement(BaseTag(tag), vr, len(name), name, 0, False, True)
        paths.append(write_part10(ds, tmp_path / f"{n}.dcm"))
    for path in paths + paths[::-1]:
        assert _ingested(path) == _by_keyword(path)
    assert _ingested(paths[0])[1].patient["patient_name"] == "Müller^Jörg"
    assert _ingested(paths[1])[1].patient["patient_name"] == "MÃ¼ller^JÃ¶rg"
