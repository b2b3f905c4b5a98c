"""DICOMweb end to end: dicomweb-client and plain HTTP against a running server (PS3.18)."""

from __future__ import annotations

import io
import json
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from sqlalchemy import select

from storage.archive import Archive
from storage.factory import open_archive
from storage.index.models import AuditEvent
from tests.support.accounts import with_credentials
from tests.support.factories import make_instance, write_part10
from tests.support.servers import RunningServer, dcmtk, make_settings
from tests.support.webutil import dicomweb_client, http_server
from viewer.dicomweb.multipart import new_boundary

warnings.filterwarnings("ignore", module="pydicom")

# 16-bit signed CT; 10-frame MR; JPEG baseline RGB; JPEG 2000 lossless CT; 16-bit MR; palette colour US.
FILES = ["CT_small.dcm", "emri_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "693_J2KR.dcm", "MR_small.dcm", "OBXXXX1A.dcm"]


def _paths() -> dict[str, Path]:
    return {name: Path(str(get_testdata_file(name))) for name in FILES}


def _multipart(parts: list[bytes], boundary: str, content_type: str = "application/dicom") -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def _post(url: str, parts: list[bytes], study: str | None = None) -> httpx.Response:
    boundary = new_boundary()
    target = f"{url}/dicom-web/studies" + (f"/{study}" if study else "")
    return httpx.post(
        target,
        content=_multipart(parts, boundary),
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
        timeout=60,
    )


@pytest.fixture
def sqlite_archive(tmp_path: Path) -> Iterator[Archive]:
    arc = open_archive(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'index.sqlite'}"))
    yield arc
    arc.db.dispose()


@pytest.fixture
def web(sqlite_archive: Archive) -> Iterator[str]:
    with http_server(sqlite_archive) as url:
        yield url


def test_stow_qido_wado_roundtrip(archive: Archive) -> None:
    """STOW a set of pydicom's files with dicomweb-client, then find and fetch them back (SQLite and PostgreSQL)."""
    paths = _paths()
    datasets = {name: pydicom.dcmread(path) for name, path in paths.items()}
    with http_server(archive) as url:
        client = dicomweb_client(f"{url}/dicom-web")  # HTTP Basic, as a device account
        response = client.store_instances(list(datasets.values()))
        assert len(response.ReferencedSOPSequence) == len(FILES)
        assert "FailedSOPSequence" not in response

        # QIDO at each level, by keyword, by tag, wildcard, range, UID list.
        studies = client.search_for_studies()
        assert {s["0020000D"]["Value"][0] for s in studies} == {d.StudyInstanceUID for d in datasets.values()}
        ct = datasets["CT_small.dcm"]
        hits = client.search_for_studies(search_filters={"PatientID": ct.PatientID})
        assert [h["0020000D"]["Value"][0] for h in hits] == [ct.StudyInstanceUID]
        assert client.search_for_studies(search_filters={"00100020": ct.PatientID}) == hits
        assert [h["0020000D"]["Value"][0] for h in client.search_for_studies(search_filters={"PatientID": "1C*"})] == [
            ct.StudyInstanceUID
        ]
        ranged = client.search_for_studies(search_filters={"StudyDate": f"{ct.StudyDate}-{ct.StudyDate}"})
        assert ct.StudyInstanceUID in {h["0020000D"]["Value"][0] for h in ranged}
        assert client.search_for_studies(search_filters={"PatientID": "no-such-component"}) == []
        for hostile in ({"PatientName": "a\x00b"}, {"Rows": "9" * 30}, {"offset": "9" * 30}):
            level = "instances" if "Rows" in hostile else "studies"
            refused = httpx.get(f"{url}/dicom-web/{level}", params=hostile)
            assert refused.status_code == 400, (hostile, refused.text)
        by_modality = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
        assert ct.StudyInstanceUID in {h["0020000D"]["Value"][0] for h in by_modality}
        assert hits[0]["00081190"]["Value"][0].endswith(f"/dicom-web/studies/{ct.StudyInstanceUID}")
        assert hits[0]["00201208"]["Value"] == [1]

        series = client.search_for_series(ct.StudyInstanceUID)
        assert [s["0020000E"]["Value"][0] for s in series] == [ct.SeriesInstanceUID]
        assert series[0]["00080060"]["Value"] == ["CT"]
        all_series = client.search_for_series(search_filters={"Modality": "CT"})
        assert ct.SeriesInstanceUID in {s["0020000E"]["Value"][0] for s in all_series}

        instances = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID, fields=["PatientName"])
        assert [i["00080018"]["Value"][0] for i in instances] == [ct.SOPInstanceUID]
        assert instances[0]["00280010"]["Value"] == [ct.Rows]
        assert instances[0]["00280100"]["Value"] == [ct.BitsAllocated]  # from the stored header
        everywhere = client.search_for_instances(search_filters={"SOPInstanceUID": ct.SOPInstanceUID})
        assert len(everywhere) == 1
        assert everywhere[0]["0020000D"]["Value"] == [ct.StudyInstanceUID]
        with_all = client.search_for_instances(search_filters={"SOPInstanceUID": ct.SOPInstanceUID}, fields=["all"])
        assert with_all[0]["00180050"]["Value"] == [float(ct.SliceThickness)]  # not indexed: header JSON
        uid_list = ",".join(d.SOPInstanceUID for d in list(datasets.values())[:2])
        assert len(client.search_for_instances(search_filters={"SOPInstanceUID": uid_list})) == 2

        # Paging: limit and offset walk every instance exactly once.
        seen = []
        for offset in range(0, len(FILES) + 2, 2):
            page = client.search_for_instances(limit=2, offset=offset)
            assert len(page) <= 2
            seen += [i["00080018"]["Value"][0] for i in page]
        assert sorted(seen) == sorted(d.SOPInstanceUID for d in datasets.values())

        # WADO-RS: the study's instances, byte-equal to what was sent (decoded by the client's parser).
        for ds in datasets.values():
            raw = httpx.get(
                f"{url}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}",
                headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
            )
            assert raw.status_code == 200
            parts = list(client._decode_multipart_message(_as_requests(raw), stream=False))
            assert _as_sent(ds) in parts
            fetched = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            assert fetched.SOPInstanceUID == ds.SOPInstanceUID
        study = client.retrieve_study(ct.StudyInstanceUID)
        assert [d.SOPInstanceUID for d in study] == [ct.SOPInstanceUID]

        # Metadata equals the data sets (bulk values become absolute BulkDataURIs).
        for ds in datasets.values():
            meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            sent = pydicom.dcmread(io.BytesIO(_as_sent(ds)))
            expected = sent.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=lambda _e: "bulk")
            for tag, element in expected.items():
                if tag > "7FE00010":  # trailing padding after Pixel Data is not metadata
                    continue
                if "BulkDataURI" in element or tag == "7FE00010":
                    assert meta[tag]["BulkDataURI"].startswith("http"), tag
                else:
                    assert meta[tag] == element, tag
        series_meta = client.retrieve_series_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID)
        assert [m["00080018"]["Value"][0] for m in series_meta] == [ct.SOPInstanceUID]
        assert len(client.retrieve_study_metadata(ct.StudyInstanceUID)) == 1

        # Frames: a multi-frame native instance and compressed ones, decoded.
        mr = datasets["emri_small.dcm"]
        frames = client.retrieve_instance_frames(
            mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID, frame_numbers=[2, 5]
        )
        for data, index in zip(frames, [1, 4], strict=True):
            got = np.frombuffer(data, dtype=mr.pixel_array.dtype).reshape(mr.Rows, mr.Columns)
            assert np.array_equal(got, mr.pixel_array[index])
        for name in ("693_J2KR.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
            ds = datasets[name]
            (data,) = client.retrieve_instance_frames(
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1]
            )
            expected = ds.pixel_array
            assert np.array_equal(np.frombuffer(data, dtype=expected.dtype).reshape(expected.shape), expected)

        # Rendered: valid images of the right size, at instance and frame level, JPEG and PNG.
        for ds in datasets.values():
            jpeg = client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            image = Image.open(io.BytesIO(jpeg))
            assert image.format == "JPEG"
            assert image.size == (ds.Columns, ds.Rows)
        png = client.retrieve_instance_frames_rendered(
            mr.StudyInstanceUID,
            mr.SeriesInstanceUID,
            mr.SOPInstanceUID,
            frame_numbers=[3],
            media_types=("image/png",),
            params={"viewport": "32,32", "window": "300,600,linear"},
        )
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        assert image.size == (32, 32)


def _as_sent(ds: pydicom.Dataset) -> bytes:
    """The bytes dicomweb-client's store_instances sends for *ds* (it encodes with dcmwrite)."""
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds)
    return out.getvalue()


def _as_requests(response: httpx.Response) -> object:
    """A requests.Response holding *response*, for dicomweb-client's multipart decoder."""
    import requests

    out = requests.Response()
    out.status_code = response.status_code
    out.headers.update(response.headers)
    out._content = response.content
    return out


def test_stow_partial_failure_and_rejections(web: str, tmp_path: Path) -> None:
    """One broken part among good ones: 202 listing it, the good ones stored; none good: 409."""
    good = [write_part10(make_instance(), tmp_path / f"g{i}.dcm").read_bytes() for i in range(2)]
    broken = good[0][: len(good[0]) // 2]  # truncated transfer
    response = _post(web, [good[0], broken, good[1]])
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/dicom+json")
    body = response.json()
    assert len(body["00081199"]["Value"]) == 2
    (failure,) = body["00081198"]["Value"]
    assert failure["00081197"]["Value"] == [0xC000]
    for data in good:
        ds = pydicom.dcmread(io.BytesIO(data))
        got = httpx.get(
            f"{web}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
            headers={"Accept": "application/dicom"},
        )
        assert got.status_code == 200
        assert got.content == data

    assert _post(web, [broken, b"not dicom at all"]).status_code == 409

    # Posting to one study: an instance of another study fails on its own.
    inside = make_instance()
    outside = make_instance()
    inside_bytes = write_part10(inside, tmp_path / "in.dcm").read_bytes()
    outside_bytes = write_part10(outside, tmp_path / "out.dcm").read_bytes()
    response = _post(web, [inside_bytes, outside_bytes], study=inside.StudyInstanceUID)
    assert response.status_code == 202
    (failure,) = response.json()["00081198"]["Value"]
    assert failure["00081155"]["Value"] == [outside.SOPInstanceUID]
    assert failure["00081197"]["Value"] == [0xA900]
    assert httpx.get(f"{web}/dicom-web/studies?StudyInstanceUID={outside.StudyInstanceUID}").json() == []

    # Wrong media types and malformed bodies: 415 / 400, nothing stored.
    assert (
        httpx.post(
            f"{web}/dicom-web/studies", content=good[0], headers={"Content-Type": "application/dicom"}
        ).status_code
        == 415
    )
    wrong_type = {"Content-Type": 'multipart/related; type="application/dicom+xml"; boundary=x'}
    assert httpx.post(f"{web}/dicom-web/studies", content=b"--x--", headers=wrong_type).status_code == 415
    no_end = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=zz'}
    assert httpx.post(f"{web}/dicom-web/studies", content=b"garbage", headers=no_end).status_code == 400


def test_errors_ranges_and_wado_uri(web: str, tmp_path: Path) -> None:
    """404 for unknown UIDs, 400 for malformed parameters (never 500), Range, WADO-URI."""
    ds = make_instance(rows=32, columns=48, WindowCenter=1000, WindowWidth=2000)
    data = write_part10(ds, tmp_path / "one.dcm").read_bytes()
    assert _post(web, [data]).status_code == 200
    base = f"{web}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"

    unknown = httpx.get(f"{web}/dicom-web/studies/1.2.3.4/metadata")
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["00000902"]["Value"][0]
    assert httpx.get(f"{web}/dicom-web/studies/1.2.3.4/series/1.2.3/instances/1.2.3").status_code == 404
    for bad in [
        f"{web}/dicom-web/studies/not-a-uid",
        f"{web}/dicom-web/studies?limit=-1",
        f"{web}/dicom-web/studies?offset=x",
        f"{web}/dicom-web/studies?NoSuchKeyword=1",
        f"{web}/dicom-web/studies?StudyDate=2026-13",
        f"{web}/dicom-web/studies?StudyInstanceUID=1.2.x",
        f"{web}/dicom-web/instances?Rows=many",
        f"{base}/rendered?window=1,0",
        f"{base}/rendered?viewport=0,10",
        f"{base}/rendered?quality=1000",
        f"{base}/frames/0",
        f"{base}/frames/a,b",
        f"{base}/bulkdata/zz",
        f"{web}/wado?requestType=WADO",
        f"{web}/wado?requestType=WADX&studyUID=1&seriesUID=1&objectUID=1",
    ]:
        response = httpx.get(bad)
        assert response.status_code == 400, (bad, response.status_code, response.text)
        assert response.json()["00000902"]["Value"][0]
    assert httpx.get(f"{base}/frames/2").status_code == 404
    assert httpx.get(f"{web}/dicom-web/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406

    # Range on the instance and on bulk data.
    part = httpx.get(base, headers={"Accept": "application/dicom", "Range": "bytes=128-131"})
    assert part.status_code == 206
    assert part.content == b"DICM"
    assert part.headers["content-range"] == f"bytes 128-131/{len(data)}"
    tail = httpx.get(base, headers={"Accept": "application/dicom", "Range": "bytes=-10"})
    assert tail.content == data[-10:]
    assert httpx.get(base, headers={"Accept": "application/dicom", "Range": "bytes=99999999-"}).status_code == 416
    meta = httpx.get(f"{base}/metadata").json()[0]
    pixel_uri = with_credentials(meta["7FE00010"]["BulkDataURI"], "test-device")  # an absolute URL, no credentials
    pixels = httpx.get(pixel_uri, headers={"Accept": "application/octet-stream"})
    assert pixels.content == ds.PixelData
    ranged = httpx.get(pixel_uri, headers={"Accept": "application/octet-stream", "Range": "bytes=2-5"})
    assert ranged.status_code == 206
    assert ranged.content == ds.PixelData[2:6]

    # Thumbnails and WADO-URI.
    thumb = Image.open(io.BytesIO(httpx.get(f"{web}/dicom-web/studies/{ds.StudyInstanceUID}/thumbnail").content))
    assert max(thumb.size) == 128
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    assert httpx.get(f"{web}/wado", params={**params, "contentType": "application/dicom"}).content == data
    jpeg = httpx.get(f"{web}/wado", params=params)
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (48, 32)
    png = httpx.get(
        f"{web}/wado",
        params={**params, "contentType": "image/png", "rows": "16", "windowCenter": "10", "windowWidth": "20"},
    )
    assert Image.open(io.BytesIO(png.content)).size == (24, 16)
    assert httpx.get(f"{web}/wado", params={**params, "objectUID": "1.2.3"}).status_code == 404


def test_requests_are_audited(sqlite_archive: Archive, tmp_path: Path) -> None:
    """STOW, QIDO and WADO requests each append an audit entry attributed to the authenticated account."""
    ds = make_instance()
    data = write_part10(ds, tmp_path / "a.dcm").read_bytes()
    with http_server(sqlite_archive, user="ct-scanner-7") as url:
        assert _post(url, [data]).status_code == 200
        httpx.get(f"{url}/dicom-web/studies?PatientID={ds.PatientID}")
        httpx.get(f"{url}/dicom-web/studies/{ds.StudyInstanceUID}")
        httpx.get(f"{url}/dicom-web/studies/{ds.StudyInstanceUID}/metadata")
    with sqlite_archive.db.read_session() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.actor, AuditEvent.detail, AuditEvent.study_instance_uid).order_by(
                AuditEvent.id
            )
        ).all()
    by_action = {row.action: row for row in rows}
    rows = [row for row in rows if row.action not in ("user_add",)]
    assert [row.action for row in rows] == ["store", "find", "retrieve", "metadata"]  # one entry per request
    assert all(row.actor == "device:ct-scanner-7" for row in rows)
    assert all(json.loads(row.detail)["actor_role"] == "device" for row in rows)
    assert json.loads(by_action["find"].detail)["matches"] == 1
    assert by_action["retrieve"].study_instance_uid == ds.StudyInstanceUID
    assert sqlite_archive.verify_audit().ok


@pytest.mark.dcmtk
def test_cstore_and_stow_share_one_index(pacs_server: RunningServer, tmp_path: Path) -> None:
    """An instance sent by C-STORE is found by QIDO; one sent by STOW-RS is found by C-FIND."""
    by_dimse = make_instance(PatientID="DIMSE-1")
    path = write_part10(by_dimse, tmp_path / "dimse.dcm")
    env = {"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [dcmtk("storescu"), "-aec", pacs_server.ae_title, "127.0.0.1", str(pacs_server.dicom_port), str(path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    client = dicomweb_client(f"{pacs_server.url_as('device')}/dicom-web")
    found = client.search_for_instances(search_filters={"PatientID": "DIMSE-1"})
    assert [f["00080018"]["Value"][0] for f in found] == [by_dimse.SOPInstanceUID]

    by_web = make_instance(PatientID="WEB-1")
    by_web.preamble = b"\0" * 128  # dicomweb-client writes the data set as given: make it a Part 10 file
    client.store_instances([by_web])
    result = subprocess.run(
        [
            dcmtk("findscu"),
            "-aec",
            pacs_server.ae_title,
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "PatientID=WEB-1",
            "-k",
            "StudyInstanceUID",
            "127.0.0.1",
            str(pacs_server.dicom_port),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_web.StudyInstanceUID in result.stdout + result.stderr


def _walk_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route of an app, through included routers (FastAPI may keep them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _walk_routes(list(nested.routes))
        else:
            yield route


def test_every_route_declares_a_permission(sqlite_archive: Archive) -> None:
    """No HTTP route exists without a declared permission (only health is outside the routers)."""
    from fastapi.routing import APIRoute

    from viewer.app import create_app
    from viewer.auth import permission_of

    app = create_app(sqlite_archive)
    open_paths = {"/healthz"}
    checked = set()
    for route in _walk_routes(list(app.routes)):
        path = getattr(route, "path", "")
        if path in open_paths:
            continue
        assert isinstance(route, APIRoute), path
        assert permission_of(list(route.dependencies)) is not None, path
        checked.add(path)
    assert {"/dicom-web/studies", "/dicom-web/studies/{study}/metadata", "/wado"} <= checked
    assert len(checked) >= 20


def test_diconde_keys_are_searchable(web: str, tmp_path: Path) -> None:
    """DICONDE component attributes (group 0014) match by keyword or tag like any indexed key."""
    weld = make_instance(ComponentManufacturer="ACME Forge", MaterialGrade="X52", ExpiryDate="20300101")
    other = make_instance(ComponentManufacturer="Other Works")
    parts = [write_part10(ds, tmp_path / f"{i}.dcm").read_bytes() for i, ds in enumerate((weld, other))]
    assert _post(web, parts).status_code == 200
    for params in (
        {"ComponentManufacturer": "ACME*"},
        {"00140028": "ACME Forge"},
        {"0014,0042": "X52"},
        {"ExpiryDate": "20291231-"},
    ):
        found = httpx.get(f"{web}/dicom-web/studies", params=params).json()
        assert [f["0020000D"]["Value"][0] for f in found] == [weld.StudyInstanceUID], params
    first = httpx.get(f"{web}/dicom-web/studies", params={"ComponentManufacturer": "ACME*"}).json()[0]
    assert first["00140028"] == {"vr": "ST", "Value": ["ACME Forge"]}  # a matching key is returned


def test_stow_with_object_store_down_is_503(sqlite_archive: Archive, tmp_path: Path) -> None:
    """A backend that cannot write answers 503 with the failure listed; nothing is indexed."""
    root = sqlite_archive.objects.root  # type: ignore[attr-defined]
    for child in root.iterdir():
        child.rmdir() if child.is_dir() else child.unlink()
    root.rmdir()
    root.write_text("not a directory")  # every put now fails, even for root
    ds = make_instance()
    with http_server(sqlite_archive) as url:
        response = _post(url, [write_part10(ds, tmp_path / "x.dcm").read_bytes()])
        assert response.status_code == 503
        assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]
        assert httpx.get(f"{url}/dicom-web/studies", params={"PatientID": ds.PatientID}).json() == []
