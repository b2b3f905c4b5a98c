"""A component's history and its evidence bundle, which verifies offline with its own verify.py."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import NotFound
from storage.index.models import AuditEvent
from storage.records.annotations import Annotations, Draft
from storage.records.evidence import write_bundle
from storage.records.history import component_history
from tests.support.factories import make_instance, write_part10

DEVICE = Actor("DX-PANEL-7", "10.1.1.7:104")
AUDITOR = Actor("ada", "10.0.0.2:50000", kind="user")


def _component(archive: Archive, tmp_path: Path) -> dict[str, str]:
    """SN-EVID-1: two inspections, three images, a second version of one, a measurement; SN-OTHER beside it."""
    first, second = generate_uid(), generate_uid()
    stored: dict[str, str] = {}
    for n, study in enumerate([first, first, second]):
        ds = make_instance(PatientID="SN-EVID-1", StudyInstanceUID=study, StudyDescription=f"weld {n}")
        stored[f"image{n}"] = ds.SOPInstanceUID
        archive.store_file(write_part10(ds, tmp_path / f"{n}.dcm"), DEVICE)
    ds.StudyDescription = "re-shot"  # same SOP instance, new bytes: version 2
    archive.store_file(write_part10(ds, tmp_path / "v2.dcm"), DEVICE)
    archive.store_file(write_part10(make_instance(PatientID="SN-OTHER"), tmp_path / "other.dcm"), DEVICE)
    Annotations(archive.db).create(stored["image0"], Draft(kind="length", points=[(1, 1), (11, 1)]), AUDITOR)
    archive.record(AuditRecord(AUDITOR, "api-component", "success", detail={"serial": "SN-EVID-1"}))
    stored.update(first=first, second=second)
    return stored


def test_history_lists_everything_about_the_component_in_time_order(archive: Archive, tmp_path: Path) -> None:
    stored = _component(archive, tmp_path)
    with archive.db.read_session() as session:
        history = component_history(session, "SN-EVID-1")
    kinds = [event.kind for event in history.events]
    assert kinds.count("inspection") == 2
    assert kinds.count("image") == 4  # three images, one of them in two versions
    assert kinds.count("annotation") == 1
    assert sorted(history.study_instance_uids) == sorted([stored["first"], stored["second"]])
    images = [e for e in history.events if e.kind == "image"]
    assert {e.detail["version"] for e in images if e.sop_instance_uid == stored["image2"]} == {1, 2}
    assert all(len(e.detail["sha256"]) == 64 for e in images)
    audited = [e for e in history.events if e.kind == "audit"]
    assert [e.summary for e in audited].count("store (success)") == 3
    assert "api-component (success)" in [e.summary for e in audited]  # found through the serial in its details
    assert all("SN-OTHER" not in json.dumps(e.as_dict()) for e in history.events)
    times = [e.at.replace(tzinfo=None) for e in history.events]
    assert times == sorted(times)
    with archive.db.read_session() as session, pytest.raises(NotFound):
        component_history(session, "SN-NOBODY")


def _bundle(archive: Archive, tmp_path: Path, **scope: str) -> Path:
    zipped = tmp_path / "evidence.zip"
    archive.db.write(lambda session: write_bundle(session, archive.objects, zipped, AUDITOR, **scope))
    unpacked = tmp_path / "bundle"
    with zipfile.ZipFile(zipped) as bundle:
        bundle.extractall(unpacked)
    return unpacked


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, no site packages and no project on the path: the standard library only.
    return subprocess.run(
        [sys.executable, "-I", "verify.py"], cwd=folder, capture_output=True, text=True, check=False, timeout=120
    )


def test_evidence_bundle_verifies_offline(archive: Archive, tmp_path: Path) -> None:
    stored = _component(archive, tmp_path)
    folder = _bundle(archive, tmp_path, serial="SN-EVID-1")
    result = _verify(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "evidence intact" in result.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["instances"]) == 4
    assert {i["sop_instance_uid"] for i in manifest["instances"]} == {stored[f"image{n}"] for n in range(3)}
    dicom_files = sorted(folder.glob("dicom/*/*/*.dcm"))
    assert len(dicom_files) == 4
    originals = {p.name: p.read_bytes() for p in [tmp_path / "0.dcm", tmp_path / "1.dcm"]}
    assert any(f.read_bytes() == originals["0.dcm"] for f in dicom_files)  # byte for byte as received
    lines = (folder / "audit.jsonl").read_text().splitlines()
    assert len(lines) == manifest["audit_entries"] >= 5
    assert manifest["audit_head"].count(":") == 1
    with archive.db.read_session() as session:  # the export is in the log, naming the manifest's hash
        action, detail = session.execute(
            select(AuditEvent.action, AuditEvent.detail).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert action == "evidence-export"
    assert len(json.loads(detail)["manifest_sha256"]) == 64


@pytest.mark.parametrize("victim", ["dicom", "audit.jsonl", "history.json"])
def test_one_changed_byte_is_named(archive: Archive, tmp_path: Path, victim: str) -> None:
    _component(archive, tmp_path)
    folder = _bundle(archive, tmp_path, serial="SN-EVID-1")
    target = sorted(folder.glob("dicom/*/*/*.dcm"))[0] if victim == "dicom" else folder / victim
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    result = _verify(folder)
    assert result.returncode == 1
    assert f"FAILED: {target.relative_to(folder).as_posix()}: SHA-256 differs" in result.stdout


def test_an_edited_audit_entry_and_an_added_file_are_caught(archive: Archive, tmp_path: Path) -> None:
    _component(archive, tmp_path)
    folder = _bundle(archive, tmp_path, serial="SN-EVID-1")
    lines = (folder / "audit.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["outcome"] = "failure"
    lines[0] = json.dumps(entry)
    (folder / "audit.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "dicom" / "extra.dcm").write_bytes(b"not evidence")
    result = _verify(folder)
    assert result.returncode == 1
    assert f"FAILED: audit entry {entry['id']}: content does not match its hash" in result.stdout
    assert "FAILED: dicom/extra.dcm: not in the manifest" in result.stdout


def test_one_inspection_bundle(archive: Archive, tmp_path: Path) -> None:
    stored = _component(archive, tmp_path)
    folder = _bundle(archive, tmp_path, study_instance_uid=stored["second"])
    assert _verify(folder).returncode == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["inspections"] == [stored["second"]]
    assert {i["sop_instance_uid"] for i in manifest["instances"]} == {stored["image2"]}
    with pytest.raises(NotFound):
        archive.db.write(
            lambda s: write_bundle(s, archive.objects, tmp_path / "x.zip", AUDITOR, study_instance_uid="1.2.3")
        )
