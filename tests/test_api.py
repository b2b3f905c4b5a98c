"""The /api/ REST endpoints over real HTTP (uvicorn), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from sqlalchemy import select

from storage.archive import Archive
from storage.models import AuditEvent
from tests.conftest import free_port
from tests.viewer_data import CT_SERIAL, CT_SLICES, MARKERS, SPACING_MM, WELD_SERIAL, XSS_NAME, fill, radiograph_pixels
from viewer.app import create_app


class Api:
    """A live HTTP server around an archive, and the data stored in it."""

    def __init__(self, base: str, archive: Archive, data: dict[str, Any]) -> None:
        self.base, self.archive, self.data = base, archive, data
        self.client = httpx.Client(base_url=base, timeout=30)

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.client.get(url, params=params)


@pytest.fixture
def api(archive: Archive, tmp_path: Path) -> Iterator[Api]:
    data = fill(archive, tmp_path / "in", extra_components=30)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(archive), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    client = Api(f"http://127.0.0.1:{port}", archive, data)
    yield client
    client.client.close()
    server.should_exit = True
    thread.join(10)


def test_search_components_by_serial_and_free_text(api: Api) -> None:
    page = api.get("/api/components", serial="weld-47").json()
    assert page["total"] == 1
    item = page["items"][0]
    assert item["serial"] == WELD_SERIAL
    assert item["material"] == "S355"
    assert item["welder_ids"] == ["W-17", "W-22"]
    assert item["inspection_count"] == 2
    assert item["latest_inspection_date"] == "20260115"
    # free text: every word must match some field (serial, material, welder, company, ...)
    assert [i["serial"] for i in api.get("/api/components", q="w-22 s355").json()["items"]] == [WELD_SERIAL]
    assert api.get("/api/components", q="w-22 alsi7mg").json()["total"] == 0
    assert [i["serial"] for i in api.get("/api/components", q="ct lab").json()["items"]] == [CT_SERIAL]
    # LIKE specials are literal
    assert api.get("/api/components", serial="%").json()["total"] == 0


def test_search_filters_inspection_criteria(api: Api) -> None:
    dx = api.get("/api/components", modality="dx").json()
    assert [i["serial"] for i in dx["items"]] == [WELD_SERIAL]
    ranged = api.get("/api/inspections", serial=WELD_SERIAL, **{"from": "20250101", "to": "20261231"}).json()
    assert ranged["total"] == 1
    assert ranged["items"][0]["date"] == "20260115"
    assert ranged["items"][0]["component"]["serial"] == WELD_SERIAL
    assert api.get("/api/inspections", company="acme", welder="W-17").json()["total"] == 2
    assert api.get("/api/inspections", material="alsi").json()["items"][0]["modalities"] == ["CT"]


def test_paging_and_sorting(api: Api) -> None:
    total = api.get("/api/components", limit=1).json()["total"]
    assert total == 33
    seen: list[str] = []
    for offset in range(0, total, 10):
        page = api.get("/api/components", limit=10, offset=offset, sort="serial").json()
        assert page["offset"] == offset
        assert page["limit"] == 10
        seen += [i["serial"] for i in page["items"]]
    assert seen == sorted(seen)
    assert len(set(seen)) == total
    desc = [i["serial"] for i in api.get("/api/components", sort="serial", order="desc", limit=200).json()["items"]]
    assert desc == sorted(seen, reverse=True)
    dates = [i["date"] for i in api.get("/api/inspections", limit=200).json()["items"]]
    assert dates == sorted(dates, reverse=True)  # newest first by default


@pytest.mark.parametrize(
    ("url", "params", "reason"),
    [
        ("/api/components", {"limit": "0"}, "limit"),
        ("/api/components", {"limit": "201"}, "limit"),
        ("/api/inspections", {"limit": "many"}, "limit"),
        ("/api/components", {"offset": "-1"}, "offset"),
        ("/api/components", {"sort": "password"}, "sort must be one of"),
        ("/api/inspections", {"order": "sideways"}, "order"),
        ("/api/inspections", {"from": "2024-01-01"}, "from"),
        ("/api/inspections", {"modality": "D X'"}, "modality"),
        ("/api/components", {"serial": "x" * 65}, "serial"),
        ("/api/images/1.2.3/frames/1/pixels", {"scale": "0"}, "scale"),
        ("/api/images/1.2.3/frames/0/pixels", {}, "frame"),
        ("/api/inspections/not-a-uid", {}, "uid"),
    ],
)
def test_bad_parameters_are_400_with_reason(api: Api, url: str, params: dict[str, str], reason: str) -> None:
    response = api.get(url, **params)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


def test_unknown_entities_are_404(api: Api) -> None:
    assert api.get("/api/components/NO-SUCH").status_code == 404
    assert api.get("/api/inspections/1.2.3.4").status_code == 404
    assert api.get("/api/images/1.2.3.4").status_code == 404
    assert api.get("/api/images/1.2.3.4/frames/1/pixels").status_code == 404


def test_component_history_and_inspection_tree(api: Api) -> None:
    component = api.get(f"/api/components/{WELD_SERIAL}").json()
    assert [i["date"] for i in component["inspections"]] == ["20240301", "20260115"]
    assert component["latest_inspection_date"] == "20260115"
    latest = component["inspections"][-1]
    inspection = api.get(f"/api/inspections/{latest['uid']}").json()
    assert inspection["component"]["serial"] == WELD_SERIAL
    assert inspection["description"] == "Weld 7 re-inspection"
    [series] = inspection["series"]
    assert series["modality"] == "DX"
    [image] = series["images"]
    assert image["rows"] == 1600
    assert image["columns"] == 2200
    assert image["thumbnail_url"].endswith(f"/instances/{image['uid']}/thumbnail")
    ct = api.get(f"/api/components/{CT_SERIAL}").json()
    ct_tree = api.get(f"/api/inspections/{ct['inspections'][0]['uid']}").json()
    assert [i["number"] for i in ct_tree["series"][0]["images"]] == list(range(1, CT_SLICES + 1))


def test_image_details_spacing_windows_and_tags(api: Api) -> None:
    dx = api.data["weld"][1]
    detail = api.get(f"/api/images/{dx.SOPInstanceUID}").json()
    assert detail["spacing"] == {"row_mm": SPACING_MM, "column_mm": SPACING_MM, "attribute": "ImagerPixelSpacing"}
    assert detail["windows"][0]["center"] == 20000
    assert detail["windows"][0]["width"] == 30000
    assert detail["serial"] == WELD_SERIAL
    assert detail["frames"] == 1
    assert not detail["signed"]
    keywords = [t["keyword"] for t in detail["tags"]]
    assert keywords[:2] == ["PatientName", "PatientID"]  # NDT-labelled attributes first, in vocabulary order
    labelled = [t for t in detail["tags"] if t["ndt_label"]]
    assert keywords[: len(labelled)] == [t["keyword"] for t in labelled]
    spacing_tag = next(t for t in detail["tags"] if t["keyword"] == "ImagerPixelSpacing")
    assert (spacing_tag["tag"], spacing_tag["vr"], spacing_tag["value"]) == ("0018,1164", "DS", "0.05\\0.05")
    ct = api.get(f"/api/images/{api.data['ct'][0].SOPInstanceUID}").json()
    assert ct["spacing"]["attribute"] == "PixelSpacing"
    assert ct["rescale_intercept"] == -1000
    hostile = api.get(f"/api/images/{api.data['xss'][0].SOPInstanceUID}").json()
    assert next(t["value"] for t in hostile["tags"] if t["keyword"] == "PatientName") == XSS_NAME  # data, as is


def test_raw_pixels_full_and_reduced(api: Api) -> None:
    dx = api.data["weld"][1]
    url = f"/api/images/{dx.SOPInstanceUID}/frames/1/pixels"
    full = api.get(url)
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/octet-stream"
    assert (full.headers["x-rows"], full.headers["x-columns"], full.headers["x-pixel-type"]) == (
        "1600",
        "2200",
        "uint16",
    )
    pixels = np.frombuffer(full.content, dtype="<u2").reshape(1600, 2200)
    assert np.array_equal(pixels, radiograph_pixels())
    (mx, my) = MARKERS[0]
    assert pixels[my, mx] == 65000
    reduced = api.get(url, scale=4)
    assert (reduced.headers["x-rows"], reduced.headers["x-columns"], reduced.headers["x-scale"]) == ("400", "550", "4")
    assert np.array_equal(np.frombuffer(reduced.content, dtype="<u2").reshape(400, 550), radiograph_pixels()[::4, ::4])
    assert api.get(url.replace("/frames/1/", "/frames/2/")).status_code == 400  # single frame


def test_reads_are_audited(api: Api) -> None:
    dx = api.data["weld"][1]
    api.get("/api/components", serial="4711")
    api.get(f"/api/images/{dx.SOPInstanceUID}")
    api.get(f"/api/images/{dx.SOPInstanceUID}/frames/1/pixels", scale=8)
    with api.archive.db.read_session() as session:
        events = session.execute(
            select(AuditEvent.action, AuditEvent.sop_instance_uid, AuditEvent.actor).where(
                AuditEvent.action.like("api-%")
            )
        ).all()
    actions = {(a, s) for a, s, _ in events}
    assert ("api-search", None) in actions
    assert ("api-image", dx.SOPInstanceUID) in actions
    assert ("api-pixels", dx.SOPInstanceUID) in actions
    assert all(actor.startswith("http:127.0.0.1") for _, _, actor in events)
    assert api.archive.verify_audit().ok


def test_openapi_documents_the_api(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/api/components", "/api/inspections", "/api/components/{serial}", "/api/inspections/{uid}",
                 "/api/images/{uid}", "/api/images/{uid}/frames/{frame}/pixels"):  # fmt: skip
        assert path in spec["paths"], path
    assert "ComponentPage" in spec["components"]["schemas"]


def test_viewer_pages_are_served(api: Api) -> None:
    index = api.get("/")
    assert index.status_code == 200
    assert "text/html" in index.headers["content-type"]
    assert (
        "script-src" in index.headers["content-security-policy"]
        or "default-src 'self'" in index.headers["content-security-policy"]
    )
    assert api.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/ui/../app.py").status_code == 404
    assert api.get("/ui/%2e%2e/app.py").status_code == 404
