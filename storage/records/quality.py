"""Quality metrics over the evaluated inspections (ISO 9001 9.1.3 analysis and evaluation, 10.3).

Every metric is one grouped SQL query over the index (SQLAlchemy Core, the same statement on
SQLite and PostgreSQL); Python only finishes the few grouped rows (rates, control limits,
cumulative percentages). Definitions (DESIGN.md "Interfaces", ndt-workflow §4):

- an *inspection* is a study; its date is StudyDate (the period filters and subgroups use it);
- *evaluated*: its current (newest) evaluation attempt decides ACCEPT or REJECT (HOLD waits);
- *rejected*: the current disposition is REJECT; ``reject_rate`` = rejected / evaluated;
- *repaired*: a later inspection names it as the one it re-inspects (``reinspection_of``);
- *first-pass yield* (ASQ): evaluated first inspections whose first attempt was ACCEPT, divided by
  the evaluated first inspections; a re-inspection is rework of a unit already counted and
  enters neither side;
- *welder*: ComponentWelderIDs (0014,0100) is multi-valued; a component welded by several
  welders counts for each of them (grouped by the stored value, then shared out per welder);
- *inspector*: the author of the current evaluation; *method*, *standard*: of that evaluation;
  *material*: EthnicGroup; *component*: PatientName; *company*: PhysiciansOfRecord.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    FromClause,
    Integer,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.functions import FunctionElement

from storage.errors import InvalidQuery
from storage.index.models import (
    Component,
    Evaluation,
    MarkedIndication,
    MarkedIndicationVersion,
    Qualification,
    Signature,
    Study,
    User,
)
from storage.index.unit_of_work import UnitOfWork
from storage.records.permissions import VISION_TEST_VALIDITY

DIMENSIONS: tuple[str, ...] = ("welder", "material", "component", "company", "inspector", "method", "standard")
PERIODS: tuple[str, ...] = ("week", "month")
OUTCOMES: tuple[str, ...] = ("inspections", "evaluated", "rejected", "accepted", "repaired", "first-pass-failed")
EXPIRY_MONTHS: tuple[int, ...] = (1, 3, 6)
MAX_LIST = 500
_USER_PREFIX = "user:"  # evaluations are authored by signed-in persons: "user:<name>"
_DECIDED = ("ACCEPT", "REJECT")


class InvalidQualityQuery(InvalidQuery):
    """A quality query with a value that cannot be used (unknown dimension, bad date range)."""


# -- portable SQL helpers --------------------------------------------------------------


class _Seconds(FunctionElement[float]):
    """Seconds from the first timestamp to the second (julianday on SQLite, epoch on PostgreSQL)."""

    type = Float()
    inherit_cache = True


@compiles(_Seconds)
def _seconds_default(element: _Seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)})) * 86400.0)"


class _DayOf(FunctionElement[date]):
    """The calendar day (UTC) of a timestamp, comparable with a Date column on both databases."""

    type = Date()
    inherit_cache = True


@compiles(_DayOf)
def _day_default(element: _DayOf, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(({compiler.process(value, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(_DayOf, "sqlite")
def _day_sqlite(element: _DayOf, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"date({compiler.process(value, **kw)})"


def _vision_test_valid_on(vision_test: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[bool]:
    """vision_test + 12 months >= day, written as day - N days <= vision_test on both databases."""
    days = VISION_TEST_VALIDITY.days
    return vision_test >= _MinusDays(day, literal(days, Integer))


class _MinusDays(FunctionElement[date]):
    type = Date()
    inherit_cache = True


@compiles(_MinusDays)
def _minus_default(element: _MinusDays, compiler: Any, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"({compiler.process(day, **kw)} - CAST({compiler.process(days, **kw)} AS INTEGER))"


@compiles(_MinusDays, "sqlite")
def _minus_sqlite(element: _MinusDays, compiler: Any, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, '-' || {compiler.process(days, **kw)} || ' days')"


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


# -- filters ---------------------------------------------------------------------------


def parse_day(value: str, name: str) -> date | None:
    """A date given as YYYY-MM-DD or YYYYMMDD (DICOM DA); empty: None."""
    text = value.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise InvalidQualityQuery(f"{name}: expected a date YYYY-MM-DD or YYYYMMDD, got {text[:20]!r}")


@dataclass(frozen=True)
class QualityFilters:
    """Which inspections a metric covers: a period of inspection dates and exact dimension values."""

    date_from: date | None = None
    date_to: date | None = None
    welder: str = ""
    material: str = ""
    component: str = ""
    company: str = ""
    inspector: str = ""
    method: str = ""
    standard: str = ""

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidQualityQuery("from must not be after to")

    def criteria(self) -> dict[str, str]:
        """The filters that are set, as query parameters (dates as YYYY-MM-DD)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[{"date_from": "from", "date_to": "to"}.get(f.name, f.name)] = (
                    value.isoformat() if isinstance(value, date) else value
                )
        return out


def _da(day: date) -> str:
    return day.strftime("%Y%m%d")


# -- the per-inspection facts ------------------------------------------------------------


def _facts(filters: QualityFilters) -> FromClause:
    """One row per inspection in scope: its dimensions and 0/1 outcome flags (a subquery)."""
    attempts = (
        select(
            Evaluation.study_id.label("study_id"),
            func.max(Evaluation.attempt).label("current"),
            func.max(case((Evaluation.reinspection_of.is_not(None), 1), else_=0)).label("reinspection"),
        )
        .group_by(Evaluation.study_id)
        .subquery("attempts")
    )
    reinspected = (
        select(Evaluation.reinspection_of.label("uid"))
        .where(Evaluation.reinspection_of.is_not(None))
        .group_by(Evaluation.reinspection_of)
        .subquery("reinspected")
    )
    current = Evaluation.__table__.alias("current_evaluation")
    first = Evaluation.__table__.alias("first_evaluation")
    decided = current.c.disposition.in_(_DECIDED)
    first_unit = and_(decided, func.coalesce(attempts.c.reinspection, 0) == 0)
    inspector = func.substr(current.c.author, len(_USER_PREFIX) + 1)
    query = (
        select(
            Study.id.label("study_id"),
            Study.study_instance_uid.label("uid"),
            Study.study_date.label("study_date"),
            Study.created_at.label("received_at"),
            Component.component_welder_ids.label("welder"),
            Component.ethnic_group.label("material"),
            Component.patient_name.label("component"),
            Component.patient_id.label("serial"),
            Study.physicians_of_record.label("company"),
            inspector.label("inspector"),
            current.c.method.label("method"),
            current.c.standard.label("standard"),
            current.c.disposition.label("disposition"),
            current.c.attempt.label("attempt"),
            current.c.reinspection_of.label("reinspection_of"),
            case((decided, 1), else_=0).label("evaluated"),
            case((current.c.disposition == "REJECT", 1), else_=0).label("rejected"),
            case((current.c.disposition == "ACCEPT", 1), else_=0).label("accepted"),
            case((reinspected.c.uid.is_not(None), 1), else_=0).label("repaired"),
            case((first_unit, 1), else_=0).label("first_unit"),
            case((and_(first_unit, first.c.disposition == "ACCEPT"), 1), else_=0).label("first_pass"),
        )
        .select_from(Study)
        .join(Component, Component.id == Study.component_id)
        .outerjoin(attempts, attempts.c.study_id == Study.id)
        .outerjoin(current, and_(current.c.study_id == Study.id, current.c.attempt == attempts.c.current))
        .outerjoin(first, and_(first.c.study_id == Study.id, first.c.attempt == 1))
        .outerjoin(reinspected, reinspected.c.uid == Study.study_instance_uid)
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.date_from:
        conditions.append(Study.study_date >= _da(filters.date_from))
    if filters.date_to:
        conditions.append(Study.study_date <= _da(filters.date_to))
    if filters.welder:
        conditions.append(Component.component_welder_ids.contains(f"\\{filters.welder}\\", autoescape=True))
    exact: dict[str, Any] = {
        "material": Component.ethnic_group,
        "component": Component.patient_name,
        "company": Study.physicians_of_record,
        "inspector": current.c.author,
        "method": current.c.method,
        "standard": current.c.standard,
    }
    for name, column in exact.items():
        value = getattr(filters, name)
        if value:
            conditions.append(column == (_USER_PREFIX + value if name == "inspector" else value))
    if conditions:
        query = query.where(and_(*conditions))
    return query.subquery("facts")


def _welders(stored: str | None) -> list[str | None]:
    """The welder IDs of a stored multi-valued ComponentWelderIDs (``\\W1\\W2\\``); [None] when none."""
    values = [v for v in (stored or "").split("\\") if v]
    return list(dict.fromkeys(values)) or [None]


# -- the metrics ---------------------------------------------------------------------------


def _month_of(study_date: str) -> str:
    return f"{study_date[:4]}-{study_date[4:6]}"


def _week_of(study_date: str) -> str:
    day = date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:8]))
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def period_range(period: str) -> tuple[date, date]:
    """First and last day of a subgroup label (``2025-03`` or ``2025-W10``)."""
    try:
        if "-W" in period:
            year, week = period.split("-W")
            start = date.fromisocalendar(int(year), int(week), 1)
            return start, start + timedelta(days=6)
        year, month = period.split("-")
        start = date(int(year), int(month), 1)
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return start, following - timedelta(days=1)
    except ValueError:
        raise InvalidQualityQuery(f"period: expected YYYY-MM or YYYY-Www, got {period[:20]!r}") from None


def add_months(day: date, months: int) -> date:
    """*day* moved by whole calendar months, clipped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    following = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last = (following - timedelta(days=1)).day
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class ControlPoint:
    """One subgroup of an attributes control chart."""

    period: str
    n: int
    count: int


def control_limits(points: Iterable[ControlPoint], kind: str) -> list[dict[str, Any]]:
    """p- or u-chart rows with limits that vary with each subgroup's size.

    p-chart: p̂ᵢ = xᵢ/nᵢ, centre p̄ = Σx/Σn, limits p̄ ± 3√(p̄(1−p̄)/nᵢ);
    u-chart: uᵢ = cᵢ/nᵢ, centre ū = Σc/Σn, limits ū ± 3√(ū/nᵢ). The lower limit is clipped at 0.
    A point outside its limits is out of control.
    """
    items = [p for p in points if p.n > 0]
    total_n = sum(p.n for p in items)
    centre = sum(p.count for p in items) / total_n if total_n else 0.0
    rows: list[dict[str, Any]] = []
    for p in items:
        value = p.count / p.n
        spread = centre * (1 - centre) / p.n if kind == "p" else centre / p.n
        sigma3 = 3 * math.sqrt(max(spread, 0.0))
        ucl = centre + sigma3
        if kind == "p":
            ucl = min(ucl, 1.0)
        lcl = max(centre - sigma3, 0.0)
        counted = "rejected" if kind == "p" else "indications"
        rows.append(
            {
                "period": p.period,
                "n": p.n,
                counted: p.count,
                kind: round(value, 6),
                "center": round(centre, 6),
                "ucl": round(ucl, 6),
                "lcl": round(lcl, 6),
                "out_of_control": value > ucl + 1e-12 or value < lcl - 1e-12,
            }
        )
    return rows


class QualityMetrics:
    """The dashboard's figures, each computed by a grouped query over the index."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow  # the caller's unit of work: every figure reads in it

    def _rows(self, query: Executable) -> list[Any]:
        return list(self.uow.session.execute(query).all())

    def summary(self, filters: QualityFilters, group_by: str | None = None) -> list[dict[str, Any]]:
        """Inspections, evaluated, rejected, reject rate, repaired, first-pass yield; one row per group.

        ``reject_rate`` = rejected / evaluated; ``first_pass_yield`` = first inspections accepted at
        their first evaluation attempt / evaluated first inspections (re-inspections excluded).
        """
        if group_by is not None and group_by not in DIMENSIONS:
            raise InvalidQualityQuery(f"group_by must be one of {', '.join(DIMENSIONS)}")
        facts = _facts(filters)
        measures = [
            func.count().label("inspections"),
            func.coalesce(func.sum(facts.c.evaluated), 0).label("evaluated"),
            func.coalesce(func.sum(facts.c.rejected), 0).label("rejected"),
            func.coalesce(func.sum(facts.c.repaired), 0).label("repaired"),
            func.coalesce(func.sum(facts.c.first_unit), 0).label("first_unit"),
            func.coalesce(func.sum(facts.c.first_pass), 0).label("first_pass"),
        ]
        totals: dict[Any, list[int]] = defaultdict(lambda: [0] * 6)
        if group_by is None:
            rows = self._rows(select(*measures).select_from(facts))
            totals[None] = [int(v or 0) for v in rows[0]]
        else:
            key = facts.c[group_by]
            for row in self._rows(select(key, *measures).group_by(key)):
                groups = _welders(row[0]) if group_by == "welder" else [row[0]]
                for group in groups:
                    acc = totals[group]
                    for i, value in enumerate(row[1:]):
                        acc[i] += int(value or 0)
        out = []
        for group in sorted(totals, key=lambda g: (g is None, str(g or ""))):
            inspections, evaluated, rejected, repaired, first_unit, first_pass = totals[group]
            out.append(
                {
                    "group": group if group_by is not None else "all",
                    "inspections": inspections,
                    "evaluated": evaluated,
                    "rejected": rejected,
                    "reject_rate": _ratio(rejected, evaluated),
                    "repaired": repaired,
                    "first_pass_yield": _ratio(first_pass, first_unit),
                }
            )
        return out

    def pareto(self, filters: QualityFilters) -> list[dict[str, Any]]:
        """Marked indications (current version, not withdrawn) by coded type, count descending, cumulative %."""
        facts = _facts(filters)
        version = MarkedIndicationVersion
        count = func.count().label("count")
        query = (
            select(version.indication_type, count)
            .select_from(facts)
            .join(MarkedIndication, MarkedIndication.study_id == facts.c.study_id)
            .join(
                version,
                and_(version.indication_id == MarkedIndication.id, version.version == MarkedIndication.version),
            )
            .where(version.withdrawn == false())
            .group_by(version.indication_type)
            .order_by(count.desc(), version.indication_type)
        )
        rows = self._rows(query)
        total = sum(int(r[1]) for r in rows)
        running = 0
        out = []
        for kind, n in rows:
            running += int(n)
            out.append({"type": kind, "count": int(n), "cumulative_percent": round(100.0 * running / total, 2)})
        return out

    def p_chart(self, filters: QualityFilters, period: str = "month") -> list[dict[str, Any]]:
        """Fraction rejected per week or month of evaluated inspections, with p-chart limits."""
        if period not in PERIODS:
            raise InvalidQualityQuery(f"period must be one of {', '.join(PERIODS)}")
        return control_limits(self._grouped_points(filters, period, indications=False), "p")

    def u_chart(self, filters: QualityFilters, period: str = "month") -> list[dict[str, Any]]:
        """Marked indications per evaluated inspection, per week or month, with u-chart limits."""
        if period not in PERIODS:
            raise InvalidQualityQuery(f"period must be one of {', '.join(PERIODS)}")
        return control_limits(self._grouped_points(filters, period, indications=True), "u")

    def _grouped_points(self, filters: QualityFilters, period: str, *, indications: bool) -> list[ControlPoint]:
        facts = _facts(filters)
        key = (func.substr(facts.c.study_date, 1, 6) if period == "month" else facts.c.study_date).label("key")
        if indications:
            counts = _indication_counts()
            counted: ColumnElement[Any] = func.coalesce(func.sum(counts.c.indications), 0)
            source: FromClause = facts.outerjoin(counts, counts.c.study_id == facts.c.study_id)
        else:
            counted = func.coalesce(func.sum(facts.c.rejected), 0)
            source = facts
        query = (
            select(key, func.count().label("n"), counted.label("x"))
            .select_from(source)
            .where(facts.c.evaluated == 1, func.length(facts.c.study_date) == 8)
            .group_by(key)
        )
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for raw, n, x in self._rows(query):
            label = _month_of(raw) if period == "month" else _week_of(raw)
            acc[label][0] += int(n)
            acc[label][1] += int(x or 0)
        return [ControlPoint(label, n, x) for label, (n, x) in sorted(acc.items())]

    def turnaround(self, filters: QualityFilters, now: datetime | None = None) -> list[dict[str, Any]]:
        """Received → evaluated → approved: completed count, mean and max hours, and the backlog waiting.

        Received: the inspection's first indexing; evaluated: its first evaluation recorded;
        approved: its first ``approved`` signature. Backlog: inspections that reached the step's
        start but not its end, with the oldest one's wait in hours (at *now*).
        """
        now = now or datetime.now(UTC)
        facts = _facts(filters)
        evaluated = (
            select(Evaluation.study_id.label("study_id"), func.min(Evaluation.created_at).label("at"))
            .group_by(Evaluation.study_id)
            .subquery("evaluated_at")
        )
        approved = (
            select(Signature.study_id.label("study_id"), func.min(Signature.signed_at).label("at"))
            .where(Signature.meaning == "approved")
            .group_by(Signature.study_id)
            .subquery("approved_at")
        )
        received_at, evaluated_at, approved_at = facts.c.received_at, evaluated.c.at, approved.c.at
        steps = (
            ("received→evaluated", received_at, evaluated_at),
            ("evaluated→approved", evaluated_at, approved_at),
            ("received→approved", received_at, approved_at),
        )
        columns: list[ColumnElement[Any]] = []
        for _, start, end in steps:
            done = and_(start.is_not(None), end.is_not(None))
            waiting = and_(start.is_not(None), end.is_(None))
            columns += [
                _count_if(done),
                func.avg(case((done, _Seconds(start, end)))),
                func.max(case((done, _Seconds(start, end)))),
                _count_if(waiting),
                func.min(case((waiting, start))),
            ]
        query = (
            select(*columns)
            .select_from(facts)
            .outerjoin(evaluated, evaluated.c.study_id == facts.c.study_id)
            .outerjoin(approved, approved.c.study_id == facts.c.study_id)
        )
        (row,) = self._rows(query)
        out = []
        for i, (step, _, _) in enumerate(steps):
            completed, mean, longest, backlog, oldest = row[i * 5 : i * 5 + 5]
            oldest_at = _aware(oldest)
            out.append(
                {
                    "step": step,
                    "completed": int(completed or 0),
                    "mean_hours": None if mean is None else round(float(mean) / 3600, 2),
                    "max_hours": None if longest is None else round(float(longest) / 3600, 2),
                    "backlog": int(backlog or 0),
                    "oldest_waiting_hours": None
                    if oldest_at is None
                    else round((now - oldest_at).total_seconds() / 3600, 2),
                }
            )
        return out

    def qualifications(self, filters: QualityFilters, today: date | None = None) -> list[dict[str, Any]]:
        """Per person and method: signatures made, how many with a valid qualification, and expiry.

        A signature counts as valid when, on its day, the signer held a certificate of the
        evaluation's method at the level the meaning needs (approved: 3, else 2), inside its
        validity, with a near-vision test not older than 12 months (ISO 9712; ndt-workflow R25).
        The qualification rows say when the certificate and the vision test run out and whether
        that is within 1, 3 or 6 months (``expires_within_months``; 0: already expired).
        Filters used: from/to (day of signing), inspector, method.
        """
        today = today or datetime.now(UTC).date()
        day = _DayOf(Signature.signed_at)
        needed = case((Signature.meaning == "approved", 3), else_=2)
        holder = Qualification.__table__.alias("held")
        valid = (
            select(holder.c.id)
            .where(
                holder.c.user_id == User.id,
                holder.c.method == Evaluation.method,
                holder.c.level >= needed,
                or_(holder.c.valid_from.is_(None), holder.c.valid_from <= day),
                holder.c.valid_until >= day,
                holder.c.vision_test.is_not(None),
                _vision_test_valid_on(holder.c.vision_test, day),
            )
            .exists()
        )
        signed = (
            select(
                Signature.signer,
                Evaluation.method,
                func.count().label("signatures"),
                _count_if(valid).label("valid"),
            )
            .select_from(Signature)
            .join(Evaluation, Evaluation.id == Signature.evaluation_id)
            .outerjoin(User, User.username == Signature.signer)
            .group_by(Signature.signer, Evaluation.method)
        )
        held = (
            select(
                User.username,
                User.full_name,
                Qualification.method,
                func.max(Qualification.level),
                func.max(Qualification.certificate),
                func.max(Qualification.valid_until),
                func.max(Qualification.vision_test),
            )
            .join(Qualification, Qualification.user_id == User.id)
            .where(User.active.is_(True))
            .group_by(User.username, User.full_name, Qualification.method)
        )
        if filters.date_from:
            signed = signed.where(day >= filters.date_from)
        if filters.date_to:
            signed = signed.where(day <= filters.date_to)
        if filters.inspector:
            signed = signed.where(Signature.signer == filters.inspector)
            held = held.where(User.username == filters.inspector)
        if filters.method:
            signed = signed.where(Evaluation.method == filters.method)
            held = held.where(Qualification.method == filters.method)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for user, full_name, method, level, certificate, valid_until, vision_test in self._rows(held):
            until = _day(valid_until)
            vision_until = None if vision_test is None else _day(vision_test) + VISION_TEST_VALIDITY
            expires = until if vision_until is None else min(until, vision_until)
            rows[(user, method)] = {
                "user": user,
                "full_name": full_name,
                "method": method,
                "level": int(level),
                "certificate": certificate,
                "valid_until": until.isoformat(),
                "vision_test_valid_until": None if vision_until is None else vision_until.isoformat(),
                "expires_within_months": _expiry_bucket(expires, today),
                "signatures": 0,
                "valid_signatures": 0,
            }
        for signer, method, count, ok in self._rows(signed):
            row = rows.setdefault(
                (signer, method),
                {
                    "user": signer,
                    "full_name": None,
                    "method": method,
                    "level": None,
                    "certificate": None,
                    "valid_until": None,
                    "vision_test_valid_until": None,
                    "expires_within_months": None,
                    "signatures": 0,
                    "valid_signatures": 0,
                },
            )
            row["signatures"] += int(count)
            row["valid_signatures"] += int(ok)
        return [rows[k] for k in sorted(rows)]

    def inspections(
        self,
        filters: QualityFilters,
        outcome: str = "inspections",
        indication_type: str = "",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The inspections behind a figure (drill-down): total and one page, newest first."""
        if outcome not in OUTCOMES:
            raise InvalidQualityQuery(f"outcome must be one of {', '.join(OUTCOMES)}")
        if not 1 <= limit <= MAX_LIST:
            raise InvalidQualityQuery(f"limit must be 1..{MAX_LIST}")
        facts = _facts(filters)
        where: list[ColumnElement[bool]] = []
        if outcome == "first-pass-failed":
            where.append(and_(facts.c.first_unit == 1, facts.c.first_pass == 0))
        elif outcome != "inspections":
            where.append(facts.c[outcome] == 1)
        if indication_type:
            version = MarkedIndicationVersion
            where.append(
                select(MarkedIndication.id)
                .join(
                    version,
                    and_(version.indication_id == MarkedIndication.id, version.version == MarkedIndication.version),
                )
                .where(
                    MarkedIndication.study_id == facts.c.study_id,
                    version.withdrawn == false(),
                    version.indication_type == indication_type,
                )
                .exists()
            )
        counts = _indication_counts()
        base = select(facts).where(*where)
        session = self.uow.session
        total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
        rows = session.execute(
            select(facts, func.coalesce(counts.c.indications, 0).label("indications"))
            .outerjoin(counts, counts.c.study_id == facts.c.study_id)
            .where(*where)
            .order_by(facts.c.study_date.desc(), facts.c.uid)
            .limit(limit)
            .offset(offset)
        ).all()
        items = [
            {
                "uid": r.uid,
                "date": r.study_date,
                "serial": r.serial,
                "component": r.component,
                "welders": [w for w in _welders(r.welder) if w],
                "material": r.material,
                "company": r.company,
                "inspector": r.inspector,
                "method": r.method,
                "standard": r.standard,
                "disposition": r.disposition,
                "attempt": r.attempt,
                "reinspection_of": r.reinspection_of,
                "indications": int(r.indications),
            }
            for r in rows
        ]
        return total, items


def _indication_counts() -> FromClause:
    """Current, not withdrawn marked indications per inspection (a subquery)."""
    version = MarkedIndicationVersion
    return (
        select(MarkedIndication.study_id.label("study_id"), func.count().label("indications"))
        .join(
            version,
            and_(version.indication_id == MarkedIndication.id, version.version == MarkedIndication.version),
        )
        .where(version.withdrawn == false())
        .group_by(MarkedIndication.study_id)
        .subquery("indication_counts")
    )


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _expiry_bucket(expires: date, today: date) -> int | None:
    if expires < today:
        return 0
    for months in EXPIRY_MONTHS:
        if expires <= add_months(today, months):
            return months
    return None


COLUMNS: dict[str, tuple[str, ...]] = {
    "summary": ("group", "inspections", "evaluated", "rejected", "reject_rate", "repaired", "first_pass_yield"),
    "pareto": ("type", "count", "cumulative_percent"),
    "p-chart": ("period", "n", "rejected", "p", "center", "ucl", "lcl", "out_of_control"),
    "u-chart": ("period", "n", "indications", "u", "center", "ucl", "lcl", "out_of_control"),
    "turnaround": ("step", "completed", "mean_hours", "max_hours", "backlog", "oldest_waiting_hours"),
    "qualifications": (
        "user",
        "full_name",
        "method",
        "level",
        "certificate",
        "valid_until",
        "vision_test_valid_until",
        "expires_within_months",
        "signatures",
        "valid_signatures",
    ),
    "inspections": (
        "uid",
        "date",
        "serial",
        "component",
        "welders",
        "material",
        "company",
        "inspector",
        "method",
        "standard",
        "disposition",
        "attempt",
        "reinspection_of",
        "indications",
    ),
}


def csv_rows(table: str, rows: list[dict[str, Any]]) -> Iterator[list[str]]:
    """The header line of *table*, then each row's values as text (lists joined by ``;``, None empty)."""
    header = list(COLUMNS[table])
    yield header
    for row in rows:
        yield [_cell(row.get(k)) for k in header]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)
