"""docs/conformance.md stays in step with the code: SOP classes, transfer syntaxes, statuses, keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacs.server import TRANSFER_SYNTAXES, build_ae
from pacs.service_uids import STORAGE_COMMITMENT_PUSH_INSTANCE
from pacs.settings import DicomSettings
from pacs.status import Status
from storage.index.attributes import ATTRIBUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_has_dimse_section(text: str):
    assert re.search(r"^## DIMSE$", text, re.MULTILINE)


def test_every_accepted_sop_class_is_listed(text: str):
    ae = build_ae(DicomSettings(host="127.0.0.1", dicom_port=0))
    missing = [cx.abstract_syntax for cx in ae.supported_contexts if f"`{cx.abstract_syntax}`" not in text]
    assert not missing, f"SOP classes accepted but not in docs/conformance.md: {missing}"
    assert f"`{STORAGE_COMMITMENT_PUSH_INSTANCE}`" in text


def test_every_transfer_syntax_is_listed(text: str):
    missing = [ts for ts in TRANSFER_SYNTAXES if f"`{ts}`" not in text]
    assert not missing


def test_every_status_is_documented(text: str):
    missing = [name for name in Status.__members__ if f"`{name}`" not in text]  # aliases included
    assert not missing, f"statuses not in docs/conformance.md: {missing}"


def test_every_index_key_is_documented(text: str):
    missing = [a.keyword for a in ATTRIBUTES if f"| {a.keyword} |" not in text]
    assert not missing, f"matching keys not in docs/conformance.md: {missing}"
