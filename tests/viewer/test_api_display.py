"""Display fields of the /api/ answers (names without ^, ISO 8601 dates, calibration in NDT words)
beside the raw values, and the device's approval and indication count, over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from storage.archive import Archive
from storage.factory import build_core
from tests.support.accounts import bearer, token_for
from tests.support.factories import make_instance, write_part10
from tests.support.servers import free_port
from tests.support.viewer_data import ACTOR
from viewer.api import display
from viewer.app import create_app

SERIAL = "SN-DISPLAY-1"


def _indication(number: int, label: str) -> Dataset:
    item = Dataset()
    item.IndicationNumber = number
    item.IndicationLabel = label
    item.IndicationType = "POROSITY"
    return item


@pytest.fixture
def client(archive: Archive, tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    study_sent, study_plain = generate_uid(), generate_uid()
    series = generate_uid()
    common = {"PatientID": SERIAL, "PatientName": "Pipe^Weld 7", "PatientBirthDate": "20190402"}
    images = [
        make_instance(  # the device sent an approval and two + one indications on two images
            StudyInstanceUID=study_sent,
            SeriesInstanceUID=series,
            InstanceNumber=k + 1,
            StudyDate="20260115",
            StudyTime="101530",
            PhysiciansOfRecord="Acme^NDT^^Dr.",
            ReferringPhysicianName="Owner^Olga",
            PerformingPhysicianName="Smith^John",
            OperatorsName="Doe^Jane\\Roe^Rick",
            SeriesDate="20260114",
            ApprovalStatus="APPROVED",
            IndicationSequence=Sequence([_indication(n + 1, f"I{n + 1}") for n in range(2 - k)]),
            **common,
        )
        for k in range(2)
    ]
    for ds in images:
        del ds.PixelSpacing
        ds.ImagerPixelSpacing = [0.1, 0.1]
    plain = make_instance(StudyInstanceUID=study_plain, StudyDate="20250101", **common)  # nothing sent
    for ds in [*images, plain]:
        archive.store_file(write_part10(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(build_core(archive)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    token = token_for(archive.db, "ines", "inspector", full_name="Ines Inspector")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=bearer(token)) as http:
        yield http, {"sent": study_sent, "plain": study_plain, "image": images[0].SOPInstanceUID}
    server.should_exit = True
    thread.join(10)


def test_component_and_inspection_display_fields_beside_raw_values(client: tuple[httpx.Client, dict[str, Any]]) -> None:
    http, uids = client
    component = http.get(f"/api/components/{SERIAL}").json()
    assert component["name"] == "Pipe^Weld 7"  # the raw value stays as stored
    assert component["display"] == {
        "name": "Pipe Weld 7",
        "manufacturing_date": "2019-04-02",
        "latest_inspection_date": "2026-01-15",
    }
    by_uid = {i["uid"]: i for i in component["inspections"]}
    sent, plain = by_uid[uids["sent"]], by_uid[uids["plain"]]
    assert (sent["device_approval_status"], sent["device_indication_count"]) == ("APPROVED", 3)
    assert (plain["device_approval_status"], plain["device_indication_count"]) == (None, 0)
    assert (sent["date"], sent["company"]) == ("20260115", "Acme^NDT^^Dr.")
    assert sent["display"] == {
        "date": "2026-01-15",
        "time": "10:15:30",
        "owner": "Owner Olga",
        "company": "Acme NDT Dr.",
    }

    inspection = http.get(f"/api/inspections/{uids['sent']}").json()
    assert (inspection["device_approval_status"], inspection["device_indication_count"]) == ("APPROVED", 3)
    assert inspection["display"]["date"] == "2026-01-15"
    assert inspection["component"]["display"]["name"] == "Pipe Weld 7"
    (series,) = inspection["series"]
    assert series["inspector"] == "Smith^John"
    assert series["display"] == {"date": "2026-01-14", "inspector": "Smith John", "operator": "Doe Jane, Roe Rick"}

    found = http.get("/api/inspections", params={"serial": SERIAL}).json()["items"]
    assert {i["display"]["date"] for i in found} == {"2026-01-15", "2025-01-01"}
    assert "^" not in str([i["display"] for i in found])


def test_image_tags_and_calibration_display(client: tuple[httpx.Client, dict[str, Any]]) -> None:
    http, uids = client
    detail = http.get(f"/api/images/{uids['image']}").json()
    tags = {t["keyword"]: t for t in detail["tags"]}
    assert (tags["PatientName"]["value"], tags["PatientName"]["display"]) == ("Pipe^Weld 7", "Pipe Weld 7")
    assert (tags["StudyDate"]["value"], tags["StudyDate"]["display"]) == ("20260115", "2026-01-15")
    assert (tags["StudyTime"]["value"], tags["StudyTime"]["display"]) == ("101530", "10:15:30")
    assert tags["OperatorsName"]["display"] == "Doe Jane, Roe Rick"
    assert tags["Rows"]["display"] == tags["Rows"]["value"] == "64"
    assert not [t for t in detail["tags"] if t["vr"] == "PN" and "^" in t["display"]]
    assert detail["spacing"] == {
        "row_mm": 0.1,
        "column_mm": 0.1,
        "attribute": "ImagerPixelSpacing",
        "words": "detector pixel spacing",
        "display": "calibrated: detector pixel spacing 0.1 mm",
    }


@pytest.mark.parametrize(
    ("function", "raw", "shown"),
    [
        (display.person_name, "Smith^John^^Dr.^", "Smith John Dr."),
        (display.person_name, "Yamada^Tarou=山田^太郎", "Yamada Tarou=山田 太郎"),
        (display.person_name, "a=b", "a=b"),  # nothing stored is hidden
        (display.person_name, "=山田^太郎", "山田 太郎"),
        (display.person_name, "", ""),
        (display.date, "20260115", "2026-01-15"),
        (display.date, "20260101-20260131", "2026-01-01 – 2026-01-31"),
        (display.date, "2026", "2026"),
        (display.time, "0915", "09:15"),
        (display.time, "091530.25", "09:15:30.25"),
        (display.date_time, "20260115091530+0100", "2026-01-15 09:15:30 +0100"),
        (display.date_time, "20260115", "2026-01-15"),
    ],
)
def test_formatting(function: Any, raw: str, shown: str) -> None:
    assert function(raw) == shown


def test_calibration_words() -> None:
    assert display.calibration("PixelSpacing", 0.05, 0.05) == "calibrated: object pixel spacing 0.05 mm"
    assert (
        display.calibration("NominalScannedPixelSpacing", 0.1, 0.125)
        == "calibrated: scanned film pixel spacing 0.1 × 0.125 mm (rows × columns)"
    )
    assert display.attribute_value("DA", "20260115\\20260116") == "2026-01-15, 2026-01-16"
    assert display.attribute_value("LO", "A^B") == "A^B"  # only person names lose their ^
    assert display.attribute_value("DS", "160.0\\0.25\\x") == "160, 0.25, x"
