"""``/api/quality/`` routes: the defect statistics of the quality dashboard (ISO 9001 9.1.3).

Each route answers a list of rows as JSON, or the same rows as CSV with a header line
(``?format=csv``). The figures are computed by :class:`storage.records.quality.QualityMetrics`;
no SQL here. Permission ``quality:read`` (roles quality, auditor; see
:mod:`storage.records.permissions`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from storage.errors import ArchiveError, IndexUnavailable
from storage.index.unit_of_work import UnitOfWork
from storage.records.quality import (
    DIMENSIONS,
    MAX_LIST,
    OUTCOMES,
    PERIODS,
    QualityFilters,
    QualityMetrics,
    csv_rows,
    parse_day,
)
from viewer.auth import SecuredRouter, require
from viewer.deps import ReadUnit, audit

router = SecuredRouter(prefix="/api/quality", tags=["quality"])
QUALITY = "quality:read"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad or unknown parameter (the reason is in detail)"},
    503: {"description": "Index unavailable"},
}
_CSV = {"content": {"text/csv": {}}, "description": "The rows, or with format=csv the same rows as CSV"}
_DAY = r"^(\d{4}-\d{2}-\d{2}|\d{8})?$"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SummaryRow(BaseModel):
    """Counts and rates of one group (or of all inspections)."""

    group: str | None
    inspections: int
    evaluated: int
    rejected: int
    reject_rate: float | None
    repaired: int
    first_pass_yield: float | None


class ParetoRow(BaseModel):
    """One coded indication type."""

    type: str
    count: int
    cumulative_percent: float


class PChartRow(BaseModel):
    """One subgroup of the p-chart."""

    period: str
    n: int
    rejected: int
    p: float
    center: float
    ucl: float
    lcl: float
    out_of_control: bool


class UChartRow(BaseModel):
    """One subgroup of the u-chart (indications per evaluated inspection)."""

    period: str
    n: int
    indications: int
    u: float
    center: float
    ucl: float
    lcl: float
    out_of_control: bool


class TurnaroundRow(BaseModel):
    """One step of received → evaluated → approved."""

    step: str
    completed: int
    mean_hours: float | None
    max_hours: float | None
    backlog: int
    oldest_waiting_hours: float | None


class QualificationRow(BaseModel):
    """A person's qualification in one method and the signatures made in it."""

    user: str
    full_name: str | None
    method: str
    level: int | None
    certificate: str | None
    valid_until: str | None
    vision_test_valid_until: str | None
    expires_within_months: int | None
    signatures: int
    valid_signatures: int


class InspectionRow(BaseModel):
    """One inspection behind a figure."""

    uid: str
    date: str | None
    serial: str
    component: str | None
    welders: list[str]
    material: str | None
    company: str | None
    inspector: str | None
    method: str | None
    standard: str | None
    disposition: str | None
    attempt: int | None
    reinspection_of: str | None
    indications: int


class InspectionList(BaseModel):
    """A page of the inspections behind a figure."""

    total: int
    offset: int
    limit: int
    items: list[InspectionRow]


Text = Annotated[str, Query(max_length=64)]
Format = Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv (header line + rows)")]


def filters(
    date_from: Annotated[str, Query(alias="from", pattern=_DAY, description="First inspection date, YYYY-MM-DD")] = "",
    date_to: Annotated[str, Query(alias="to", pattern=_DAY, description="Last inspection date, YYYY-MM-DD")] = "",
    welder: Annotated[str, Query(max_length=64, description="Welder ID (ComponentWelderIDs), exact")] = "",
    material: Annotated[str, Query(max_length=64, description="Material, exact")] = "",
    component: Annotated[str, Query(max_length=64, description="Component name / type, exact")] = "",
    company: Annotated[str, Query(max_length=64, description="Inspecting company (supplier), exact")] = "",
    inspector: Annotated[str, Query(max_length=64, description="User name of the evaluator")] = "",
    method: Annotated[str, Query(max_length=16, description="NDT method (RT, UT, ...)")] = "",
    standard: Annotated[str, Query(max_length=64, description="Acceptance standard code")] = "",
) -> QualityFilters:
    """The common filters of every quality route."""
    try:
        return QualityFilters(
            date_from=parse_day(date_from, "from"),
            date_to=parse_day(date_to, "to"),
            welder=welder,
            material=material,
            component=component,
            company=company,
            inspector=inspector,
            method=method,
            standard=standard,
        )
    except ArchiveError as exc:
        raise QualityProblem(400, str(exc)) from exc


Filters = Annotated[QualityFilters, Depends(filters)]


class QualityProblem(Exception):
    """A bad quality query or an unavailable index, as an HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _compute(
    request: Request,
    uow: UnitOfWork,
    table: str,
    compute: Callable[[QualityMetrics], list[dict[str, Any]]],
    fmt: str,
    criteria: dict[str, str],
) -> list[dict[str, Any]]:
    """Compute the rows and audit the read (unknown parameters: viewer.api.strict_query answers 400)."""
    try:
        rows = compute(QualityMetrics(uow))
    except IndexUnavailable as exc:
        raise QualityProblem(503, str(exc)) from exc
    except ArchiveError as exc:
        raise QualityProblem(400, str(exc)) from exc
    audit(request, uow, "quality-read", detail={"table": table, "criteria": criteria, "rows": len(rows), "format": fmt})
    return rows


def _answer(
    request: Request,
    uow: UnitOfWork,
    table: str,
    compute: Callable[[QualityMetrics], list[dict[str, Any]]],
    fmt: str,
    criteria: dict[str, str],
) -> Response:
    rows = _compute(request, uow, table, compute, fmt, criteria)
    return _csv(table, rows) if fmt == "csv" else JSONResponse(rows)


def _csv(table: str, rows: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in csv_rows(table, rows):
        # A cell a spreadsheet would run as a formula is quoted as text (OWASP CSV injection).
        writer.writerow(
            [f"'{cell}" if cell.startswith(_FORMULA_START) and not _number(cell) else cell for cell in line]
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="quality-{table}-{stamp}.csv"'},
    )


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


GroupBy = Annotated[str, Query(description=f"One of {', '.join(DIMENSIONS)}; none: one row for all")]
Period = Annotated[str, Query(description=f"Subgroup: {' or '.join(PERIODS)}")]


@router.get(
    "/summary",
    response_model=list[SummaryRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="Reject rate, repairs and first-pass yield",
)
def summary(request: Request, uow: ReadUnit, f: Filters, group_by: GroupBy = "", format: Format = "json") -> Response:
    """Inspections, evaluated, rejected, ``reject_rate`` = rejected / evaluated, repaired (re-inspected
    after repair), ``first_pass_yield`` = first inspections accepted at their first evaluation
    attempt / evaluated first inspections; one row per group (a component with several welders
    counts for each), or one row without ``group_by``."""
    return _answer(
        request,
        uow,
        "summary",
        lambda m: m.summary(f, group_by or None),
        format,
        {**f.criteria(), **({"group_by": group_by} if group_by else {})},
    )


@router.get(
    "/pareto",
    response_model=list[ParetoRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="Defect-type Pareto",
)
def pareto(request: Request, uow: ReadUnit, f: Filters, format: Format = "json") -> Response:
    """Current marked indications by coded type, count descending, with the cumulative percentage."""
    return _answer(request, uow, "pareto", lambda m: m.pareto(f), format, f.criteria())


@router.get(
    "/p-chart",
    response_model=list[PChartRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="p-chart of the fraction rejected",
)
def p_chart(request: Request, uow: ReadUnit, f: Filters, period: Period = "month", format: Format = "json") -> Response:
    """Per week (ISO) or month: n evaluated, rejected, p = rejected / n, centre p̄ = Σx / Σn, limits
    p̄ ± 3√(p̄(1−p̄)/n) for each subgroup's n (lower clipped at 0), and whether p lies outside them."""
    return _answer(request, uow, "p-chart", lambda m: m.p_chart(f, period), format, {**f.criteria(), "period": period})


@router.get(
    "/u-chart",
    response_model=list[UChartRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="u-chart of indications per inspection",
)
def u_chart(request: Request, uow: ReadUnit, f: Filters, period: Period = "month", format: Format = "json") -> Response:
    """Per week or month: evaluated inspections n, their indications c, u = c / n, centre ū = Σc / Σn,
    limits ū ± 3√(ū/n) (lower clipped at 0)."""
    return _answer(request, uow, "u-chart", lambda m: m.u_chart(f, period), format, {**f.criteria(), "period": period})


@router.get(
    "/turnaround",
    response_model=list[TurnaroundRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="Turnaround and backlog",
)
def turnaround(request: Request, uow: ReadUnit, f: Filters, format: Format = "json") -> Response:
    """Received → evaluated → approved: completed, mean and longest hours, backlog and its oldest wait."""
    return _answer(request, uow, "turnaround", lambda m: m.turnaround(f), format, f.criteria())


@router.get(
    "/qualifications",
    response_model=list[QualificationRow],
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="Signatures with a valid qualification; expiring certificates and vision tests",
)
def qualifications(request: Request, uow: ReadUnit, f: Filters, format: Format = "json") -> Response:
    """Per person and method: signatures (signed from/to), those made with a valid qualification
    (should be all), and when the certificate or vision test runs out (within 1, 3 or 6 months;
    0: expired). Filters used: from, to, inspector, method."""
    return _answer(request, uow, "qualifications", lambda m: m.qualifications(f), format, f.criteria())


@router.get(
    "/inspections",
    response_model=InspectionList,
    responses={**_ERRORS, 200: _CSV},
    dependencies=[require(QUALITY)],
    summary="The inspections behind a figure (drill-down)",
)
def inspections(
    request: Request,
    uow: ReadUnit,
    f: Filters,
    outcome: Annotated[str, Query(description=f"One of {', '.join(OUTCOMES)}")] = "inspections",
    type: Annotated[str, Query(max_length=16, description="Only those with an indication of this type")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    format: Format = "json",
) -> Response:
    """The inspections counted in a figure, with the same filters and definitions, newest first."""
    page: dict[str, int] = {}

    def compute(m: QualityMetrics) -> list[dict[str, Any]]:
        page["total"], items = m.inspections(f, outcome, type, limit, offset)
        return items

    criteria = {**f.criteria(), "outcome": outcome, **({"type": type} if type else {})}
    items = _compute(request, uow, "inspections", compute, format, criteria)
    if format == "csv":
        return _csv("inspections", items)
    return JSONResponse({"total": page["total"], "offset": offset, "limit": limit, "items": items})


def install_errors(app: FastAPI) -> None:
    """The quality routes' 400 / 503 answers (the router is installed by :func:`viewer.api.install`)."""

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QualityProblem)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    app.add_exception_handler(QualityProblem, problem)


__all__ = ["install_errors", "router"]
