"""The evaluation desk: units of work over the evaluation records, and the release's DICOM objects.

The changes run in the caller's unit of work (a record and its audit entry commit together);
signing runs its own units of work (see :meth:`EvaluationDesk.sign`).
When a signature completes the release, the desk writes the DICONDE export (a Grayscale
Softcopy Presentation State, :mod:`storage.records.diconde_export`) and the Encapsulated PDF
report (:mod:`storage.records.reports`) into the inspection through the one ingest path
(``Archive.store_file``), so both are indexed, audited and retrievable by every door. A refused
signature writes nothing but its audit entry (21 CFR 11.10(e)).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.errors import ArchiveError, NotFound
from storage.index.models import InspectionState, Instance, Series, Study
from storage.index.unit_of_work import UnitOfWork
from storage.records import diconde_export, evaluations, indications, reports, signatures, signed_content
from storage.records.diconde_export import ImageInfo, Release
from storage.records.vocabularies import Policy, default_policy

log = logging.getLogger(__name__)


class NoReport(ArchiveError):
    """The inspection has no released evaluation, hence no report."""


@dataclass(frozen=True)
class Overview:
    """An inspection's evaluation state as the API shows it."""

    status: str
    device_approval_status: str | None
    evaluation: evaluations.EvaluationRecord | None
    attempts: int
    signatures: list[signatures.SignatureRecord]
    content_sha256: str
    export_uid: str | None
    report_uid: str | None
    reinspections: list[str]


class EvaluationDesk:
    """Indications, evaluations, signatures and the release objects of one archive."""

    def __init__(self, archive: Archive, policy: Policy | None = None) -> None:
        self.archive = archive
        self.policy = policy or default_policy()

    # -- changes (in the caller's unit of work: flushed, committed by the caller) -------

    def mark(
        self, uow: UnitOfWork, sop_uid: str, draft: indications.Draft, actor: Actor
    ) -> indications.IndicationRecord:
        """Mark an indication (see :func:`storage.records.indications.create`)."""
        return indications.create(uow.session, sop_uid, draft, actor, self.policy)

    def change(
        self, uow: UnitOfWork, indication_id: int, change: indications.Change, actor: Actor
    ) -> indications.IndicationRecord:
        """Record a new version of an indication (see :func:`storage.records.indications.change`)."""
        return indications.change(uow.session, indication_id, change, actor, self.policy)

    def evaluate(
        self, uow: UnitOfWork, study_uid: str, draft: evaluations.Draft, actor: Actor
    ) -> evaluations.EvaluationRecord:
        """Record an evaluation attempt (see :func:`storage.records.evaluations.record`)."""
        return evaluations.record(uow.session, study_uid, draft, actor, self.policy)

    def sign(self, study_uid: str, meaning: str, password: str, actor: Actor, address: str) -> signatures.Signed:
        """Sign (see :func:`storage.records.signatures.sign`); a refusal is audited; a release is published.

        Runs its own units of work: the signature commits alone, a refusal commits only its audit entry
        (the signature's unit of work is rolled back), and the release objects go through the ingest path
        after the signature has committed.
        """
        db = self.archive.db
        try:
            signed = db.run(
                lambda uow: signatures.sign(uow.session, study_uid, meaning, password, actor, address, self.policy)
            )
        except (
            signatures.InvalidSignature,
            signatures.SignatureRefused,
            evaluations.NotQualified,
            evaluations.EvaluationConflict,
        ) as exc:
            reason = str(exc)
            db.run(lambda uow: signatures.audit_refusal(uow.session, actor, study_uid, meaning, reason, address))
            raise
        if signed.released:
            self.publish(study_uid, actor)
        return signed

    # -- reading ---------------------------------------------------------------------

    def overview(self, uow: UnitOfWork, study_uid: str) -> Overview:
        """Status, current evaluation, signatures (valid or invalidated) and release objects of an inspection."""
        return self._overview(uow.session, study_uid)

    def _overview(self, session: Session, study_uid: str) -> Overview:
        study = evaluations.study_row(session, study_uid)
        digest = signed_content.sha256(signed_content.canonical(signed_content.content_of(session, study.id)))
        current = signed_content.current_evaluation(session, study.id)
        state = session.get(InspectionState, study.id)
        return Overview(
            status=signed_content.status_of(session, study.id, self.policy),
            device_approval_status=study.approval_status,
            evaluation=evaluations.record_of(current, study_uid) if current else None,
            attempts=current.attempt if current else 0,
            signatures=signatures.list_for(session, study.id, study_uid),
            content_sha256=digest,
            export_uid=state.export_sop_instance_uid if state else None,
            report_uid=state.report_sop_instance_uid if state else None,
            reinspections=evaluations.reinspections(session, study_uid),
        )

    def statuses(self, uow: UnitOfWork, study_uids: list[str]) -> dict[str, str]:
        """The kept status of each inspection (``received`` when it has none)."""
        if not study_uids:
            return {}
        rows = uow.session.execute(
            select(Study.study_instance_uid, InspectionState.status)
            .join(InspectionState, InspectionState.study_id == Study.id)
            .where(Study.study_instance_uid.in_(study_uids))
        ).all()
        found: dict[str, str] = {str(row[0]): str(row[1]) for row in rows}
        return {uid: found.get(uid, "received") for uid in study_uids}

    def image_indications(
        self, uow: UnitOfWork, sop_uid: str
    ) -> tuple[list[indications.IndicationRecord], list[indications.DeviceIndication], str]:
        """The indications marked on an image (newest versions), the device's, and the inspection UID."""
        return indications.for_image(uow.session, sop_uid)

    def history(self, uow: UnitOfWork, indication_id: int) -> list[indications.IndicationRecord]:
        """Every version of an indication."""
        return indications.history(uow.session, indication_id)

    def study_indications(self, uow: UnitOfWork, study_uid: str) -> list[indications.IndicationRecord]:
        """The newest version of every indication of an inspection."""
        s = uow.session
        return indications.for_study(s, evaluations.study_row(s, study_uid).id)

    def report_pdf(self, uow: UnitOfWork, study_uid: str) -> bytes:
        """The stored PDF report of the inspection's release; :class:`NoReport` when there is none."""
        overview = self.overview(uow, study_uid)
        if overview.report_uid is None:
            raise NoReport(f"inspection {study_uid[:64]} has no released evaluation, hence no report yet")
        ds = self._stored(study_uid, overview.report_uid, uow)
        length = int(ds.get("EncapsulatedDocumentLength") or len(ds.EncapsulatedDocument))
        return bytes(ds.EncapsulatedDocument[:length])

    # -- the release -----------------------------------------------------------------

    def _release(self, session: Session, study_uid: str) -> Release:
        study = evaluations.study_row(session, study_uid)
        current = signed_content.current_evaluation(session, study.id)
        if current is None:
            raise NotFound(f"inspection {study_uid} has no evaluation")
        rows = session.execute(
            select(Instance, Series.series_instance_uid)
            .join(Series, Series.id == Instance.series_id)
            .where(Series.study_id == study.id, Instance.rows.is_not(None))
            .order_by(Series.series_number, Instance.instance_number, Instance.id)
        ).all()
        images = [
            ImageInfo(
                sop_class_uid=i.sop_class_uid,
                sop_instance_uid=i.sop_instance_uid,
                series_instance_uid=series_uid,
                rows=i.rows or 0,
                columns=i.columns or 0,
                frames=i.number_of_frames or 1,
                header=json.loads(i.header_json or "{}"),
            )
            for i, series_uid in rows
        ]
        return Release(
            study_instance_uid=study_uid,
            serial=evaluations.component_serial(session, study),
            evaluation=evaluations.record_of(current, study_uid),
            indications=indications.for_study(session, study.id),
            signatures=[s for s in signatures.list_for(session, study.id, study_uid) if s.valid],
            images=images,
            status=signed_content.status_of(session, study.id, self.policy),
        )

    def _stored(self, study_uid: str, sop_uid: str, uow: UnitOfWork | None = None) -> Dataset:
        [instance] = self.archive.instances(study_uid, sop_uid=sop_uid, uow=uow)
        with self.archive.instance_file(instance.object_key) as path:
            return pydicom.dcmread(path)

    def _frame(self, study_uid: str, image: ImageInfo, number: int) -> np.ndarray:
        ds = self._stored(study_uid, image.sop_instance_uid)
        pixels = ds.pixel_array
        if int(ds.get("NumberOfFrames") or 1) > 1:
            pixels = pixels[number - 1]
        if pixels.ndim == 3:  # colour: the report draws luminance
            pixels = pixels.mean(axis=2)
        return np.asarray(pixels)

    def publish(self, study_uid: str, actor: Actor) -> tuple[str, str]:
        """Write the DICONDE export and the PDF report of the released evaluation; their SOP Instance UIDs."""
        release = self.archive.db.run(lambda uow: self._release(uow.session, study_uid), write=False)
        now = datetime.now(UTC)
        export = diconde_export.build_export(release, now)
        pdf = reports.build_report(release, lambda image, n: self._frame(study_uid, image, n), now)
        report = diconde_export.encapsulated_pdf(release, pdf, now)
        for ds in (export, report):
            self._ingest(ds, actor)

        def remember(uow: UnitOfWork) -> None:
            session = uow.session
            study = evaluations.study_row(session, study_uid, lock=True)
            state = session.get(InspectionState, study.id)
            assert state is not None
            state.export_sop_instance_uid = export.SOPInstanceUID
            state.report_sop_instance_uid = report.SOPInstanceUID
            audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="evaluation-release",
                    outcome="success",
                    study_instance_uid=study_uid,
                    detail={
                        "status": release.status,
                        "evaluation_attempt": release.evaluation.attempt,
                        "export": export.SOPInstanceUID,
                        "report": report.SOPInstanceUID,
                    },
                ),
            )

        self.archive.db.run(remember)
        return export.SOPInstanceUID, report.SOPInstanceUID

    def _ingest(self, ds: Dataset, actor: Actor) -> Any:
        fd, name = tempfile.mkstemp(dir=self.archive.spool_dir, suffix=".dcm")
        os.close(fd)
        path = Path(name)
        try:
            ds.save_as(path, enforce_file_format=True)
            return self.archive.store_file(path, actor, move=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
