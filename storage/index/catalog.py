"""Read model for browsing the archive: search with free text, sorting and counts; one entity with its children.

The DIMSE/QIDO query model (:mod:`storage.index.query`) implements the DICOM matching rules; the
viewer's REST API needs more (case-insensitive substring search over several fields, sort
orders, totals for paging, a component with its inspections). That lives here, so that all SQL
stays in ``storage/``. Values are returned as plain data classes keyed by DICOM keyword
(DICONDE meaning in the comments); the NDT names are the API's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from storage.errors import InvalidQuery, NotFound
from storage.index.attributes import Level, attributes_at, split_multi
from storage.index.models import Component, Indication, InspectionState, Instance, Series, Study
from storage.index.unit_of_work import UnitOfWork

STATUSES = ("", "received", "evaluated", "approved", "rejected", "on-hold")
MAX_PAGE = 200  # hard cap on one page of search results
_DATE_LEN = 8


class SearchLevel(StrEnum):
    """What a search returns: components (DICOM Patient) or inspections (DICOM Study)."""

    COMPONENT = "component"
    INSPECTION = "inspection"


@dataclass(frozen=True)
class Search:
    """Catalog search criteria; every text criterion is a case-insensitive substring match.

    ``date_from``/``date_to`` are DICOM DA values (YYYYMMDD) bounding the inspection date
    (StudyDate). A component matches the inspection-level criteria when any of its
    inspections does.
    """

    level: SearchLevel = SearchLevel.INSPECTION
    serial: str = ""  # PatientID: component ID / serial number
    name: str = ""  # PatientName: component name
    material: str = ""  # EthnicGroup / MaterialGrade: material
    welder: str = ""  # ComponentWelderIDs
    company: str = ""  # PhysiciansOfRecord: inspecting company
    modality: str = ""  # ModalitiesInStudy (exact code, e.g. DX)
    date_from: str = ""
    date_to: str = ""
    text: str = ""  # free text over all of the above and a few descriptive fields
    status: str = ""  # evaluation status (storage.records.signed_content.STATUSES)
    sort: str = ""
    descending: bool = False
    limit: int = 50
    offset: int = 0


@dataclass
class Page:
    """One page of results and the total number of matches."""

    total: int
    offset: int
    limit: int
    items: list[dict[str, Any]]


@dataclass
class InstanceRecord:
    """One image/object: its index values and its stored header (DICOM JSON, PS3.18 F.2)."""

    values: dict[str, Any]
    header: dict[str, Any]
    object_key: str
    transfer_syntax_uid: str
    size_bytes: int
    sha256: str
    version: int
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str


@dataclass
class Tree:
    """An entity's values and its children's values (e.g. inspection -> series -> instances)."""

    values: dict[str, Any]
    children: list[dict[str, Any]] = field(default_factory=list)


SORT_KEYS: dict[SearchLevel, dict[str, Any]] = {
    SearchLevel.COMPONENT: {
        "serial": Component.patient_id,
        "name": Component.patient_name,
        "material": Component.ethnic_group,
        "inspections": Component.number_of_studies,
        "updated": Component.updated_at,
    },
    SearchLevel.INSPECTION: {
        "date": Study.study_date,
        "serial": Component.patient_id,
        "name": Component.patient_name,
        "company": Study.physicians_of_record,
        "order": Study.accession_number,
        "modality": Study.modalities_in_study,
    },
}
DEFAULT_SORT = {SearchLevel.COMPONENT: "serial", SearchLevel.INSPECTION: "date"}


def _values(row: Any, level: Level) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in attributes_at(level):
        value = getattr(row, attribute.column.key)
        out[attribute.keyword] = split_multi(value) if attribute.multi else value
    return out


def _contains(column: Any, needle: str) -> ColumnElement[bool]:
    """Case-insensitive substring match; LIKE specials in *needle* are literal."""
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(func.coalesce(column, "")).like(f"%{escaped}%", escape="\\")


def _check_date(name: str, value: str) -> None:
    if value and not (len(value) == _DATE_LEN and value.isdigit()):
        raise InvalidQuery(f"{name}: {value!r} is not a date (YYYYMMDD)")


def _study_conditions(search: Search) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.company:
        conditions.append(_contains(Study.physicians_of_record, search.company))
    if search.modality:
        code = search.modality.upper().replace("\\", "").replace("%", "\\%").replace("_", "\\_")
        conditions.append(Study.modalities_in_study.like(f"%\\\\{code}\\\\%", escape="\\"))
    if search.date_from:
        conditions.append(Study.study_date >= search.date_from)
    if search.date_to:
        conditions.append(Study.study_date <= search.date_to)
    if search.status == "received":
        conditions.append(~exists().where(InspectionState.study_id == Study.id, InspectionState.status != "received"))
    elif search.status:
        conditions.append(exists().where(InspectionState.study_id == Study.id, InspectionState.status == search.status))
    return conditions


def _component_conditions(search: Search) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.serial:
        conditions.append(_contains(Component.patient_id, search.serial))
    if search.name:
        conditions.append(_contains(Component.patient_name, search.name))
    if search.material:
        conditions.append(
            or_(
                _contains(Component.ethnic_group, search.material), _contains(Component.material_grade, search.material)
            )
        )
    if search.welder:
        conditions.append(_contains(Component.component_welder_ids, search.welder))
    return conditions


_COMPONENT_TEXT = (
    Component.patient_id,
    Component.patient_name,
    Component.ethnic_group,
    Component.material_grade,
    Component.component_welder_ids,
    Component.component_manufacturer,
)
_STUDY_TEXT = (Study.physicians_of_record, Study.accession_number, Study.study_description, Study.modalities_in_study)


def _text_condition(search: Search, with_study: bool) -> ColumnElement[bool] | None:
    """Every whitespace-separated word must occur in one of the searched fields."""
    words = search.text.split()
    if not words:
        return None
    per_word = []
    for word in words[:8]:
        fields = [_contains(c, word) for c in _COMPONENT_TEXT]
        if with_study:
            fields += [_contains(c, word) for c in _STUDY_TEXT]
        else:
            study_match = or_(*[_contains(c, word) for c in _STUDY_TEXT])
            fields.append(exists().where(Study.component_id == Component.id, study_match))
        per_word.append(or_(*fields))
    return and_(*per_word)


class Catalog:
    """Read-only queries over the index for browsing (the viewer's REST API), in the caller's unit of work."""

    def search(self, uow: UnitOfWork, search: Search) -> Page:
        """Components or inspections matching *search*, sorted and paged (limit capped at MAX_PAGE)."""
        _check_date("date_from", search.date_from)
        _check_date("date_to", search.date_to)
        if search.limit < 1 or search.limit > MAX_PAGE:
            raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE}")
        if search.offset < 0:
            raise InvalidQuery("offset must not be negative")
        if search.status not in STATUSES:
            raise InvalidQuery(f"status must be one of {', '.join(s for s in STATUSES if s)}")
        sort = search.sort or DEFAULT_SORT[search.level]
        sort_column = SORT_KEYS[search.level].get(sort)
        if sort_column is None:
            raise InvalidQuery(f"sort must be one of {', '.join(SORT_KEYS[search.level])}")
        stmt: Select[Any]
        if search.level is SearchLevel.COMPONENT:
            stmt = select(Component).where(*_component_conditions(search))
            study_conditions = _study_conditions(search)
            if study_conditions:
                stmt = stmt.where(exists().where(Study.component_id == Component.id, *study_conditions))
            text = _text_condition(search, with_study=False)
            tiebreak: Any = Component.id
        else:
            stmt = (
                select(Study, Component)  # type: ignore[assignment]
                .join(Component, Component.id == Study.component_id)
                .where(*_component_conditions(search), *_study_conditions(search))
            )
            text = _text_condition(search, with_study=True)
            tiebreak = Study.id
        if text is not None:
            stmt = stmt.where(text)
        order = sort_column.desc() if search.descending else sort_column.asc()
        session = uow.session
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        page = stmt.order_by(order, tiebreak.desc() if search.descending else tiebreak.asc())
        rows = session.execute(page.offset(search.offset).limit(search.limit)).all()
        items = [self._item(search.level, row) for row in rows]
        if search.level is SearchLevel.COMPONENT:
            self._add_latest(session, items)
        return Page(total=total, offset=search.offset, limit=search.limit, items=items)

    @staticmethod
    def _item(level: SearchLevel, row: Any) -> dict[str, Any]:
        if level is SearchLevel.COMPONENT:
            return _values(row[0], Level.PATIENT)
        return {**_values(row[1], Level.PATIENT), **_values(row[0], Level.STUDY)}

    @staticmethod
    def _add_latest(session: Session, items: list[dict[str, Any]]) -> None:
        """Add each component's latest inspection date (``LatestStudyDate``)."""
        ids = [item["PatientID"] for item in items]
        if not ids:
            return
        latest = dict(
            session.execute(
                select(Component.patient_id, func.max(Study.study_date))
                .join(Study, Study.component_id == Component.id)
                .where(Component.patient_id.in_(ids))
                .group_by(Component.patient_id)
            ).all()
        )
        for item in items:
            item["LatestStudyDate"] = latest.get(item["PatientID"])

    def component(self, uow: UnitOfWork, patient_id: str) -> Tree:
        """A component and all its inspections, oldest first (children: study values + modalities)."""
        session = uow.session
        component = session.scalars(select(Component).where(Component.patient_id == patient_id)).one_or_none()
        if component is None:
            raise NotFound(f"no component {patient_id!r}")
        studies = session.scalars(
            select(Study)
            .where(Study.component_id == component.id)
            .order_by(Study.study_date.asc(), Study.study_time.asc(), Study.id.asc())
        ).all()
        return Tree(_values(component, Level.PATIENT), [_values(s, Level.STUDY) for s in studies])

    def inspection(self, uow: UnitOfWork, study_uid: str) -> tuple[dict[str, Any], Tree]:
        """(component values, inspection tree): the inspection's series, each with its instances' values."""
        session = uow.session
        row = session.execute(
            select(Study, Component)
            .join(Component, Component.id == Study.component_id)
            .where(Study.study_instance_uid == study_uid)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no inspection {study_uid!r}")
        study, component = row
        series_rows = session.scalars(
            select(Series).where(Series.study_id == study.id).order_by(Series.series_number, Series.id)
        ).all()
        children = []
        for series in series_rows:
            instances = session.scalars(
                select(Instance).where(Instance.series_id == series.id).order_by(Instance.instance_number, Instance.id)
            ).all()
            children.append(
                {**_values(series, Level.SERIES), "instances": [_values(i, Level.IMAGE) for i in instances]}
            )
        return _values(component, Level.PATIENT), Tree(_values(study, Level.STUDY), children)

    def device_indications(self, uow: UnitOfWork, study_uids: list[str]) -> dict[str, int]:
        """Per inspection (StudyInstanceUID): how many Indication Sequence items its devices sent (0 when none)."""
        if not study_uids:
            return {}
        counts = dict(
            uow.session.execute(
                select(Study.study_instance_uid, func.count(Indication.id))
                .join(Series, Series.study_id == Study.id)
                .join(Instance, Instance.series_id == Series.id)
                .join(Indication, Indication.instance_id == Instance.id)
                .where(Study.study_instance_uid.in_(study_uids))
                .group_by(Study.study_instance_uid)
            ).all()
        )
        return {uid: int(counts.get(uid, 0)) for uid in study_uids}

    def instance(self, uow: UnitOfWork, sop_uid: str) -> InstanceRecord:
        """One instance: index values, stored header and where its served version lives."""
        session = uow.session
        row = session.execute(
            select(Instance, Series.series_instance_uid, Study.study_instance_uid, Component.patient_id)
            .join(Series, Series.id == Instance.series_id)
            .join(Study, Study.id == Series.study_id)
            .join(Component, Component.id == Study.component_id)
            .where(Instance.sop_instance_uid == sop_uid)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no instance {sop_uid!r}")
        instance, series_uid, study_uid, patient_id = row
        return InstanceRecord(
            values=_values(instance, Level.IMAGE),
            header=json.loads(instance.header_json or "{}"),
            object_key=instance.object_key,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            size_bytes=instance.size_bytes,
            sha256=instance.sha256,
            version=instance.version,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            patient_id=patient_id,
        )
