"""STOW-RS (PS3.18 §10.5): ``POST /dicom-web/studies[/{study}]``.

The multipart/related body is read part by part from the request stream and each
part is spooled to disk, then handed to ``Archive.store_file`` — the same ingest
path (validation, durability, index, audit) as a C-STORE. The response is the
Store Instances Response Module (PS3.18 Table 10.5.3-1) as DICOM JSON.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from enum import IntEnum
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from storage.archive import Archive, StoreResult
from storage.dicom.files import META_SOP_CLASS, META_SOP_INSTANCE, file_meta_values, read_header
from storage.errors import IndexUnavailable, InvalidInstance, StorageUnavailable, TooLarge
from viewer.auth import SecuredRouter, request_actor, require
from viewer.dicomweb.common import (
    PREFIX,
    WRITE,
    DicomWebError,
    archive_of,
    check_uid,
    dicom_json_response,
    instance_url,
    parse_media_type,
    study_url,
)
from viewer.dicomweb.multipart import MultipartError, Part, iter_parts

log = logging.getLogger(__name__)

router = SecuredRouter(prefix=PREFIX, tags=["STOW-RS"])


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values (PS3.18 §10.5.3, PS3.4 Annex GG.4)."""

    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH = 0xA900  # also: the instance belongs to another study than the target
    CANNOT_UNDERSTAND = 0xC000


def _ui(*values: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": list(values)} if values else {"vr": "UI"}


def _peek_uids(path: Path) -> tuple[str, str]:
    """SOP Class and Instance UIDs of a part we could not store, for the failure item (best effort).

    From the file meta (0002,0002) and (0002,0003) only: the data set of a refused part may be a
    deflate bomb, so it is never parsed here.
    """
    with contextlib.suppress(Exception), open(path, "rb") as fh:
        meta, _ = file_meta_values(fh.read(64 << 10))
        return meta.get(META_SOP_CLASS, ""), meta.get(META_SOP_INSTANCE, "")
    return "", ""


def _failure(sop_class: str, sop_uid: str, reason: FailureReason) -> dict[str, Any]:
    item: dict[str, Any] = {"00081197": {"vr": "US", "Value": [int(reason)]}}
    item["00081150"] = _ui(sop_class) if sop_class else _ui()
    item["00081155"] = _ui(sop_uid) if sop_uid else _ui()
    return item


def _store_part(
    archive: Archive,
    request: Request,
    part: Part,
    target_study: str | None,
    too_large: list[str],
    reasons: list[str],
) -> StoreResult | dict[str, Any]:
    """Store one part; a failure item (Failed SOP Sequence) when it cannot be stored.

    The archive's reason for refusing a part goes to *reasons* (the first is sent in a ``Warning``
    header); a part beyond the size limits also to *too_large* (413 when nothing was stored).
    """
    media = parse_media_type(part.content_type) if part.content_type else None
    if media is not None and media.type not in ("application/dicom", "application/octet-stream"):
        return _failure("", "", FailureReason.SOP_CLASS_NOT_SUPPORTED)
    if target_study is not None:
        with contextlib.suppress(InvalidInstance), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_header(part.path)  # bounded: a deflated part is inflated into a bounded spool
            found = str(ds.get("StudyInstanceUID", "") or "")
            if found and found != target_study:
                sop_class, sop_uid = _peek_uids(part.path)
                return _failure(sop_class, sop_uid, FailureReason.DATASET_DOES_NOT_MATCH)
    try:
        return archive.store_file(part.path, request_actor(request), move=True)
    except TooLarge as exc:
        log.warning("STOW-RS part from %s refused: %s", request_actor(request).name, exc)
        too_large.append(str(exc))
        reasons.append(str(exc))
        return _failure(*_peek_uids(part.path), FailureReason.OUT_OF_RESOURCES)
    except InvalidInstance as exc:
        log.warning("STOW-RS part from %s rejected: %s", request_actor(request).name, exc)
        reasons.append(str(exc))
        return _failure(*_peek_uids(part.path), FailureReason.CANNOT_UNDERSTAND)
    except (StorageUnavailable, IndexUnavailable):
        return _failure(*_peek_uids(part.path), FailureReason.OUT_OF_RESOURCES)


async def _stow(request: Request, study: str | None) -> Response:
    if study is not None:
        check_uid("StudyInstanceUID", study)
    content_type = request.headers.get("content-type", "")
    media = parse_media_type(content_type) if content_type else None
    if media is None or media.type != "multipart/related":
        raise DicomWebError(415, 'STOW-RS needs Content-Type multipart/related; type="application/dicom"')
    part_type = media.params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise DicomWebError(415, f"unsupported multipart type {part_type!r}: only application/dicom is accepted")
    boundary = media.params.get("boundary", "")
    if not boundary:
        raise DicomWebError(400, "multipart/related Content-Type without a boundary parameter")

    archive = archive_of(request)
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    backend_down = False
    too_large: list[str] = []
    reasons: list[str] = []
    studies: set[str] = set()
    try:
        async with contextlib.aclosing(iter_parts(request.stream().__aiter__(), boundary, archive.spool_dir)) as parts:
            async for part in parts:
                refused_for_size = len(too_large)
                outcome = await run_in_threadpool(_store_part, archive, request, part, study, too_large, reasons)
                refused_for_size = len(too_large) - refused_for_size
                if isinstance(outcome, StoreResult):
                    studies.add(outcome.study_instance_uid)
                    url = instance_url(
                        request, outcome.study_instance_uid, outcome.series_instance_uid, outcome.sop_instance_uid
                    )
                    stored.append(
                        {
                            "00081150": _ui(outcome.sop_class_uid),
                            "00081155": _ui(outcome.sop_instance_uid),
                            "00081190": {"vr": "UR", "Value": [url]},
                        }
                    )
                else:
                    reason = outcome["00081197"]["Value"][0]
                    backend_down |= reason == FailureReason.OUT_OF_RESOURCES and not refused_for_size
                    failed.append(outcome)
    except MultipartError as exc:
        if not stored and not failed:
            raise DicomWebError(400, f"malformed multipart body: {exc}") from exc
        failed.append(_failure("", "", FailureReason.CANNOT_UNDERSTAND))
    if not stored and not failed:
        raise DicomWebError(400, "the multipart body holds no parts")

    body: dict[str, Any] = {}
    target = study or (next(iter(studies)) if len(studies) == 1 else None)
    if target:
        body["00081190"] = {"vr": "UR", "Value": [study_url(request, target)]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    status = (503 if backend_down else 413 if too_large else 409) if not stored else 202 if failed else 200
    headers = {"Warning": f'299 - "{_header_text(reasons[0])}"'} if reasons else None
    return dicom_json_response(body, status=status, headers=headers)


def _header_text(reason: str) -> str:
    """*reason* as a quoted-string of an HTTP header (RFC 9110 §5.6.4): printable ASCII, no quotes."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in reason)[:300]


@router.post("/studies", dependencies=[require(WRITE)], status_code=200)
async def store_instances(request: Request) -> Response:
    """Store Instances (PS3.18 §10.5): any study."""
    return await _stow(request, None)


@router.post("/studies/{study}", dependencies=[require(WRITE)], status_code=200)
async def store_study_instances(request: Request, study: str) -> Response:
    """Store Instances into one study; instances of another study fail individually."""
    return await _stow(request, study)
