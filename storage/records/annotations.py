"""Annotations: measurements kept on an image, beside the original and never inside its pixels.

An annotation belongs to one frame of one SOP instance and records the instance version it
was drawn on. Its geometry is a list of points in image pixel coordinates (x = column,
y = row, continuous: pixel (c, r) covers [c, c+1) x [r, r+1)). The archive computes the
measured value itself from the geometry and the calibration of the stored header
(:mod:`storage.dicom.spacing`), so the evidence does not depend on what a browser computed; the
viewer's text (e.g. ROI statistics) is kept beside it as shown.

Annotations are evidence that evaluations build on: nothing is ever deleted or edited.
Withdrawing one records who, when and why. Every creation and withdrawal appends an audit
entry in the same transaction. Invalid input raises :class:`InvalidAnnotation` before
anything is written.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.dicom.spacing import Spacing, pixel_spacing
from storage.errors import ArchiveError, NotFound
from storage.index.models import Annotation, Instance, Series, Study, utcnow
from storage.index.unit_of_work import UnitOfWork

# How many points each kind has: a segment, a vertex between two arms, two opposite corners.
KINDS: dict[str, int] = {"length": 2, "angle": 3, "rect": 2, "ellipse": 2, "profile": 2}
MAX_TEXT = 500
MAX_LABEL = 200
MAX_NOTE = 2000
MAX_REASON = 500


class InvalidAnnotation(ArchiveError):
    """An annotation that cannot be stored as given (unknown kind, bad points, frame, text)."""


class AnnotationConflict(ArchiveError):
    """The request contradicts the stored state: the image changed since, or already withdrawn."""


@dataclass(frozen=True)
class Draft:
    """A new annotation as a client describes it."""

    kind: str
    points: Sequence[tuple[float, float]]
    frame: int = 1
    text: str = ""
    label: str | None = None
    note: str | None = None
    instance_version: int | None = None  # the version the client drew on; None: whatever is served


@dataclass(frozen=True)
class AnnotationRecord:
    """A stored annotation, detached from the session."""

    id: int
    sop_instance_uid: str
    instance_version: int
    frame: int
    kind: str
    points: list[tuple[float, float]]
    value: float
    unit: str
    text: str
    spacing: Spacing | None
    label: str | None
    note: str | None
    author: str
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdrawal_reason: str | None

    @property
    def withdrawn(self) -> bool:
        """True once withdrawn."""
        return self.withdrawn_at is not None


@dataclass(frozen=True)
class AnnotationList:
    """The annotations of one image and where the image sits in the hierarchy."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    version: int  # the version served now
    items: list[AnnotationRecord]


# -- validation -----------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_text(name: str, value: Any, limit: int, *, multiline: bool = False) -> str:
    """*value* as bounded, printable text: at most *limit* characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidAnnotation(f"{name} must be text")
    if len(value) > limit:
        raise InvalidAnnotation(f"{name} is longer than {limit} characters")
    allowed = {"\n", "\t"} if multiline else set()
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidAnnotation(f"{name} contains a control or surrogate character (U+{ord(char):04X})")
    return value


def _optional_text(name: str, value: Any, limit: int, *, multiline: bool = False) -> str | None:
    if value is None:
        return None
    text = check_text(name, value, limit, multiline=multiline).strip()
    return text or None


def check_points(kind: Any, points: Any) -> list[tuple[float, float]]:
    """The points of a *kind* annotation: the right number of finite (x, y) pairs."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidAnnotation(f"kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
    if not isinstance(points, Sequence) or isinstance(points, str) or len(points) != KINDS[kind]:
        raise InvalidAnnotation(f"a {kind} annotation has exactly {KINDS[kind]} points")
    out = []
    for i, point in enumerate(points, start=1):
        if not isinstance(point, Sequence) or isinstance(point, str) or len(point) != 2:
            raise InvalidAnnotation(f"point {i} must be a pair (x, y)")
        x, y = point
        if not (_is_number(x) and _is_number(y)) or not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidAnnotation(f"point {i} must have finite numeric coordinates")
        out.append((float(x), float(y)))
    return out


def _check_frame(frame: Any, frames: int) -> int:
    if not isinstance(frame, int) or isinstance(frame, bool) or not 1 <= frame <= frames:
        raise InvalidAnnotation(f"frame must be between 1 and {frames}")
    return frame


def _check_bounds(points: list[tuple[float, float]], rows: int, columns: int) -> None:
    for i, (x, y) in enumerate(points, start=1):
        if not (0 <= x <= columns and 0 <= y <= rows):
            raise InvalidAnnotation(
                f"point {i} ({x:g}, {y:g}) is outside the image (0..{columns} columns, 0..{rows} rows)"
            )


# -- measuring -----------------------------------------------------------------------


def measure(kind: str, points: list[tuple[float, float]], spacing: Spacing | None) -> tuple[float, str]:
    """The value and unit of an annotation, from its points and the image calibration.

    length and profile: the segment's length; angle: degrees at the middle point (physical
    when the spacing is anisotropic); rect and ellipse: the area. Millimetres when *spacing*
    is known, pixels otherwise.
    """
    sx, sy = (spacing.column_mm, spacing.row_mm) if spacing else (1.0, 1.0)
    linear, square = ("mm", "mm2") if spacing else ("px", "px2")
    if kind in ("length", "profile"):
        (x0, y0), (x1, y1) = points
        return math.hypot((x1 - x0) * sx, (y1 - y0) * sy), linear
    if kind == "angle":
        (ax, ay), (bx, by), (cx, cy) = points
        u = ((ax - bx) * sx, (ay - by) * sy)
        v = ((cx - bx) * sx, (cy - by) * sy)
        norm = math.hypot(*u) * math.hypot(*v)
        cos = (u[0] * v[0] + u[1] * v[1]) / norm if norm else 1.0
        return math.degrees(math.acos(max(-1.0, min(1.0, cos)))), "deg"
    (x0, y0), (x1, y1) = points
    width, height = abs(x1 - x0) * sx, abs(y1 - y0) * sy
    area = math.pi * width * height / 4 if kind == "ellipse" else width * height
    return area, square


# -- the store -----------------------------------------------------------------------


def _record(row: Annotation) -> AnnotationRecord:
    spacing = None
    if row.spacing_attribute and row.spacing_row_mm and row.spacing_column_mm:
        spacing = Spacing(row.spacing_row_mm, row.spacing_column_mm, row.spacing_attribute)
    return AnnotationRecord(
        id=row.id,
        sop_instance_uid=row.sop_instance_uid,
        instance_version=row.instance_version,
        frame=row.frame_number,
        kind=row.kind,
        points=[(float(x), float(y)) for x, y in json.loads(row.geometry)["points"]],
        value=row.value,
        unit=row.unit,
        text=row.text,
        spacing=spacing,
        label=row.label,
        note=row.note,
        author=row.author,
        created_at=audit.utc(row.created_at),
        withdrawn_at=audit.utc(row.withdrawn_at) if row.withdrawn_at else None,
        withdrawn_by=row.withdrawn_by,
        withdrawal_reason=row.withdrawal_reason,
    )


def _instance(session: Session, sop_uid: str) -> tuple[Instance, str, str]:
    row = session.execute(
        select(Instance, Series.series_instance_uid, Study.study_instance_uid)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(Instance.sop_instance_uid == sop_uid)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no image {sop_uid[:64]!r}")
    return row[0], row[1], row[2]


class Annotations:
    """Create, list and withdraw annotations in the caller's unit of work; every change audited in it."""

    def list(
        self, uow: UnitOfWork, sop_uid: str, *, frame: int | None = None, include_withdrawn: bool = False
    ) -> AnnotationList:
        """The annotations of image *sop_uid* (of one frame when given), oldest first."""
        session = uow.session
        instance, series_uid, study_uid = _instance(session, sop_uid)
        stmt = select(Annotation).where(Annotation.instance_id == instance.id)
        if frame is not None:
            stmt = stmt.where(Annotation.frame_number == _check_frame(frame, instance.number_of_frames or 1))
        if not include_withdrawn:
            stmt = stmt.where(Annotation.withdrawn_at.is_(None))
        rows = session.scalars(stmt.order_by(Annotation.id)).all()
        return AnnotationList(
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            sop_instance_uid=instance.sop_instance_uid,
            version=instance.version,
            items=[_record(row) for row in rows],
        )

    def create(self, uow: UnitOfWork, sop_uid: str, draft: Draft, actor: Actor) -> AnnotationRecord:
        """Keep *draft* on image *sop_uid* in *uow*: validated, measured, stored and audited (flushed, not committed).

        :class:`NotFound` for an unknown image, :class:`InvalidAnnotation` for bad input,
        :class:`AnnotationConflict` when ``draft.instance_version`` is no longer the served version.
        """
        points = check_points(draft.kind, draft.points)
        text = check_text("text", draft.text, MAX_TEXT)
        label = _optional_text("label", draft.label, MAX_LABEL)
        note = _optional_text("note", draft.note, MAX_NOTE, multiline=True)
        if draft.instance_version is not None and (
            not isinstance(draft.instance_version, int) or draft.instance_version < 1
        ):
            raise InvalidAnnotation("instance_version must be a positive integer")
        session = uow.session
        instance, series_uid, study_uid = _instance(session, sop_uid)
        if draft.instance_version is not None and draft.instance_version != instance.version:
            raise AnnotationConflict(
                f"the image changed: it was drawn on version {draft.instance_version}, "
                f"version {instance.version} is served now (reload the image)"
            )
        frame = _check_frame(draft.frame, instance.number_of_frames or 1)
        if not instance.rows or not instance.columns:
            raise InvalidAnnotation("the instance has no image to annotate")
        _check_bounds(points, instance.rows, instance.columns)
        spacing = pixel_spacing(json.loads(instance.header_json or "{}"))
        value, unit = measure(draft.kind, points, spacing)
        row = Annotation(
            instance_id=instance.id,
            sop_instance_uid=instance.sop_instance_uid,
            instance_version=instance.version,
            frame_number=frame,
            kind=draft.kind,
            geometry=json.dumps({"points": [list(p) for p in points]}, separators=(",", ":")),
            value=value,
            unit=unit,
            text=text,
            spacing_attribute=spacing.attribute if spacing else None,
            spacing_row_mm=spacing.row_mm if spacing else None,
            spacing_column_mm=spacing.column_mm if spacing else None,
            label=label,
            note=note,
            author=audit.actor_label(actor),
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        record = _record(row)
        audit.append(
            session,
            AuditRecord(
                actor=actor,
                action="annotation-create",
                outcome="success",
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=instance.sop_instance_uid,
                detail={
                    "annotation": record.id,
                    "version": record.instance_version,
                    "frame": frame,
                    "kind": record.kind,
                    "points": [list(p) for p in points],
                    "value": value,
                    "unit": unit,
                    "spacing": spacing.attribute if spacing else None,
                    "text": text,
                    "label": label,
                    "note": note,
                },
            ),
        )
        return record

    def withdraw(
        self, uow: UnitOfWork, annotation_id: int, actor: Actor, reason: str | None = None
    ) -> AnnotationRecord:
        """Mark annotation *annotation_id* withdrawn by *actor* (kept, never deleted) and audit it.

        :class:`NotFound` when unknown, :class:`AnnotationConflict` when already withdrawn.
        """
        why = _optional_text("reason", reason, MAX_REASON, multiline=True)
        if not isinstance(annotation_id, int) or isinstance(annotation_id, bool) or annotation_id < 1:
            raise NotFound(f"no annotation {annotation_id!r}")
        session = uow.session
        row = session.scalars(select(Annotation).where(Annotation.id == annotation_id).with_for_update()).one_or_none()
        if row is None:
            raise NotFound(f"no annotation {annotation_id}")
        if row.withdrawn_at is not None:
            when = audit.utc(row.withdrawn_at).isoformat(timespec="seconds")
            raise AnnotationConflict(
                f"annotation {annotation_id} was already withdrawn by {row.withdrawn_by} at {when}"
            )
        row.withdrawn_at = utcnow()
        row.withdrawn_by = audit.actor_label(actor)
        row.withdrawal_reason = why
        session.flush()
        _, series_uid, study_uid = _instance(session, row.sop_instance_uid)
        audit.append(
            session,
            AuditRecord(
                actor=actor,
                action="annotation-withdraw",
                outcome="success",
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=row.sop_instance_uid,
                detail={"annotation": row.id, "kind": row.kind, "frame": row.frame_number, "reason": why},
            ),
        )
        return _record(row)
