"""``/api/`` routes of evaluations, signatures and the report (DESIGN.md Interfaces, Records).

Signing re-enters the password in the request body (21 CFR 11.200(a)): a session or token
identifies the caller, the password makes the signature. Every rule lives in
:mod:`storage.records` (evaluations, signatures, release).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import Response

from storage.errors import ArchiveError
from storage.records import evaluations, signatures
from storage.records.release import Overview
from viewer.api.evaluation_models import (
    EvaluationIn,
    EvaluationOut,
    EvaluationState,
    SignatureIn,
    SignatureOut,
    SignResult,
)
from viewer.api.indications import problem
from viewer.auth import SecuredRouter, client_address, request_actor, require
from viewer.deps import EvaluationDep, ReadUnit, WriteUnit

router = SecuredRouter(prefix="/api", tags=["evaluations"])
UID_PATH = Path(max_length=64, pattern=r"^[0-9.]+$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input: unknown standard, bad disposition, ..."},
    403: {"description": "Not qualified (level, method, certificate or vision test), or wrong password"},
    404: {"description": "No such inspection"},
    409: {"description": "Out of order: approval before evaluation, approver = evaluator, change without reason"},
}


def evaluation_out(e: evaluations.EvaluationRecord) -> EvaluationOut:
    """The API form of an evaluation attempt."""
    return EvaluationOut(
        id=e.id,
        inspection_uid=e.study_instance_uid,
        attempt=e.attempt,
        method=e.method,
        disposition=e.disposition,
        standard=e.standard,
        standard_meaning=e.standard_meaning,
        comment=e.comment,
        repair_id=e.repair_id,
        reinspection_of=e.reinspection_of,
        indications=e.indications,
        author=e.author,
        created_at=e.created_at,
        reason=e.reason,
    )


def signature_out(s: signatures.SignatureRecord) -> SignatureOut:
    """The API form of a signature."""
    return SignatureOut(
        id=s.id,
        meaning=s.meaning,
        signer=s.signer,
        printed_name=s.printed_name,
        role=s.role,
        signed_at=s.signed_at,
        evaluation_attempt=s.evaluation_attempt,
        qualification=s.qualification,
        content_sha256=s.content_sha256,
        valid=s.valid,
        invalidated=not s.valid,
    )


def state_out(uid: str, o: Overview) -> EvaluationState:
    """The API form of an inspection's evaluation state."""
    return EvaluationState(
        inspection_uid=uid,
        status=o.status,
        device_approval_status=o.device_approval_status,
        evaluation=evaluation_out(o.evaluation) if o.evaluation else None,
        signatures=[signature_out(s) for s in o.signatures],
        content_sha256=o.content_sha256,
        export_uid=o.export_uid,
        report_uid=o.report_uid,
        report_url=f"/api/inspections/{uid}/report.pdf" if o.report_uid else None,
        reinspections=o.reinspections,
    )


@router.get(
    "/inspections/{uid}/evaluation",
    response_model=EvaluationState,
    responses=_ERRORS,
    dependencies=[require("studies:read")],
    summary="An inspection's status, evaluation and signatures",
)
def get_evaluation(desk: EvaluationDep, uow: ReadUnit, uid: Annotated[str, UID_PATH]) -> EvaluationState:
    """Status, current evaluation and every signature (invalidated ones marked) of inspection *uid*."""
    try:
        return state_out(uid, desk.overview(uow, uid))
    except ArchiveError as exc:
        raise problem(exc) from exc


@router.post(
    "/inspections/{uid}/evaluation",
    response_model=EvaluationOut,
    status_code=201,
    responses=_ERRORS,
    dependencies=[require("evaluations:write")],
    summary="Evaluate an inspection (a new attempt)",
)
def post_evaluation(
    request: Request, desk: EvaluationDep, uow: WriteUnit, uid: Annotated[str, UID_PATH], body: EvaluationIn
) -> EvaluationOut:
    """Record dispositions (overall and per indication) against an acceptance standard; Level 2+ only."""
    draft = evaluations.Draft(
        disposition=body.disposition,
        standard=body.standard,
        comment=body.comment,
        indications=dict(body.indications),
        repair_id=body.repair_id,
        reinspection_of=body.reinspection_of,
        reason=body.reason,
    )
    try:
        return evaluation_out(desk.evaluate(uow, uid, draft, request_actor(request)))
    except ArchiveError as exc:
        raise problem(exc) from exc


@router.post(
    "/inspections/{uid}/signatures",
    response_model=SignResult,
    status_code=201,
    responses=_ERRORS,
    dependencies=[require("evaluations:write")],
    summary="Sign the current evaluation (password re-entered)",
)
def post_signature(
    request: Request, desk: EvaluationDep, uid: Annotated[str, UID_PATH], body: SignatureIn
) -> SignResult:
    """Sign as evaluated, reviewed or approved; the final signature writes the DICONDE export and the report.

    No request unit of work: signing runs its own (a refusal commits its audit entry alone, and the
    release objects are stored through the ingest path after the signature has committed).
    """
    try:
        signed = desk.sign(uid, body.meaning, body.password, request_actor(request), client_address(request))
    except ArchiveError as exc:
        raise problem(exc) from exc
    return SignResult(signature=signature_out(signed.signature), status=signed.status, released=signed.released)


@router.get(
    "/inspections/{uid}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **_ERRORS},
    dependencies=[require("studies:read")],
    summary="The PDF report of the released evaluation",
)
def get_report(desk: EvaluationDep, uow: ReadUnit, uid: Annotated[str, UID_PATH]) -> Response:
    """The stored Encapsulated PDF's document (409 while the evaluation is not released)."""
    try:
        pdf = desk.report_pdf(uow, uid)
    except ArchiveError as exc:
        raise problem(exc) from exc
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="report-{uid}.pdf"'},
    )
