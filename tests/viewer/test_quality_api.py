"""``/api/quality/...`` over real HTTP against the hand-computed history (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storage.archive import Archive
from tests.support import quality as fixture
from tests.support.webutil import http_server

MARCH = {"from": "2024-03-01", "to": "2024-03-31"}
TABLES = ("summary", "pareto", "p-chart", "u-chart", "turnaround", "qualifications")


@pytest.fixture
def served(archive: Archive) -> Iterator[tuple[Archive, str]]:
    fixture.build(archive.db)
    with http_server(archive, role="quality", user="quinn") as base:
        yield archive, base


def _get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, timeout=30)


def _csv(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


def test_summary_by_welder_json_and_csv(served: tuple[Archive, str]) -> None:
    _, base = served
    rows = _get(base, "/api/quality/summary", group_by="welder", **MARCH).json()
    assert [(r["group"], r["inspections"], r["rejected"], r["reject_rate"], r["first_pass_yield"]) for r in rows] == [
        ("W1", 4, 1, 0.25, 0.333333),
        ("W2", 4, 1, 0.333333, 0.333333),
        (None, 2, 0, 0.0, 1.0),
    ]
    answer = _get(base, "/api/quality/summary", group_by="welder", format="csv", **MARCH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    lines = _csv(answer)
    assert lines[0] == ["group", "inspections", "evaluated", "rejected", "reject_rate", "repaired", "first_pass_yield"]
    assert lines[1:] == [
        ["W1", "4", "4", "1", "0.25", "1", "0.333333"],
        ["W2", "4", "3", "1", "0.333333", "0", "0.333333"],
        ["", "2", "1", "0", "0.0", "0", "1.0"],
    ]
    assert _get(base, "/api/quality/summary", **MARCH).json() == [
        {
            "group": "all",
            "inspections": 8,
            "evaluated": 6,
            "rejected": 2,
            "reject_rate": 0.333333,
            "repaired": 1,
            "first_pass_yield": 0.4,
        }
    ]


def test_every_table_as_json_and_csv_with_the_same_rows(served: tuple[Archive, str]) -> None:
    _, base = served
    for table in TABLES:
        params = {"from": "2025-01-01", "to": "2025-12-31"} if table == "p-chart" else MARCH
        rows = _get(base, f"/api/quality/{table}", **params).json()
        assert rows, table
        lines = _csv(_get(base, f"/api/quality/{table}", format="csv", **params))
        assert lines[0] == list(rows[0]), table
        assert len(lines) == len(rows) + 1, table
        assert lines[1][0] == str(rows[0][lines[0][0]]), table
    pchart = _get(base, "/api/quality/p-chart", period="month", **{"from": "20250101", "to": "20251231"}).json()
    assert [(r["period"], r["out_of_control"], r["lcl"]) for r in pchart] == [
        ("2025-01", False, 0.010263),
        ("2025-02", False, 0.0),
        ("2025-03", True, 0.0),
    ]
    assert [r["type"] for r in _get(base, "/api/quality/pareto", **MARCH).json()][0] == "POROSITY"
    # An empty period: a header line and nothing else.
    assert _csv(_get(base, "/api/quality/pareto", format="csv", **{"from": "2024-04-01", "to": "2024-04-30"})) == [
        ["type", "count", "cumulative_percent"]
    ]


def test_drill_down_lists_exactly_the_rejected_inspections_of_a_welder(served: tuple[Archive, str]) -> None:
    _, base = served
    page = _get(base, "/api/quality/inspections", welder="W2", outcome="rejected", **MARCH).json()
    assert page["total"] == 1
    assert [(i["date"], i["welders"], i["disposition"]) for i in page["items"]] == [("20240307", ["W2"], "REJECT")]
    lines = _csv(_get(base, "/api/quality/inspections", welder="W2", format="csv", **MARCH))
    assert lines[0][:2] == ["uid", "date"]
    assert len(lines) == 5  # C2's two and C3's two inspections


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"colour": "red"}, "unknown query parameter"),
        ({"group_by": "colour"}, "group_by"),
        ({"from": "2024-13-01"}, "from"),
        ({"from": "2024-04-01", "to": "2024-03-01"}, "after"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_parameters_are_400(served: tuple[Archive, str], params: dict[str, str], reason: str) -> None:
    _, base = served
    answer = _get(base, "/api/quality/summary", **params)
    assert answer.status_code == 400
    assert reason in answer.json()["detail"]


def test_period_and_outcome_are_checked(served: tuple[Archive, str]) -> None:
    _, base = served
    assert _get(base, "/api/quality/p-chart", period="day").status_code == 400
    assert _get(base, "/api/quality/inspections", outcome="lost").status_code == 400
    assert _get(base, "/api/quality/pareto", period="month").status_code == 400  # not a Pareto parameter


def test_permission_quality_read(archive: Archive) -> None:
    fixture.build(archive.db)
    for role, status in (("quality", 200), ("auditor", 200), ("inspector", 403), ("device", 403)):
        with http_server(archive, role=role) as base:
            assert _get(base, "/api/quality/summary").status_code == status, role
    with http_server(archive, role=None) as base:
        assert _get(base, "/api/quality/summary").status_code == 401


def test_documented_in_openapi(served: tuple[Archive, str]) -> None:
    _, base = served
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    for table in (*TABLES, "inspections"):
        operation = paths[f"/api/quality/{table}"]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"from", "to", "welder", "method", "format"} <= names, table
    assert "group_by" in {p["name"] for p in paths["/api/quality/summary"]["get"]["parameters"]}
    assert "period" in {p["name"] for p in paths["/api/quality/p-chart"]["get"]["parameters"]}
