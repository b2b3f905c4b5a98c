"""The index transaction of one store (DESIGN.md "Storing an instance", step 5), in SQLAlchemy Core.

This is the hot path of ingest, so it is a handful of plain statements in one short
transaction, not an ORM unit of work. Row locks (PostgreSQL; SQLite writers are
serialised by ``BEGIN IMMEDIATE``) make the read-modify-write of versions and of the
aggregate counters safe under READ COMMITTED.

Devices send a series instance after instance with the same component, inspection
and series attributes. :class:`IndexWriter` remembers, per recently stored series,
the row ids and the values last written to them; an instance whose component /
study / series values equal those skips the three upserts and only bumps the
counters. The shortcut is safe because index rows are never re-keyed or deleted,
and a counter update that finds no row sends the store through the full upsert.
When another process changes those rows in between, its values stay: both are
values a device sent for the same entity.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, cast

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import InstrumentedAttribute

from storage import audit, header
from storage.attributes import (
    FallbackReader,
    IndexedAttribute,
    Level,
    attributes_at,
    extract,
    fallback_readers,
    join_multi,
    split_multi,
)
from storage.audit import Actor, AuditRecord
from storage.diconde.indications import IndicationValues, read_indications
from storage.models import Component, Indication, Instance, InstanceVersion, Series, Study, utcnow
from storage.prepared import PreparedStatement

# Core tables and statements built once: the compiled forms are cached, nothing ORM runs per store.
_COMPONENTS = cast(Table, Component.__table__)
_STUDIES = cast(Table, Study.__table__)
_SERIES = cast(Table, Series.__table__)
_INSTANCES = cast(Table, Instance.__table__)
_VERSIONS = cast(Table, InstanceVersion.__table__)
_INDICATIONS = cast(Table, Indication.__table__)

_FIND_INSTANCE = PreparedStatement(
    select(_INSTANCES.c.id, _INSTANCES.c.series_id)
    .where(_INSTANCES.c.sop_instance_uid == bindparam("uid"))
    .with_for_update()
)
_VERSIONS_OF = select(_VERSIONS.c.version, _VERSIONS.c.sha256, _VERSIONS.c.object_key).where(
    _VERSIONS.c.instance_id == bindparam("instance_id")
)
_INSERT_INSTANCE = PreparedStatement(insert(_INSTANCES).returning(_INSTANCES.c.id))
_INSERT_VERSION = PreparedStatement(insert(_VERSIONS))
_BUMP = {
    table.name: PreparedStatement(
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(number_of_instances=table.c.number_of_instances + bindparam("delta"))
    )
    for table in (_SERIES, _STUDIES)
}


class StoreOutcome(StrEnum):
    """What a store did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    NEW_VERSION = "new_version"


@dataclass(frozen=True)
class Identity:
    """The four UIDs that place an instance (validated before indexing)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class ReceivedObject:
    """The stored object an index row will point to."""

    key: str
    sha256: str
    size: int
    transfer_syntax_uid: str
    header_json: str


@dataclass(frozen=True)
class StoreResult:
    """The durable, indexed result of one store."""

    outcome: StoreOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    version: int
    sha256: str
    size: int
    object_key: str


def level_values(ds: Dataset, level: Level, fallbacks: list[FallbackReader] | None = None) -> dict[str, Any]:
    """The non-empty values of *level*'s indexed attributes in *ds*, by column name.

    *fallbacks*: :func:`~storage.attributes.fallback_readers` of *ds*, when already set up.
    """
    if fallbacks is None:
        fallbacks = fallback_readers(ds)
    values: dict[str, Any] = {}
    for attribute in _extracted_at(level):
        value = extract(ds, attribute, fallbacks)
        if value is not None and value != "":
            values[attribute.column_key] = value
    return values


@cache
def _extracted_at(level: Level) -> tuple[IndexedAttribute, ...]:
    """The attributes of *level* read from the file (not maintained by the archive)."""
    return tuple(a for a in attributes_at(level) if not a.derived)


_PATIENT_ID = 0x00100020


@dataclass(frozen=True)
class IndexValues:
    """Everything the index keeps of one data set, extracted once."""

    component_key: str  # PatientID as the component's unique key ("" when absent)
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    image: dict[str, Any]
    indications: list[IndicationValues]

    @classmethod
    def of(cls, ds: Dataset) -> IndexValues:
        """Extract the indexed values of *ds* (header only)."""
        fallbacks = fallback_readers(ds)  # e.g. legacy DICONDE blocks: looked up once per data set
        return cls(
            component_key=str(header.value(ds, _PATIENT_ID) or "")[:64],
            patient=level_values(ds, Level.PATIENT, fallbacks),
            study=level_values(ds, Level.STUDY, fallbacks),
            series=level_values(ds, Level.SERIES, fallbacks),
            image=level_values(ds, Level.IMAGE, fallbacks),
            indications=read_indications(ds),
        )

    def hierarchy_fingerprint(self, identity: Identity) -> tuple[Any, ...]:
        """Equal for two instances that would write the same component, study and series rows."""
        return (
            identity.study_instance_uid,
            self.component_key,
            tuple(sorted(self.patient.items())),
            tuple(sorted(self.study.items())),
            tuple(sorted(self.series.items())),
        )


@dataclass(frozen=True)
class _KnownSeries:
    series_id: int
    study_id: int
    fingerprint: tuple[Any, ...]


@dataclass(frozen=True)
class _InstanceRow:
    id: int
    series_id: int


class _StaleCache(Exception):
    """A remembered row is gone: take the full upsert path."""


class IndexWriter:
    """Writes one store into the index; remembers recently written series (see module docstring)."""

    def __init__(self, remembered_series: int = 1024) -> None:
        self._known: OrderedDict[str, _KnownSeries] = OrderedDict()
        self._limit = remembered_series
        self._lock = threading.Lock()

    # -- the remembered series ---------------------------------------------------

    def _recall(self, series_uid: str, fingerprint: tuple[Any, ...]) -> _KnownSeries | None:
        with self._lock:
            known = self._known.get(series_uid)
            if known is None or known.fingerprint != fingerprint:
                return None
            self._known.move_to_end(series_uid)
            return known

    def remember(self, series_uid: str, known: _KnownSeries | None) -> None:
        """Keep *known* once its transaction has committed."""
        if known is None:
            return
        with self._lock:
            self._known[series_uid] = known
            self._known.move_to_end(series_uid)
            while len(self._known) > self._limit:
                self._known.popitem(last=False)

    def forget(self, series_uid: str) -> None:
        """Drop what is remembered of a series."""
        with self._lock:
            self._known.pop(series_uid, None)

    # -- the transaction ---------------------------------------------------------

    def index(
        self,
        conn: Connection,
        actor: Actor,
        identity: Identity,
        values: IndexValues,
        stored: ReceivedObject,
    ) -> tuple[StoreResult, _KnownSeries | None]:
        """Index one received object in the caller's transaction; audit it in the same transaction."""
        found = _FIND_INSTANCE.rows(conn, {"uid": identity.sop_instance_uid})
        row = _InstanceRow(*found[0]) if found else None
        if row is None:
            version, outcome = 1, StoreOutcome.STORED
        else:
            versions = conn.execute(_VERSIONS_OF, {"instance_id": row.id}).all()
            for number, digest, stored_key in versions:
                if digest == stored.sha256:  # these bytes are already archived
                    _audit_store(conn, actor, identity, StoreOutcome.DUPLICATE, stored, number)
                    return _result(StoreOutcome.DUPLICATE, identity, stored, number, stored_key), None
            version, outcome = max(number for number, _, _ in versions) + 1, StoreOutcome.NEW_VERSION

        fingerprint = values.hierarchy_fingerprint(identity)
        known = self._recall(identity.series_instance_uid, fingerprint)
        if known is not None and row is None:
            try:
                _bump_instances(conn, known.series_id, known.study_id, +1)
            except _StaleCache:
                self.forget(identity.series_instance_uid)
                known = None
        if known is None:
            series_id, study_id = _upsert_hierarchy(conn, identity, values)
            known = _KnownSeries(series_id, study_id, fingerprint)
            if row is None:
                _bump_instances(conn, series_id, study_id, +1)

        columns = {
            **values.image,
            "sop_instance_uid": identity.sop_instance_uid,
            "sop_class_uid": identity.sop_class_uid,
            "series_id": known.series_id,
            "transfer_syntax_uid": stored.transfer_syntax_uid,
            "version": version,
            "object_key": stored.key,
            "size_bytes": stored.size,
            "sha256": stored.sha256,
            "header_json": stored.header_json,
            "storage_state": "stored",
            "received_at": utcnow(),
        }
        if row is None:
            instance_id = conn.execute(insert(Instance).values(**columns).returning(Instance.id)).scalar_one()
        else:
            instance_id = row.id
            if row.series_id != known.series_id:  # the new version names another series
                old_study = conn.execute(select(Series.study_id).where(Series.id == row.series_id)).scalar_one()
                _bump_instances(conn, row.series_id, old_study, -1)
                _bump_instances(conn, known.series_id, known.study_id, +1)
            conn.execute(update(Instance).where(Instance.id == instance_id).values(**columns))
            conn.execute(delete(Indication).where(Indication.instance_id == instance_id))
        _insert_indications(conn, instance_id, values.indications)
        _INSERT_VERSION.count(
            conn,
            {
                "instance_id": instance_id,
                "version": version,
                "object_key": stored.key,
                "size_bytes": stored.size,
                "sha256": stored.sha256,
                "transfer_syntax_uid": stored.transfer_syntax_uid,
                "received_by": audit.actor_label(actor),
                "received_at": utcnow(),
            },
        )
        _audit_store(conn, actor, identity, outcome, stored, version)
        return _result(outcome, identity, stored, version, stored.key), known


def _bump_instances(conn: Connection, series_id: int, study_id: int, delta: int) -> None:
    """Add *delta* to the instance counters of a series and its study (PS3.4 C.3.4 aggregates)."""
    for table, row_id in ((_SERIES, series_id), (_STUDIES, study_id)):
        if _BUMP[table.name].count(conn, {"row_id": row_id, "delta": delta}) != 1:
            raise _StaleCache(f"{table.name} row {row_id} is gone")


def _changes(current: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from the locked row *current*."""
    return {name: value for name, value in values.items() if getattr(current, name) != value}


def _upsert(
    conn: Connection,
    model: type[Component] | type[Study] | type[Series],
    key: InstrumentedAttribute[str],
    key_value: str,
    values: dict[str, Any],
    *,
    on_insert: dict[str, Any],
    also_read: Sequence[InstrumentedAttribute[Any]] = (),
) -> tuple[int, Row[Any] | None]:
    """Lock the row whose unique *key* is *key_value*; update the *values* that differ, or insert it.

    Returns the row id and the locked row as it was (None when it was inserted).
    """
    now = utcnow()
    values = {name: value for name, value in values.items() if name != key.key}
    columns = [getattr(model, name) for name in values]
    row = conn.execute(select(model.id, *also_read, *columns).where(key == key_value).with_for_update()).one_or_none()
    if row is None:
        inserted = conn.execute(
            insert(model)
            .values(**values, **on_insert, **{key.key: key_value}, created_at=now, updated_at=now)
            .returning(model.id)
        ).scalar_one()
        return int(inserted), None
    changed = _changes(row, values)
    if changed:
        conn.execute(update(model).where(model.id == row.id).values(**changed, updated_at=now))
    return int(row.id), row


def _upsert_hierarchy(conn: Connection, identity: Identity, values: IndexValues) -> tuple[int, int]:
    """Insert or update the component, study and series rows; return (series id, study id)."""
    component_id, _ = _upsert(
        conn, Component, Component.patient_id, values.component_key, values.patient, on_insert={"number_of_studies": 0}
    )
    study_id, study = _upsert(
        conn,
        Study,
        Study.study_instance_uid,
        identity.study_instance_uid,
        values.study,
        on_insert={
            "component_id": component_id,
            "modalities_in_study": "",
            "number_of_series": 0,
            "number_of_instances": 0,
        },
        also_read=[Study.modalities_in_study],
    )
    if study is None:
        conn.execute(
            update(Component)
            .where(Component.id == component_id)
            .values(number_of_studies=Component.number_of_studies + 1)
        )
    modalities = split_multi(study.modalities_in_study) if study is not None else []
    series_id, series = _upsert(
        conn,
        Series,
        Series.series_instance_uid,
        identity.series_instance_uid,
        values.series,
        on_insert={"study_id": study_id, "number_of_instances": 0},
        also_read=[Series.modality],
    )
    if series is None:
        conn.execute(update(Study).where(Study.id == study_id).values(number_of_series=Study.number_of_series + 1))
    modality = values.series.get("modality") or (series.modality if series is not None else None)
    if modality and modality not in modalities:
        conn.execute(
            update(Study).where(Study.id == study_id).values(modalities_in_study=join_multi([*modalities, modality]))
        )
    return series_id, study_id


def _insert_indications(conn: Connection, instance_id: int, items: Sequence[IndicationValues]) -> None:
    """Index the served version's Indication Sequence items (DICONDE 0014,2012)."""
    if not items:
        return
    conn.execute(
        insert(_INDICATIONS),
        [
            {
                "instance_id": instance_id,
                "indication_number": item.number,
                "indication_label": item.label,
                "indication_type": item.types,
                "indication_disposition": item.disposition,
                "indication_description": item.description,
            }
            for item in items
        ],
    )


def _result(outcome: StoreOutcome, identity: Identity, stored: ReceivedObject, version: int, key: str) -> StoreResult:
    return StoreResult(
        outcome=outcome,
        sop_class_uid=identity.sop_class_uid,
        sop_instance_uid=identity.sop_instance_uid,
        study_instance_uid=identity.study_instance_uid,
        series_instance_uid=identity.series_instance_uid,
        version=version,
        sha256=stored.sha256,
        size=stored.size,
        object_key=key,
    )


def _audit_store(
    conn: Connection, actor: Actor, identity: Identity, outcome: StoreOutcome, stored: ReceivedObject, version: int
) -> None:
    audit.append_to(
        conn,
        AuditRecord(
            actor=actor,
            action="store",
            outcome="success" if outcome is StoreOutcome.STORED else outcome.value,
            study_instance_uid=identity.study_instance_uid,
            series_instance_uid=identity.series_instance_uid,
            sop_instance_uid=identity.sop_instance_uid,
            detail={
                "sha256": stored.sha256,
                "size": stored.size,
                "version": version,
                "transfer_syntax": stored.transfer_syntax_uid,
            },
        ),
    )
