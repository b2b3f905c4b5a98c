"""The /api/ REST endpoints over real HTTP (uvicorn), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import math
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
from storage.factory import build_core
from storage.index.models import Annotation, AuditEvent
from tests.support.accounts import bearer, token_for
from tests.support.factories import make_instance, write_part10
from tests.support.servers import free_port
from tests.support.viewer_data import (
    ACTOR,
    CT_SERIAL,
    CT_SLICES,
    MARKERS,
    SPACING_MM,
    WELD_SERIAL,
    XSS_NAME,
    fill,
    radiograph_pixels,
)
from tests.support.webutil import http_server
from viewer.app import create_app


class Api:
    """A live HTTP server around an archive, and the data stored in it."""

    def __init__(self, base: str, archive: Archive, data: dict[str, Any]) -> None:
        self.base, self.archive, self.data = base, archive, data
        # An RT Level 2 inspector, signing in with a bearer token.
        self.token = token_for(archive.db, "ines", "inspector", full_name="Ines Inspector")
        self.client = httpx.Client(base_url=base, timeout=30, headers=bearer(self.token))

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.client.get(url, params=params)


@pytest.fixture
def api(archive: Archive, tmp_path: Path) -> Iterator[Api]:
    data = fill(archive, tmp_path / "in", extra_components=30)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(build_core(archive)), host="127.0.0.1", port=port, log_level="warning")
    )
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
        ("/api/inspections", {"approval": "REJECTED"}, "unknown query parameter(s): approval"),
        ("/api/components", {"serial": "X", "serail": "X"}, "unknown query parameter(s): serail"),
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
    assert detail["spacing"] == {
        "row_mm": SPACING_MM,
        "column_mm": SPACING_MM,
        "attribute": "ImagerPixelSpacing",
        "words": "detector pixel spacing",
        "display": f"calibrated: detector pixel spacing {SPACING_MM} mm",
    }
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
    assert all(actor == "user:ines" for _, _, actor in events)
    assert api.archive.verify_audit().ok


def test_openapi_documents_the_api(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/api/components", "/api/inspections", "/api/components/{serial}", "/api/inspections/{uid}",
                 "/api/images/{uid}", "/api/images/{uid}/frames/{frame}/pixels", "/api/images/{uid}/annotations",
                 "/api/annotations/{annotation_id}/withdraw"):  # fmt: skip
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"ComponentPage", "AnnotationCreate", "AnnotationOut", "AnnotationPage"} <= schemas.keys()
    create = spec["paths"]["/api/images/{uid}/annotations"]["post"]
    assert {"201", "400", "403", "404", "409"} <= create["responses"].keys()


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


# -- annotations ---------------------------------------------------------------------------------


def _length_between_markers(api: Api, **extra: Any) -> dict[str, Any]:
    (x1, y1), (x2, y2) = MARKERS
    return {
        "kind": "length",
        "points": [{"x": x1 + 0.5, "y": y1 + 0.5}, {"x": x2 + 0.5, "y": y2 + 0.5}],
        "text": "50.00 mm (ImagerPixelSpacing)",
        **extra,
    }


def _events(api: Api, *actions: str) -> list[AuditEvent]:
    with api.archive.db.read_session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)).all()
        session.expunge_all()  # keep them loaded after the read session ends
        return list(events)


def _annotation_rows(api: Api) -> int:
    with api.archive.db.read_session() as session:
        return len(session.scalars(select(Annotation)).all())


def test_annotations_create_list_withdraw(api: Api) -> None:
    dx = api.data["weld"][1]
    url = f"/api/images/{dx.SOPInstanceUID}/annotations"
    assert api.get(url).json() == {"image_uid": dx.SOPInstanceUID, "version": 1, "items": []}
    created = api.client.post(url, json=_length_between_markers(api, label="seam marker", instance_version=1))
    assert created.status_code == 201, created.text
    length = created.json()
    assert length["kind"] == "length"
    assert length["value"] == pytest.approx((MARKERS[1][0] - MARKERS[0][0]) * SPACING_MM)  # computed by the archive
    assert length["unit"] == "mm"
    assert length["spacing"]["display"] == f"calibrated: detector pixel spacing {SPACING_MM} mm"
    assert (length["spacing"]["row_mm"], length["spacing"]["attribute"]) == (SPACING_MM, "ImagerPixelSpacing")
    assert (length["frame"], length["instance_version"], length["label"]) == (1, 1, "seam marker")
    assert length["author"] == "user:ines"
    assert length["withdrawn"] is False
    assert length["text"] == "50.00 mm (ImagerPixelSpacing)"
    # angle at the middle point: a right angle; a rectangle: its area in mm²
    angle = api.client.post(
        url, json={"kind": "angle", "points": [{"x": 100, "y": 100}, {"x": 100, "y": 200}, {"x": 300, "y": 200}]}
    ).json()
    assert (angle["value"], angle["unit"]) == (pytest.approx(90.0), "deg")
    rect = api.client.post(url, json={"kind": "rect", "points": [{"x": 10, "y": 10}, {"x": 110, "y": 60}]}).json()
    assert (rect["value"], rect["unit"]) == (pytest.approx(100 * 50 * SPACING_MM**2), "mm2")
    # an image without spacing measures in pixels
    xss = api.data["xss"][0]
    listed = api.get(url).json()["items"]
    assert [a["id"] for a in listed] == [length["id"], angle["id"], rect["id"]]
    assert listed[0]["points"] == length["points"]
    assert [a["id"] for a in api.get(url, frame=1).json()["items"]] == [length["id"], angle["id"], rect["id"]]

    withdrawn = api.client.post(f"/api/annotations/{angle['id']}/withdraw", json={"reason": "wrong arm"})
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert body["withdrawn"] is True
    assert (body["withdrawn_by"], body["withdrawal_reason"]) == ("user:ines", "wrong arm")
    assert body["withdrawn_at"] >= body["created_at"]
    assert [a["id"] for a in api.get(url).json()["items"]] == [length["id"], rect["id"]]
    everything = api.get(url, include_withdrawn="true").json()["items"]
    assert [(a["id"], a["withdrawn"]) for a in everything] == [
        (length["id"], False),
        (angle["id"], True),
        (rect["id"], False),
    ]
    again = api.client.post(f"/api/annotations/{angle['id']}/withdraw")  # no body: no reason
    assert again.status_code == 409
    assert "already withdrawn" in again.json()["detail"]
    assert api.client.post("/api/annotations/999999/withdraw").status_code == 404
    assert xss.SOPInstanceUID not in {a["image_uid"] for a in everything}

    creates = _events(api, "annotation-create")
    assert [json.loads(e.detail)["annotation"] for e in creates] == [length["id"], angle["id"], rect["id"]]
    first = json.loads(creates[0].detail)
    assert first["points"] == [[600.5, 800.5], [1600.5, 800.5]]
    assert (first["value"], first["unit"], first["spacing"]) == (length["value"], "mm", "ImagerPixelSpacing")
    assert creates[0].sop_instance_uid == dx.SOPInstanceUID
    assert creates[0].series_instance_uid == dx.SeriesInstanceUID
    [withdraw] = _events(api, "annotation-withdraw")
    assert json.loads(withdraw.detail)["reason"] == "wrong arm"
    assert withdraw.actor == "user:ines"
    assert api.archive.verify_audit().ok


def test_annotations_in_pixels_and_per_frame(api: Api, tmp_path: Path) -> None:
    frames = make_instance(rows=32, columns=48, NumberOfFrames=3)
    frames.PixelData = np.zeros((3, 32, 48), dtype=np.uint16).tobytes()
    del frames.PixelSpacing
    api.archive.store_file(write_part10(frames, tmp_path / "mf.dcm"), ACTOR)
    url = f"/api/images/{frames.SOPInstanceUID}/annotations"
    line = {"kind": "profile", "points": [{"x": 0, "y": 0}, {"x": 48, "y": 32}]}  # image corners are inside
    on2 = api.client.post(url, json={**line, "frame": 2}).json()
    assert (on2["frame"], on2["unit"], on2["spacing"]) == (2, "px", None)
    assert on2["value"] == pytest.approx(math.hypot(48, 32))
    corners = [{"x": 0, "y": 0}, {"x": 20, "y": 10}]
    ellipse = api.client.post(url, json={"kind": "ellipse", "frame": 3, "points": corners})
    assert (ellipse.json()["value"], ellipse.json()["unit"]) == (pytest.approx(math.pi * 10 * 5), "px2")
    assert [a["frame"] for a in api.get(url).json()["items"]] == [2, 3]
    assert [a["id"] for a in api.get(url, frame=2).json()["items"]] == [on2["id"]]
    assert api.get(url, frame=1).json()["items"] == []
    assert api.get(url, frame=4).status_code == 400
    assert api.client.post(url, json={**line, "frame": 4}).status_code == 400


def _raw(api: Api, url: str, body: str) -> httpx.Response:
    return api.client.post(url, content=body.encode(), headers={"Content-Type": "application/json"})


def test_annotation_bad_input_is_4xx_and_changes_nothing(api: Api) -> None:
    dx = api.data["weld"][1]
    url = f"/api/images/{dx.SOPInstanceUID}/annotations"
    before = len(_events(api, "annotation-create"))
    two = [{"x": 10, "y": 10}, {"x": 20, "y": 20}]
    cases: list[tuple[Any, int, str]] = [
        ({"kind": "circle", "points": two}, 400, "kind"),
        ({"kind": "length", "points": [{"x": 10, "y": 10}]}, 400, "points"),
        ({"kind": "angle", "points": two}, 400, "3 points"),
        ({"kind": "length", "points": [{"x": 10, "y": 10}, {"x": 2201, "y": 20}]}, 400, "outside the image"),
        ({"kind": "length", "points": [{"x": 10, "y": -0.5}, {"x": 20, "y": 20}]}, 400, "outside the image"),
        ({"kind": "length", "points": [{"x": "10", "y": 10}, {"x": 20, "y": 20}]}, 400, "points.0.x"),
        ({"kind": "length", "points": [{"x": None, "y": 10}, {"x": 20, "y": 20}]}, 400, "points.0.x"),
        ({"kind": "length", "points": [{"x": True, "y": 10}, {"x": 20, "y": 20}]}, 400, "points.0.x"),
        ({"kind": "length", "points": [[10, 10], [20, 20]]}, 400, "points.0"),
        ({"kind": "length", "points": two, "frame": 2}, 400, "frame must be between 1 and 1"),
        ({"kind": "length", "points": two, "frame": 0}, 400, "frame"),
        ({"kind": "length", "points": two, "value": 12.5}, 400, "value"),  # the archive measures, not the client
        ({"kind": "length", "points": two, "author": "someone else"}, 400, "author"),
        ({"kind": "length", "points": two, "text": "x" * 501}, 400, "text"),
        ({"kind": "length", "points": two, "label": "bad\x00label"}, 400, "control or surrogate character"),
        ({"kind": "length", "points": two, "note": "esc \x1b[31m"}, 400, "control or surrogate character"),
        ({"kind": "length", "points": two, "instance_version": 0}, 400, "instance_version"),
        ({"kind": "length", "points": two, "instance_version": 2}, 409, "the image changed"),
    ]
    for body, status, reason in cases:
        response = api.client.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert reason in response.json()["detail"], (body, response.text)
    # JSON that no browser sends: NaN, Infinity and overflowing numbers
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = f'{{"kind": "length", "points": [{{"x": {number}, "y": 1}}, {{"x": 2, "y": 2}}]}}'
        response = _raw(api, url, body)
        assert response.status_code == 400, (number, response.text)
        assert "finite" in response.json()["detail"], response.text
    assert _raw(api, url, "{not json").status_code == 400
    surrogate = '{"kind": "length", "points": [{"x": 1, "y": 1}, {"x": 2, "y": 2}], "text": "\\ud800"}'
    response = _raw(api, url, surrogate)  # a lone surrogate: not storable as UTF-8
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body.text")
    # unknown and malformed images
    assert api.client.post("/api/images/1.2.3.4/annotations", json={"kind": "length", "points": two}).status_code == 404
    assert api.get("/api/images/1.2.3.4/annotations").status_code == 404
    assert api.get("/api/images/not-a-uid/annotations").status_code == 400
    assert api.client.post("/api/annotations/0/withdraw").status_code == 400
    assert api.client.post("/api/annotations/1/withdraw", json={"reason": "r" * 501}).status_code == 400
    # nothing was stored, nothing was audited as created
    assert _annotation_rows(api) == 0
    assert len(_events(api, "annotation-create")) == before
    assert api.archive.verify_audit().ok


def test_annotation_keeps_the_version_it_was_drawn_on(api: Api, tmp_path: Path) -> None:
    ct = api.data["ct"][-1]
    url = f"/api/images/{ct.SOPInstanceUID}/annotations"
    two = [{"x": 16, "y": 32}, {"x": 48, "y": 32}]
    first = api.client.post(url, json={"kind": "length", "points": two, "instance_version": 1}).json()
    assert (first["value"], first["spacing"]["attribute"]) == (pytest.approx(3.2), "PixelSpacing")
    changed = copy.deepcopy(ct)
    changed.ImageComments = "re-sent with a comment"
    assert api.archive.store_file(write_part10(changed, tmp_path / "v2.dcm"), ACTOR).version == 2
    stale = api.client.post(url, json={"kind": "length", "points": two, "instance_version": 1})
    assert stale.status_code == 409
    assert "version 2" in stale.json()["detail"]
    page = api.get(url).json()
    assert page["version"] == 2
    assert [(a["id"], a["instance_version"]) for a in page["items"]] == [(first["id"], 1)]
    second = api.client.post(url, json={"kind": "length", "points": two, "instance_version": 2})
    assert second.json()["instance_version"] == 2


def test_annotation_permissions(api: Api) -> None:
    """Reading needs images:read (like the pixels); creating and withdrawing need annotations:write."""
    dx = api.data["weld"][1]
    url = f"/api/images/{dx.SOPInstanceUID}/annotations"
    kept = api.client.post(url, json=_length_between_markers(api)).json()
    with http_server(
        api.archive, permissions={"viewer:open", "studies:read", "images:read"}, role="inspector"
    ) as reader:
        assert httpx.get(f"{reader}{url}").json()["items"][0]["id"] == kept["id"]
        denied = httpx.post(f"{reader}{url}", json=_length_between_markers(api))
        assert denied.status_code == 403
        assert "annotations:write" in denied.json()["detail"]
        assert httpx.post(f"{reader}/api/annotations/{kept['id']}/withdraw").status_code == 403
    with http_server(api.archive, permissions={"studies:read"}, role="inspector") as browser_only:
        assert httpx.get(f"{browser_only}{url}").status_code == 403
        assert httpx.get(f"{browser_only}/api/images/{dx.SOPInstanceUID}").status_code == 200
    assert [a["id"] for a in api.get(url).json()["items"]] == [kept["id"]]  # still there, not withdrawn
    denials = [json.loads(e.detail) for e in _events(api, "access-denied")]
    assert [(d["permission"], d["method"]) for d in denials] == [
        ("annotations:write", "POST"),
        ("annotations:write", "POST"),
        ("images:read", "GET"),
    ]
    assert len(_events(api, "annotation-create")) == 1
    with pytest.raises(ValueError, match="unknown permission"):
        create_app(build_core(api.archive), permissions={"annotations:delete"})


def test_viewer_reads_are_audited_once_per_series(api: Api) -> None:
    """Scrolling a series writes one entry per kind of read, not one per image; DICOMweb stays per request."""
    ct = api.data["ct"]
    for _ in range(2):
        for ds in ct:
            assert api.get(f"/api/images/{ds.SOPInstanceUID}").status_code == 200
            assert api.get(f"/api/images/{ds.SOPInstanceUID}/frames/1/pixels").status_code == 200
            assert api.get(f"/api/images/{ds.SOPInstanceUID}/annotations").status_code == 200
    dx = api.data["weld"][1]
    api.get(f"/api/images/{dx.SOPInstanceUID}/frames/1/pixels", scale=8)
    views = _events(api, "api-image", "api-pixels", "api-annotations")
    per_series = sorted((e.action, e.series_instance_uid) for e in views)
    assert per_series == sorted(
        [
            ("api-image", ct[0].SeriesInstanceUID),
            ("api-pixels", ct[0].SeriesInstanceUID),
            ("api-annotations", ct[0].SeriesInstanceUID),
            ("api-pixels", dx.SeriesInstanceUID),
        ]
    )
    first_pixels = next(e for e in views if e.action == "api-pixels")
    assert first_pixels.sop_instance_uid == ct[0].SOPInstanceUID  # where the reading started
    assert json.loads(first_pixels.detail) == {"frame": 1, "scale": 1, "window_s": 900, "actor_role": "inspector"}
    # an external DICOMweb client's frame retrieves are audited one by one
    frames_url = (
        f"/dicom-web/studies/{ct[0].StudyInstanceUID}/series/{ct[0].SeriesInstanceUID}"
        f"/instances/{ct[0].SOPInstanceUID}/frames/1"
    )
    before = len(_events(api, "retrieve"))
    for _ in range(3):
        assert api.get(frames_url).status_code == 200
    assert len(_events(api, "retrieve")) == before + 3
    assert api.archive.verify_audit().ok
