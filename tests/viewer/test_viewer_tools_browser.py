"""The viewer's tools on images with known content, in Chromium against `pacs serve`.

Angle, rectangle / ellipse ROI, line profile, pixel read-out with rescale, window presets,
rotate / flip / invert, keyboard reachability, the 1366x768 layout and the preview-first opening
of a 10000-pixel weld strip. The images come from tests/support/viewer_phantoms.py, where every expected
value is derived. Screenshots go to test-artifacts/. Skipped without /usr/bin/chromium.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset

from storage.factory import open_archive
from tests.support import viewer_phantoms as ph
from tests.support.accounts import PASSWORD, with_credentials
from tests.support.browser import CHROMIUM, chromium, classify, click, drag, grey_at, image_to_client, login, shot
from tests.support.factories import write_part10
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from tests.support.viewer_data import ACTOR

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)")

NUMBER = r"(-?[\d.]+|∞)"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, dict[str, Dataset]]]:
    root = tmp_path_factory.mktemp("phantoms")
    archive = open_archive(make_settings(root / "pacs-data"))
    datasets = ph.all_datasets()
    (root / "in").mkdir()
    for ds in datasets.values():
        archive.store_file(write_part10(ds, root / "in" / f"{ds.SOPInstanceUID}.dcm"), ACTOR, move=True)
    archive.db.dispose()
    running = start_server(root / "pacs-data")
    running.url_as("inspector", "ines")  # the account the browser logs in as
    yield running, datasets
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, phantoms: tuple[RunningServer, dict[str, Dataset]]) -> Iterator[Any]:
    server, _ = phantoms
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server.http)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    login(pg, "ines", PASSWORD)
    yield pg
    context.close()
    assert not errors, errors


def open_image(page: Any, phantoms: tuple[RunningServer, dict[str, Dataset]], name: str, loaded: str = "full") -> None:
    """Open phantom *name* in the viewer, its kept measurements withdrawn first (tests share the server)."""
    server, datasets = phantoms
    ds = datasets[name]
    api = with_credentials(server.http, "ines")
    kept = httpx.get(f"{api}/api/images/{ds.SOPInstanceUID}/annotations", timeout=30).json()["items"]
    for annotation in kept:
        httpx.post(f"{api}/api/annotations/{annotation['id']}/withdraw", timeout=30).raise_for_status()
    page.goto(f"/#/image/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}")
    page.wait_for_selector(f".viewer-root[data-loaded='{loaded}']", timeout=30_000)
    page.wait_for_selector(".viewer-root[data-annotations='loaded']", timeout=30_000)


def measurements(page: Any) -> list[str]:
    texts: list[str] = page.locator(".annotations li .value").all_inner_texts()
    return texts


def stats_of(text: str) -> dict[str, float]:
    """mean / SD / min / max / SNR from an ROI measurement text."""
    out = {}
    for key in ("mean", "SD", "min", "max", "SNR"):
        match = re.search(rf"{key} {NUMBER}", text)
        assert match, (key, text)
        out[key] = math.inf if match.group(1) == "∞" else float(match.group(1))
    return out


def checkerboard_stats(values: tuple[int, int]) -> dict[str, float]:
    lo, hi = (ph.modality(v) for v in values)
    mean, sd = (lo + hi) / 2, (hi - lo) / 2
    return {"mean": mean, "SD": sd, "min": lo, "max": hi, "SNR": mean / sd}


def test_length_and_angle_use_the_physical_pixel_spacing(page: Any, phantoms: Any) -> None:
    """Rows 0.2 mm apart, columns 0.1 mm: 100 rows = 20 mm; the angle is physical (45°, not 26.6°)."""
    open_image(page, phantoms, "phantom")
    canvas = page.locator("canvas.view")
    canvas.focus()
    page.keyboard.press("l")
    drag(page, image_to_client(page, 500.5, 250.5), image_to_client(page, 500.5, 350.5))
    assert re.fullmatch(r"(20\.0\d|19\.9\d) mm \(object pixel spacing\)", measurements(page)[0])
    # angle: vertex B, arm to A along the row (100 columns = 10 mm), arm to C 100 columns right and
    # 50 rows up (10 mm, 10 mm): 45° physically, 26.57° in pixels. Press-drag-release the first arm,
    # then click the end of the second.
    page.keyboard.press("a")
    b, a, c = (300.5, 330.5), (400.5, 330.5), (400.5, 280.5)
    drag(page, image_to_client(page, *a), image_to_client(page, *b))
    page.mouse.move(*image_to_client(page, *c), steps=6)
    click(page, image_to_client(page, *c))
    texts = measurements(page)
    assert len(texts) == 2, texts
    match = re.fullmatch(r"([\d.]+)°", texts[1])
    assert match, texts
    assert abs(float(match.group(1)) - 45.0) < 0.6
    # the same angle by three clicks (vertex in the middle), mirrored: 135° between the arms
    click(page, image_to_client(page, 200.5, 330.5))
    click(page, image_to_client(page, 300.5, 330.5))
    click(page, image_to_client(page, 400.5, 380.5))
    texts = measurements(page)
    assert len(texts) == 3, texts
    assert abs(float(texts[2].rstrip("°")) - 135.0) < 0.6
    shot(page, "10-length-angle")


def test_rectangle_and_ellipse_roi_statistics(page: Any, phantoms: Any) -> None:
    open_image(page, phantoms, "phantom")
    page.locator("canvas.view").focus()
    # rectangle inside the checkerboard rectangle: 1500/2500 stored -> 2900/4900 modality
    page.keyboard.press("r")
    r0, r1, c0, c1 = ph.RECT_REGION
    drag(page, image_to_client(page, c0 + 10, r0 + 10), image_to_client(page, c1 - 10, r1 - 10))
    expected = checkerboard_stats(ph.RECT_VALUES)
    got = stats_of(measurements(page)[0])
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=0.01), (key, got, expected)
    assert got["min"] == expected["min"]
    assert got["max"] == expected["max"]
    # area: 180 x 80 px at 0.1 x 0.2 mm = 288 mm²
    assert re.search(r"28[6-9]\.\d\d mm²", measurements(page)[0])
    # ellipse inscribed in a box of ±45 px around the disc centre (radius 60): only disc pixels
    cx, cy = ph.DISC_CENTER
    box = (image_to_client(page, cx - 45, cy - 45), image_to_client(page, cx + 45, cy + 45))
    page.keyboard.press("e")
    drag(page, *box)
    expected = checkerboard_stats(ph.DISC_VALUES)
    got = stats_of(measurements(page)[1])
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=0.01), (key, got, expected)
    assert "mm²" in measurements(page)[1]
    # a rectangle over the same box reaches the background in its corners (outside radius 60)
    page.keyboard.press("r")
    drag(page, *box)
    got = stats_of(measurements(page)[2])
    assert got["min"] == ph.modality(ph.BACKGROUND)
    assert got["max"] == ph.modality(ph.DISC_VALUES[1])
    shot(page, "11-roi")


def plot_trace(page: Any) -> list[float | None]:
    """For each column of the profile plot, the row of its yellow trace (weighted by yellowness; None: none)."""
    rows: list[float | None] = page.evaluate(
        """() => { const c = document.querySelector('canvas.plot');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let x = 0; x < c.width; x++) { let s = 0, n = 0;
          for (let y = 0; y < c.height; y++) { const i = (y * c.width + x) * 4;
            const w = d[i] - d[i + 2]; if (w > 40 && d[i + 1] > d[i + 2]) { s += y * w; n += w; } }
          out.push(n ? s / n : null); }
        return out; }"""
    )
    return rows


def test_line_profile_plots_a_known_ramp(page: Any, phantoms: Any) -> None:
    """Across the band: flat, linear ramp, flat. The plot traces it; the text gives length and range."""
    open_image(page, phantoms, "phantom")
    page.locator("canvas.view").focus()
    assert page.locator("canvas.plot").is_hidden()
    page.keyboard.press("f")
    y = (ph.BAND_ROWS[0] + ph.BAND_ROWS[1]) / 2
    a, _, _, d = ph.BAND_COLUMNS
    drag(page, image_to_client(page, a + 0.5, y), image_to_client(page, d - 0.5, y))
    text = measurements(page)[0]
    # 299 columns at 0.1 mm
    assert re.search(r"29\.[89]\d mm \(object pixel spacing\)", text), text
    low, high = ph.modality(ph.BAND_LOW), ph.modality(ph.BAND_HIGH)
    assert f"min {low:.0f}" in text, text
    assert f"max {high:.0f}" in text, text
    plot = page.locator("canvas.plot")
    assert plot.is_visible()
    trace = plot_trace(page)
    drawn = [i for i, v in enumerate(trace) if v is not None]
    assert len(drawn) > 0.8 * len(trace), "the profile line covers the plot width"
    x0, x1 = drawn[0], drawn[-1]

    def row_at(fraction: float) -> float:
        column = round(x0 + fraction * (x1 - x0))
        values = [v for v in trace[column - 2 : column + 3] if v is not None]
        return float(np.mean(values))

    bottom, middle, top = row_at(1 / 6), row_at(1 / 2), row_at(5 / 6)
    assert bottom > middle > top  # low flat, ramp, high flat (canvas y grows downwards)
    assert abs(middle - (bottom + top) / 2) < 0.1 * (bottom - top)  # linear ramp: halfway at the middle
    assert abs(row_at(0.05) - bottom) < 2
    assert abs(row_at(0.95) - top) < 2
    shot(page, "12-profile")


def test_pixel_readout_in_stored_and_rescaled_units(page: Any, phantoms: Any) -> None:
    open_image(page, phantoms, "phantom")
    pixels = ph.phantom_pixels()
    for x, y in ((50, 50), (51, 50), (ph.BAND_COLUMNS[2] + 5, 220)):
        page.mouse.move(*image_to_client(page, x + 0.5, y + 0.5), steps=3)
        text = page.locator(".status-line .readout").first.inner_text()
        stored = int(pixels[y, x])
        assert f"x {x}, y {y}" in text, text
        assert f"stored {stored}" in text, text
        assert f"rescaled {ph.modality(stored):.2f}" in text, text
        match = re.search(r"([\d.]+), ([\d.]+) mm", text)
        assert match, text
        assert float(match.group(1)) == pytest.approx((x + 0.5) * ph.COLUMN_MM, abs=0.06)
        assert float(match.group(2)) == pytest.approx((y + 0.5) * ph.ROW_MM, abs=0.12)
    shot(page, "13-readout")


def window_text(page: Any) -> tuple[float, float]:
    text = page.locator(".status-line .readout").nth(1).inner_text()
    match = re.match(r"W (-?\d+) / L (-?\d+)", text)
    assert match, text
    return float(match.group(1)), float(match.group(2))


def grey(value: float, center: float, width: float) -> int:
    """The linear VOI LUT (PS3.3 C.11.2.1.2) to 0..255, as the viewer computes it."""
    y = ((value - (center - 0.5)) / (width - 1) + 0.5) * 255
    return round(min(255.0, max(0.0, y)))


def test_window_presets_stored_full_and_histogram(page: Any, phantoms: Any) -> None:
    open_image(page, phantoms, "phantom")
    values = ph.modality(ph.phantom_pixels().astype(float))
    preset = page.locator("select[aria-label='Window preset']")
    assert preset.input_value() == "stored"
    center, width = ph.STORED_WINDOW
    assert window_text(page) == (width, center)
    # the pixel under a point of the checkerboard rectangle, rendered through each window
    value = float(values[60, 60])
    point = image_to_client(page, 60.5, 60.5)
    assert grey_at(page, *point) == grey(value, center, width)
    # full range: -100 .. 59900 (the cold and hot rows)
    preset.select_option("full")
    full = (values.max() - values.min(), (values.max() + values.min()) / 2)
    assert window_text(page) == full
    assert grey_at(page, *point) == grey(value, full[1], full[0])
    # auto: the 0.5 % / 99.5 % percentiles leave the outlier rows out: about 1900 .. 6700
    preset.select_option("auto")
    w, c = window_text(page)
    lo, hi = ph.modality(ph.BACKGROUND), ph.modality(max(ph.DISC_VALUES))
    assert abs(w - (hi - lo)) < 60, w
    assert abs(c - (hi + lo) / 2) < 40, c
    assert abs(grey_at(page, *point) - grey(value, (hi + lo) / 2, hi - lo)) <= 4
    # the same presets from the keyboard: 1 stored, 2 full, 3 auto
    page.locator("canvas.view").focus()
    page.keyboard.press("1")
    assert window_text(page) == (width, center)
    assert preset.input_value() == "stored"
    page.keyboard.press("2")
    assert window_text(page) == full
    assert preset.input_value() == "full"
    page.keyboard.press("3")
    assert abs(window_text(page)[0] - (hi - lo)) < 60
    assert preset.input_value() == "auto"
    shot(page, "14-window-auto")


def quadrant(point: dict[str, float], box: dict[str, float]) -> str:
    cx, cy = (box["left"] + box["right"]) / 2, (box["top"] + box["bottom"]) / 2
    return ("top" if point["y"] < cy else "bottom") + "-" + ("left" if point["x"] < cx else "right")


def test_rotate_flip_and_invert_move_the_pixels(page: Any, phantoms: Any) -> None:
    """MARKS: white square top left, medium square bottom left; each transform puts them elsewhere."""
    open_image(page, phantoms, "marks")

    def where() -> tuple[str, str, float]:
        found = classify(page)
        box = found["box"]
        aspect = (box["right"] - box["left"]) / (box["bottom"] - box["top"])
        return quadrant(found["white"], box), quadrant(found["medium"], box), aspect

    white, medium, aspect = where()
    assert (white, medium) == ("top-left", "bottom-left")
    assert aspect == pytest.approx(1.5, rel=0.05)
    page.get_by_role("button", name="⟳ 90°").click()  # clockwise
    white, medium, aspect = where()
    assert (white, medium) == ("top-right", "top-left")
    assert aspect == pytest.approx(1 / 1.5, rel=0.05)
    shot(page, "15-rotated")
    # a flip mirrors the screen image, whatever the rotation
    page.get_by_role("button", name="Flip H").click()
    assert where()[:2] == ("top-left", "top-right")
    steps = [
        ("⟳ 90°", ("top-right", "bottom-right")),  # still clockwise on the screen after a flip
        ("⟳ 90°", ("bottom-right", "bottom-left")),
        ("⟳ 90°", ("bottom-left", "top-left")),
        ("Flip H", ("bottom-right", "top-right")),
        ("⟳ 90°", ("bottom-left", "bottom-right")),
        ("⟳ 90°", ("top-left", "bottom-left")),  # the original orientation again
        ("Flip V", ("bottom-left", "top-left")),
        ("Flip V", ("top-left", "bottom-left")),
        ("Flip H", ("top-right", "bottom-right")),
        ("Flip H", ("top-left", "bottom-left")),
    ]
    for button, expected in steps:
        page.get_by_role("button", name=button, exact=True).click()
        assert where()[:2] == expected, button
    # invert: white -> black, medium (159) -> 96, background (64) -> 191
    found = classify(page)
    white_at, medium_at = (found["white"]["x"], found["white"]["y"]), (found["medium"]["x"], found["medium"]["y"])
    background_at = (found["white"]["x"] + 80, found["white"]["y"] + 20)
    before = [grey_at(page, *p) for p in (white_at, medium_at, background_at)]
    assert before[0] == 255, before
    assert 150 <= before[1] <= 170, before
    assert 55 <= before[2] <= 75, before
    page.get_by_role("button", name="Invert").click()
    after = [grey_at(page, *p) for p in (white_at, medium_at, background_at)]
    assert after == [255 - g for g in before]
    assert "inverted" in page.locator(".status-line .readout").nth(1).inner_text()
    shot(page, "16-inverted")


def test_zoomed_and_panned_view_shows_the_right_pixels(page: Any, phantoms: Any) -> None:
    """Zoomed in, the viewer windows only what is on the screen; panning must bring the rest in."""
    open_image(page, phantoms, "phantom")
    values = ph.modality(ph.phantom_pixels().astype(float))
    page.locator("canvas.view").focus()
    for _ in range(8):
        page.keyboard.press("+")  # about 6x: a part of the image fills the canvas
    page.keyboard.press("2")  # a new window, applied while zoomed in
    width, center = values.max() - values.min(), (values.max() + values.min()) / 2
    box = page.locator("canvas.view").bounding_box()
    assert box is not None
    for moves in (["ArrowLeft"] * 6, ["ArrowUp"] * 5, ["ArrowRight"] * 14, ["ArrowDown"] * 12):
        for key in moves:
            page.keyboard.press(key)
        checked = 0
        for y in range(5, ph.PHANTOM_SHAPE[0], 23):
            for x in range(3, ph.PHANTOM_SHAPE[1], 17):
                cx, cy = image_to_client(page, x + 0.5, y + 0.5)
                if box["x"] + 2 < cx < box["x"] + box["width"] - 2 and box["y"] + 2 < cy < box["y"] + box["height"] - 2:
                    assert grey_at(page, cx, cy) == grey(float(values[y, x]), center, width), (moves[0], x, y)
                    checked += 1
        assert checked > 10, moves[0]
    shot(page, "20-zoomed-panned")


def test_every_tool_is_reachable_by_keyboard(page: Any, phantoms: Any) -> None:
    open_image(page, phantoms, "phantom")
    page.evaluate("() => document.activeElement.blur()")
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                """() => { const e = document.activeElement;
                if (e.matches('button[data-tool]')) return 'tool:' + e.dataset.tool;
                return e.tagName.toLowerCase() + ':' + (e.getAttribute('aria-label') || e.textContent.trim()); }"""
            )
        )
    tools = ["wl", "pan", "length", "angle", "rect", "ellipse", "profile"]
    for tool in tools:
        assert f"tool:{tool}" in seen, [s[:40] for s in seen]
    for control in ("select:Window preset", "button:Invert", "button:⟳ 90°", "button:Flip H", "button:Flip V"):
        assert control in seen, seen
    assert any(s.startswith("canvas:Image") for s in seen), " | ".join(s[:25] for s in seen)
    # a focused tool button is pressed with Enter or Space
    angle_button = page.locator("button[data-tool='angle']")
    angle_button.focus()
    page.keyboard.press("Enter")
    assert angle_button.get_attribute("aria-pressed") == "true"
    ellipse_button = page.locator("button[data-tool='ellipse']")
    ellipse_button.focus()
    page.keyboard.press(" ")
    assert ellipse_button.get_attribute("aria-pressed") == "true"
    assert angle_button.get_attribute("aria-pressed") == "false"
    # on the image, each tool has its shortcut key (shown in the button's title)
    page.locator("canvas.view").focus()
    for tool, key in zip(tools, "wplaref", strict=True):
        page.keyboard.press(key)
        button = page.locator(f"button[data-tool='{tool}']")
        assert button.get_attribute("aria-pressed") == "true", tool
        assert f"({key.upper()})" in (button.get_attribute("title") or "")
    # and the view keys act: invert, rotate, flip, zoom, fit
    view = "() => ({...window.viewer.view})"
    before = page.evaluate(view)
    page.keyboard.press("+")
    assert page.evaluate(view)["zoom"] == pytest.approx(before["zoom"] * 1.25)
    page.keyboard.press("-")
    assert page.evaluate(view)["zoom"] == pytest.approx(before["zoom"])
    for key in ("i", "]", "h", "v"):
        page.keyboard.press(key)
    after = page.evaluate(view)
    assert after["invert"] != before["invert"]
    assert after["rotation"] == (before["rotation"] + 90) % 360
    assert after["flipH"] != before["flipH"]
    assert after["flipV"] != before["flipV"]
    page.keyboard.press("0")
    page.keyboard.press("[")
    assert page.evaluate(view)["rotation"] == before["rotation"]


def test_layout_fits_1366x768(page: Any, phantoms: Any) -> None:
    open_image(page, phantoms, "phantom")
    # a measurement and a profile plot make the side panel as full as it gets
    page.locator("canvas.view").focus()
    page.keyboard.press("f")
    drag(page, image_to_client(page, 100, 220), image_to_client(page, 400, 220))
    page.get_by_text("Attributes").click()
    sizes = page.evaluate(
        """() => ({ scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth, scrollHeight: document.documentElement.scrollHeight,
        clientHeight: document.documentElement.clientHeight,
        innerWidth: window.innerWidth, innerHeight: window.innerHeight })"""
    )
    assert sizes["scrollWidth"] <= sizes["clientWidth"], sizes  # no horizontal scrolling
    assert sizes["scrollHeight"] <= sizes["clientHeight"], sizes  # nor vertical: the viewer fills the window
    width, height = sizes["innerWidth"], sizes["innerHeight"]

    def inside(selector: str) -> dict[str, float]:
        """The element's box, checked to lie inside the viewport."""
        box = page.locator(selector).first.bounding_box()
        assert box is not None, selector
        left, top, right, bottom = box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]
        assert min(left, top) >= 0, (selector, box)
        assert right <= width + 0.5, (selector, box)
        assert bottom <= height + 0.5, (selector, box)
        return dict(box)

    canvas = inside("canvas.view")
    assert canvas["width"] >= 800, canvas
    assert canvas["height"] >= 500, canvas
    inside(".toolbar")
    for button in page.locator(".toolbar button, .toolbar select").all():
        box = button.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= width
        assert box["y"] + box["height"] <= height
    inside(".status-line")
    inside("canvas.plot")
    shot(page, "17-layout-1366x768")


# Centroids (client coordinates) of the white pixels in the left and right halves of the view canvas.
WHITE_HALVES = """() => { const c = document.querySelector('canvas.view'); const r = c.getBoundingClientRect();
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const acc = [[0, 0, 0], [0, 0, 0]];
        for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) { const i = (y * c.width + x) * 4;
          if (d[i] < 250 || d[i + 1] < 250) continue;
          const a = acc[x < c.width / 2 ? 0 : 1]; a[0] += x; a[1] += y; a[2]++; }
        return acc.map(([sx, sy, n]) => ({ x: r.left + sx / n + 0.5, y: r.top + sy / n + 0.5, n })); }"""


def test_weld_strip_opens_from_a_reduced_preview(page: Any, phantoms: Any) -> None:
    """10000 x 1000 px: the first frame request is decimated; measurements on it are in full-size mm."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/pixels" in r.url else None)
    open_image(page, phantoms, "strip", loaded="preview")
    page.wait_for_timeout(300)
    assert requests, "no frame requested"
    assert re.search(r"/pixels\?scale=(\d+)$", requests[0]), requests
    scale = int(requests[0].rsplit("=", 1)[1])
    assert scale >= 5
    assert all("scale=" in url for url in requests), "nothing at full resolution before it is needed"
    assert page.locator(".viewer-root").get_attribute("data-loaded") == "preview"
    # find the two markers on the screen (white blobs left and right), measure between them
    found = page.evaluate(WHITE_HALVES)
    assert all(m["n"] > 0 for m in found), found
    page.locator("canvas.view").focus()
    page.keyboard.press("l")
    drag(page, (found[0]["x"], found[0]["y"]), (found[1]["x"], found[1]["y"]))
    text = measurements(page)[0]
    match = re.fullmatch(r"([\d.]+) mm \(detector pixel spacing\)", text)
    assert match, text
    (x1, _), (x2, _) = ph.STRIP_MARKERS
    assert abs(float(match.group(1)) - (x2 - x1) * ph.STRIP_SPACING_MM) < 3.0, text
    # an ROI on the preview: the flat region's value, flagged as preview resolution
    page.keyboard.press("r")
    rows, cols = ph.STRIP_FLAT
    drag(
        page,
        image_to_client(page, cols.start + 100, rows.start + 30),
        image_to_client(page, cols.stop - 100, rows.stop - 30),
    )
    roi = measurements(page)[1]
    assert stats_of(roi)["mean"] == ph.STRIP_FLAT_VALUE, roi
    assert "(preview resolution)" in roi, roi
    shot(page, "18-weld-strip-preview")
    # zooming in fetches the full resolution
    page.keyboard.press("+")
    page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=30_000)
    assert any("scale=" not in url for url in requests), requests
    # zoomed out this far, the full frame is shown block-averaged: both markers are still there
    page.once("dialog", lambda dialog: dialog.accept())  # "withdraw every measurement?"
    page.get_by_role("button", name="Clear measurements").click()  # (the length's end points hid them)
    page.wait_for_selector(".annotations li", state="detached")  # (no wait_for_function: it evals, the CSP forbids)
    page.locator("canvas.view").focus()
    page.keyboard.press("0")
    again = page.evaluate(WHITE_HALVES)
    for before, after in zip(found, again, strict=True):
        assert abs(before["x"] - after["x"]) < 3, (found, again)
        assert abs(before["y"] - after["y"]) < 3, (found, again)
    shot(page, "19-weld-strip-full")


def test_weld_strip_preview_request_is_small(phantoms: Any) -> None:
    """The preview is decimated on the server: rows/scale x columns/scale values, not the frame."""
    import urllib.request

    server, datasets = phantoms
    ds = datasets["strip"]
    url = f"{server.http}/api/images/{ds.SOPInstanceUID}/frames/1/pixels?scale=10"
    signed = urllib.request.Request(url, headers={"Authorization": f"Bearer {server.token('inspector', 'ines')}"})
    with urllib.request.urlopen(signed, timeout=30) as response:
        body = response.read()
        assert response.headers["X-Rows"] == "100"
        assert response.headers["X-Columns"] == "1000"
    expected = ph.strip_pixels()[::10, ::10]
    assert np.array_equal(np.frombuffer(body, dtype="<u2").reshape(100, 1000), expected)
