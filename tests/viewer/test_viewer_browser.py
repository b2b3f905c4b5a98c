"""The web viewer in a real browser (Playwright + Debian's Chromium) against `pacs serve`.

Skipped when /usr/bin/chromium is missing (CI installs it). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from ndt_pacs.demo import generate_demo
from storage.factory import open_archive
from tests.support.accounts import PASSWORD, add_account, with_credentials
from tests.support.browser import login
from tests.support.factories import write_part10
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from tests.support.viewer_data import ACTOR, CT_SERIAL, CT_SLICES, MARKERS, SPACING_MM, WELD_SERIAL, XSS_SERIAL, fill

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS = Path(__file__).resolve().parents[2] / "docs"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("viewer")
    archive = open_archive(make_settings(root / "pacs-data"))
    fill(archive, root / "in", extra_components=3)
    for ds in generate_demo(seed=0, count=2, scale=0.25):  # issue 6's `pacs demo` data, smaller
        archive.store_file(write_part10(ds, root / "in" / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    archive.db.dispose()
    running = start_server(root / "pacs-data")
    db = running.database()
    add_account(db, "ines", "inspector", full_name="Ines Inspector")
    add_account(db, "dora", "device")
    db.dispose()
    yield running
    stop_server(running)


def as_user(server: RunningServer, name: str = "ines") -> str:
    """The server's base URL with HTTP Basic credentials of *name* (for direct API calls)."""
    return with_credentials(server.http, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: RunningServer) -> Iterator[Any]:
    # bypass_csp: escaping must hold on its own (and Playwright's wait_for_function needs eval)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http, bypass_csp=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    login(pg, "ines", PASSWORD)
    yield pg
    context.close()
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def canvas_sample(page: Any) -> list[int]:
    """A grid of grey values from the viewer canvas."""
    return page.evaluate(
        """() => { const c = document.querySelector('canvas.view'); const ctx = c.getContext('2d');
        const d = ctx.getImageData(0, 0, c.width, c.height).data; const out = [];
        for (let y = 0.1; y < 1; y += 0.1) for (let x = 0.1; x < 1; x += 0.1)
          out.push(d[(Math.floor(y * c.height) * c.width + Math.floor(x * c.width)) * 4]);
        return out; }"""
    )


def open_latest_radiograph(page: Any) -> None:
    page.goto("/")
    page.fill("#quick-q", "4711")
    page.press("#quick-q", "Enter")
    page.get_by_role("link", name=WELD_SERIAL).click()
    page.wait_for_selector("ol.timeline li.latest")
    page.locator("ol.timeline li.latest a").first.click()
    page.wait_for_selector(".strip a")
    page.locator(".strip a").first.click()
    page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=30_000)


def test_find_serial_open_radiograph_window_level_and_measure(page: Any) -> None:
    page.goto("/")
    page.fill("#quick-q", "4711")
    page.press("#quick-q", "Enter")
    # The start page lists every component first: wait for the answer to this search, not that list.
    page.wait_for_function(
        "location.hash.includes('q=4711') && !document.querySelector('.results').textContent.includes('Searching')"
        " && document.querySelectorAll('table.grid tbody tr').length === 1",
        timeout=20_000,
    )
    assert page.locator("table.grid tbody tr").count() == 1
    shot(page, "01-search")
    page.get_by_role("link", name=WELD_SERIAL).click()
    page.wait_for_selector("ol.timeline li.latest")
    assert page.locator("ol.timeline li").count() == 2
    assert "re-inspection" in page.locator("ol.timeline li.latest").inner_text()
    shot(page, "02-component")
    page.locator("ol.timeline li.latest a").first.click()
    page.wait_for_selector(".strip .thumb canvas")
    shot(page, "03-inspection")
    page.locator(".strip a").first.click()
    page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=30_000)
    # window/level by dragging changes the rendered pixels
    before = canvas_sample(page)
    box = page.locator("canvas.view").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 120, steps=5)
    page.mouse.up()
    page.wait_for_timeout(100)
    after = canvas_sample(page)
    assert before != after
    # presets from the keyboard: full range differs from the dragged window
    page.locator("canvas.view").focus()
    page.keyboard.press("2")
    page.wait_for_timeout(100)
    assert canvas_sample(page) != after
    # measure between the two markers (1000 px at 0.05 mm = 50 mm)
    page.keyboard.press("l")
    (x1, y1), (x2, y2) = MARKERS
    a = page.evaluate(f"() => window.viewer.imageToClient({x1 + 0.5}, {y1 + 0.5})")
    b = page.evaluate(f"() => window.viewer.imageToClient({x2 + 0.5}, {y2 + 0.5})")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=8)
    page.mouse.up()
    text = page.locator(".annotations li .value").first.inner_text()
    match = re.match(r"([\d.]+) mm \(detector pixel spacing\)", text)
    assert match, text
    expected = (x2 - x1) * SPACING_MM
    assert abs(float(match.group(1)) - expected) < 0.5
    shot(page, "04-viewer-measure")
    if os.environ.get("PACS_UPDATE_SCREENSHOT"):  # refresh the README's screenshot on request only
        page.screenshot(path=str(DOCS / "viewer.png"), type="png", scale="css")
    # measurements are kept on the image in the archive, across a reload
    page.wait_for_selector(".annotations li[data-id]")
    page.reload()
    page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)
    assert page.locator(".annotations li[data-id]").count() >= 1


def test_ct_stack_scrolls_frames(page: Any) -> None:
    page.goto(f"/#/component/{CT_SERIAL}")
    page.locator("ol.timeline li a").first.click()
    page.wait_for_selector(".strip a")
    assert page.locator(".strip a").count() == CT_SLICES
    page.locator(".strip a").first.click()
    page.wait_for_selector(".viewer-root[data-loaded='full']")
    assert page.locator(".viewer-root").get_attribute("data-frame") == "1"
    first = canvas_sample(page)
    page.locator("canvas.view").focus()
    for _ in range(6):
        page.keyboard.press("PageDown")
    page.wait_for_function("document.querySelector('.viewer-root').dataset.frame === '7'")
    page.wait_for_timeout(200)
    assert canvas_sample(page) != first  # a bigger disc on slice 7
    assert "7 / 12" in page.locator(".frame-label").inner_text()
    page.keyboard.press(" ")  # cine
    page.wait_for_function("document.querySelector('.viewer-root').dataset.frame !== '7'")
    page.keyboard.press(" ")
    shot(page, "05-ct-stack")


def test_hostile_tag_values_are_shown_as_text(page: Any) -> None:
    page.goto(f"/#/search?q={XSS_SERIAL}")
    page.wait_for_selector("table.grid tbody tr")
    assert page.locator("table.grid tbody td").nth(1).inner_text().startswith("<script>")
    page.get_by_role("link", name=XSS_SERIAL).click()
    page.wait_for_selector("ol.timeline li")
    assert "<img src=x" in page.locator("ol.timeline").inner_text()
    page.locator("ol.timeline li a").first.click()
    page.wait_for_selector(".strip a")
    page.locator(".strip a").first.click()
    page.get_by_text("Attributes").click()
    page.wait_for_selector(".tags td")
    assert page.get_by_role("cell", name="<script>window.__xss=1</script><b>bold</b>").count() == 1
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("script:not([type=module])").count() == 0
    assert page.locator("b, svg, img").count() == 0
    shot(page, "06-hostile-values")


def test_demo_data_browses(page: Any) -> None:
    """The `pacs demo` data set: every component opens, and its latest inspection's first image renders."""
    page.goto("/#/search?modality=CT")
    page.wait_for_selector("table.grid tbody tr")
    serials = page.locator("table.grid tbody td:first-child a").all_inner_texts()
    assert CT_SERIAL in serials, serials
    assert len(serials) >= 2, serials
    demo = next(s for s in serials if s != CT_SERIAL)
    page.get_by_role("link", name=demo).click()
    page.locator("ol.timeline li.latest a").first.click()
    page.wait_for_selector(".strip a")
    page.locator(".strip a").first.click()
    page.wait_for_selector(".viewer-root[data-loaded]", timeout=30_000)
    shot(page, "07-demo-image")


def draw_length(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Draw a length measurement from image point *start* to *end* with the mouse."""
    page.locator("canvas.view").focus()
    page.keyboard.press("l")
    a = page.evaluate(f"() => window.viewer.imageToClient({start[0]}, {start[1]})")
    b = page.evaluate(f"() => window.viewer.imageToClient({end[0]}, {end[1]})")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=8)
    page.mouse.up()


def test_measurement_is_kept_in_the_archive(browser: Any, server: RunningServer) -> None:
    """A measurement drawn in one browser is there in another (a fresh context: no shared localStorage)."""
    first = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http, bypass_csp=True)
    page = first.new_page()
    login(page, "ines", PASSWORD)
    open_latest_radiograph(page)
    page.wait_for_selector(".viewer-root[data-annotations='loaded']")
    before = {
        page.locator(".annotations li").nth(i).get_attribute("data-id")
        for i in range(page.locator(".annotations li").count())
    }
    (x1, y1), (x2, y2) = MARKERS
    draw_length(page, (x1 + 0.5, y1 + 0.5), (x2 + 0.5, y2 + 0.5))
    page.wait_for_function(f"document.querySelectorAll('.annotations li[data-id]').length === {len(before) + 1}")
    saved = page.locator(".annotations li[data-id]").last
    annotation_id = saved.get_attribute("data-id")
    assert annotation_id not in before
    image_url = page.url
    sop = image_url.rsplit("/", 1)[-1]
    first.close()

    second = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http, bypass_csp=True)
    try:
        page = second.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(image_url)
        page.wait_for_url("**/login**")  # a fresh browser has no session: the login page, then back
        page.wait_for_selector("form#login[data-ready]")
        page.fill("#username", "ines")
        page.fill("#password", PASSWORD)
        page.click("form#login button[type=submit]")
        page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)
        assert page.evaluate("() => localStorage.length") == 0
        again = page.locator(f".annotations li[data-id='{annotation_id}']")
        text = again.locator(".value").inner_text()
        assert re.match(r"50\.0\d mm \(detector pixel spacing\)", text), text
        assert "by user:ines" in again.locator(".meta").inner_text()
        shot(page, "08-measurement-kept")
        # the archive measured it too, from the points and the image's spacing
        kept = httpx.get(f"{as_user(server)}/api/images/{sop}/annotations").json()["items"]
        mine = next(a for a in kept if str(a["id"]) == annotation_id)
        assert mine["value"] == pytest.approx((x2 - x1) * SPACING_MM)
        assert (mine["unit"], mine["spacing"]["attribute"]) == ("mm", "ImagerPixelSpacing")

        # "Clear measurements" asks first: cancelled, nothing is withdrawn
        count = page.locator(".annotations li[data-id]").count()
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.get_by_role("button", name="Clear measurements").click()
        page.wait_for_timeout(300)
        assert page.locator(".annotations li[data-id]").count() == count
        # confirmed: every measurement on the image is withdrawn, and kept in the archive as withdrawn
        questions: list[str] = []
        page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
        page.get_by_role("button", name="Clear measurements").click()
        page.wait_for_function("document.querySelectorAll('.annotations li').length === 0")
        assert "Withdraw all" in questions[0]
        assert httpx.get(f"{as_user(server)}/api/images/{sop}/annotations").json()["items"] == []
        withdrawn = httpx.get(f"{as_user(server)}/api/images/{sop}/annotations?include_withdrawn=true").json()["items"]
        assert str(annotation_id) in {str(a["id"]) for a in withdrawn if a["withdrawn"]}
        page.reload()
        page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)
        assert page.locator(".annotations li").count() == 0
        assert not errors, errors
    finally:
        second.close()


def test_measurement_that_cannot_be_kept_says_why(page: Any, server: RunningServer) -> None:
    """The image gets a new version while it is open: the archive refuses the measurement, the viewer says so."""
    page.goto(f"/#/component/{CT_SERIAL}")
    page.locator("ol.timeline li a").first.click()
    page.wait_for_selector(".strip a")
    page.locator(".strip a").last.click()
    page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)
    study, series, sop = page.url.split("#/image/")[1].split("/")
    # another client re-sends the slice with a changed attribute: version 2
    wado = httpx.get(
        f"{as_user(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": "application/dicom"},
    )
    ds = pydicom.dcmread(BytesIO(wado.content))
    ds.ImageComments = "re-sent by the CT station"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    boundary = "annotationtestboundary"
    body = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + out.getvalue()
    body += f"\r\n--{boundary}--\r\n".encode()
    stored = httpx.post(
        f"{as_user(server, 'dora')}/dicom-web/studies",
        content=body,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
    )
    assert stored.status_code == 200, stored.text
    draw_length(page, (16, 32), (48, 32))
    notice = page.locator(".side .notice")
    notice.wait_for(state="visible")
    assert "Measurement not saved" in notice.inner_text()
    assert "the image changed" in notice.inner_text()
    assert page.locator(".annotations li").count() == 0
    shot(page, "09-measurement-refused")
    # after a reload the viewer shows version 2, and measuring works again
    page.reload()
    page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)
    draw_length(page, (16, 32), (48, 32))
    page.wait_for_selector(".annotations li[data-id]")
    assert page.locator(".side .notice").is_hidden()
    assert httpx.get(f"{as_user(server)}/api/images/{sop}/annotations").json()["items"][0]["instance_version"] == 2


HOSTILE = "<img src=x onerror=alert(1)>"


def test_login_badge_escaping_hiding_and_logout(browser: Any, server: RunningServer) -> None:
    """A hostile full name and label are shown as text; a quality user sees no measuring tools; logout ends it."""
    db = server.database()
    add_account(db, "mallory", "inspector", full_name=HOSTILE)
    add_account(db, "quinn", "quality", full_name="Quinn Quality")
    db.dispose()
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http, bypass_csp=True)
    try:
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto("/")
        page.wait_for_url("**/login")  # no session: the viewer sends the browser to the login page
        page.wait_for_selector("form#login[data-ready]")
        page.fill("#username", "mallory")
        page.fill("#password", "not the password")
        page.click("form#login button[type=submit]")
        page.wait_for_selector("#login-error:not([hidden])")
        assert page.locator("#login-error").inner_text() == "invalid user name or password"
        login(page, "mallory", PASSWORD)
        assert page.locator("#user .who-name").inner_text() == HOSTILE
        assert page.locator("#user .who-role").inner_text() == "(inspector)"
        open_latest_radiograph(page)
        sop = page.url.rsplit("/", 1)[-1]
        made = httpx.post(
            f"{as_user(server, 'mallory')}/api/images/{sop}/annotations",
            json={"kind": "length", "points": [{"x": 10, "y": 10}, {"x": 40, "y": 10}], "label": HOSTILE},
        )
        assert made.status_code == 201, made.text
        assert made.json()["author"] == "user:mallory"
        page.reload()
        page.wait_for_selector(".annotations li .label")
        assert page.locator(".annotations li .label").first.inner_text() == HOSTILE
        assert "by user:mallory" in page.locator(".annotations li .meta").first.inner_text()
        assert page.locator("img, svg").count() == 0
        assert page.locator("button[data-tool='length']").is_visible()
        shot(page, "10-hostile-user-and-label")
        page.click("#logout")
        page.wait_for_url("**/login")
        assert page.evaluate("() => fetch('/api/me').then((r) => r.status)") == 401
        # a quality manager reads, but has no measuring tools and cannot withdraw
        login(page, "quinn", PASSWORD)
        open_latest_radiograph(page)
        page.wait_for_selector(".annotations li .label")
        assert page.locator("button[data-tool='length']").is_hidden()
        assert page.locator("#nav-audit").is_hidden()  # no audit:read
        assert page.locator("button[data-tool='wl']").is_visible()
        assert page.get_by_role("button", name="Clear measurements").is_hidden()
        assert page.locator(".annotations li button").first.is_hidden()
        page.locator("canvas.view").focus()
        page.keyboard.press("l")
        assert page.evaluate("() => window.viewer.tool") == "wl"
        assert dialogs == []
    finally:
        context.close()
