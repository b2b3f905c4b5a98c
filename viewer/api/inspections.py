"""``/api/inspections``: search inspections and read one with its series and images."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from storage.index.catalog import SearchLevel
from viewer.api import views
from viewer.api.errors import ERRORS, ApiRoute
from viewer.api.models import InspectionDetail, InspectionPage, SeriesSummary
from viewer.api.search import Filters, Limit, Offset, Order, criteria
from viewer.auth import SecuredRouter, require
from viewer.deps import CatalogDep, EvaluationDep, ReadUnit, audit

READ = "studies:read"
UID_PATH = Path(max_length=64, pattern=r"^[0-9.]+$")
router = SecuredRouter(prefix="/api", tags=["api"], route_class=ApiRoute)


@router.get(
    "/inspections",
    response_model=InspectionPage,
    responses=ERRORS,
    dependencies=[require(READ)],
    summary="Search inspections",
)
def search_inspections(
    request: Request,
    catalog: CatalogDep,
    desk: EvaluationDep,
    uow: ReadUnit,
    filters: Filters,
    sort: Annotated[str, Query(description="date, serial, name, company, order, modality")] = "",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> InspectionPage:
    """Inspections (with their component) matching the criteria, newest first by default."""
    search = filters.search(SearchLevel.INSPECTION, sort=sort, order=order, limit=limit, offset=offset)
    page = catalog.search(uow, search)
    audit(
        request,
        uow,
        "api-search",
        detail={"level": search.level.value, "criteria": criteria(search), "matches": len(page.items)},
    )
    items = [views.inspection_summary(v) for v in page.items]
    statuses = desk.statuses(uow, [i.uid for i in items])
    for item in items:
        item.status = statuses[item.uid]
    return InspectionPage(total=page.total, offset=page.offset, limit=page.limit, items=items)


@router.get(
    "/inspections/{uid}",
    response_model=InspectionDetail,
    responses=ERRORS,
    dependencies=[require(READ)],
    summary="An inspection with its series and images",
)
def get_inspection(
    request: Request, catalog: CatalogDep, desk: EvaluationDep, uow: ReadUnit, uid: Annotated[str, UID_PATH]
) -> InspectionDetail:
    """The inspection *uid*: its component, its series in order and each series' images."""
    component, tree = catalog.inspection(uow, uid)
    audit(request, uow, "api-inspection", study_instance_uid=uid)
    series = [
        SeriesSummary(
            uid=s["SeriesInstanceUID"],
            number=s.get("SeriesNumber"),
            modality=s.get("Modality"),
            description=s.get("SeriesDescription"),
            date=s.get("SeriesDate"),
            inspector=s.get("PerformingPhysicianName"),
            operator=s.get("OperatorsName"),
            station=s.get("StationName"),
            device_manufacturer=s.get("Manufacturer"),
            device_serial=s.get("DeviceSerialNumber"),
            images=[views.image_ref(uid, s["SeriesInstanceUID"], i) for i in s["instances"]],
        )
        for s in tree.children
    ]
    summary = views.inspection_summary({**component, **tree.values})
    summary.status = desk.statuses(uow, [uid])[uid]
    summary.device_indication_count = catalog.device_indications(uow, [uid])[uid]
    return InspectionDetail(**summary.model_dump(), series=series)
