"""``/api/`` routes: search, a component's history, an inspection, an image's details and raw frames.

Every route declares its permission (:func:`viewer.auth.require`) and every read is audited.
Queries go through :class:`storage.index.catalog.Catalog`; no SQL here.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydicom.datadict import dictionary_description, keyword_for_tag

from storage.archive import Archive
from storage.audit import AuditRecord
from storage.dicom.diconde.vocabulary import BY_KEYWORD as NDT_TERMS
from storage.dicom.diconde.vocabulary import TERMS, vocabulary
from storage.dicom.spacing import Spacing as PixelSpacing
from storage.dicom.spacing import numbers, pixel_spacing
from storage.errors import ArchiveError, IndexUnavailable, InvalidQuery, NotFound, StorageUnavailable
from storage.index.catalog import MAX_PAGE, Catalog, InstanceRecord, Search, SearchLevel
from storage.records.annotations import AnnotationConflict, AnnotationRecord, Annotations, Draft, InvalidAnnotation
from viewer.api import pixels
from viewer.api.indications import desk
from viewer.api.models import (
    AnnotationCreate,
    AnnotationOut,
    AnnotationPage,
    AnnotationWithdraw,
    ApiError,
    ComponentDetail,
    ComponentPage,
    ComponentSummary,
    ImageRef,
    InspectionDetail,
    InspectionPage,
    InspectionSummary,
    InstanceDetail,
    Point,
    SeriesSummary,
    Spacing,
    Tag,
    Window,
)
from viewer.auth import SecuredRouter, request_actor, require

router = SecuredRouter(prefix="/api", tags=["api"])
READ = "studies:read"
PIXELS = "images:read"
ANNOTATE = "annotations:write"
# Audit policy of the per-image reads the viewer makes while scrolling (details, raw frames,
# annotations): one entry per actor, series and action in this window (see README, Audit).
VIEW_AUDIT_WINDOW = timedelta(minutes=15)
MAX_VALUE_CHARS = 2048
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Bad parameter (the reason is in detail)"},
    404: {"model": ApiError, "description": "Not found"},
    503: {"model": ApiError, "description": "Index or object store unavailable"},
}
UID_PATH = Path(max_length=64, pattern=r"^[0-9.]+$")


class ApiProblem(Exception):
    """An archive error translated to an HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _problem(exc: ArchiveError) -> ApiProblem:
    if isinstance(exc, InvalidQuery | InvalidAnnotation):
        return ApiProblem(400, str(exc))
    if isinstance(exc, AnnotationConflict):
        return ApiProblem(409, str(exc))
    if isinstance(exc, NotFound):
        return ApiProblem(404, str(exc))
    if isinstance(exc, IndexUnavailable | StorageUnavailable):
        return ApiProblem(503, str(exc))
    return ApiProblem(500, "archive error")


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _audit(request: Request, action: str, outcome: str = "success", **fields: Any) -> None:
    detail = fields.pop("detail", {})
    _archive(request).record(
        AuditRecord(actor=request_actor(request), action=action, outcome=outcome, detail=detail, **fields)
    )


def _audit_view(request: Request, action: str, study: str, series: str, sop: str, **detail: Any) -> None:
    """Audit a per-image read once per actor, series and :data:`VIEW_AUDIT_WINDOW` (the viewer scrolls)."""
    record = AuditRecord(
        actor=request_actor(request),
        action=action,
        outcome="success",
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        # The entry stands for this actor's reads of the series for window_s seconds from now.
        detail={**detail, "window_s": int(VIEW_AUDIT_WINDOW.total_seconds())},
    )
    _archive(request).record_once(record, VIEW_AUDIT_WINDOW)


# -- value mapping ------------------------------------------------------------------


def _component(v: dict[str, Any], latest: str | None = None) -> ComponentSummary:
    return ComponentSummary(
        serial=v["PatientID"],
        name=v.get("PatientName"),
        manufacturing_date=v.get("PatientBirthDate"),
        material=v.get("EthnicGroup"),
        material_grade=v.get("MaterialGrade"),
        manufacturer=v.get("ComponentManufacturer"),
        material_thickness=v.get("MaterialThickness") or [],
        welder_ids=v.get("ComponentWelderIDs") or [],
        inspection_count=v.get("NumberOfPatientRelatedStudies") or 0,
        latest_inspection_date=latest if latest is not None else v.get("LatestStudyDate"),
    )


def _inspection(v: dict[str, Any], with_component: bool = True) -> InspectionSummary:
    return InspectionSummary(
        uid=v["StudyInstanceUID"],
        date=v.get("StudyDate"),
        time=v.get("StudyTime"),
        order=v.get("AccessionNumber"),
        inspection_id=v.get("StudyID"),
        description=v.get("StudyDescription"),
        owner=v.get("ReferringPhysicianName"),
        company=v.get("PhysiciansOfRecord"),
        expiry_date=v.get("ExpiryDate"),
        modalities=v.get("ModalitiesInStudy") or [],
        series_count=v.get("NumberOfStudyRelatedSeries") or 0,
        image_count=v.get("NumberOfStudyRelatedInstances") or 0,
        component=_component(v) if with_component and v.get("PatientID") else None,
        device_approval_status=v.get("ApprovalStatus"),
    )


def _pixels_url(sop_uid: str, frame: int | str = 1) -> str:
    return f"/api/images/{sop_uid}/frames/{frame}/pixels"


def _image_ref(study_uid: str, series_uid: str, v: dict[str, Any]) -> ImageRef:
    uid = v["SOPInstanceUID"]
    return ImageRef(
        uid=uid,
        sop_class_uid=v.get("SOPClassUID"),
        number=v.get("InstanceNumber"),
        rows=v.get("Rows"),
        columns=v.get("Columns"),
        frames=v.get("NumberOfFrames") or 1,
        details_url=f"/api/images/{uid}",
        pixels_url=_pixels_url(uid),
        thumbnail_url=f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{uid}/thumbnail",
    )


def _first(header: dict[str, Any], tag: str) -> Any:
    values = header.get(tag, {}).get("Value") or []
    return values[0] if values else None


def _spacing(spacing: PixelSpacing | None) -> Spacing | None:
    return Spacing(**dataclasses.asdict(spacing)) if spacing else None


def _windows(header: dict[str, Any]) -> list[Window]:
    centers, widths = numbers(header, "00281050"), numbers(header, "00281051")
    explanations = header.get("00281055", {}).get("Value") or []
    return [
        Window(center=c, width=w, explanation=str(explanations[i]) if i < len(explanations) else None)
        for i, (c, w) in enumerate(zip(centers, widths, strict=False))
        if w > 0
    ]


def _text(element: dict[str, Any]) -> str:
    """A DICOM JSON element's value as text (PS3.18 F.2)."""
    vr = element.get("vr", "")
    if "BulkDataURI" in element or "InlineBinary" in element:
        return "(binary data)"
    values = element.get("Value") or []
    if vr == "SQ":
        return f"({len(values)} item{'s' if len(values) != 1 else ''})"
    parts = []
    for value in values:
        if isinstance(value, dict):
            groups = [str(value.get(k, "")) for k in ("Alphabetic", "Ideographic", "Phonetic")]
            while groups and not groups[-1]:
                groups.pop()
            parts.append("=".join(groups))  # PS3.5 6.2: PN component groups
        else:
            parts.append(str(value))
    text = "\\".join(parts)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _tags(header: dict[str, Any]) -> list[Tag]:
    tags = []
    for key, element in header.items():
        try:
            number = int(key, 16)
        except ValueError:
            continue
        keyword = keyword_for_tag(number) or ""
        try:
            name = dictionary_description(number)
        except KeyError:
            name = "Private or unknown"
        tags.append(
            Tag(
                tag=f"{key[:4]},{key[4:]}",
                keyword=keyword,
                name=name,
                ndt_label=NDT_TERMS[keyword].label if keyword in NDT_TERMS else None,
                vr=str(element.get("vr", "")),
                value=_text(element),
            )
        )
    order = {term.keyword: i for i, term in enumerate(TERMS)}
    tags.sort(key=lambda t: (0, order[t.keyword], "") if t.keyword in order else (1, 0, t.tag))
    return tags


def _instance_detail(record: InstanceRecord) -> InstanceDetail:
    h, v = record.header, record.values
    uid = v["SOPInstanceUID"]
    return InstanceDetail(
        uid=uid,
        sop_class_uid=v.get("SOPClassUID"),
        inspection_uid=record.study_instance_uid,
        series_uid=record.series_instance_uid,
        serial=record.patient_id,
        modality=_first(h, "00080060"),
        rows=int(v.get("Rows") or _first(h, "00280010") or 0),
        columns=int(v.get("Columns") or _first(h, "00280011") or 0),
        frames=int(v.get("NumberOfFrames") or 1),
        samples_per_pixel=int(_first(h, "00280002") or 1),
        bits_stored=_first(h, "00280101"),
        signed=_first(h, "00280103") == 1,
        photometric=_first(h, "00280004"),
        rescale_slope=(numbers(h, "00281053") or [1.0])[0] or 1.0,
        rescale_intercept=(numbers(h, "00281052") or [0.0])[0],
        windows=_windows(h),
        spacing=_spacing(pixel_spacing(h)),
        transfer_syntax_uid=record.transfer_syntax_uid,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        version=record.version,
        pixels_url=_pixels_url(uid, "{frame}"),
        tags=_tags(h),
    )


# -- routes ---------------------------------------------------------------------------


Text = Annotated[str, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Order = Annotated[str, Query(pattern="^(asc|desc)$")]
Date = Annotated[str, Query(alias="from", pattern=r"^(\d{8})?$", description="Earliest inspection date, YYYYMMDD")]
DateTo = Annotated[str, Query(alias="to", pattern=r"^(\d{8})?$", description="Latest inspection date, YYYYMMDD")]


@dataclasses.dataclass
class SearchFilters:
    """The criteria shared by the component and the inspection search (query parameters)."""

    serial: Text = ""
    name: Text = ""
    material: Text = ""
    welder: Text = ""
    company: Text = ""
    modality: Annotated[str, Query(max_length=16, pattern=r"^[A-Za-z0-9_]*$")] = ""
    date_from: Date = ""
    date_to: DateTo = ""
    q: Annotated[str, Query(max_length=200, description="Free text over all fields")] = ""
    status: Annotated[
        str, Query(pattern=r"^(received|evaluated|approved|rejected|on-hold)?$", description="Evaluation status")
    ] = ""


Filters = Annotated[SearchFilters, Depends()]


def _search(
    request: Request, level: SearchLevel, filters: SearchFilters, *, sort: str, order: str, limit: int, offset: int
) -> Any:
    search = Search(
        level=level,
        serial=filters.serial,
        name=filters.name,
        material=filters.material,
        welder=filters.welder,
        company=filters.company,
        modality=filters.modality,
        date_from=filters.date_from,
        date_to=filters.date_to,
        text=filters.q,
        status=filters.status,
        sort=sort,
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )
    try:
        page = Catalog(_archive(request).db).search(search)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    criteria = {k: v for k, v in vars(search).items() if v not in ("", False) and k not in ("level",)}
    _audit(request, "api-search", detail={"level": level.value, "criteria": criteria, "matches": len(page.items)})
    return page


@router.get(
    "/components",
    response_model=ComponentPage,
    responses=_ERRORS,
    dependencies=[require(READ)],
    summary="Search components",
)
def search_components(
    request: Request,
    filters: Filters,
    sort: Annotated[str, Query(description="serial, name, material, inspections, updated")] = "",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> ComponentPage:
    """Components whose fields contain the given texts (case-insensitive), one page at a time.

    Inspection criteria (company, modality, date range) match components with any such inspection.
    """
    page = _search(request, SearchLevel.COMPONENT, filters, sort=sort, order=order, limit=limit, offset=offset)
    return ComponentPage(
        total=page.total, offset=page.offset, limit=page.limit, items=[_component(v) for v in page.items]
    )


@router.get(
    "/inspections",
    response_model=InspectionPage,
    responses=_ERRORS,
    dependencies=[require(READ)],
    summary="Search inspections",
)
def search_inspections(
    request: Request,
    filters: Filters,
    sort: Annotated[str, Query(description="date, serial, name, company, order, modality")] = "",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> InspectionPage:
    """Inspections (with their component) matching the criteria, newest first by default."""
    page = _search(request, SearchLevel.INSPECTION, filters, sort=sort, order=order, limit=limit, offset=offset)
    items = [_inspection(v) for v in page.items]
    statuses = desk(request).statuses([i.uid for i in items])
    for item in items:
        item.status = statuses[item.uid]
    return InspectionPage(total=page.total, offset=page.offset, limit=page.limit, items=items)


@router.get(
    "/components/{serial:path}",
    response_model=ComponentDetail,
    responses=_ERRORS,
    dependencies=[require(READ)],
    summary="A component and its inspection history",
)
def get_component(request: Request, serial: str) -> ComponentDetail:
    """The component with serial *serial* and its inspections, oldest first."""
    if not serial or len(serial) > 64:  # LO is at most 64 characters
        raise ApiProblem(400, "serial must be 1 to 64 characters")
    try:
        tree = Catalog(_archive(request).db).component(serial)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    _audit(request, "api-component", detail={"serial": serial, "inspections": len(tree.children)})
    dates = [str(c["StudyDate"]) for c in tree.children if c.get("StudyDate")]
    summary = _component(tree.values, latest=max(dates) if dates else None)
    return ComponentDetail(
        **summary.model_dump(), inspections=[_inspection(c, with_component=False) for c in tree.children]
    )


@router.get(
    "/inspections/{uid}",
    response_model=InspectionDetail,
    responses=_ERRORS,
    dependencies=[require(READ)],
    summary="An inspection with its series and images",
)
def get_inspection(request: Request, uid: Annotated[str, UID_PATH]) -> InspectionDetail:
    """The inspection *uid*: its component, its series in order and each series' images."""
    try:
        component, tree = Catalog(_archive(request).db).inspection(uid)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    _audit(request, "api-inspection", study_instance_uid=uid)
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
            images=[_image_ref(uid, s["SeriesInstanceUID"], i) for i in s["instances"]],
        )
        for s in tree.children
    ]
    summary = _inspection({**component, **tree.values})
    summary.status = desk(request).statuses([uid])[uid]
    return InspectionDetail(**summary.model_dump(), series=series)


@router.get(
    "/images/{uid}",
    response_model=InstanceDetail,
    responses=_ERRORS,
    dependencies=[require(READ)],
    summary="An image's geometry, pixel description and attributes",
)
def get_image(request: Request, uid: Annotated[str, UID_PATH]) -> InstanceDetail:
    """All stored attributes of image *uid* (NDT-labelled ones first), its spacing and stored windows."""
    try:
        record = Catalog(_archive(request).db).instance(uid)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    _audit_view(request, "api-image", record.study_instance_uid, record.series_instance_uid, uid)
    return _instance_detail(record)


@router.get(
    "/images/{uid}/frames/{frame}/pixels",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "Raw little-endian stored values"},
        **_ERRORS,
    },
    dependencies=[require(PIXELS)],
    summary="Raw stored pixel values of one frame",
)
def get_pixels(
    request: Request,
    uid: Annotated[str, UID_PATH],
    frame: Annotated[int, Path(ge=1, le=1_000_000)],
    scale: Annotated[int, Query(ge=1, le=pixels.MAX_SCALE, description="Keep every N-th row and column")] = 1,
) -> Response:
    """Frame *frame* (1-based) as stored values, row by row; headers X-Rows, X-Columns, X-Pixel-Type, X-Samples.

    The browser applies window/level on these values itself.
    """
    archive = _archive(request)
    try:
        record = Catalog(archive.db).instance(uid)
        body, headers = pixels.raw_frame(pixels.decode_frame(archive, record, frame, scale), scale)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    _audit_view(
        request, "api-pixels", record.study_instance_uid, record.series_instance_uid, uid, frame=frame, scale=scale
    )
    headers["Cache-Control"] = "private, max-age=3600"
    return Response(body, media_type="application/octet-stream", headers=headers)


@router.get(
    "/vocabulary",
    dependencies=[require(READ)],
    summary="The NDT names of DICOM attributes (DICONDE)",
)
def get_vocabulary() -> list[dict[str, str]]:
    """Keyword, tag, NDT label and DICONDE module of every attribute with an NDT meaning."""
    return vocabulary()


# -- annotations ------------------------------------------------------------------------


def _annotation(a: AnnotationRecord) -> AnnotationOut:
    return AnnotationOut(
        id=a.id,
        image_uid=a.sop_instance_uid,
        instance_version=a.instance_version,
        frame=a.frame,
        kind=a.kind,
        points=[Point(x=x, y=y) for x, y in a.points],
        value=a.value,
        unit=a.unit,
        text=a.text,
        spacing=_spacing(a.spacing),
        label=a.label,
        note=a.note,
        author=a.author,
        created_at=a.created_at,
        withdrawn=a.withdrawn,
        withdrawn_at=a.withdrawn_at,
        withdrawn_by=a.withdrawn_by,
        withdrawal_reason=a.withdrawal_reason,
    )


_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    403: {"model": ApiError, "description": "The caller lacks the annotations:write permission"},
    409: {"model": ApiError, "description": "The image changed since it was drawn on, or already withdrawn"},
}


@router.get(
    "/images/{uid}/annotations",
    response_model=AnnotationPage,
    responses=_ERRORS,
    dependencies=[require(PIXELS)],
    summary="The annotations (kept measurements) of an image",
)
def list_annotations(
    request: Request,
    uid: Annotated[str, UID_PATH],
    frame: Annotated[int | None, Query(ge=1, le=1_000_000, description="Only this frame (1-based)")] = None,
    include_withdrawn: Annotated[bool, Query(description="Also the withdrawn ones")] = False,
) -> AnnotationPage:
    """The annotations of image *uid*, oldest first; withdrawn ones only on request."""
    try:
        found = Annotations(_archive(request).db).list(uid, frame=frame, include_withdrawn=include_withdrawn)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    _audit_view(request, "api-annotations", found.study_instance_uid, found.series_instance_uid, uid, frame=frame)
    return AnnotationPage(image_uid=uid, version=found.version, items=[_annotation(a) for a in found.items])


@router.post(
    "/images/{uid}/annotations",
    response_model=AnnotationOut,
    status_code=201,
    responses=_WRITE_ERRORS,
    dependencies=[require(ANNOTATE)],
    summary="Keep a measurement on an image",
)
def create_annotation(request: Request, uid: Annotated[str, UID_PATH], body: AnnotationCreate) -> AnnotationOut:
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
    try:
        created = Annotations(_archive(request).db).create(uid, draft, request_actor(request))
    except ArchiveError as exc:
        raise _problem(exc) from exc
    return _annotation(created)


@router.post(
    "/annotations/{annotation_id}/withdraw",
    response_model=AnnotationOut,
    responses=_WRITE_ERRORS,
    dependencies=[require(ANNOTATE)],
    summary="Withdraw an annotation (it is kept, marked withdrawn)",
)
def withdraw_annotation(
    request: Request,
    annotation_id: Annotated[int, Path(ge=1, le=2**62)],
    body: AnnotationWithdraw | None = None,
) -> AnnotationOut:
    """Mark annotation *annotation_id* withdrawn by the caller, with an optional reason (audited).

    Annotations are evidence: nothing is deleted, the withdrawn annotation stays listable.
    """
    reason = body.reason if body else None
    try:
        withdrawn = Annotations(_archive(request).db).withdraw(annotation_id, request_actor(request), reason)
    except ArchiveError as exc:
        raise _problem(exc) from exc
    return _annotation(withdrawn)


def install(app: FastAPI) -> None:
    """Add the REST API to *app*: routes, and 400 (not 422) with the reason for bad parameters."""
    app.include_router(router)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith("/api/"):
            reasons = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
            return JSONResponse({"detail": "; ".join(reasons)}, status_code=400)
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(ApiProblem, problem)
    app.add_exception_handler(RequestValidationError, invalid)


__all__ = ["install", "router"]
