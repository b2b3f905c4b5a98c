"""``Depends`` providers: the core's services, built once by the composition root (``create_app``'s *core*),
and the request's unit of work.

Routes take what they need from here; no route builds a core service itself. A route that
reads takes :data:`ReadUnit`, one that writes :data:`WriteUnit`: the unit of work is opened for
the request and committed after the route returns, before the response is sent (a failed
commit is the route's error), and rolled back when the route raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request

from storage.archive import Archive
from storage.audit import AuditRecord
from storage.factory import Core
from storage.index.catalog import Catalog
from storage.index.unit_of_work import UnitOfWork
from storage.records.annotations import Annotations
from storage.records.release import EvaluationDesk
from viewer.auth import request_actor


def core(request: Request) -> Core:
    """The services the application was built with."""
    built: Core = request.app.state.core
    return built


def archive(request: Request) -> Archive:
    """The archive facade (ingest, retrieve, query)."""
    return core(request).archive


def catalog(request: Request) -> Catalog:
    """The browsing read model."""
    return core(request).catalog


def annotation_service(request: Request) -> Annotations:
    """The annotations service."""
    return core(request).annotations


def evaluation_desk(request: Request) -> EvaluationDesk:
    """The evaluation desk (indications, evaluations, signatures, the release)."""
    return core(request).evaluation


def read_unit(request: Request) -> Iterator[UnitOfWork]:
    """The request's unit of work for reads (it waits for acknowledged stores first)."""
    with archive(request).unit_of_work() as uow:
        yield uow


def write_unit(request: Request) -> Iterator[UnitOfWork]:
    """The request's unit of work for a change and its audit entry."""
    with archive(request).unit_of_work(write=True) as uow:
        yield uow


ReadUnit = Annotated[UnitOfWork, Depends(read_unit, scope="function")]
WriteUnit = Annotated[UnitOfWork, Depends(write_unit, scope="function")]
ArchiveDep = Annotated[Archive, Depends(archive)]
CatalogDep = Annotated[Catalog, Depends(catalog)]
AnnotationsDep = Annotated[Annotations, Depends(annotation_service)]
EvaluationDep = Annotated[EvaluationDesk, Depends(evaluation_desk)]


# -- audit of reads (moves into the core with the unit of work) ---------------------------------

# Audit policy of the per-image reads the viewer makes while scrolling (details, raw frames,
# annotations): one entry per actor, series and action in this window (see README, Audit).
VIEW_AUDIT_WINDOW = timedelta(minutes=15)


def audit(request: Request, uow: UnitOfWork, action: str, outcome: str = "success", **fields: Any) -> None:
    """One audit entry for this request's read, appended once its unit of work has committed."""
    detail = fields.pop("detail", {})
    archive(request).audit_read(
        uow, AuditRecord(actor=request_actor(request), action=action, outcome=outcome, detail=detail, **fields)
    )


def audit_view(request: Request, action: str, study: str, series: str, sop: str, **detail: Any) -> None:
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
    archive(request).record_once(record, VIEW_AUDIT_WINDOW)
