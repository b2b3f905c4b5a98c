"""The one query model: C-FIND identifiers and QIDO-RS query strings both become a :class:`Query`.

Matching follows PS3.4 C.2.2.2 over the index columns of :mod:`storage.index.attributes`:
single value, universal (empty), wildcard (``*``, ``?``), range (DA, TM, DT),
UID list (UI with ``\\``-separated values) and, for PN, case-insensitive matching.
Every query is bounded: the result limit is applied here and only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from storage.errors import InvalidQuery
from storage.index.attributes import BY_KEYWORD, IndexedAttribute, Level, split_multi
from storage.index.models import Component, Indication, Instance, Series, Study

_ENTITY: dict[Level, Any] = {
    Level.PATIENT: Component,
    Level.STUDY: Study,
    Level.SERIES: Series,
    Level.IMAGE: Instance,
}
# DICONDE NDE Indication keys (0014,201A/201C): matched against the instance's Indication
# Sequence items at any level ("inspections with a rejected crack"); all indication keys of
# one query must hold for the same item. They are matching keys only, never returned.
INDICATION_KEYS: dict[str, IndexedAttribute] = {
    "IndicationType": IndexedAttribute("IndicationType", Level.IMAGE, Indication.indication_type, multi=True),
    "IndicationDisposition": IndexedAttribute("IndicationDisposition", Level.IMAGE, Indication.indication_disposition),
    "IndicationLabel": IndexedAttribute("IndicationLabel", Level.IMAGE, Indication.indication_label),
}


def matching_keywords() -> frozenset[str]:
    """Every keyword a :class:`Query` can match on (indexed attributes and indication keys)."""
    return frozenset(BY_KEYWORD) | frozenset(INDICATION_KEYS)


_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DATETIME = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")


@dataclass(frozen=True)
class Query:
    """A protocol-neutral query: a level, matching values by DICOM keyword, paging."""

    level: Level
    filters: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = None
    offset: int = 0


@dataclass
class Match:
    """One matching entity at the query level, with the index's values for it."""

    level: Level
    values: dict[str, Any]  # keyword -> str | int | list[str] | None
    header_json: str | None = None  # IMAGE level: the stored header as DICOM JSON
    object_key: str | None = None
    transfer_syntax_uid: str | None = None


def _like_pattern(value: str) -> str:
    """PS3.4 C.2.2.2.4: ``*`` any sequence, ``?`` one character; SQL specials escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _check_range_bound(attribute: IndexedAttribute, bound: str) -> None:
    pattern = {"DA": _DATE, "TM": _TIME, "DT": _DATETIME}[attribute.vr]
    if bound and not pattern.match(bound):
        raise InvalidQuery(f"{attribute.keyword}: {bound!r} is not a valid {attribute.vr} value")


def _condition(attribute: IndexedAttribute, value: str) -> ColumnElement[bool] | None:
    """The SQL condition for matching *value* against *attribute* (None: universal match)."""
    value = value.strip()
    if value in ("", "*"):
        return None  # C.2.2.2.3 universal matching
    if "\x00" in value:
        raise InvalidQuery(f"{attribute.keyword}: NUL characters cannot be matched")
    column: Any = attribute.column
    vr = attribute.vr
    if attribute.column.type.python_type is int:
        try:
            number = int(value)
        except ValueError as exc:
            raise InvalidQuery(f"{attribute.keyword}: {value!r} is not an integer") from exc
        if not -(2**63) <= number < 2**63:
            raise InvalidQuery(f"{attribute.keyword}: {value[:40]!r} is out of range")
        return column == number
    if vr == "UI":
        uids = [v.strip() for v in value.split("\\") if v.strip()]
        if not uids:  # only separators: an empty UID list, not universal matching
            raise InvalidQuery(f"{attribute.keyword}: {value[:40]!r} lists no UID")
        return column.in_(uids) if len(uids) > 1 else column == uids[0]  # C.2.2.2.2 UID list
    if vr in ("DA", "TM", "DT") and "-" in value and not attribute.multi:
        low, _, high = value.partition("-")
        _check_range_bound(attribute, low)
        _check_range_bound(attribute, high)
        conditions = []  # C.2.2.2.5 range matching
        if low:
            conditions.append(column >= low)
        if high:
            # A TM/DT upper bound without all its digits covers everything it prefixes.
            conditions.append(column <= high + ("~" if vr != "DA" else ""))
        return and_(*conditions) if conditions else None
    if vr in ("DA", "TM", "DT") and "*" not in value and "?" not in value:
        _check_range_bound(attribute, value)
    alternatives = value.split("\\") if attribute.multi else [value]
    conditions = []
    for alternative in alternatives:
        target = func.lower(column) if vr == "PN" else column
        needle = alternative.lower() if vr == "PN" else alternative
        if attribute.multi:
            pattern = "%\\\\" + _like_pattern(needle) + "\\\\%"
            conditions.append(target.like(pattern, escape="\\"))
        elif "*" in needle or "?" in needle:
            conditions.append(target.like(_like_pattern(needle), escape="\\"))
        else:
            conditions.append(target == needle)  # C.2.2.2.1 single value matching
    return or_(*conditions) if len(conditions) > 1 else conditions[0]


def _base_select(level: Level) -> Select[Any]:
    columns: list[Any] = [a.column for a in BY_KEYWORD.values() if a.level.depth <= level.depth]
    if level is Level.IMAGE:
        columns += [Instance.header_json, Instance.object_key, Instance.transfer_syntax_uid]
    stmt = select(*columns).select_from(Component)
    if level.depth >= 1:
        stmt = stmt.join(Study, Study.component_id == Component.id)
    if level.depth >= 2:
        stmt = stmt.join(Series, Series.study_id == Study.id)
    if level.depth >= 3:
        stmt = stmt.join(Instance, Instance.series_id == Series.id)
    return stmt


def _indication_exists(level: Level, conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """EXISTS an indication, on an instance below the current *level* row, meeting *conditions*."""
    sub = select(Indication.id).join(Instance, Instance.id == Indication.instance_id)
    if level is Level.IMAGE:
        sub = select(Indication.id).where(Indication.instance_id == Instance.id)
    elif level is Level.SERIES:
        sub = sub.where(Instance.series_id == Series.id)
    elif level is Level.STUDY:
        sub = sub.join(Series, Series.id == Instance.series_id).where(Series.study_id == Study.id)
    else:
        sub = (
            sub.join(Series, Series.id == Instance.series_id)
            .join(Study, Study.id == Series.study_id)
            .where(Study.component_id == Component.id)
        )
    correlate = {
        Level.IMAGE: Instance,
        Level.SERIES: Series,
        Level.STUDY: Study,
        Level.PATIENT: Component,
    }[level]
    return exists(sub.where(*conditions).correlate(correlate))


def build_select(query: Query, max_results: int) -> Select[Any]:
    """The SELECT for *query*, ordered and bounded by ``min(limit, max_results)``."""
    stmt = _base_select(query.level)
    indication_conditions = []
    for keyword, value in query.filters.items():
        if keyword in INDICATION_KEYS:
            condition = _condition(INDICATION_KEYS[keyword], value)
            if condition is not None:
                indication_conditions.append(condition)
            continue
        attribute = BY_KEYWORD.get(keyword)
        if attribute is None or attribute.level.depth > query.level.depth:
            # C.2.2.1.3: a key the SCP cannot match on is treated as a return key.
            continue
        condition = _condition(attribute, value)
        if condition is not None:
            stmt = stmt.where(condition)
    if indication_conditions:
        stmt = stmt.where(_indication_exists(query.level, indication_conditions))
    limit = max_results if query.limit is None else max(0, min(query.limit, max_results))
    entity = _ENTITY[query.level]
    return stmt.order_by(entity.id).offset(max(0, query.offset)).limit(limit)


def run_query(session: Session, query: Query, max_results: int) -> list[Match]:
    """Execute *query* and return one :class:`Match` per entity at its level."""
    keywords = [k for k, a in BY_KEYWORD.items() if a.level.depth <= query.level.depth]
    matches = []
    for row in session.execute(build_select(query, max_results)):
        values: dict[str, Any] = {}
        for keyword, value in zip(keywords, row, strict=False):
            values[keyword] = split_multi(value) if BY_KEYWORD[keyword].multi else value
        match = Match(level=query.level, values=values)
        if query.level is Level.IMAGE:
            match.header_json, match.object_key, match.transfer_syntax_uid = row[len(keywords) :]
        matches.append(match)
    return matches
