"""Indications, evaluation and two-signature release in the viewer (Chromium against `pacs serve`).

An RT Level 2 inspector draws an indication on a demo weld radiograph, edits it (version 2),
evaluates REJECT against ISO 10675-1 level 2 and signs with the password entered again; an RT
Level 3 approves; the inspection then shows "rejected", two signatures and the report; a change
afterwards shows both signatures invalidated. A Level 1 inspector sees no disposition or sign
controls. The demo image's two device indications get a region (Graphic Type / Data on the item)
so that they are drawn too. Screenshots go to test-artifacts/evaluation-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydicom.dataset import Dataset

from ndt_pacs.demo import generate_demo
from storage.factory import open_archive
from tests.support.accounts import PASSWORD, add_account, with_credentials
from tests.support.browser import CHROMIUM, chromium, click, drag, image_to_client, login, shot
from tests.support.factories import write_part10
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from tests.support.viewer_data import ACTOR

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)")

TODAY = date.today()
GOOD = {"valid_until": TODAY + timedelta(days=400), "vision_test": TODAY - timedelta(days=30)}
ACCOUNTS = {
    "ines": ("Ines Inspector", {"method": "RT", "level": 2, "certificate": "RT2-1001", "issuer": "DGZfP", **GOOD}),
    "otto": ("Otto Approver", {"method": "RT", "level": 3, "certificate": "RT3-3001", "issuer": "DGZfP", **GOOD}),
    "lea": ("Lea Trainee", {"method": "RT", "level": 1, "certificate": "RT1-0042", **GOOD}),
}
# The device's two indications (demo: porosity P1 at 57.7/49.7 mm, crack C2 at 168.5/52.5 mm, 0.4 mm
# pixels), given regions in image pixels: a small closed polyline (a polygon) and an open polyline.
DEVICE_REGIONS = [
    [139.0, 119.0, 149.0, 119.0, 149.0, 129.0, 139.0, 129.0, 139.0, 119.0],
    [380.0, 131.0, 421.0, 128.0, 462.0, 134.0],
]
PIXEL_MM = 0.4
RGB = {"selected": (0, 229, 255), "inspector": (255, 112, 67), "device": (224, 64, 251)}


@dataclass
class Weld:
    server: RunningServer
    study: str
    series: str
    image: str
    serial: str

    @property
    def image_url(self) -> str:
        return f"/#/image/{self.study}/{self.series}/{self.image}"


@pytest.fixture(scope="module")
def weld(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weld]:
    root = tmp_path_factory.mktemp("evaluation")
    archive = open_archive(make_settings(root / "pacs-data"))
    (root / "in").mkdir()
    target: Dataset | None = None
    for ds in generate_demo(seed=0, count=2, scale=0.25):
        if target is None and ds.Modality == "DX" and "IndicationSequence" in ds:
            for item, data in zip(ds.IndicationSequence, DEVICE_REGIONS, strict=True):
                item.GraphicType = "POLYLINE"
                item.GraphicData = data
            target = ds
        archive.store_file(write_part10(ds, root / "in" / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    archive.db.dispose()
    assert target is not None
    running = start_server(root / "pacs-data")
    db = running.database()
    for name, (full_name, qualification) in ACCOUNTS.items():
        add_account(db, name, "inspector", full_name=full_name, qualifications=[qualification])
    db.dispose()
    yield Weld(running, target.StudyInstanceUID, target.SeriesInstanceUID, target.SOPInstanceUID, str(target.PatientID))
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as b:
        yield b


class Session:
    """A browser context logged in as one account; collects script errors and refused requests."""

    def __init__(self, browser: Any, weld: Weld, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=weld.server.http)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        self.page.on(
            "response", lambda r: self.refused.append(f"{r.status} {urlsplit(r.url).path}") if r.status >= 400 else None
        )
        login(self.page, name, PASSWORD)

    def close(self, refused: tuple[str, ...] = ()) -> None:
        self.context.close()
        assert not self.errors, self.errors
        assert tuple(self.refused) == refused


def colour_box(page: Any, name: str) -> dict[str, float] | None:
    """Client bounding box and count of the view canvas's pixels drawn in colour *name* (RGB)."""
    result: dict[str, float] | None = page.evaluate(
        """([r0, g0, b0]) => {
          const c = document.querySelector('canvas.view'); const rect = c.getBoundingClientRect();
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0, x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
          for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
            const i = (y * c.width + x) * 4;
            if (Math.abs(d[i] - r0) + Math.abs(d[i + 1] - g0) + Math.abs(d[i + 2] - b0) > 40) continue;
            n++; x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
          }
          if (!n) return null;
          return { n, left: rect.left + x0, top: rect.top + y0, right: rect.left + x1 + 1, bottom: rect.top + y1 + 1 };
        }""",
        list(RGB[name]),
    )
    return result


def near_box(box: dict[str, float] | None, a: tuple[float, float], b: tuple[float, float], slack: float = 6) -> bool:
    """Whether *box* spans the rectangle with client corners *a* and *b* (within *slack* pixels).

    The label is drawn above the first point in the same colour: the top may reach 20 pixels higher.
    """
    if box is None:
        return False
    left, right = sorted((a[0], b[0]))
    top, bottom = sorted((a[1], b[1]))
    sides = ((box["left"], left), (box["right"], right), (box["bottom"], bottom))
    return all(abs(u - v) <= slack for u, v in sides) and top - 20 - slack <= box["top"] <= top + slack


def sizes_in(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"\d+\.\d\d", text)]


def open_image(page: Any, weld: Weld) -> None:
    page.goto(weld.image_url)
    page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=30_000)
    page.wait_for_selector(".viewer-root[data-indications='loaded']", timeout=30_000)


def open_inspection(page: Any, weld: Weld) -> None:
    page.goto(f"/#/inspection/{weld.study}")
    page.wait_for_selector(".evaluation[data-state='loaded']", timeout=30_000)


def sign(page: Any, meaning: str, password: str) -> None:
    page.click(f"button.sign[data-meaning='{meaning}']")
    page.wait_for_selector("dialog.sign-dialog[open]")
    page.fill("dialog.sign-dialog input[type=password]", password)
    page.click("dialog.sign-dialog button[type=submit]")


def test_draw_edit_evaluate_sign_and_approve(browser: Any, weld: Weld) -> None:
    from playwright.sync_api import expect

    ines = Session(browser, weld, "ines")
    page = ines.page
    open_image(page, weld)
    # The device's indications: listed (marked as the device's) and drawn in their own colour.
    device_rows = page.locator(".ind-row.device")
    assert device_rows.count() == 2
    assert page.locator(".ind-state .status-badge").inner_text() == "received"
    assert device_rows.nth(1).locator(".ind-source").inner_text().lower() == "device"
    assert "Crack" in device_rows.nth(1).inner_text()
    assert "device disposition REJECT" in device_rows.nth(1).inner_text()
    crack = [image_to_client(page, 380, 131), image_to_client(page, 462, 134)]
    assert colour_box(page, "device") is not None

    # Draw a rectangle: 100 x 50 pixels of 0.4 mm -> 40 x 20 mm, 800 mm².
    page.select_option(".ind-tools select", "rect")
    page.click("button.ind-draw")
    a, b = image_to_client(page, 200, 60), image_to_client(page, 300, 110)
    drag(page, a, b)
    page.wait_for_selector("form.ind-form:not([hidden]) select[name=type]")
    page.select_option("form.ind-form select[name=type]", "LACK_OF_FUSION")
    page.fill("form.ind-form input[name=label]", "LOF-1")
    page.click("form.ind-form button[type=submit]")
    row = page.locator(".ind-row[data-source='inspector']")
    row.first.wait_for()
    assert row.count() == 1
    text = row.inner_text()
    assert "#1" in text
    assert "Lack of fusion" in text
    assert "LOF-1" in text
    assert "version 1" in text
    assert sizes_in(text) == pytest.approx([40.0, 20.0, 800.0], abs=0.05)
    indication_id = int(row.get_attribute("data-id") or 0)
    # The new one is selected: drawn in the selection colour where it was drawn.
    assert row.get_attribute("aria-selected") == "true"
    assert near_box(colour_box(page, "selected"), a, b)

    # Selecting both ways: a list row highlights the drawing, a click on a drawing selects the row.
    device_rows.nth(1).click()
    assert device_rows.nth(1).get_attribute("aria-selected") == "true"
    assert row.get_attribute("aria-selected") == "false"
    assert near_box(colour_box(page, "selected"), crack[0], crack[1], slack=10)
    assert near_box(colour_box(page, "inspector"), a, b)  # the rectangle is back in its own colour
    click(page, image_to_client(page, 250, 85))  # inside the rectangle
    assert row.get_attribute("aria-selected") == "true"
    assert device_rows.nth(1).get_attribute("aria-selected") == "false"
    click(page, image_to_client(page, 421, 128))  # on the crack's polyline
    assert device_rows.nth(1).get_attribute("aria-selected") == "true"
    drag(page, image_to_client(page, 250, 200), image_to_client(page, 250, 85))  # window/level, ending on the rectangle
    assert device_rows.nth(1).get_attribute("aria-selected") == "true"
    shot(page, "evaluation-1-indications")

    # Edit: a new label (markup stays text) and a redrawn, longer region -> version 2, 60 x 20 mm.
    row.click()
    row.locator("button", has_text="Edit").click()
    page.fill("form.ind-form input[name=label]", "LOF-1 <b>x</b>")
    page.click("form.ind-form button:has-text('Redraw region')")
    drag(page, image_to_client(page, 200, 60), image_to_client(page, 350, 110))
    page.click("form.ind-form button[type=submit]")
    page.wait_for_selector(".ind-row[data-source='inspector'] .ind-meta:has-text('version 2')")
    text = row.inner_text()
    assert "LOF-1 <b>x</b>" in text
    assert row.locator("b").count() == 0
    assert sizes_in(text) == pytest.approx([60.0, 20.0, 1200.0], abs=0.05)
    row.locator("button", has_text="History").click()
    history = row.locator(".ind-history li")
    history.first.wait_for()
    assert [history.nth(k).get_attribute("data-version") for k in range(history.count())] == ["1", "2"]
    assert "40.00 × 20.00 mm" in history.nth(0).inner_text()
    assert "ines" in history.nth(1).inner_text()
    shot(page, "evaluation-2-edited")

    # A polygon by clicks (Enter finishes): a right triangle of 40 px legs = 16 mm, area 128 mm²,
    # longest chord 22.63 mm, 11.31 mm across it. Then withdrawn: kept in the archive, gone from the list.
    page.select_option(".ind-tools select", "polygon")
    page.click("button.ind-draw")
    for x, y in ((60, 180), (100, 180), (100, 220)):
        click(page, image_to_client(page, x, y))
    page.keyboard.press("Enter")
    page.wait_for_selector("form.ind-form:not([hidden]) select[name=type]")
    page.select_option("form.ind-form select[name=type]", "POROSITY")
    page.click("form.ind-form button[type=submit]")
    page.wait_for_selector(".ind-row[data-source='inspector'] >> nth=1")
    polygon = page.locator(".ind-row[data-source='inspector']").nth(1)
    assert "#2" in polygon.inner_text()
    assert sizes_in(polygon.inner_text()) == pytest.approx([22.63, 11.31, 128.0], abs=0.01)
    polygon.locator("button", has_text="Edit").click()
    page.click("form.ind-form button.ind-withdraw")
    expect(page.locator(".ind-row.withdrawn")).to_have_count(1)
    assert "#2" in page.locator(".ind-row.withdrawn").inner_text()
    assert page.locator(".ind-row.withdrawn button", has_text="Edit").count() == 0
    row = page.locator(".ind-row[data-source='inspector']:not(.withdrawn)")
    assert row.count() == 1

    # The inspection: received, the device's REJECTED beside it; evaluate REJECT against ISO 10675-1 L2.
    open_inspection(page, weld)
    assert page.locator(".eval-status-line .status-badge").inner_text() == "received"
    assert "REJECTED" in page.locator(".eval-status-line .device-status").inner_text()
    assert page.locator(".ind-table tbody tr").count() == 1
    assert "version" not in page.locator(".ind-table tbody tr").inner_text()  # the version is a number column
    assert page.locator(".ind-table tbody tr td").nth(4).inner_text() == "2"
    assert page.locator("button.sign").count() == 0  # nothing to sign before an evaluation
    page.check(".eval-form fieldset:first-of-type input[value=REJECT]")
    page.check(f".ind-disp-row[data-id='{indication_id}'] input[value=REJECT]")
    page.select_option(".eval-form select[name=standard]", "ISO10675-1:L2")
    page.fill(".eval-form textarea[name=comment]", "lack of fusion 60 mm, not acceptable")
    page.fill(".eval-form input[name=repair_id]", "NCR-77")
    # The component's two earlier inspections may be named as the one this re-inspects (not here).
    assert page.locator(".eval-form select[name=reinspection_of] option").count() == 3
    page.click(".eval-form button[type=submit]")
    page.wait_for_selector(".evaluation[data-status='evaluated']")
    assert page.locator(".eval-summary .disp").inner_text() == "REJECT"
    assert "ISO 10675-1" in page.locator(".eval-summary").inner_text()
    assert page.locator(".ind-table .ind-disp").inner_text() == "REJECT"

    # Signing asks for the password again: a wrong one signs nothing.
    sign(page, "evaluated", "not-my-password-at-all")
    page.wait_for_selector("dialog.sign-dialog .error:not([hidden])")
    assert "wrong password" in page.locator("dialog.sign-dialog .error").inner_text()
    page.click("dialog.sign-dialog button:has-text('Cancel')")
    assert page.locator("table.signatures").count() == 0
    sign(page, "evaluated", PASSWORD)
    page.wait_for_selector("table.signatures tr[data-meaning='evaluated']")
    assert page.locator(".eval-status-line .status-badge").inner_text() == "evaluated"
    signature = page.locator("table.signatures tbody tr").first.inner_text()
    assert "Ines Inspector (ines)" in signature
    assert "RT Level 2" in signature
    assert "RT2-1001" in signature
    assert page.locator("button.sign").count() == 0  # a Level 2 neither signs twice nor approves
    shot(page, "evaluation-3-evaluated")
    ines.close(refused=(f"403 /api/inspections/{weld.study}/signatures",))  # the wrong password

    # RT Level 3 approves (password again): released as rejected, two signatures, the report.
    otto = Session(browser, weld, "otto")
    page = otto.page
    open_inspection(page, weld)
    sign(page, "approved", PASSWORD)
    page.wait_for_selector(".evaluation[data-status='rejected']")
    assert page.locator(".eval-status-line .status-badge").inner_text() == "rejected"
    rows = page.locator("table.signatures tbody tr")
    assert [rows.nth(k).get_attribute("data-meaning") for k in range(rows.count())] == ["evaluated", "approved"]
    assert [rows.nth(k).locator(".sig-state").inner_text() for k in range(2)] == ["valid", "valid"]
    assert "Otto Approver (otto)" in rows.nth(1).inner_text()
    assert "RT Level 3" in rows.nth(1).inner_text()
    link = page.locator("a.report-link")
    assert link.get_attribute("href") == f"/api/inspections/{weld.study}/report.pdf"
    pdf = page.request.get(link.get_attribute("href"))
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    assert page.locator(".report-stale").count() == 0
    assert page.locator("details.eval-again:not([open])").count() == 1  # evaluating again is one click away
    assert page.locator("button.sign").count() == 0
    shot(page, "evaluation-4-approved")
    # The status everywhere: search results and the component's timeline.
    page.goto(f"/#/search?level=inspection&serial={weld.serial}")
    found = page.locator(f".grid tbody tr:has(a[href='#/inspection/{weld.study}'])")
    found.wait_for()
    assert found.locator(".status-badge").inner_text() == "rejected"
    assert page.locator(".grid tbody tr").count() == 3  # the weld's three inspections
    page.select_option(".filters select[name=status]", "rejected")
    page.click(".filters button[type=submit]")
    expect(page.locator(".grid tbody tr")).to_have_count(1)
    assert "status=rejected" in page.url
    assert page.locator(".grid tbody tr .status-badge").inner_text() == "rejected"
    assert "REJECTED" in found.locator(".device-status").inner_text()
    page.goto(f"/#/component/{weld.serial}")
    event = page.locator(f".timeline li:has(a[href='#/inspection/{weld.study}'])")
    event.wait_for()
    assert event.locator(".status-badge").inner_text() == "rejected"
    assert page.locator(".timeline .status-badge", has_text="received").count() >= 1
    shot(page, "evaluation-5-timeline")
    otto.close()

    # A change after the signatures needs a reason, and visibly invalidates both.
    ines = Session(browser, weld, "ines")
    page = ines.page
    open_image(page, weld)
    row = page.locator(".ind-row[data-source='inspector']:not(.withdrawn)")
    row.click()
    row.locator("button", has_text="Edit").click()
    assert page.locator(".ind-state .status-badge").inner_text() == "rejected"
    assert "needs a reason" in page.locator(".ind-state").inner_text()
    assert "evaluated REJECT" in row.inner_text()
    reason = page.locator("form.ind-form input[name=reason]")
    assert reason.get_attribute("required") is not None
    page.fill("form.ind-form input[name=label]", "LOF-1b")
    reason.fill("label typo")
    page.click("form.ind-form button[type=submit]")
    page.wait_for_selector(".ind-row[data-source='inspector']:not(.withdrawn) .ind-meta:has-text('version 3')")
    open_inspection(page, weld)
    assert page.locator(".eval-status-line .status-badge").inner_text() == "evaluated"
    invalid = page.locator("table.signatures tr.sig-invalid")
    assert invalid.count() == 2
    assert "invalidated" in invalid.first.inner_text()
    assert "not released" in page.locator(".evaluation .report").inner_text()
    shot(page, "evaluation-6-invalidated")
    ines.close()


def test_level_1_sees_no_disposition_or_sign_controls(browser: Any, weld: Weld) -> None:
    lea = Session(browser, weld, "lea")
    page = lea.page
    open_inspection(page, weld)
    assert page.locator(".eval-status-line .status-badge").count() == 1
    assert page.locator(".eval-form").count() == 0
    assert page.locator("button.sign").count() == 0
    assert "Level 2" in page.locator(".eval-why").inner_text()
    # The API refuses her too, whatever the page shows.
    api = with_credentials(weld.server.http, "lea")
    r = httpx.post(
        f"{api}/api/inspections/{weld.study}/evaluation", json={"disposition": "ACCEPT", "standard": "ISO5817:B"}
    )
    assert r.status_code == 403
    shot(page, "evaluation-7-level1")
    lea.close()
