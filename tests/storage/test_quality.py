"""Quality metrics against a hand-computed history (tests/support/quality.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage.index import migrate
from storage.index.db import Database
from storage.records.quality import (
    ControlPoint,
    InvalidQualityQuery,
    QualityFilters,
    QualityMetrics,
    add_months,
    control_limits,
    period_range,
)
from tests.support import quality as fixture
from tests.support.servers import PG_URL

MARCH = QualityFilters(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31))
Y2025 = QualityFilters(date_from=date(2025, 1, 1), date_to=date(2025, 12, 31))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QualityMetrics]:
    """The fixture history in a migrated index, once per module and database."""
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('quality')) / 'index.sqlite'}"
    else:
        if not PG_URL:
            pytest.skip("PACS_TEST_DATABASE_URL not set (PostgreSQL tests)")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    db = Database(url)
    migrate.upgrade(db.engine)
    fixture.build(db)
    with db.unit_of_work() as uow:
        yield QualityMetrics(uow)
    db.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def row(
    group: object, inspections: int, evaluated: int, rejected: int, rate: float | None, repaired: int, fpy: float | None
) -> dict[str, object]:
    return {
        "group": group,
        "inspections": inspections,
        "evaluated": evaluated,
        "rejected": rejected,
        "reject_rate": rate,
        "repaired": repaired,
        "first_pass_yield": fpy,
    }


def test_summary_overall(built: QualityMetrics) -> None:
    # 8 inspections; 6 decided (S6 on hold, S7 not evaluated); S1 and S5 rejected; S1 repaired
    # (S2 re-inspects it); first inspections S1 S3 S4 S5 S8, accepted at attempt 1: S4 S8.
    assert built.summary(MARCH) == [row("all", 8, 6, 2, 0.333333, 1, 0.4)]


def test_summary_by_welder_counts_a_component_for_each_welder(built: QualityMetrics) -> None:
    assert built.summary(MARCH, "welder") == [
        row("W1", 4, 4, 1, 0.25, 1, 0.333333),  # C1 (S1, S2) + C2 (S3, S4)
        row("W2", 4, 3, 1, 0.333333, 0, 0.333333),  # C2 (S3, S4) + C3 (S5, S6)
        row(None, 2, 1, 0, 0.0, 0, 1.0),  # C4 has no welder recorded
    ]
    assert built.summary(QualityFilters(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31), welder="W2")) == [
        row("all", 4, 3, 1, 0.333333, 0, 0.333333)
    ]


def test_summary_by_company_inspector_method(built: QualityMetrics) -> None:
    assert built.summary(MARCH, "company") == [
        row("NDT-A", 5, 4, 1, 0.25, 1, 0.333333),
        row("NDT-B", 3, 2, 1, 0.5, 0, 0.5),
    ]
    # The inspector is the author of the current attempt: S3's second attempt is bob's.
    assert built.summary(MARCH, "inspector") == [
        row("alice", 3, 3, 1, 0.333333, 1, 0.5),
        row("bob", 4, 3, 1, 0.333333, 0, 0.333333),
        row(None, 1, 0, 0, None, 0, None),
    ]
    assert built.summary(MARCH, "method") == [
        row("RT", 6, 5, 2, 0.4, 1, 0.25),
        row("UT", 1, 1, 0, 0.0, 0, 1.0),
        row(None, 1, 0, 0, None, 0, None),
    ]
    assert built.summary(QualityFilters(material="S355", date_to=date(2024, 12, 31)), "component") == [
        row("Vessel", 4, 2, 1, 0.5, 0, 0.5)
    ]


def test_empty_period(built: QualityMetrics) -> None:
    april = QualityFilters(date_from=date(2024, 4, 1), date_to=date(2024, 4, 30))
    assert built.summary(april) == [row("all", 0, 0, 0, None, 0, None)]
    assert built.summary(april, "welder") == []
    assert built.pareto(april) == []
    assert built.p_chart(april, "month") == []
    assert built.u_chart(april, "week") == []
    assert [r["completed"] for r in built.turnaround(april, fixture.NOW)] == [0, 0, 0]


def test_pareto(built: QualityMetrics) -> None:
    # Current versions only: S1's withdrawn porosity is out, S5's crack became porosity.
    assert built.pareto(MARCH) == [
        {"type": "POROSITY", "count": 5, "cumulative_percent": 55.56},
        {"type": "CRACK", "count": 2, "cumulative_percent": 77.78},
        {"type": "INCLUSION", "count": 1, "cumulative_percent": 88.89},
        {"type": "LACK_OF_FUSION", "count": 1, "cumulative_percent": 100.0},
    ]
    w1 = QualityFilters(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31), welder="W1")
    assert built.pareto(w1) == [
        {"type": "POROSITY", "count": 4, "cumulative_percent": 66.67},
        {"type": "CRACK", "count": 1, "cumulative_percent": 83.33},
        {"type": "INCLUSION", "count": 1, "cumulative_percent": 100.0},
    ]


def test_p_chart_limits_vary_with_subgroup_size(built: QualityMetrics) -> None:
    # p̄ = 12 / 60 = 0.2; limits 0.2 ± 3·√(0.16 / n): n = 40 → 0.389737 / 0.010263; n = 10 → 0.579473 / 0 (clipped).
    assert built.p_chart(Y2025, "month") == [
        {
            "period": "2025-01",
            "n": 40,
            "rejected": 4,
            "p": 0.1,
            "center": 0.2,
            "ucl": 0.389737,
            "lcl": 0.010263,
            "out_of_control": False,
        },
        {
            "period": "2025-02",
            "n": 10,
            "rejected": 1,
            "p": 0.1,
            "center": 0.2,
            "ucl": 0.579473,
            "lcl": 0.0,
            "out_of_control": False,
        },
        {
            "period": "2025-03",
            "n": 10,
            "rejected": 7,
            "p": 0.7,
            "center": 0.2,
            "ucl": 0.579473,
            "lcl": 0.0,
            "out_of_control": True,
        },
    ]


def test_p_chart_by_iso_week(built: QualityMetrics) -> None:
    # Week 10 (4-10 March): S1 S3 S4 S5 S8 evaluated, S1 S5 rejected; week 11: S2. p̄ = 2/6.
    rows = built.p_chart(MARCH, "week")
    assert [(r["period"], r["n"], r["rejected"]) for r in rows] == [("2024-W10", 5, 2), ("2024-W11", 1, 0)]
    centre = 2 / 6
    assert rows[0]["ucl"] == round(centre + 3 * math.sqrt(centre * (1 - centre) / 5), 6)
    assert rows[1]["ucl"] == 1.0  # a fraction's limit never exceeds 1
    assert all(r["lcl"] == 0.0 for r in rows)


def test_u_chart(built: QualityMetrics) -> None:
    # Evaluated inspections S1 S2 S3 S4 S5 S8 carry 3 + 0 + 1 + 2 + 2 + 0 = 8 current indications.
    (r,) = built.u_chart(MARCH, "month")
    assert (r["period"], r["n"], r["indications"], r["u"], r["center"]) == ("2024-03", 6, 8, 1.333333, 1.333333)
    assert r["ucl"] == round(8 / 6 + 3 * math.sqrt((8 / 6) / 6), 6)
    assert r["lcl"] == 0.0
    assert r["out_of_control"] is False


def test_turnaround(built: QualityMetrics) -> None:
    assert built.turnaround(MARCH, fixture.NOW) == [
        # 2 + 4 + 1 + 3 + 8 + 4 + 6 hours over 7; S7 waits since 9 March 08:00.
        {
            "step": "received→evaluated",
            "completed": 7,
            "mean_hours": 4.0,
            "max_hours": 8.0,
            "backlog": 1,
            "oldest_waiting_hours": 72.0,
        },
        # S1 24 h, S2 8 h; waiting: S3 S4 S5 S6 S8, the oldest evaluated 5 March 09:00.
        {
            "step": "evaluated→approved",
            "completed": 2,
            "mean_hours": 16.0,
            "max_hours": 24.0,
            "backlog": 5,
            "oldest_waiting_hours": 167.0,
        },
        {
            "step": "received→approved",
            "completed": 2,
            "mean_hours": 19.0,
            "max_hours": 26.0,
            "backlog": 6,
            "oldest_waiting_hours": 168.0,
        },
    ]


def test_qualifications(built: QualityMetrics) -> None:
    rows = built.qualifications(QualityFilters(), fixture.TODAY)
    got = {
        (r["user"], r["method"]): (r["level"], r["expires_within_months"], r["signatures"], r["valid_signatures"])
        for r in rows
    }
    assert got == {
        ("alice", "RT"): (2, None, 3, 3),  # expires 2025-01-14 (vision test): beyond 6 months
        ("bob", "RT"): (2, 0, 2, 1),  # expired 2024-03-06: S3 on 5 March valid, S5 on 7 March not
        ("bob", "UT"): (2, 0, 1, 0),  # vision test of 2023-02-01 ran out on 2024-01-31
        ("carol", "RT"): (3, 3, 2, 2),  # expires 2024-05-01: within 3 months
        ("dave", "RT"): (None, None, 1, 0),  # signed without any qualification
        ("erin", "RT"): (2, 1, 0, 0),  # expires 2024-04-01: within 1 month
    }  # frank is disabled: not listed
    assert sum(r["valid_signatures"] for r in rows) == 6
    assert sum(r["signatures"] for r in rows) == 9
    carol = next(r for r in rows if r["user"] == "carol")
    assert carol["valid_until"] == "2024-05-01"
    assert carol["vision_test_valid_until"] == "2024-12-31"
    # Only the signatures of a period count.
    only = built.qualifications(QualityFilters(date_from=date(2024, 3, 7), date_to=date(2024, 3, 10)), fixture.TODAY)
    assert sum(r["signatures"] for r in only) == 3  # S5 bob, S8 alice and dave
    assert sum(r["valid_signatures"] for r in only) == 1


def test_drill_down_lists_the_inspections_behind_a_figure(built: QualityMetrics) -> None:
    w1 = QualityFilters(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31), welder="W1")
    total, items = built.inspections(w1, "rejected")
    assert total == 1
    assert [i["date"] for i in items] == ["20240304"]
    assert items[0]["welders"] == ["W1"]
    assert items[0]["indications"] == 3
    assert items[0]["disposition"] == "REJECT"
    total, items = built.inspections(MARCH, "inspections", indication_type="POROSITY")
    assert total == 4
    assert [i["date"] for i in items] == ["20240307", "20240306", "20240305", "20240304"]
    total, items = built.inspections(MARCH, "first-pass-failed")
    assert total == 3
    assert {i["date"] for i in items} == {"20240304", "20240305", "20240307"}
    total, items = built.inspections(MARCH, "repaired")
    assert total == 1
    total, items = built.inspections(MARCH, "inspections", limit=3, offset=6)
    assert total == 8
    assert len(items) == 2


def test_invalid_queries(built: QualityMetrics) -> None:
    with pytest.raises(InvalidQualityQuery):
        built.summary(MARCH, "colour")
    with pytest.raises(InvalidQualityQuery):
        built.p_chart(MARCH, "day")
    with pytest.raises(InvalidQualityQuery):
        QualityFilters(date_from=date(2024, 4, 1), date_to=date(2024, 3, 1))
    with pytest.raises(InvalidQualityQuery):
        built.inspections(MARCH, "lost")


def test_control_limits_by_hand() -> None:
    rows = control_limits([ControlPoint("a", 100, 3), ControlPoint("b", 25, 7)], "p")
    centre = 10 / 125
    assert centre - 3 * math.sqrt(centre * (1 - centre) / 100) < 0
    assert rows[0]["lcl"] == 0.0
    assert rows[1]["out_of_control"] is True  # 0.28 > 0.08 + 3·√(0.0736/25) = 0.242776
    assert rows[1]["ucl"] == 0.242776


def test_calendar_helpers() -> None:
    assert period_range("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_range("2024-W10") == (date(2024, 3, 4), date(2024, 3, 10))
    assert period_range("2024-12") == (date(2024, 12, 1), date(2024, 12, 31))
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 11, 15), 3) == date(2025, 2, 15)
