"""The quality dashboard in Chromium: charts render, drill-down from the worst welder, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.factory import open_archive
from tests.support import quality as fixture
from tests.support.accounts import PASSWORD, add_account
from tests.support.browser import chromium, login, shot
from tests.support.servers import make_settings
from tests.support.webutil import http_server

MARCH = "from=2024-03-01&to=2024-03-31"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("playwright.sync_api")
    archive = open_archive(make_settings(Path(tmp_path_factory.mktemp("quality")) / "pacs-data"))
    fixture.build(archive.db)
    add_account(archive.db, "quinn", "quality", full_name="Quinn <b>Quality</b>")
    with http_server(archive, role=None) as url:
        yield url
    archive.db.dispose()


@pytest.fixture
def page(base: str) -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base, accept_downloads=True)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        login(pg, "quinn", PASSWORD)
        yield pg
        context.close()
    assert not errors, errors


def test_charts_render_and_the_worst_welder_drills_down(page: Any) -> None:
    page.goto(f"/#/quality?{MARCH}&period=week&group_by=welder")
    page.wait_for_selector("#q-groups svg .q-bar")
    shot(page, "quality-dashboard")
    # The p-chart has one point per ISO week, the Pareto one bar per type, porosity first.
    assert page.locator("#q-pchart .q-point").count() == 2
    assert page.locator("#q-pareto .q-bar").first.get_attribute("data-type") == "POROSITY"
    assert page.locator("#q-pareto .q-bar").count() == 4
    tiles = page.locator(".q-tile-value").all_inner_texts()
    assert tiles[:5] == ["8", "6", "33.3 %", "40.0 %", "1"]
    # Welders ranked by reject rate: W2 (1 of 3) above W1 (1 of 4); the worst bar is marked.
    assert page.locator("#q-groups .q-bar").evaluate_all("els => els.map(e => e.dataset.group)") == [
        "W2",
        "W1",
        "(none)",
    ]
    worst = page.locator("#q-groups .q-bar:has(rect.worst)")
    assert worst.get_attribute("data-group") == "W2"
    worst.click()
    page.wait_for_selector(".q-total")
    assert "welder=W2" in page.url
    assert "outcome=rejected" in page.url
    assert page.locator(".q-total").get_attribute("data-total") == "1"
    rows = page.locator(".q-table tbody tr").all_inner_texts()
    assert len(rows) == 1
    assert rows[0].startswith("2024-03-07")
    assert "W2" in rows[0]
    assert "REJECT" in rows[0]
    # The row opens the inspection (its radiographs and indications).
    page.locator(".q-open").first.click()
    page.wait_for_url("**/#/inspection/**")
    assert fixture.ROOT in page.url


def test_csv_export_downloads_the_table(page: Any) -> None:
    page.goto(f"/#/quality?{MARCH}&group_by=company")
    page.wait_for_selector("#q-groups svg .q-bar")
    with page.expect_download() as info:
        page.locator("#q-groups a.csv").click()
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["group", "inspections", "evaluated", "rejected", "reject_rate", "repaired", "first_pass_yield"]
    assert lines[1:] == [["NDT-A", "5", "4", "1", "0.25", "1", "0.333333"], ["NDT-B", "3", "2", "1", "0.5", "0", "0.5"]]


def test_an_empty_period_says_so(page: Any) -> None:
    page.goto("/#/quality?from=2024-04-01&to=2024-04-30")
    page.wait_for_selector("#q-pchart")
    assert "No evaluated inspections" in page.locator("#q-pchart").inner_text()
    assert "No indications" in page.locator("#q-pareto").inner_text()
