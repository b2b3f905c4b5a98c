"""``/api/images/{uid}/annotations`` and ``/api/annotations``: measurements kept on an image."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from storage.records.annotations import Draft
from viewer.api import views
from viewer.api.errors import ERRORS, WRITE_ERRORS, ApiRoute
from viewer.api.inspections import UID_PATH
from viewer.api.models import AnnotationCreate, AnnotationOut, AnnotationPage, AnnotationWithdraw
from viewer.auth import SecuredRouter, request_actor, require
from viewer.deps import AnnotationsDep, ReadUnit, WriteUnit, audit_view

PIXELS = "images:read"
ANNOTATE = "annotations:write"
router = SecuredRouter(prefix="/api", tags=["api"], route_class=ApiRoute)


@router.get(
    "/images/{uid}/annotations",
    response_model=AnnotationPage,
    responses=ERRORS,
    dependencies=[require(PIXELS)],
    summary="The annotations (kept measurements) of an image",
)
def list_annotations(
    request: Request,
    annotations: AnnotationsDep,
    uow: ReadUnit,
    uid: Annotated[str, UID_PATH],
    frame: Annotated[int | None, Query(ge=1, le=1_000_000, description="Only this frame (1-based)")] = None,
    include_withdrawn: Annotated[bool, Query(description="Also the withdrawn ones")] = False,
) -> AnnotationPage:
    """The annotations of image *uid*, oldest first; withdrawn ones only on request."""
    found = annotations.list(uow, uid, frame=frame, include_withdrawn=include_withdrawn)
    audit_view(request, "api-annotations", found.study_instance_uid, found.series_instance_uid, uid, frame=frame)
    return AnnotationPage(image_uid=uid, version=found.version, items=[views.annotation(a) for a in found.items])


@router.post(
    "/images/{uid}/annotations",
    response_model=AnnotationOut,
    status_code=201,
    responses=WRITE_ERRORS,
    dependencies=[require(ANNOTATE)],
    summary="Keep a measurement on an image",
)
def create_annotation(
    request: Request,
    annotations: AnnotationsDep,
    uow: WriteUnit,
    uid: Annotated[str, UID_PATH],
    body: AnnotationCreate,
) -> AnnotationOut:
    """Store a measurement on frame *frame* of image *uid*, drawn by the caller (audited).

    Points are in image pixels and must lie within the image; the archive computes the value
    from them and the image's pixel spacing, and records which spacing it used.
    """
    draft = Draft(
        kind=body.kind,
        points=[(p.x, p.y) for p in body.points],
        frame=body.frame,
        text=body.text,
        label=body.label,
        note=body.note,
        instance_version=body.instance_version,
    )
    return views.annotation(annotations.create(uow, uid, draft, request_actor(request)))


@router.post(
    "/annotations/{annotation_id}/withdraw",
    response_model=AnnotationOut,
    responses=WRITE_ERRORS,
    dependencies=[require(ANNOTATE)],
    summary="Withdraw an annotation (it is kept, marked withdrawn)",
)
def withdraw_annotation(
    request: Request,
    annotations: AnnotationsDep,
    uow: WriteUnit,
    annotation_id: Annotated[int, Path(ge=1, le=2**62)],
    body: AnnotationWithdraw | None = None,
) -> AnnotationOut:
    """Mark annotation *annotation_id* withdrawn by the caller, with an optional reason (audited).

    Annotations are evidence: nothing is deleted, the withdrawn annotation stays listable.
    """
    reason = body.reason if body else None
    return views.annotation(annotations.withdraw(uow, annotation_id, request_actor(request), reason))
