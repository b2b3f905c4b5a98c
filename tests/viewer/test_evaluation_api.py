"""Indications, evaluation, two-signature release, DICONDE export and PDF report over real HTTP and DIMSE.

Runs on SQLite + files and on PostgreSQL + S3 (the ``archive`` fixture).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import func, select

from pacs.server import DicomListener
from storage.archive import Archive
from storage.audit import Actor
from storage.index.models import Evaluation, MarkedIndication, MarkedIndicationVersion, Signature
from storage.records import evaluations
from storage.records.vocabularies import default_policy
from tests.support.accounts import PASSWORD, add_account
from tests.support.factories import write_part10
from tests.support.scu import find, identifier
from tests.support.viewer_data import ACTOR, SPACING_MM, WELD_SERIAL, weld_component_datasets
from tests.support.webutil import http_server

TODAY = date.today()
GOOD = {"valid_until": TODAY + timedelta(days=400), "vision_test": TODAY - timedelta(days=30)}


def _rt(level: int, **over: Any) -> dict[str, Any]:
    return {"method": "RT", "level": level, "certificate": f"RT{level}-{over.get('certificate', 'X')}", **GOOD, **over}


ACCOUNTS: dict[str, list[dict[str, Any]]] = {
    "ines": [_rt(2, certificate="1001", issuer="DGZfP")],  # RT Level 2: evaluates
    "otto": [_rt(3, certificate="3001", issuer="DGZfP")],  # RT Level 3: approves
    "lea": [_rt(1)],  # Level 1: never a disposition
    "exp": [_rt(2, valid_until=TODAY - timedelta(days=1))],  # certificate expired yesterday
    "vis": [_rt(2, vision_test=TODAY - timedelta(days=400))],  # vision test older than 12 months
    "uma": [{"method": "UT", "level": 2, "certificate": "UT2", **GOOD}],  # another method
}


@dataclass
class Desk:
    base: str
    archive: Archive
    study: str
    image: str
    older_study: str

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, auth=(name, PASSWORD), timeout=60)

    def counts(self) -> tuple[int, ...]:
        with self.archive.db.read_session() as s:
            return tuple(
                s.scalar(select(func.count()).select_from(model)) or 0
                for model in (MarkedIndication, MarkedIndicationVersion, Evaluation, Signature)
            )


@pytest.fixture
def desk(archive: Archive, tmp_path: Path) -> Iterator[Desk]:
    older, newer = weld_component_datasets()
    for ds in (older, newer):
        archive.store_file(write_part10(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    for name, qualifications in ACCOUNTS.items():
        add_account(archive.db, name, "inspector", full_name=f"{name.title()} Tester", qualifications=qualifications)
    with http_server(archive, role=None) as base:
        yield Desk(base, archive, newer.StudyInstanceUID, newer.SOPInstanceUID, older.StudyInstanceUID)


SEAM = [{"x": 600.0, "y": 780.0}, {"x": 1600.0, "y": 820.0}]


def _mark(c: httpx.Client, d: Desk, **over: Any) -> httpx.Response:
    body = {"kind": "rect", "points": SEAM, "frame": 1, "type": "LACK_OF_FUSION", "label": "LOF-1", **over}
    return c.post(f"/api/images/{d.image}/indications", json=body)


def _evaluate(c: httpx.Client, d: Desk, ind: int, **over: Any) -> httpx.Response:
    body = {
        "disposition": "REJECT",
        "standard": "ISO10675-1:L2",
        "comment": "lack of fusion over 50 mm",
        "indications": {str(ind): "REJECT"},
        "repair_id": "NCR-77",
        **over,
    }
    return c.post(f"/api/inspections/{d.study}/evaluation", json=body)


def _sign(c: httpx.Client, d: Desk, meaning: str, password: str = PASSWORD) -> httpx.Response:
    return c.post(f"/api/inspections/{d.study}/signatures", json={"meaning": meaning, "password": password})


def test_received_to_released_with_two_signatures(desk: Desk, dicom_listener: DicomListener, tmp_path: Path) -> None:
    ines, otto = desk.client("ines"), desk.client("otto")
    types = ines.get("/api/indication-types").json()
    assert {"CRACK", "POROSITY", "LACK_OF_FUSION", "VOID"} <= {t["code"] for t in types}
    assert "ISO10675-1:L2" in {t["code"] for t in ines.get("/api/acceptance-standards").json()}
    assert ines.get(f"/api/inspections/{desk.study}/evaluation").json()["status"] == "received"

    # Mark (version 1), sizes from ImagerPixelSpacing 0.05 mm: 1000 x 40 px -> 50 x 2 mm, 100 mm².
    r = _mark(ines, desk)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["version"], first["number"], first["sizes"]["unit"]) == (1, 1, "mm")
    assert first["sizes"]["length"] == pytest.approx(1000 * SPACING_MM)
    assert first["sizes"]["width"] == pytest.approx(40 * SPACING_MM)
    assert first["sizes"]["area"] == pytest.approx(50 * 2)
    ind = first["id"]
    # Edit: version 2, version 1 kept.
    r = ines.put(f"/api/indications/{ind}", json={"points": [SEAM[0], {"x": 1400.0, "y": 820.0}], "version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert r.json()["sizes"]["length"] == pytest.approx(800 * SPACING_MM)
    history = ines.get(f"/api/indications/{ind}/history").json()
    assert [h["version"] for h in history] == [1, 2]
    assert history[0]["sizes"]["length"] == pytest.approx(50.0)
    assert history[1]["author"] == "user:ines"
    listed = ines.get(f"/api/images/{desk.image}/indications").json()
    assert [(i["id"], i["version"], i["source"]) for i in listed["items"]] == [(ind, 2, "inspector")]

    r = _evaluate(ines, desk, ind, reinspection_of=desk.older_study)
    assert r.status_code == 201, r.text
    assert (r.json()["attempt"], r.json()["method"]) == (1, "RT")
    assert ines.get(f"/api/inspections/{desk.older_study}/evaluation").json()["reinspections"] == [desk.study]
    found = ines.get("/api/inspections", params={"status": "evaluated"}).json()
    assert [i["uid"] for i in found["items"]] == [desk.study]
    assert found["items"][0]["status"] == "evaluated"
    assert desk.older_study in {
        i["uid"] for i in ines.get("/api/inspections", params={"status": "received"}).json()["items"]
    }

    r = _sign(ines, desk, "evaluated")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["released"]) == ("evaluated", False)
    snapshot = r.json()["signature"]["qualification"]
    assert (snapshot["method"], snapshot["level"], snapshot["certificate"]) == ("RT", 2, "1001")
    r = _sign(otto, desk, "approved")
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["released"]) == ("rejected", True)

    state = ines.get(f"/api/inspections/{desk.study}/evaluation").json()
    assert state["status"] == "rejected"
    assert [(s["meaning"], s["signer"], s["valid"]) for s in state["signatures"]] == [
        ("evaluated", "ines", True),
        ("approved", "otto", True),
    ]
    assert state["signatures"][0]["content_sha256"] == state["content_sha256"]
    assert ines.get(f"/api/inspections/{desk.study}").json()["status"] == "rejected"
    timeline = {i["uid"]: i["status"] for i in ines.get(f"/api/components/{WELD_SERIAL}").json()["inspections"]}
    assert timeline == {desk.older_study: "received", desk.study: "rejected"}
    assert [i["uid"] for i in ines.get("/api/inspections", params={"status": "rejected"}).json()["items"]] == [
        desk.study
    ]
    export_uid, report_uid = state["export_uid"], state["report_uid"]
    assert export_uid
    assert report_uid

    # QIDO-RS: both objects in the same study.
    qido = ines.get(f"/dicom-web/studies/{desk.study}/instances", headers={"Accept": "application/dicom+json"})
    uids = {item["00080018"]["Value"][0] for item in qido.json()}
    assert {export_uid, report_uid, desk.image} <= uids
    # C-FIND (DIMSE), IMAGE level.
    matches, status = find(
        dicom_listener.port, identifier("IMAGE", StudyInstanceUID=desk.study, SOPInstanceUID="", SOPClassUID="")
    )
    assert status == 0
    assert {export_uid, report_uid} <= {m.SOPInstanceUID for m in matches}
    # WADO-RS: the export read back with pydicom.
    r = ines.get(
        f"/dicom-web/studies/{desk.study}/series/{_series_of(desk, export_uid)}/instances/{export_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert r.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(_first_part(r)))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    assert ds.StudyInstanceUID == desk.study
    [item] = ds.IndicationSequence
    assert (item.IndicationType, item.IndicationDisposition, item.IndicationNumber) == ("LACK_OF_FUSION", "REJECT", 1)
    roi = item.IndicationROISequence[0]
    assert roi.GraphicType == "POLYLINE"
    assert [float(v) for v in roi.GraphicData][:4] == [600.0, 780.0, 1400.0, 780.0]
    assert roi.ReferencedImageSequence[0].ReferencedSOPInstanceUID == desk.image
    assert ds.ApprovalStatus == "REJECTED"
    assert ds.SecondaryApprovalStatus == "REJECTED"
    assert str(ds.ReviewerName) == "Ines Tester"
    assert str(ds.SecondaryReviewerName) == "Otto Tester"
    assert ds.RepairID == "NCR-77"
    assert ds.GraphicAnnotationSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == desk.image

    # The PDF report: served, and page 1 renders and names the serial.
    pdf = ines.get(f"/api/inspections/{desk.study}/report.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    (tmp_path / "report.pdf").write_bytes(pdf.content)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "report.pdf", "page"], cwd=tmp_path, check=True
    )
    page = next(tmp_path.glob("page*.png"))
    assert page.stat().st_size > 1000
    shutil.copy(page, Path("/tmp") / "evaluation-report-page1.png")
    text = subprocess.run(["pdftotext", "report.pdf", "-"], cwd=tmp_path, check=True, capture_output=True).stdout
    assert WELD_SERIAL.encode() in text
    assert b"ISO 10675-1 acceptance level 2" in text
    assert b"Otto Tester" in text

    # A change after signing needs a reason, and then invalidates both signatures.
    before = desk.counts()
    r = ines.put(f"/api/indications/{ind}", json={"label": "LOF-1b"})
    assert r.status_code == 409
    assert desk.counts() == before
    r = ines.put(f"/api/indications/{ind}", json={"label": "LOF-1b", "reason": "label typo"})
    assert r.status_code == 200
    assert r.json()["version"] == 3
    state = ines.get(f"/api/inspections/{desk.study}/evaluation").json()
    assert [s["invalidated"] for s in state["signatures"]] == [True, True]
    assert state["status"] == "evaluated"
    r = _evaluate(ines, desk, ind)
    assert r.status_code == 409
    assert "reason" in r.json()["detail"]


def _series_of(desk: Desk, sop_uid: str) -> str:
    [instance] = desk.archive.instances(desk.study, sop_uid=sop_uid)
    return instance.series_instance_uid


def _first_part(response: httpx.Response) -> bytes:
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    part = response.content.split(f"--{boundary}".encode())[1]
    return part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]


def test_refusals_write_nothing(desk: Desk) -> None:
    ines, otto, lea = desk.client("ines"), desk.client("otto"), desk.client("lea")
    before = desk.counts()
    # A region outside the image, an unknown type.
    r = _mark(ines, desk, points=[{"x": 10.0, "y": 10.0}, {"x": 2300.0, "y": 50.0}])
    assert r.status_code == 400
    assert "outside the image" in r.json()["detail"]
    r = _mark(ines, desk, type="WORMHOLE")
    assert r.status_code == 400
    assert "unknown indication type" in r.json()["detail"]
    assert desk.counts() == before
    ind = _mark(ines, desk).json()["id"]
    marked = desk.counts()
    # Approval before evaluation; a Level 1, expired, vision-expired and other-method evaluator.
    assert _sign(otto, desk, "approved").status_code == 409
    for name in ("lea", "exp", "vis", "uma"):
        r = _evaluate(desk.client(name), desk, ind)
        assert r.status_code == 403, (name, r.text)
    assert "vision test" in _evaluate(desk.client("vis"), desk, ind).json()["detail"]
    assert "expired" in _evaluate(desk.client("exp"), desk, ind).json()["detail"]
    assert "RT" in _evaluate(desk.client("uma"), desk, ind).json()["detail"]
    assert desk.counts() == marked
    assert _evaluate(ines, desk, ind).status_code == 201
    evaluated = desk.counts()
    # Approval before the evaluator's signature; wrong password; Level 1 signing.
    r = _sign(otto, desk, "approved")
    assert r.status_code == 409
    assert "follows evaluation" in r.json()["detail"]
    r = _sign(ines, desk, "evaluated", password="not-my-password-at-all")
    assert r.status_code == 403
    assert "wrong password" in r.json()["detail"]
    assert _sign(lea, desk, "evaluated").status_code == 403
    assert desk.counts() == evaluated
    # The approver may not be the evaluator: otto (Level 3) evaluates, then may not approve.
    assert _sign(otto, desk, "evaluated").status_code == 201
    r = _sign(otto, desk, "approved")
    assert r.status_code == 409
    assert "evaluator" in r.json()["detail"]
    # Level 2 may not approve.
    assert _sign(ines, desk, "approved").status_code == 403
    assert desk.counts()[3] == evaluated[3] + 1
    assert ines.get(f"/api/inspections/{desk.study}/evaluation").json()["status"] == "evaluated"


def test_level_1_never_records_a_disposition_in_storage(desk: Desk) -> None:
    """The rule holds in the core, whatever door calls it."""
    draft = evaluations.Draft(disposition="ACCEPT", standard="ISO5817:B")
    with pytest.raises(evaluations.NotQualified, match="Level 1"):
        desk.archive.db.run(
            lambda uow: evaluations.record(
                uow.session, desk.study, draft, Actor("lea", kind="user", role="inspector"), default_policy()
            )
        )
    assert desk.counts()[2] == 0
