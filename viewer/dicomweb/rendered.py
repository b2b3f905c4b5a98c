"""Rendered resources and thumbnails (PS3.18 §10.4.1.1.4, §10.4.1.1.6): JPEG or PNG.

``window=center,width[,function]``, ``viewport=vw,vh[,sx,sy,sw,sh]`` and
``quality=1..100`` (PS3.18 §8.3.5.1); without a window the stored VOI LUT or
window applies (see :mod:`viewer.rendering`).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from storage.archive import Archive
from storage.index.retrieve import StoredInstance
from viewer.auth import SecuredRouter, require
from viewer.dicomweb.common import PREFIX, READ, DicomWebError, accepted, archive_of, parse_media_type, stored_instances
from viewer.frames import load_frame
from viewer.rendering import (
    MediaType,
    RenderOptions,
    Viewport,
    parse_quality,
    parse_viewport,
    parse_window,
    render,
)

router = SecuredRouter(prefix=PREFIX, tags=["WADO-RS rendered"])

THUMBNAIL = Viewport(128, 128)


def choose_media_type(request: Request) -> MediaType:
    """JPEG or PNG from the ``accept`` query parameter or the Accept header (JPEG by default)."""
    override = request.query_params.get("accept")
    ranges = [parse_media_type(override)] if override else accepted(request)
    for rng in ranges:
        if rng.type == "image/png":
            return "image/png"
        if rng.type in ("image/jpeg", "image/*", "*/*"):
            return "image/jpeg"
    raise DicomWebError(406, "rendered resources are served as image/jpeg or image/png")


def render_options(
    request: Request,
    media_type: MediaType,
    *,
    window: str | None = None,
    viewport: Viewport | None = None,
    quality: str | None = None,
) -> RenderOptions:
    """RenderOptions from explicit values or the PS3.18 query parameters."""
    params = request.query_params
    window = window if window is not None else params.get("window")
    quality = quality if quality is not None else params.get("quality")
    if viewport is None and params.get("viewport"):
        viewport = parse_viewport(params["viewport"])
    return RenderOptions(
        media_type=media_type,
        window=parse_window(window) if window else None,
        viewport=viewport,
        quality=parse_quality(quality) if quality else 90,
    )


def render_instance(archive: Archive, instance: StoredInstance, frame: int, options: RenderOptions) -> bytes:
    """Decode frame *frame* of *instance* and render it."""
    return render(load_frame(archive, instance, frame), options)


def _rendered(request: Request, study: str, series: str, sop: str, frame: int) -> Response:
    media_type = choose_media_type(request)
    options = render_options(request, media_type)
    instance = stored_instances(request, study, series, sop, action="render")[0]
    body = render_instance(archive_of(request), instance, frame, options)
    return Response(body, media_type=media_type)


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered", dependencies=[require(READ)])
def rendered_instance(request: Request, study: str, series: str, sop: str) -> Response:
    """The instance's first frame, rendered."""
    return _rendered(request, study, series, sop, 1)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered", dependencies=[require(READ)])
def rendered_frame(request: Request, study: str, series: str, sop: str, frames: str) -> Response:
    """One frame, rendered (a list of frames would need a multi-frame media type)."""
    if not frames.strip().isdigit() or int(frames) < 1:
        raise DicomWebError(400, f"rendered frames take one positive frame number, not {frames[:40]!r}")
    return _rendered(request, study, series, sop, int(frames))


def _thumbnail(request: Request, study: str, series: str | None = None, sop: str | None = None) -> Response:
    media_type = choose_media_type(request)
    options = render_options(request, media_type, viewport=None)
    if options.viewport is None:
        options = RenderOptions(media_type, options.window, THUMBNAIL, options.quality)
    instances = [i for i in stored_instances(request, study, series, sop, action="render") if i.rows]
    if not instances:
        raise DicomWebError(404, "no image to make a thumbnail of")
    instance = instances[len(instances) // 2]
    frames = instance.number_of_frames or 1
    body = render_instance(archive_of(request), instance, (frames + 1) // 2, options)
    return Response(body, media_type=media_type)


@router.get("/studies/{study}/thumbnail", dependencies=[require(READ)])
def study_thumbnail(request: Request, study: str) -> Response:
    """A small rendering of a representative image of the study."""
    return _thumbnail(request, study)


@router.get("/studies/{study}/series/{series}/thumbnail", dependencies=[require(READ)])
def series_thumbnail(request: Request, study: str, series: str) -> Response:
    """A small rendering of the series' middle image."""
    return _thumbnail(request, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/thumbnail", dependencies=[require(READ)])
def instance_thumbnail(request: Request, study: str, series: str, sop: str) -> Response:
    """A small rendering of the instance's middle frame."""
    return _thumbnail(request, study, series, sop)
