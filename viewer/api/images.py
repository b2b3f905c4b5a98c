"""``/api/images``: an image's details and the raw stored values of a frame."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import Response

from viewer.api import pixels, views
from viewer.api.errors import ERRORS, ApiRoute
from viewer.api.inspections import UID_PATH
from viewer.api.models import InstanceDetail
from viewer.auth import SecuredRouter, require
from viewer.deps import ArchiveDep, CatalogDep, ReadUnit, audit_view

READ = "studies:read"
PIXELS = "images:read"
router = SecuredRouter(prefix="/api", tags=["api"], route_class=ApiRoute)


@router.get(
    "/images/{uid}",
    response_model=InstanceDetail,
    responses=ERRORS,
    dependencies=[require(READ)],
    summary="An image's geometry, pixel description and attributes",
)
def get_image(request: Request, catalog: CatalogDep, uow: ReadUnit, uid: Annotated[str, UID_PATH]) -> InstanceDetail:
    """All stored attributes of image *uid* (NDT-labelled ones first), its spacing and stored windows."""
    record = catalog.instance(uow, uid)
    audit_view(request, "api-image", record.study_instance_uid, record.series_instance_uid, uid)
    return views.instance_detail(record)


@router.get(
    "/images/{uid}/frames/{frame}/pixels",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "Raw little-endian stored values"},
        **ERRORS,
    },
    dependencies=[require(PIXELS)],
    summary="Raw stored pixel values of one frame",
)
def get_pixels(
    request: Request,
    archive: ArchiveDep,
    catalog: CatalogDep,
    uow: ReadUnit,
    uid: Annotated[str, UID_PATH],
    frame: Annotated[int, Path(ge=1, le=1_000_000)],
    scale: Annotated[int, Query(ge=1, le=pixels.MAX_SCALE, description="Keep every N-th row and column")] = 1,
) -> Response:
    """Frame *frame* (1-based) as stored values, row by row; headers X-Rows, X-Columns, X-Pixel-Type, X-Samples.

    The browser applies window/level on these values itself.
    """
    record = catalog.instance(uow, uid)
    body, headers = pixels.raw_frame(pixels.decode_frame(archive, record, frame, scale, uow=uow), scale)
    audit_view(
        request, "api-pixels", record.study_instance_uid, record.series_instance_uid, uid, frame=frame, scale=scale
    )
    headers["Cache-Control"] = "private, max-age=3600"
    return Response(body, media_type="application/octet-stream", headers=headers)
