"""WADO-URI (PS3.18 §9): ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``.

``contentType`` is ``application/dicom`` (the stored object as it is) or
``image/jpeg`` (default) / ``image/png`` rendered with ``windowCenter``,
``windowWidth``, ``rows``, ``columns``, ``frameNumber`` and ``imageQuality``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from viewer.auth import SecuredRouter, require
from viewer.dicomweb.common import READ, DicomWebError, archive_of, parse_media_type, stored_instances
from viewer.dicomweb.rendered import render_instance, render_options
from viewer.dicomweb.wado import _single_response
from viewer.rendering import MediaType, Viewport

router = SecuredRouter(tags=["WADO-URI"])

MAX_SIDE = 16384


def _positive(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 0 < int(raw) <= MAX_SIDE:
        raise DicomWebError(400, f"{name} must be an integer between 1 and {MAX_SIDE}")
    return int(raw)


@router.get("/wado", dependencies=[require(READ)])
def wado_uri(request: Request) -> Response:
    """Retrieve one object as DICOM, JPEG or PNG (PS3.18 §9.1)."""
    params = request.query_params
    if params.get("requestType") != "WADO":
        raise DicomWebError(400, "requestType must be WADO")
    uids = {name: params.get(name) for name in ("studyUID", "seriesUID", "objectUID")}
    missing = [name for name, value in uids.items() if not value]
    if missing:
        raise DicomWebError(400, f"missing parameter(s): {', '.join(missing)}")
    content_types = [parse_media_type(c).type for c in (params.get("contentType") or "image/jpeg").split(",")]
    chosen = next((c for c in content_types if c in ("application/dicom", "image/jpeg", "image/png", "*/*")), None)
    if chosen is None:
        raise DicomWebError(406, "contentType must be application/dicom, image/jpeg or image/png")
    archive = archive_of(request)
    study, series, sop = (str(uids["studyUID"]), str(uids["seriesUID"]), str(uids["objectUID"]))

    if chosen == "application/dicom":
        transfer = params.get("transferSyntax")
        instance = stored_instances(request, study, series, sop)[0]
        if transfer and transfer != instance.transfer_syntax_uid:
            raise DicomWebError(406, f"the object is stored as {instance.transfer_syntax_uid}; no transcoding")
        return _single_response(
            request,
            instance.size,
            lambda offset, length: archive.read_instance(instance, offset, length),
            "application/dicom",
            {"Content-Disposition": f'attachment; filename="{instance.sop_instance_uid}.dcm"'},
        )

    media_type: MediaType = "image/png" if chosen == "image/png" else "image/jpeg"
    rows, columns = _positive(request, "rows"), _positive(request, "columns")
    frame = _positive(request, "frameNumber") or 1
    center, width = params.get("windowCenter"), params.get("windowWidth")
    if bool(center) != bool(width):
        raise DicomWebError(400, "windowCenter and windowWidth go together")
    viewport = Viewport(columns or MAX_SIDE, rows or MAX_SIDE) if rows or columns else None
    options = render_options(
        request,
        media_type,
        window=f"{center},{width}" if center and width else "",
        viewport=viewport,
        quality=params.get("imageQuality") or "",
    )
    instance = stored_instances(request, study, series, sop, action="render")[0]
    return Response(render_instance(archive, instance, frame, options), media_type=media_type)
