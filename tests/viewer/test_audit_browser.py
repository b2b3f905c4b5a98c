"""The auditor's pages in Chromium: the audit log search and a component's history with its evidence bundle."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from storage.archive import Archive
from tests.support.accounts import PASSWORD, without_credentials
from tests.support.browser import chromium, login, shot
from tests.support.webutil import http_server
from tests.viewer.test_audit_api import _fill

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium not installed")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_auditor_reads_the_history_and_downloads_the_evidence(archive: Archive, tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api")
    _fill(archive, tmp_path)
    with http_server(archive, role="auditor", user="anna") as base, chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1366, "height": 768},
            base_url=without_credentials(base),
            accept_downloads=True,
            bypass_csp=True,
        )
        page = context.new_page()
        login(page, "anna", PASSWORD)
        assert page.locator("#user .who-role").inner_text() == "(auditor)"
        assert page.locator("#nav-audit").is_visible()
        page.goto("/#/history/SN-AUDIT-1")
        page.wait_for_selector("ol.history li")
        assert page.locator("h1").inner_text().startswith("History of SN-AUDIT-1")
        assert page.locator("ol.history li.event-image").count() == 3
        assert page.locator("ol.history li.event-inspection").count() == 2
        shot(page, "audit-history")
        with page.expect_download() as download:
            page.click("#evidence")
        body = Path(download.value.path()).read_bytes()
        with zipfile.ZipFile(io.BytesIO(body)) as bundle:
            names = bundle.namelist()
        assert {"manifest.json", "verify.py", "audit.jsonl", "history.json"} <= set(names)
        page.click("text=Audit entries of this component")
        page.wait_for_selector("table.audit tbody tr")
        # The three stores of SN-AUDIT-1, then this auditor's reading of its history and the export, newest first.
        actions = page.locator("table.audit tbody tr td:nth-child(5)").all_inner_texts()
        assert actions == ["evidence-export", "api-history", "store", "store", "store"]
        page.fill("input[name=outcome]", "failure")
        page.fill("input[name=serial]", "")
        page.click("form.filters button[type=submit]")
        page.wait_for_function("document.querySelectorAll('table.audit tbody tr').length === 1")
        assert "user:mallory" in page.locator("table.audit tbody").inner_text()
        shot(page, "audit-search")
        context.close()
