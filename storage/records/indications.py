"""Indications marked on an image (DICONDE NDE Indication, ASTM E2339): versioned, never overwritten.

An indication is a region on one frame of one image (point, line, polyline, rect, ellipse,
polygon; image pixel coordinates as in :mod:`storage.records.annotations`), a type from the
configured vocabulary (:mod:`storage.records.vocabularies`), a label and a description. The
archive computes its sizes (length, width, area) from the calibrated spacing of the stored
header (:mod:`storage.dicom.spacing`, PS3.3 10.7.1.3).

Every change is a new version with author, time and reason; nothing is updated in place
(21 CFR 11.10(e): "record changes shall not obscure previously recorded information"). Once
the inspection carries a signature, a change needs a reason, and it invalidates the signature
(:mod:`storage.records.signed_content`). Functions take the caller's session, flush, and
append their audit entries in it, so the record and its audit entry commit together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.dicom.spacing import Spacing, pixel_spacing
from storage.errors import ArchiveError, NotFound
from storage.index.models import (
    Indication,
    Instance,
    MarkedIndication,
    MarkedIndicationVersion,
    Series,
    Signature,
    Study,
    utcnow,
)
from storage.records import signed_content
from storage.records.annotations import check_text
from storage.records.vocabularies import Policy

# kind -> (minimum, maximum) number of points
KINDS: dict[str, tuple[int, int]] = {
    "point": (1, 1),
    "line": (2, 2),
    "polyline": (2, 500),
    "rect": (2, 2),  # two opposite corners
    "ellipse": (2, 2),  # two opposite corners of the bounding box
    "polygon": (3, 500),
}
MAX_LABEL = 64  # IndicationLabel is SH (16) in DICOM; the export truncates, the record keeps 64
MAX_DESCRIPTION = 1024  # IndicationDescription is ST (1024)
MAX_REASON = 500


class InvalidIndication(ArchiveError):
    """An indication that cannot be stored as given (region outside the image, unknown type, ...)."""


class IndicationConflict(ArchiveError):
    """The request contradicts the stored state (stale version, missing reason after a signature)."""


@dataclass(frozen=True)
class Draft:
    """A new indication as a client describes it."""

    kind: str
    points: Sequence[tuple[float, float]]
    type: str
    frame: int = 1
    label: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Change:
    """A change to an indication: the fields given replace the previous version's, the rest is kept."""

    reason: str | None = None
    kind: str | None = None
    points: Sequence[tuple[float, float]] | None = None
    type: str | None = None
    frame: int | None = None
    label: str | None = None
    description: str | None = None
    withdrawn: bool | None = None
    expected_version: int | None = None  # 409 unless this is still the newest version


@dataclass(frozen=True)
class Sizes:
    """Sizes computed by the archive: in mm when the image is calibrated, in pixels otherwise."""

    length: float | None
    width: float | None
    area: float | None
    unit: str
    spacing: Spacing | None


@dataclass(frozen=True)
class IndicationRecord:
    """One version of a marked indication, detached from the session."""

    id: int
    number: int
    version: int
    latest_version: int
    study_instance_uid: str
    sop_instance_uid: str
    instance_version: int
    frame: int
    kind: str
    points: list[tuple[float, float]]
    type: str
    label: str | None
    description: str | None
    sizes: Sizes
    withdrawn: bool
    author: str
    created_at: datetime
    reason: str | None


@dataclass(frozen=True)
class DeviceIndication:
    """An indication a device sent inside the image (Indication Sequence (0014,2012)), as indexed."""

    number: int | None
    label: str | None
    types: list[str]
    disposition: str | None
    description: str | None
    kind: str | None  # from the item's Graphic Type (0070,0023) when it carries one
    points: list[tuple[float, float]]


# -- validation ----------------------------------------------------------------------


def _optional(name: str, value: Any, limit: int, *, multiline: bool = False) -> str | None:
    if value is None:
        return None
    try:
        text = check_text(name, value, limit, multiline=multiline).strip()
    except ArchiveError as exc:
        raise InvalidIndication(str(exc)) from None
    return text or None


def check_points(kind: Any, points: Any) -> list[tuple[float, float]]:
    """The points of a *kind* region: the allowed number of finite (x, y) pairs."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidIndication(f"kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
    low, high = KINDS[kind]
    if not isinstance(points, Sequence) or isinstance(points, str) or not low <= len(points) <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise InvalidIndication(f"a {kind} region has {count} points")
    out = []
    for i, point in enumerate(points, start=1):
        if not isinstance(point, Sequence) or isinstance(point, str) or len(point) != 2:
            raise InvalidIndication(f"point {i} must be a pair (x, y)")
        x, y = point
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y))
        if not ok:
            raise InvalidIndication(f"point {i} must have finite numeric coordinates")
        out.append((float(x), float(y)))
    return out


def _check_type(code: Any, policy: Policy) -> str:
    if not isinstance(code, str) or policy.indication_type(code) is None:
        known = ", ".join(t.code for t in policy.indication_types)
        raise InvalidIndication(f"unknown indication type {str(code)[:40]!r}; the vocabulary has {known}")
    return code


def _check_region(points: list[tuple[float, float]], frame: Any, instance: Instance) -> int:
    frames = instance.number_of_frames or 1
    if not isinstance(frame, int) or isinstance(frame, bool) or not 1 <= frame <= frames:
        raise InvalidIndication(f"frame must be between 1 and {frames}")
    if not instance.rows or not instance.columns:
        raise InvalidIndication("the instance has no image to mark")
    for i, (x, y) in enumerate(points, start=1):
        if not (0 <= x <= instance.columns and 0 <= y <= instance.rows):
            raise InvalidIndication(
                f"point {i} ({x:g}, {y:g}) is outside the image "
                f"(0..{instance.columns} columns, 0..{instance.rows} rows)"
            )
    return frame


# -- sizes ---------------------------------------------------------------------------


def measure(kind: str, points: list[tuple[float, float]], spacing: Spacing | None) -> Sizes:
    """Length, width and area of a region, physical when *spacing* is known.

    line: its length; polyline: the path length; rect / ellipse: the longer and shorter side
    (axis) and the area; polygon: the longest chord (Feret diameter), the extent across it and
    the enclosed area; point: no size.
    """
    sx, sy = (spacing.column_mm, spacing.row_mm) if spacing else (1.0, 1.0)
    unit = "mm" if spacing else "px"
    scaled = [(x * sx, y * sy) for x, y in points]
    length = width = area = None
    if kind == "line" or kind == "polyline":
        length = sum(math.dist(a, b) for a, b in zip(scaled, scaled[1:], strict=False))
    elif kind in ("rect", "ellipse"):
        (x0, y0), (x1, y1) = scaled
        sides = sorted((abs(x1 - x0), abs(y1 - y0)), reverse=True)
        length, width = sides
        area = math.pi * length * width / 4 if kind == "ellipse" else length * width
    elif kind == "polygon":
        twice = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(scaled, scaled[1:] + scaled[:1], strict=True))
        area = abs(twice) / 2
        a, b = max(((p, q) for p in scaled for q in scaled), key=lambda pq: math.dist(*pq))
        length = math.dist(a, b)
        if length > 0:
            nx, ny = -(b[1] - a[1]) / length, (b[0] - a[0]) / length
            across = [p[0] * nx + p[1] * ny for p in scaled]
            width = max(across) - min(across)
    return Sizes(length=length, width=width, area=area, unit=unit, spacing=spacing)


# -- reading ---------------------------------------------------------------------------


def _record(head: MarkedIndication, row: MarkedIndicationVersion, study_uid: str) -> IndicationRecord:
    spacing = None
    if row.spacing_attribute and row.spacing_row_mm and row.spacing_column_mm:
        spacing = Spacing(row.spacing_row_mm, row.spacing_column_mm, row.spacing_attribute)
    return IndicationRecord(
        id=head.id,
        number=head.number,
        version=row.version,
        latest_version=head.version,
        study_instance_uid=study_uid,
        sop_instance_uid=head.sop_instance_uid,
        instance_version=row.instance_version,
        frame=row.frame_number,
        kind=row.kind,
        points=[(float(x), float(y)) for x, y in json.loads(row.geometry)["points"]],
        type=row.indication_type,
        label=row.label,
        description=row.description,
        sizes=Sizes(row.length, row.width, row.area, row.unit, spacing),
        withdrawn=row.withdrawn,
        author=row.author,
        created_at=audit.utc(row.created_at),
        reason=row.reason,
    )


def _image(session: Session, sop_uid: str) -> tuple[Instance, Study, str]:
    row = session.execute(
        select(Instance, Study, Series.series_instance_uid)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(Instance.sop_instance_uid == sop_uid)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no image {sop_uid[:64]!r}")
    return row[0], row[1], row[2]


def _latest(session: Session, head: MarkedIndication) -> MarkedIndicationVersion:
    return session.scalars(
        select(MarkedIndicationVersion).where(
            MarkedIndicationVersion.indication_id == head.id, MarkedIndicationVersion.version == head.version
        )
    ).one()


def for_study(session: Session, study_id: int, *, include_withdrawn: bool = True) -> list[IndicationRecord]:
    """The newest version of every indication marked in the inspection, by number."""
    study_uid = session.scalars(select(Study.study_instance_uid).where(Study.id == study_id)).one()
    rows = session.execute(
        select(MarkedIndication, MarkedIndicationVersion)
        .join(
            MarkedIndicationVersion,
            (MarkedIndicationVersion.indication_id == MarkedIndication.id)
            & (MarkedIndicationVersion.version == MarkedIndication.version),
        )
        .where(MarkedIndication.study_id == study_id)
        .order_by(MarkedIndication.number)
    ).all()
    out = [_record(head, row, study_uid) for head, row in rows]
    return [r for r in out if include_withdrawn or not r.withdrawn]


def for_image(session: Session, sop_uid: str) -> tuple[list[IndicationRecord], list[DeviceIndication], str]:
    """(the newest versions marked on image *sop_uid*, the device's own indications, the inspection UID)."""
    instance, study, _ = _image(session, sop_uid)
    marked = [r for r in for_study(session, study.id) if r.sop_instance_uid == instance.sop_instance_uid]
    return marked, device_indications(session, instance), study.study_instance_uid


def device_indications(session: Session, instance: Instance) -> list[DeviceIndication]:
    """The device's Indication Sequence items as indexed, with the region where the item carries one."""
    rows = session.scalars(select(Indication).where(Indication.instance_id == instance.id).order_by(Indication.id))
    header = json.loads(instance.header_json or "{}")
    items = header.get("00142012", {}).get("Value") or []
    out = []
    for i, row in enumerate(rows):
        kind, points = _device_region(items[i] if i < len(items) else {})
        out.append(
            DeviceIndication(
                number=row.indication_number,
                label=row.indication_label,
                types=[t for t in (row.indication_type or "").split("\\") if t],
                disposition=row.indication_disposition,
                description=row.indication_description,
                kind=kind,
                points=points,
            )
        )
    return out


_GRAPHIC_KINDS = {"POINT": "point", "POLYLINE": "polyline", "MULTIPOINT": "polyline", "ELLIPSE": "polygon"}


def _device_region(item: dict[str, Any]) -> tuple[str | None, list[tuple[float, float]]]:
    """The region of a device item: Graphic Type (0070,0023) and Graphic Data (0070,0022), column\\row pairs."""
    if not isinstance(item, dict):
        return None, []
    graphic_type = (item.get("00700023", {}).get("Value") or [None])[0]
    data = item.get("00700022", {}).get("Value") or []
    try:
        values = [float(v) for v in data[:1000]]
    except (TypeError, ValueError):
        return None, []
    points = list(zip(values[0::2], values[1::2], strict=False))
    kind = _GRAPHIC_KINDS.get(str(graphic_type or "").upper())
    if kind == "polyline" and len(points) > 2 and points[0] == points[-1]:
        kind, points = "polygon", points[:-1]
    return (kind, points) if kind and points else (None, [])


def history(session: Session, indication_id: int) -> list[IndicationRecord]:
    """Every version of indication *indication_id*, oldest first; :class:`NotFound` when unknown."""
    head = session.get(MarkedIndication, indication_id) if _is_id(indication_id) else None
    if head is None:
        raise NotFound(f"no indication {indication_id!r}")
    study_uid = session.scalars(select(Study.study_instance_uid).where(Study.id == head.study_id)).one()
    rows = session.scalars(
        select(MarkedIndicationVersion)
        .where(MarkedIndicationVersion.indication_id == head.id)
        .order_by(MarkedIndicationVersion.version)
    ).all()
    return [_record(head, row, study_uid) for row in rows]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**62


# -- writing ---------------------------------------------------------------------------


def _is_signed(session: Session, study_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(Signature).where(Signature.study_id == study_id)) != 0


def _audit(
    session: Session, actor: Actor, action: str, record: IndicationRecord, series_uid: str, reason: str | None
) -> None:
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action=action,
            outcome="success",
            study_instance_uid=record.study_instance_uid,
            series_instance_uid=series_uid,
            sop_instance_uid=record.sop_instance_uid,
            detail={
                "indication": record.id,
                "number": record.number,
                "version": record.version,
                "frame": record.frame,
                "kind": record.kind,
                "points": [list(p) for p in record.points],
                "type": record.type,
                "label": record.label,
                "description": record.description,
                "length": record.sizes.length,
                "width": record.sizes.width,
                "area": record.sizes.area,
                "unit": record.sizes.unit,
                "withdrawn": record.withdrawn,
                "reason": reason,
            },
        ),
    )


def _version_row(
    indication_id: int,
    version: int,
    instance: Instance,
    frame: int,
    kind: str,
    points: list[tuple[float, float]],
    type_code: str,
    label: str | None,
    description: str | None,
    withdrawn: bool,
    actor: Actor,
    reason: str | None,
) -> MarkedIndicationVersion:
    spacing = pixel_spacing(json.loads(instance.header_json or "{}"))
    sizes = measure(kind, points, spacing)
    return MarkedIndicationVersion(
        indication_id=indication_id,
        version=version,
        instance_version=instance.version,
        frame_number=frame,
        kind=kind,
        geometry=json.dumps({"points": [list(p) for p in points]}, separators=(",", ":")),
        indication_type=type_code,
        label=label,
        description=description,
        length=sizes.length,
        width=sizes.width,
        area=sizes.area,
        unit=sizes.unit,
        spacing_attribute=spacing.attribute if spacing else None,
        spacing_row_mm=spacing.row_mm if spacing else None,
        spacing_column_mm=spacing.column_mm if spacing else None,
        withdrawn=withdrawn,
        author=audit.actor_label(actor),
        created_at=utcnow(),
        reason=reason,
    )


def create(session: Session, sop_uid: str, draft: Draft, actor: Actor, policy: Policy) -> IndicationRecord:
    """Mark *draft* on image *sop_uid* as version 1, audited; nothing is written when it is refused.

    :class:`NotFound` for an unknown image; :class:`InvalidIndication` for a region outside the
    image, a bad frame, an unknown type or bad text.
    """
    points = check_points(draft.kind, draft.points)
    type_code = _check_type(draft.type, policy)
    label = _optional("label", draft.label, MAX_LABEL)
    description = _optional("description", draft.description, MAX_DESCRIPTION, multiline=True)
    instance, study, series_uid = _image(session, sop_uid)
    frame = _check_region(points, draft.frame, instance)
    # Numbers are unique per inspection; a concurrent writer makes the flush fail and the unit of work retry.
    number = (
        session.scalar(select(func.max(MarkedIndication.number)).where(MarkedIndication.study_id == study.id)) or 0
    ) + 1
    head = MarkedIndication(
        study_id=study.id,
        instance_id=instance.id,
        sop_instance_uid=instance.sop_instance_uid,
        number=number,
        version=1,
        created_by=audit.actor_label(actor),
        created_at=utcnow(),
    )
    session.add(head)
    session.flush()
    row = _version_row(
        head.id, 1, instance, frame, draft.kind, points, type_code, label, description, False, actor, None
    )
    session.add(row)
    session.flush()
    record = _record(head, row, study.study_instance_uid)
    _audit(session, actor, "indication-create", record, series_uid, None)
    signed_content.refresh_status(session, study.id, policy)
    return record


def change(session: Session, indication_id: int, change: Change, actor: Actor, policy: Policy) -> IndicationRecord:
    """Record *change* as the next version of indication *indication_id*, audited.

    A reason is required once the inspection carries a signature (the change invalidates it).
    :class:`NotFound`, :class:`InvalidIndication`, :class:`IndicationConflict` (stale
    ``expected_version``, missing reason); nothing is written when refused.
    """
    reason = _optional("reason", change.reason, MAX_REASON, multiline=True)
    head = (
        session.scalars(
            select(MarkedIndication).where(MarkedIndication.id == indication_id).with_for_update()
        ).one_or_none()
        if _is_id(indication_id)
        else None
    )
    if head is None:
        raise NotFound(f"no indication {indication_id!r}")
    if change.expected_version is not None and change.expected_version != head.version:
        raise IndicationConflict(
            f"indication {head.id} is at version {head.version}, not {change.expected_version} (reload it)"
        )
    previous = _latest(session, head)
    instance, study, series_uid = _image(session, head.sop_instance_uid)
    kind = change.kind if change.kind is not None else previous.kind
    if change.points is not None:
        points = check_points(kind, change.points)
    else:
        points = check_points(kind, [tuple(p) for p in json.loads(previous.geometry)["points"]])
    type_code = _check_type(change.type, policy) if change.type is not None else previous.indication_type
    label = _optional("label", change.label, MAX_LABEL) if change.label is not None else previous.label
    description = (
        _optional("description", change.description, MAX_DESCRIPTION, multiline=True)
        if change.description is not None
        else previous.description
    )
    frame = _check_region(points, change.frame if change.frame is not None else previous.frame_number, instance)
    withdrawn = change.withdrawn if change.withdrawn is not None else previous.withdrawn
    if not reason and _is_signed(session, study.id):
        raise IndicationConflict("the evaluation of this inspection has been signed: a change needs a reason")
    head.version += 1
    row = _version_row(
        head.id, head.version, instance, frame, kind, points, type_code, label, description, withdrawn, actor, reason
    )
    session.add(row)
    session.flush()
    record = _record(head, row, study.study_instance_uid)
    _audit(session, actor, "indication-change", record, series_uid, reason)
    signed_content.refresh_status(session, study.id, policy)
    return record
