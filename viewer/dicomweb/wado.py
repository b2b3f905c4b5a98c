"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data.

Instances are served as stored (no transcoding): ``multipart/related;
type="application/dicom"`` streamed from the object store, or a single
``application/dicom`` part (with HTTP Range) for one instance. Metadata comes from
the header JSON kept in the index, never from re-reading objects.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from storage.archive import BULK_DATA_THRESHOLD, Archive
from storage.index.retrieve import StoredInstance
from viewer.auth import SecuredRouter, require
from viewer.dicomweb.common import (
    DICOM_JSON,
    PREFIX,
    READ,
    DicomWebError,
    MediaRange,
    accepted,
    archive_of,
    instance_url,
    stored_instances,
)
from viewer.dicomweb.multipart import new_boundary, write_parts
from viewer.frames import FrameNotFound, decode_frame, frame_bytes, pixel_info, read_header

router = SecuredRouter(prefix=PREFIX, tags=["WADO-RS"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
PIXEL_DATA = 0x7FE00010


# -- content negotiation and ranges -------------------------------------------------


def _multipart_type(rng: MediaRange) -> str | None:
    """The part type a media range asks for in a multipart response (None: not multipart)."""
    if rng.type in ("*/*", "multipart/*"):
        return "*"
    if rng.type == "multipart/related":
        return rng.params.get("type", "*").lower()
    return None


def negotiate(request: Request, part_type: str, *, single: bool) -> tuple[str, set[str] | None]:
    """``("multipart" | "single", transfer syntaxes)``; 406 when nothing acceptable is asked.

    *single* allows a bare *part_type* response (one instance, one bulk value).
    The transfer syntax set is None when any is acceptable (``*`` or none named).
    """
    ranges = accepted(request)
    has_range = "range" in request.headers
    for rng in ranges:
        syntax = rng.params.get("transfer-syntax")
        syntaxes = None if syntax in (None, "*") else {syntax}
        if single and (rng.type == part_type or (has_range and rng.type == "*/*")):
            return "single", syntaxes
        wanted = _multipart_type(rng)
        if wanted is not None and (wanted == "*" or MediaRange(wanted).matches(part_type)):
            return "multipart", syntaxes
    raise DicomWebError(406, f'not acceptable: this resource is served as multipart/related; type="{part_type}"')


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as (start, length); None for no/ignored range; 416 if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None  # multiple or malformed ranges: RFC 9110 §14.2 allows ignoring Range
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size)
        start = size - length
    else:
        start = int(first)
        if last and int(last) < start:
            return None  # invalid range-spec: ignored (RFC 9110 §14.1.1)
        end = min(int(last), size - 1) if last else size - 1
        length = end - start + 1
    if start >= size or length <= 0:
        raise DicomWebError(416, f"range not satisfiable for {size} bytes", {"Content-Range": f"bytes */{size}"})
    return start, length


def _check_syntax(instance: StoredInstance, syntaxes: set[str] | None) -> None:
    if syntaxes is not None and instance.transfer_syntax_uid not in syntaxes:
        raise DicomWebError(
            406,
            f"instance {instance.sop_instance_uid} is stored as {instance.transfer_syntax_uid}; "
            "this archive serves stored bytes as they are (use transfer-syntax=*)",
        )


def _multipart_response(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], part_type: str) -> Response:
    boundary = new_boundary()
    media = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(write_parts(parts, boundary), media_type=media)


def _single_response(
    request: Request, size: int, read: Any, media_type: str, extra: dict[str, str] | None = None
) -> Response:
    """A single-part body with HTTP Range support (RFC 9110 §14); *read(offset, length)* streams bytes."""
    headers = {"Accept-Ranges": "bytes", **(extra or {})}
    span = parse_range(request.headers.get("range"), size)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(read(0, None), media_type=media_type, headers=headers)
    start, length = span
    headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(read(start, length), status_code=206, media_type=media_type, headers=headers)


# -- instances ------------------------------------------------------------------------


def _retrieve(request: Request, study: str, series: str | None = None, sop: str | None = None) -> Response:
    mode, syntaxes = negotiate(request, "application/dicom", single=sop is not None)
    instances = stored_instances(request, study, series, sop)
    for instance in instances:
        _check_syntax(instance, syntaxes)
    archive = archive_of(request)
    if mode == "single":
        instance = instances[0]
        return _single_response(
            request,
            instance.size,
            lambda offset, length: archive.read_instance(instance, offset, length),
            f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}",
        )

    def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
        for instance in instances:
            headers = {
                "Content-Type": f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}",
                "Content-Location": instance_url(
                    request, instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid
                ),
                "Content-Length": str(instance.size),
            }
            yield headers, archive.read_instance(instance)

    return _multipart_response(parts(), "application/dicom")


@router.get("/studies/{study}", dependencies=[require(READ)])
def retrieve_study(request: Request, study: str) -> Response:
    """Retrieve every instance of a study (PS3.18 §10.4.1.1.1)."""
    return _retrieve(request, study)


@router.get("/studies/{study}/series/{series}", dependencies=[require(READ)])
def retrieve_series(request: Request, study: str, series: str) -> Response:
    """Retrieve every instance of a series."""
    return _retrieve(request, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}", dependencies=[require(READ)])
def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
    """Retrieve one instance (multipart, or bare application/dicom with Range)."""
    return _retrieve(request, study, series, sop)


# -- metadata -------------------------------------------------------------------------


def _pixel_data_vr(instance: StoredInstance, header: str) -> str:
    if UID(instance.transfer_syntax_uid).is_compressed:
        return "OB"
    return "OB" if '"00280100":{"vr":"US","Value":[8]}' in header else "OW"


def metadata_json(request: Request, instance: StoredInstance) -> str:
    """The instance's stored header JSON with absolute BulkDataURIs (PS3.18 §F.2.6) and Pixel Data."""
    header = instance.header_json or "{}"
    url = instance_url(request, instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)
    header = header.replace('"BulkDataURI":"bulkdata/', f'"BulkDataURI":"{url}/bulkdata/')
    if instance.rows and '"7FE00010"' not in header and header.endswith("}"):
        pixel = f'"7FE00010":{{"vr":"{_pixel_data_vr(instance, header)}","BulkDataURI":"{url}/bulkdata/7FE00010"}}'
        header = header[:-1] + ("," if header != "{}" else "") + pixel + "}"
    return header


def _metadata(request: Request, study: str, series: str | None = None, sop: str | None = None) -> Response:
    if not any(r.matches("application/dicom+json") or r.matches("application/json") for r in accepted(request)):
        raise DicomWebError(406, "metadata is served as application/dicom+json")
    instances = stored_instances(request, study, series, sop, with_header=True, action="metadata")

    def body() -> Iterator[bytes]:
        yield b"["
        for i, instance in enumerate(instances):
            yield (("," if i else "") + metadata_json(request, instance)).encode("utf-8")
        yield b"]"

    return StreamingResponse(body(), media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata", dependencies=[require(READ)])
def study_metadata(request: Request, study: str) -> Response:
    """Metadata of every instance of a study (PS3.18 §10.4.1.1.2)."""
    return _metadata(request, study)


@router.get("/studies/{study}/series/{series}/metadata", dependencies=[require(READ)])
def series_metadata(request: Request, study: str, series: str) -> Response:
    """Metadata of every instance of a series."""
    return _metadata(request, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", dependencies=[require(READ)])
def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
    """Metadata of one instance."""
    return _metadata(request, study, series, sop)


# -- frames ---------------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5] (PS3.18 §8.3.3.1.2); 400 when malformed."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise DicomWebError(400, f"frame numbers must be positive integers: {text[:80]!r}")
        numbers.append(int(item))
    if len(numbers) > 10_000:
        raise DicomWebError(400, "too many frames in one request")
    return numbers


def _frames_response(archive: Archive, request: Request, instance: StoredInstance, numbers: list[int]) -> Response:
    stream = archive.open_instance(instance)
    try:
        header = read_header(stream)
        # Decode the first frame now, so a bad frame number or undecodable data gets a status, not a cut stream.
        first = frame_bytes(decode_frame(stream, numbers[0], header))
        for number in numbers[1:]:
            _check_frame(header, number)
    except BaseException:
        stream.close()
        raise
    url = instance_url(request, instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)

    def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
        try:
            for i, number in enumerate(numbers):
                data = first if i == 0 else frame_bytes(decode_frame(stream, number, header))
                yield (
                    {
                        "Content-Type": "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
                        "Content-Location": f"{url}/frames/{number}",
                    },
                    [data],
                )
        finally:
            stream.close()

    return _multipart_response(parts(), "application/octet-stream")


def _check_frame(header: Dataset, number: int) -> None:
    """Raise FrameNotFound for a frame number outside the instance (before streaming starts)."""
    frames = pixel_info(header).number_of_frames
    if number > frames:
        raise FrameNotFound(f"frame {number} does not exist (the instance has {frames})")


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}", dependencies=[require(READ)])
def retrieve_frames(request: Request, study: str, series: str, sop: str, frames: str) -> Response:
    """Frames as uncompressed application/octet-stream parts (PS3.18 §10.4.1.1.3)."""
    numbers = parse_frame_list(frames)
    _, syntaxes = negotiate(request, "application/octet-stream", single=False)
    if syntaxes is not None and ExplicitVRLittleEndian not in syntaxes:
        raise DicomWebError(406, "frames are served decoded (transfer-syntax=1.2.840.10008.1.2.1) only")
    instance = stored_instances(request, study, series, sop, action="retrieve")[0]
    return _frames_response(archive_of(request), request, instance, numbers)


# -- bulk data ------------------------------------------------------------------------


def _find_raw(ds: Dataset, tag: int) -> RawDataElement | None:
    """The first element with *tag*, top level first, then inside sequence items."""
    key = Tag(tag)
    if key in ds:
        raw = ds.get_item(key)
        return raw if isinstance(raw, RawDataElement) else None
    for other in list(ds.keys()):
        raw_item = ds.get_item(other)
        if raw_item is None or raw_item.VR != "SQ" or (isinstance(raw_item, RawDataElement) and raw_item.value is None):
            continue  # not a sequence, or a deferred (large) one: not searched
        elem = ds[other]
        if elem.VR == "SQ":
            for item in elem.value or []:
                found = _find_raw(item, tag)
                if found is not None:
                    return found
    return None


def _bulk_location(archive: Archive, instance: StoredInstance, tag: int) -> tuple[int, int]:
    """(offset, length) of a bulk value inside the stored object."""
    if instance.transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        raise DicomWebError(406, "bulk data of a deflated instance cannot be served by range")
    stream = archive.open_instance(instance)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(stream, defer_size=BULK_DATA_THRESHOLD, stop_before_pixels=tag != PIXEL_DATA, force=True)
        raw = _find_raw(ds, tag)
    except DicomWebError:
        raise
    except Exception as exc:  # unreadable stored object
        raise DicomWebError(406, f"cannot locate bulk data: {exc}") from exc
    finally:
        stream.close()
    if raw is None or raw.value_tell is None or raw.length in (0xFFFFFFFF, None):
        raise DicomWebError(404, f"no bulk data {tag:08X} in instance {instance.sop_instance_uid}")
    return int(raw.value_tell), int(raw.length)


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}", dependencies=[require(READ)])
def retrieve_bulkdata(request: Request, study: str, series: str, sop: str, tag: str) -> Response:
    """A bulk data value (PS3.18 §10.4.1.1.5): BulkDataURIs of the metadata point here.

    Native Pixel Data is its stored value; encapsulated Pixel Data is served as its
    decoded frames. Range requests apply to the value (single-part responses).
    """
    if not _TAG.match(tag):
        raise DicomWebError(400, f"bulk data reference must be an 8-digit hex tag, not {tag[:20]!r}")
    number = int(tag, 16)
    mode, _ = negotiate(request, "application/octet-stream", single=True)
    instance = stored_instances(request, study, series, sop, action="retrieve")[0]
    archive = archive_of(request)
    if number == PIXEL_DATA and UID(instance.transfer_syntax_uid).is_compressed:
        frames = instance.number_of_frames or 1
        return _frames_response(archive, request, instance, list(range(1, frames + 1)))
    offset, length = _bulk_location(archive, instance, number)

    def read(start: int, size: int | None) -> Iterator[bytes]:
        size = length - start if size is None else size
        return archive.read_instance(instance, offset + start, size)

    if mode == "single":
        return _single_response(request, length, read, "application/octet-stream")
    url = instance_url(request, study, series, sop) + f"/bulkdata/{tag}"
    return _multipart_response(
        [({"Content-Type": "application/octet-stream", "Content-Location": url}, read(0, None))],
        "application/octet-stream",
    )
