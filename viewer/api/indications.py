"""``/api/`` routes of indications marked on images (DESIGN.md Interfaces, Records).

The door establishes the actor and maps the core's errors; every rule lives in
:mod:`storage.records.indications`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, Request

from storage.errors import ArchiveError, IndexUnavailable, NotFound, StorageUnavailable
from storage.records import evaluations, indications, signatures
from storage.records.release import NoReport
from viewer.api.evaluation_models import (
    DeviceIndicationOut,
    ImageIndications,
    IndicationChange,
    IndicationCreate,
    IndicationOut,
    Sizes,
    Term,
)
from viewer.api.models import Point, Spacing
from viewer.auth import SecuredRouter, request_actor, require
from viewer.deps import EvaluationDep, ReadUnit, WriteUnit

router = SecuredRouter(prefix="/api", tags=["indications"])
UID_PATH = Path(max_length=64, pattern=r"^[0-9.]+$")
ID_PATH = Path(ge=1, le=2**62)


def problem(exc: ArchiveError) -> HTTPException:
    """The HTTP status of a core error: 400 bad input, 403 not qualified, 409 state, 404, 503."""
    if isinstance(
        exc,
        indications.InvalidIndication | evaluations.InvalidEvaluation | signatures.InvalidSignature,
    ):
        return HTTPException(400, str(exc))
    if isinstance(exc, evaluations.NotQualified | signatures.SignatureRefused):
        return HTTPException(403, str(exc))
    if isinstance(exc, indications.IndicationConflict | evaluations.EvaluationConflict | NoReport):
        return HTTPException(409, str(exc))
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, IndexUnavailable | StorageUnavailable):
        return HTTPException(503, str(exc))
    return HTTPException(500, "archive error")


def indication_out(r: indications.IndicationRecord) -> IndicationOut:
    """The API form of an indication version."""
    s = r.sizes
    return IndicationOut(
        id=r.id,
        number=r.number,
        version=r.version,
        latest_version=r.latest_version,
        inspection_uid=r.study_instance_uid,
        image_uid=r.sop_instance_uid,
        image_version=r.instance_version,
        frame=r.frame,
        kind=r.kind,
        points=[Point(x=x, y=y) for x, y in r.points],
        type=r.type,
        label=r.label,
        description=r.description,
        sizes=Sizes(
            length=s.length,
            width=s.width,
            area=s.area,
            unit=s.unit,
            spacing=Spacing(row_mm=s.spacing.row_mm, column_mm=s.spacing.column_mm, attribute=s.spacing.attribute)
            if s.spacing
            else None,
        ),
        withdrawn=r.withdrawn,
        author=r.author,
        created_at=r.created_at,
        reason=r.reason,
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input: region outside the image, unknown type, ..."},
    403: {"description": "Not allowed"},
    404: {"description": "No such image or indication"},
    409: {"description": "A change after a signature without a reason, or a stale version"},
}


@router.get("/indication-types", dependencies=[require("studies:read")], summary="The indication type vocabulary")
def indication_types(desk: EvaluationDep) -> list[Term]:
    """The configured indication types (default: ISO 6520-1 groups and the DICONDE terms)."""
    return [Term(code=t.code, meaning=t.meaning) for t in desk.policy.indication_types]


@router.get(
    "/acceptance-standards", dependencies=[require("studies:read")], summary="The acceptance standards and levels"
)
def acceptance_standards(desk: EvaluationDep) -> list[Term]:
    """The configured acceptance standards, each with its level."""
    return [Term(code=t.code, meaning=t.meaning) for t in desk.policy.standards]


@router.get(
    "/images/{uid}/indications",
    response_model=ImageIndications,
    responses=_ERRORS,
    dependencies=[require("studies:read")],
    summary="The indications of an image (the inspectors' and the device's)",
)
def image_indications(desk: EvaluationDep, uow: ReadUnit, uid: Annotated[str, UID_PATH]) -> ImageIndications:
    """Newest version of each indication marked on image *uid*, and those the device sent in it."""
    try:
        marked, device, study_uid = desk.image_indications(uow, uid)
    except ArchiveError as exc:
        raise problem(exc) from exc
    return ImageIndications(
        image_uid=uid,
        inspection_uid=study_uid,
        items=[indication_out(r) for r in marked],
        device=[
            DeviceIndicationOut(
                number=d.number,
                label=d.label,
                types=d.types,
                disposition=d.disposition,
                description=d.description,
                kind=d.kind,
                points=[Point(x=x, y=y) for x, y in d.points],
            )
            for d in device
        ],
    )


@router.post(
    "/images/{uid}/indications",
    response_model=IndicationOut,
    status_code=201,
    responses=_ERRORS,
    dependencies=[require("annotations:write")],
    summary="Mark an indication on an image",
)
def create_indication(
    request: Request, desk: EvaluationDep, uow: WriteUnit, uid: Annotated[str, UID_PATH], body: IndicationCreate
) -> IndicationOut:
    """Mark a region of frame *frame* of image *uid* as an indication of a type (version 1, audited)."""
    draft = indications.Draft(
        kind=body.kind,
        points=[(p.x, p.y) for p in body.points],
        type=body.type,
        frame=body.frame,
        label=body.label,
        description=body.description,
    )
    try:
        return indication_out(desk.mark(uow, uid, draft, request_actor(request)))
    except ArchiveError as exc:
        raise problem(exc) from exc


@router.put(
    "/indications/{indication_id}",
    response_model=IndicationOut,
    responses=_ERRORS,
    dependencies=[require("annotations:write")],
    summary="Change an indication (a new version)",
)
def change_indication(
    request: Request,
    desk: EvaluationDep,
    uow: WriteUnit,
    indication_id: Annotated[int, ID_PATH],
    body: IndicationChange,
) -> IndicationOut:
    """Record the next version of indication *indication_id*; earlier versions stay (audited)."""
    change = indications.Change(
        reason=body.reason,
        kind=body.kind,
        points=[(p.x, p.y) for p in body.points] if body.points is not None else None,
        type=body.type,
        frame=body.frame,
        label=body.label,
        description=body.description,
        withdrawn=body.withdrawn,
        expected_version=body.version,
    )
    try:
        return indication_out(desk.change(uow, indication_id, change, request_actor(request)))
    except ArchiveError as exc:
        raise problem(exc) from exc


@router.get(
    "/indications/{indication_id}/history",
    response_model=list[IndicationOut],
    responses=_ERRORS,
    dependencies=[require("studies:read")],
    summary="Every version of an indication",
)
def indication_history(
    desk: EvaluationDep, uow: ReadUnit, indication_id: Annotated[int, ID_PATH]
) -> list[IndicationOut]:
    """All versions of indication *indication_id*, oldest first, with author, time and reason."""
    try:
        return [indication_out(r) for r in desk.history(uow, indication_id)]
    except ArchiveError as exc:
        raise problem(exc) from exc
