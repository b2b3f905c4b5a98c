"""``/api/components``: search components and read one with its inspection history."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from storage.index.catalog import SearchLevel
from viewer.api import views
from viewer.api.errors import ERRORS, ApiProblem, ApiRoute
from viewer.api.models import ComponentDetail, ComponentPage
from viewer.api.search import Filters, Limit, Offset, Order, criteria
from viewer.auth import SecuredRouter, require
from viewer.deps import CatalogDep, EvaluationDep, ReadUnit, audit

READ = "studies:read"
router = SecuredRouter(prefix="/api", tags=["api"], route_class=ApiRoute)


@router.get(
    "/components",
    response_model=ComponentPage,
    responses=ERRORS,
    dependencies=[require(READ)],
    summary="Search components",
)
def search_components(
    request: Request,
    catalog: CatalogDep,
    uow: ReadUnit,
    filters: Filters,
    sort: Annotated[str, Query(description="serial, name, material, inspections, updated")] = "",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> ComponentPage:
    """Components whose fields contain the given texts (case-insensitive), one page at a time.

    Inspection criteria (company, modality, date range) match components with any such inspection.
    """
    search = filters.search(SearchLevel.COMPONENT, sort=sort, order=order, limit=limit, offset=offset)
    page = catalog.search(uow, search)
    audit(
        request,
        uow,
        "api-search",
        detail={"level": search.level.value, "criteria": criteria(search), "matches": len(page.items)},
    )
    return ComponentPage(
        total=page.total, offset=page.offset, limit=page.limit, items=[views.component_summary(v) for v in page.items]
    )


@router.get(
    "/components/{serial:path}",
    response_model=ComponentDetail,
    responses=ERRORS,
    dependencies=[require(READ)],
    summary="A component and its inspection history",
)
def get_component(
    request: Request, catalog: CatalogDep, desk: EvaluationDep, uow: ReadUnit, serial: str
) -> ComponentDetail:
    """The component with serial *serial* and its inspections, oldest first."""
    if not serial or len(serial) > 64:  # LO is at most 64 characters
        raise ApiProblem(400, "serial must be 1 to 64 characters")
    tree = catalog.component(uow, serial)
    audit(request, uow, "api-component", detail={"serial": serial, "inspections": len(tree.children)})
    dates = [str(c["StudyDate"]) for c in tree.children if c.get("StudyDate")]
    summary = views.component_summary(tree.values, latest=max(dates) if dates else None)
    inspections = [views.inspection_summary(c, with_component=False) for c in tree.children]
    statuses = desk.statuses(uow, [i.uid for i in inspections])
    counts = catalog.device_indications(uow, [i.uid for i in inspections])
    for item in inspections:
        item.status = statuses[item.uid]
        item.device_indication_count = counts[item.uid]
    return ComponentDetail(**summary.model_dump(), inspections=inspections)
