"""The viewer as an inspector uses it every day, in Chromium at 1366 x 768 against `pacs serve`.

The toolbar in one row, the information overlay and its toggle, names without DICOM's ^, ISO 8601
dates (also typed into the search), headings and plurals, the device's approval and indication
count, calibration in NDT words, and the keyboard shortcuts on "?". Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DigitalXRayImageStorageForPresentation, generate_uid

from storage.factory import open_archive
from tests.support.accounts import PASSWORD
from tests.support.browser import CHROMIUM, chromium, login, shot
from tests.support.factories import make_instance, write_part10
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from tests.support.viewer_data import ACTOR

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)")

SERIAL = "SN-EVERYDAY-9"
COMPONENT = {"PatientID": SERIAL, "PatientName": "Pipe^Weld 9", "EthnicGroup": "S355", "PhysiciansOfRecord": "Acme^NDT"}


def _indication(number: int) -> Dataset:
    item = Dataset()
    item.IndicationNumber = number
    item.IndicationLabel = f"P{number}"
    item.IndicationType = "POROSITY"
    return item


def _datasets() -> dict[str, list[Dataset]]:
    """A radiograph the device approved with two indications, and an older three-slice series without."""
    y, x = np.mgrid[0:400, 0:600]
    radiograph = make_instance(
        rows=400,
        columns=600,
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX",
        StudyDate="20260115",
        StudyTime="101530",
        StudyDescription="Weld 9 RT",
        SeriesDescription="RT double wall",
        PerformingPhysicianName="Smith^John",
        OperatorsName="Doe^Jane",
        KVP=160,
        XRayTubeCurrent=5,
        ExposureTime=2000,
        ApprovalStatus="APPROVED",
        IndicationSequence=Sequence([_indication(1), _indication(2)]),
        **COMPONENT,
    )
    del radiograph.PixelSpacing
    radiograph.ImagerPixelSpacing = [0.1, 0.1]
    radiograph.PixelData = (1000 + 30 * x + 10 * y).astype(np.uint16).tobytes()
    study, series = generate_uid(), generate_uid()
    stack = [
        make_instance(
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            StudyDate="20250301",
            StudyDescription="Weld 9 CT",
            InstanceNumber=k + 1,
            **COMPONENT,
        )
        for k in range(3)
    ]
    return {"radiograph": [radiograph], "stack": stack}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, dict[str, list[Dataset]]]]:
    root = tmp_path_factory.mktemp("everyday")
    archive = open_archive(make_settings(root / "pacs-data"))
    datasets = _datasets()
    (root / "in").mkdir()
    for group in datasets.values():
        for ds in group:
            archive.store_file(write_part10(ds, root / "in" / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    archive.db.dispose()
    running = start_server(root / "pacs-data")
    running.url_as("inspector", "ines")
    yield running, datasets
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, data: tuple[RunningServer, dict[str, list[Dataset]]]) -> Iterator[Any]:
    server, _ = data
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    login(pg, "ines", PASSWORD)
    yield pg
    context.close()
    assert not errors, errors


def visible_text(page: Any) -> str:
    text: str = page.evaluate("() => document.body.innerText")
    return text


def go(page: Any, url: str) -> None:
    """Open *url* (a hash route); the page shown before is cleared first, so waits see only the new one."""
    page.evaluate("() => document.getElementById('main').replaceChildren()")
    page.goto(url)


def open_image(page: Any, ds: Dataset) -> None:
    go(page, f"/#/image/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}")
    page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=30_000)


def test_toolbar_fits_one_row_at_1366(page: Any, data: Any) -> None:
    open_image(page, data[1]["radiograph"][0])
    controls = page.locator(".toolbar > button, .toolbar > select")
    boxes = [c.bounding_box() for c in controls.all() if c.is_visible()]
    assert len(boxes) >= 16  # seven tools, the window preset, view buttons, the overlay toggle
    tops = [b["y"] for b in boxes]
    assert max(tops) - min(tops) <= 2, tops  # one row: the controls share one top (a select sits 1 px lower)
    stage = page.locator(".stage").bounding_box()
    assert max(b["x"] + b["width"] for b in boxes) <= stage["x"] + stage["width"]  # and the row fits above the image
    shot(page, "everyday-01-toolbar-overlay")


def test_overlay_shows_the_image_information_and_toggles(page: Any, data: Any) -> None:
    ds = data[1]["radiograph"][0]
    open_image(page, ds)
    overlay = page.locator(".stage .overlay")
    assert overlay.is_visible()
    text = overlay.inner_text()
    for expected in (SERIAL, "Pipe Weld 9", "Inspected 2026-01-15 10:15:30", "DX · RT double wall", "160 kV · 5 mA",
                     "Frame 1 / 1", "600 × 400 px", "calibrated: detector pixel spacing 0.1 mm"):  # fmt: skip
        assert expected in text, (expected, text)
    button = page.get_by_role("button", name="Overlay")
    assert button.get_attribute("aria-pressed") == "true"
    page.locator("canvas.view").focus()
    page.keyboard.press("o")
    assert overlay.is_hidden()
    assert button.get_attribute("aria-pressed") == "false"
    shot(page, "everyday-02-overlay-off")
    button.click()
    assert overlay.is_visible()
    assert button.get_attribute("aria-pressed") == "true"
    # the choice holds for the next image opened (nothing is kept in the browser's storage)
    page.locator("canvas.view").focus()
    page.keyboard.press("o")
    stack = data[1]["stack"][0]
    page.evaluate(
        "(u) => { location.hash = u; }",
        f"#/image/{stack.StudyInstanceUID}/{stack.SeriesInstanceUID}/{stack.SOPInstanceUID}",
    )
    page.wait_for_function(  # the stack's image shown, its overlay hidden
        """() => { const o = document.querySelector('.stage .overlay');
        return o && o.hidden && o.textContent.includes('Image 1 / 3'); }""",
        timeout=30_000,
    )
    assert page.get_by_role("button", name="Overlay").get_attribute("aria-pressed") == "false"
    page.locator("canvas.view").focus()
    page.keyboard.press("O")
    assert page.locator(".stage .overlay").is_visible()
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    page.go_back()
    # back on the radiograph, the side panel says its calibration in NDT words
    page.wait_for_function(
        "(t) => document.querySelector('.side .calibration')?.textContent === t",
        arg="calibrated: detector pixel spacing 0.1 mm",
        timeout=30_000,
    )


def test_stack_overlay_counts_images(page: Any, data: Any) -> None:
    stack = data[1]["stack"]
    open_image(page, stack[1])
    overlay = page.locator(".stage .overlay")
    assert "Image 2 / 3" in overlay.inner_text()
    page.locator("canvas.view").focus()
    page.keyboard.press("PageDown")
    page.wait_for_function("() => document.querySelector('.stage .overlay').innerText.includes('Image 3 / 3')")


def test_no_caret_in_visible_text_and_dates_iso(page: Any, data: Any) -> None:
    ds = data[1]["radiograph"][0]
    open_image(page, ds)
    page.get_by_text("Attributes").click()
    attributes = page.locator(".side .tags").inner_text()
    assert "Smith John" in attributes
    assert "Doe Jane" in attributes
    assert "2026-01-15" in attributes
    assert "10:15:30" in attributes
    assert "^" not in visible_text(page)
    shot(page, "everyday-03-attributes")
    for url in (f"/#/component/{SERIAL}", f"/#/inspection/{ds.StudyInstanceUID}", f"/#/search?serial={SERIAL}",
                f"/#/search?serial={SERIAL}&level=inspection"):  # fmt: skip
        go(page, url)
        page.wait_for_selector("main h1")
        page.wait_for_function("() => !document.querySelector('main').innerText.includes('Searching…')")
        text = visible_text(page)
        assert SERIAL in text, url
        assert "^" not in text, (url, text)
        assert not re.search(r"\b20\d{6}\b", text), (url, text)  # no DICOM YYYYMMDD dates


def test_component_and_inspection_pages_plurals_and_device_findings(page: Any, data: Any) -> None:
    ds = data[1]["radiograph"][0]
    go(page, f"/#/component/{SERIAL}")
    page.wait_for_selector("ol.timeline li")
    items = page.locator("ol.timeline li")
    assert items.count() == 2
    newest, older = items.nth(0).inner_text(), items.nth(1).inner_text()
    assert "1 series · 1 image" in newest
    # The device's approval once, in the status badge; the device's indications on their own line.
    assert "device: APPROVED" in newest
    assert newest.count("APPROVED") == 1
    assert "2 indications from the device" in newest
    assert "1 series · 3 images" in older
    assert "device" not in older  # nothing sent, nothing said
    shot(page, "everyday-04-component")
    go(page, f"/#/inspection/{ds.StudyInstanceUID}")
    page.wait_for_selector("dl.facts")
    facts = page.locator("dl.facts").inner_text()
    page.wait_for_selector("section.evaluation .eval-status-line")
    assert "device: APPROVED" in page.locator("section.evaluation .eval-status-line").inner_text()
    assert "APPROVED" not in facts  # shown once, beside the evaluation status
    assert re.search(r"Device indications\s+2 indications", facts), facts
    assert "Acme NDT" in facts
    assert "inspector Smith John" in page.locator(".series .meta").inner_text()
    assert page.locator(".series .meta").inner_text().endswith("1 image")


def test_search_heading_follows_the_mode_and_dates_are_iso(page: Any, data: Any) -> None:
    go(page, "/#/search")
    page.wait_for_selector("main h1")
    assert page.locator("main h1").inner_text() == "Find a component"
    page.get_by_label("Inspections").check()
    page.wait_for_function("() => document.querySelector('main h1').innerText === 'Find an inspection'")
    assert "level=inspection" in page.evaluate("() => location.hash")
    date_from = page.locator("input[name=from]")
    assert date_from.get_attribute("type") == "text"  # not the browser's locale date picker
    assert date_from.get_attribute("placeholder") == "YYYY-MM-DD"
    date_from.fill("15.01.2026")  # not ISO 8601: refused, the search does not run
    page.get_by_role("button", name="Search", exact=True).click()
    assert "from=" not in page.evaluate("() => location.hash")
    assert page.evaluate("() => document.querySelector('input[name=from]').validationMessage")
    date_from.fill("2026-01-01")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_function("() => location.hash.includes('from=20260101')")
    page.wait_for_function("() => document.querySelectorAll('table.grid tbody tr').length === 1")  # was 2
    page.wait_for_function("() => document.querySelector('main h1').innerText === 'Find an inspection'")
    assert page.locator("input[name=from]").input_value() == "2026-01-01"
    rows = page.locator("table.grid tbody tr")
    assert rows.count() == 1
    assert rows.first.inner_text().startswith("2026-01-15")
    shot(page, "everyday-05-search-inspections")


def test_question_mark_lists_the_shortcuts(page: Any, data: Any) -> None:
    open_image(page, data[1]["radiograph"][0])
    dialog = page.locator("dialog#shortcuts")
    page.locator("canvas.view").focus()
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcuts[open]")
    text = dialog.inner_text()
    assert "Keyboard shortcuts" in text
    for line in ("Information overlay on or off", "Window/level", "Fit the image", "Cine: play or stop"):
        assert line in text, line
    keys = dialog.locator("kbd").all_inner_texts()
    assert {"?", "O", "W", "L", "PageDown", "Space"} <= set(keys), keys
    shot(page, "everyday-06-shortcuts")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    # typing "?" into a field types it; the ? button opens the list too
    page.locator("#quick-q").fill("")
    page.locator("#quick-q").type("a?")
    assert page.locator("#quick-q").input_value() == "a?"
    assert not dialog.is_visible()
    page.get_by_role("button", name="Keyboard shortcuts").click()
    assert dialog.is_visible()
    page.keyboard.press("?")
    assert not dialog.is_visible()
