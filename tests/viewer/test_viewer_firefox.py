"""Smoke test of the web viewer in Firefox (Debian's firefox-esr over WebDriver BiDi).

Opens a radiograph, checks the canvas drew the image, changes window/level by dragging and by a
preset key, measures a length, and checks that nothing was logged as an error. Skipped when no
Firefox is installed (CI installs firefox-esr). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset

from storage.factory import open_archive
from tests.support import viewer_phantoms as ph
from tests.support.accounts import PASSWORD
from tests.support.bidi import Tab, firefox, firefox_binary, first_tab
from tests.support.browser import ARTIFACTS
from tests.support.factories import write_part10
from tests.support.servers import RunningServer, make_settings, start_server, stop_server
from tests.support.viewer_data import ACTOR

FIREFOX = firefox_binary()
pytestmark = pytest.mark.skipif(FIREFOX is None, reason="Firefox not installed (apt-get install -y firefox-esr)")

# A grid of grey values of the view canvas and the number of its non-black pixels.
SAMPLE = """() => { const c = document.querySelector('canvas.view');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const grid = []; let lit = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 8) lit++;
  for (let y = 0.05; y < 1; y += 0.05) for (let x = 0.05; x < 1; x += 0.05)
    grid.push(d[(Math.floor(y * c.height) * c.width + Math.floor(x * c.width)) * 4]);
  return { grid, lit, total: c.width * c.height }; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Dataset]]:
    root = tmp_path_factory.mktemp("firefox")
    archive = open_archive(make_settings(root / "pacs-data"))
    ds = ph.phantom_dataset()
    archive.store_file(write_part10(ds, root / "phantom.dcm"), ACTOR, move=True)
    archive.db.dispose()
    running = start_server(root / "pacs-data")
    running.url_as("inspector", "ines")  # the account Firefox logs in as
    yield running, ds
    stop_server(running)


@pytest.fixture(scope="module")
def tab() -> Iterator[Tab]:
    pytest.importorskip("websockets")
    assert FIREFOX is not None
    with firefox(FIREFOX) as bidi:
        yield first_tab(bidi)


def test_viewer_in_firefox(tab: Tab, server: tuple[RunningServer, Dataset]) -> None:
    running, ds = server
    tab.set_viewport(1366, 768)
    # the login page: no session yet, so the viewer route sends Firefox there and back after logging in
    tab.navigate(f"{running.http}/#/image/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}")
    tab.wait_for("() => location.pathname === '/login' && document.querySelector('form#login[data-ready]') !== null")
    tab.call(
        "(name, password) => { document.querySelector('#username').value = name;"
        " document.querySelector('#password').value = password;"
        " document.querySelector('form#login').requestSubmit(); }",
        "ines",
        PASSWORD,
    )
    tab.wait_for("() => document.querySelector('#user .who-name')?.textContent === 'Ines'")
    tab.wait_for("() => document.querySelector(\".viewer-root[data-loaded='full']\") !== null")
    user_agent = tab.call("() => navigator.userAgent")
    assert "Firefox/" in user_agent
    before: dict[str, Any] = tab.call(SAMPLE)
    assert before["lit"] > 0.05 * before["total"], "the image is drawn"
    assert len(set(before["grid"])) > 2, "with more than one grey level"
    window_before = tab.call("() => document.querySelectorAll('.status-line .readout')[1].textContent")
    # window/level by dragging on the image
    box = tab.call(
        "() => { const r = document.querySelector('canvas.view').getBoundingClientRect(); "
        "return [r.x, r.y, r.width, r.height]; }"
    )
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    tab.drag((cx, cy), (cx + 150, cy + 100))
    tab.wait_for("() => window.viewer.preset === 'custom'")
    dragged: dict[str, Any] = tab.call(SAMPLE)
    assert dragged["grid"] != before["grid"]
    assert tab.call("() => document.querySelectorAll('.status-line .readout')[1].textContent") != window_before
    # a preset from the keyboard (the canvas has the focus after the drag)
    tab.press("2")
    tab.wait_for("() => document.querySelector(\"select[aria-label='Window preset']\").value === 'full'")
    assert tab.call(SAMPLE)["grid"] != dragged["grid"]
    # a calibrated length: 100 rows at 0.2 mm
    tab.press("l")
    a = tab.call("() => window.viewer.imageToClient(500.5, 250.5)")
    b = tab.call("() => window.viewer.imageToClient(500.5, 350.5)")
    tab.drag((a["x"], a["y"]), (b["x"], b["y"]))
    text = tab.wait_for("() => document.querySelector('.annotations li .value')?.textContent")
    match = re.fullmatch(r"([\d.]+) mm \(object pixel spacing\)", text)
    assert match, text
    assert abs(float(match.group(1)) - 100 * ph.ROW_MM) < 0.3  # whole-pixel pointer positions in BiDi
    tab.screenshot(ARTIFACTS / "firefox-viewer.png")
    assert tab.errors() == []
