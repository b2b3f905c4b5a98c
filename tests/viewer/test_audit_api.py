"""The auditor's door over real HTTP: audit search, a component's history, evidence bundles that verify offline."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from tests.support.factories import make_instance, write_part10
from tests.support.webutil import http_server

DEVICE = Actor("DX-PANEL-7", "10.1.1.7:104")


def _fill(archive: Archive, tmp_path: Path) -> str:
    study = generate_uid()
    for n in range(3):
        ds = make_instance(PatientID="SN-AUDIT-1", StudyInstanceUID=study if n < 2 else generate_uid())
        archive.store_file(write_part10(ds, tmp_path / f"{n}.dcm"), DEVICE)
    archive.store_file(write_part10(make_instance(PatientID="SN-AUDIT-2"), tmp_path / "other.dcm"), DEVICE)
    archive.record(AuditRecord(Actor("mallory", "10.9.9.9:1", kind="user"), "access-denied", "failure"))
    return study


def test_audit_search_filters_and_pages(archive: Archive, tmp_path: Path) -> None:
    study = _fill(archive, tmp_path)
    with http_server(archive, role="auditor") as base:
        everything = httpx.get(f"{base}/api/audit").json()
        assert everything["total"] == 6  # the 5 above and the creation of the auditor's account
        assert everything["items"][0]["action"] == "user_add"
        ids = [item["id"] for item in everything["items"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        assert all(len(item["hash"]) == 64 for item in everything["items"])
        by_serial = httpx.get(f"{base}/api/audit", params={"serial": "SN-AUDIT-1"}).json()
        assert by_serial["total"] == 3
        assert {i["action"] for i in by_serial["items"]} == {"store"}
        assert httpx.get(f"{base}/api/audit", params={"study": study}).json()["total"] == 2
        failures = httpx.get(f"{base}/api/audit", params={"outcome": "failure"}).json()
        assert [i["actor"] for i in failures["items"]] == ["user:mallory"]
        assert httpx.get(f"{base}/api/audit", params={"actor": "MALL"}).json()["total"] == 1
        assert httpx.get(f"{base}/api/audit", params={"action": "store", "limit": 2}).json()["items"].__len__() == 2
        assert httpx.get(f"{base}/api/audit", params={"from": "2999-01-01"}).json()["total"] == 0
        assert httpx.get(f"{base}/api/audit", params={"to": "2000-01-01"}).json()["total"] == 0
        bad = httpx.get(f"{base}/api/audit", params={"from": "yesterday"})
        assert bad.status_code == 400
        assert "not a date" in bad.json()["detail"]
        # The searches themselves are in the log.
        searches = httpx.get(f"{base}/api/audit", params={"action": "audit-search"}).json()
        assert searches["total"] >= 8
        assert any(i["detail"]["criteria"] == {"serial": "SN-AUDIT-1"} for i in searches["items"])
        assert {i["actor"] for i in searches["items"]} == {"user:test-auditor"}  # who searched


def test_audit_needs_its_permission(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    with http_server(archive, permissions={"studies:read", "images:read"}, role="auditor") as base:
        for path in ["/api/audit", "/api/components/SN-AUDIT-1/history", "/api/components/SN-AUDIT-1/evidence"]:
            assert httpx.get(f"{base}{path}").status_code == 403, path


def test_component_history_over_http(archive: Archive, tmp_path: Path) -> None:
    _fill(archive, tmp_path)
    with http_server(archive, role="auditor") as base:
        history = httpx.get(f"{base}/api/components/SN-AUDIT-1/history").json()
        assert history["serial"] == "SN-AUDIT-1"
        assert len(history["inspections"]) == 2
        kinds = [e["kind"] for e in history["events"]]
        assert kinds.count("image") == 3
        assert kinds.count("inspection") == 2
        assert httpx.get(f"{base}/api/components/SN-NOBODY/history").status_code == 404
        # The plain component page still answers under the same prefix.
        assert httpx.get(f"{base}/api/components/SN-AUDIT-1").json()["serial"] == "SN-AUDIT-1"


def test_evidence_bundle_download_verifies_offline(archive: Archive, tmp_path: Path) -> None:
    study = _fill(archive, tmp_path)
    with http_server(archive, role="auditor") as base:
        response = httpx.get(f"{base}/api/components/SN-AUDIT-1/evidence", timeout=60)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert "evidence-SN-AUDIT-1.zip" in response.headers["content-disposition"]
        one = httpx.get(f"{base}/api/inspections/{study}/evidence", timeout=60)
        assert one.status_code == 200
        assert httpx.get(f"{base}/api/inspections/1.2.3.4/evidence").status_code == 404
        exported = httpx.get(f"{base}/api/audit", params={"action": "evidence-export"}).json()
        assert exported["total"] == 2
    for name, body in (("component", response.content), ("inspection", one.content)):
        folder = tmp_path / name
        with zipfile.ZipFile(io.BytesIO(body)) as bundle:
            bundle.extractall(folder)
        result = subprocess.run(
            [sys.executable, "-I", "verify.py"], cwd=folder, capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((tmp_path / "component").glob("dicom/*/*/*.dcm"))) == 3
    assert len(list((tmp_path / "inspection").glob("dicom/*/*/*.dcm"))) == 2
