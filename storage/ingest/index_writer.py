"""The index transaction of one store, or of a batch of stores (DESIGN.md "Storing an instance", step 5).

This is the hot path of ingest, so it is a handful of prepared statements in one short
transaction, not an ORM unit of work. Row locks (PostgreSQL; SQLite writers are
serialised by ``BEGIN IMMEDIATE``) make the read-modify-write of versions and of the
aggregate counters safe under READ COMMITTED. A batch (:meth:`IndexWriter.index_many`)
writes what the same stores one by one would write, with one commit, one instance
lookup per 64 objects, one counter update per row and one audit chain lock.

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
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, cast

from pydicom.dataset import Dataset
from sqlalchemy import Column, Connection, String, Table, bindparam, delete, insert, select, update

from storage import audit
from storage.audit import Actor, AuditRecord
from storage.dicom import header
from storage.dicom.uids import require_component_id, require_uid
from storage.errors import ComponentMismatch, InvalidInstance
from storage.index.attributes import (
    FallbackReader,
    IndexedAttribute,
    Level,
    attributes_at,
    extract,
    fallback_readers,
    join_multi,
    split_multi,
)
from storage.index.indications import IndicationValues, read_indications
from storage.index.models import Component, Indication, Instance, InstanceVersion, Series, Study, utcnow
from storage.index.prepared import PreparedStatement

# Core tables and statements built once and run on the DBAPI cursor (storage.index.prepared):
# nothing ORM, no statement construction or compilation per store.
_COMPONENTS = cast(Table, Component.__table__)
_STUDIES = cast(Table, Study.__table__)
_SERIES = cast(Table, Series.__table__)
_INSTANCES = cast(Table, Instance.__table__)
_VERSIONS = cast(Table, InstanceVersion.__table__)
_INDICATIONS = cast(Table, Indication.__table__)

_FIND_CHUNK = 64  # SOP Instance UIDs looked up per statement: 1, 2, 4, ... 64 (padded), seven statements


@cache
def _find_instances(count: int) -> PreparedStatement:
    """Lock and read the instance rows of *count* SOP Instance UIDs (bind names ``uid0``, ``uid1``, ...)."""
    return PreparedStatement(
        select(_INSTANCES.c.sop_instance_uid, _INSTANCES.c.id, _INSTANCES.c.series_id)
        .where(_INSTANCES.c.sop_instance_uid.in_([bindparam(f"uid{n}", type_=String) for n in range(count)]))
        .with_for_update()
    )


_VERSIONS_OF = PreparedStatement(
    select(_VERSIONS.c.version, _VERSIONS.c.sha256, _VERSIONS.c.object_key).where(
        _VERSIONS.c.instance_id == bindparam("instance_id")
    )
)
_INSERT_VERSION = PreparedStatement(insert(_VERSIONS))
_STUDY_OF_SERIES = PreparedStatement(select(_SERIES.c.study_id).where(_SERIES.c.id == bindparam("row_id")))
_INSERT_INDICATION = PreparedStatement(insert(_INDICATIONS))
_DELETE_INDICATIONS = PreparedStatement(delete(_INDICATIONS).where(_INDICATIONS.c.instance_id == bindparam("row_id")))
# Per table: insert a row (any set of columns; its id back) and update a row by id (any set of columns).
_INSERT = {t.name: PreparedStatement(insert(t).returning(t.c.id)) for t in (_COMPONENTS, _STUDIES, _SERIES, _INSTANCES)}
_UPDATE = {
    t.name: PreparedStatement(update(t).where(t.c.id == bindparam("row_id")))
    for t in (_COMPONENTS, _STUDIES, _SERIES, _INSTANCES)
}


def _readable(table: Table) -> list[Column[Any]]:
    """Every column the driver hands back as a plain value (not the timestamps)."""
    return [column for column in table.c if column.key not in ("created_at", "updated_at")]


# Per hierarchy table: its unique key, and lock-and-read of the row with that key.
_UNIQUE_KEY = {_COMPONENTS.name: "patient_id", _STUDIES.name: "study_instance_uid", _SERIES.name: "series_instance_uid"}
_LOCK_BY_KEY = {
    t.name: PreparedStatement(
        select(*_readable(t)).where(t.c[_UNIQUE_KEY[t.name]] == bindparam("key")).with_for_update()
    )
    for t in (_COMPONENTS, _STUDIES, _SERIES)
}
_READ_COLUMNS = {t.name: tuple(column.key for column in _readable(t)) for t in (_COMPONENTS, _STUDIES, _SERIES)}
# Add to an aggregate counter (PS3.4 C.3.4), by table and column.
_ADD = {
    (t.name, column): PreparedStatement(
        update(t).where(t.c.id == bindparam("row_id")).values({column: t.c[column] + bindparam("delta")})
    )
    for t, column in (
        (_COMPONENTS, "number_of_studies"),
        (_STUDIES, "number_of_series"),
        (_STUDIES, "number_of_instances"),
        (_SERIES, "number_of_instances"),
    )
}


_COMPONENT_KEY = PreparedStatement(select(_COMPONENTS.c.patient_id).where(_COMPONENTS.c.id == bindparam("row_id")))
_COMPONENT_OF_STUDY = PreparedStatement(
    select(_COMPONENTS.c.patient_id)
    .select_from(_STUDIES.join(_COMPONENTS, _STUDIES.c.component_id == _COMPONENTS.c.id))
    .where(_STUDIES.c.study_instance_uid == bindparam("study"))
)


def check_component(conn: Connection, study_instance_uid: str, component_key: str) -> None:
    """Raise :class:`ComponentMismatch` when the study is indexed under another component than *component_key*."""
    found = _COMPONENT_OF_STUDY.rows(conn, {"study": study_instance_uid})
    if found and found[0][0] != component_key:
        raise ComponentMismatch(study_instance_uid, str(found[0][0]), component_key)


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


_SOP_CLASS_UID, _SOP_INSTANCE_UID = 0x00080016, 0x00080018
_STUDY_INSTANCE_UID, _SERIES_INSTANCE_UID = 0x0020000D, 0x0020000E
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003


def identity_of(ds: Dataset) -> Identity:
    """The four required UIDs, validated (PS3.5 §9.1); mismatched file meta is rejected."""
    identity = Identity(
        sop_class_uid=require_uid("SOPClassUID", header.value(ds, _SOP_CLASS_UID)),
        sop_instance_uid=require_uid("SOPInstanceUID", header.value(ds, _SOP_INSTANCE_UID)),
        study_instance_uid=require_uid("StudyInstanceUID", header.value(ds, _STUDY_INSTANCE_UID)),
        series_instance_uid=require_uid("SeriesInstanceUID", header.value(ds, _SERIES_INSTANCE_UID)),
    )
    meta_sop = header.value(ds.file_meta, _MEDIA_STORAGE_SOP_INSTANCE_UID)
    if meta_sop and str(meta_sop) != identity.sop_instance_uid:
        raise InvalidInstance("file meta (0002,0003) names another SOP Instance UID than the data set (0008,0018)")
    return identity


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

    *fallbacks*: :func:`~storage.index.attributes.fallback_readers` of *ds*, when already set up.
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
            component_key=require_component_id(header.value(ds, _PATIENT_ID)),
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


@dataclass(frozen=True)
class IndexItem:
    """One examined object, already durable in the object store, waiting for its index transaction."""

    actor: Actor
    identity: Identity
    values: IndexValues
    stored: ReceivedObject


@dataclass(frozen=True)
class IndexedBatch:
    """What one index transaction wrote: a result per item (in order) and the series rows it used."""

    results: list[StoreResult]
    learned: dict[str, _KnownSeries]  # by Series Instance UID; remember them once committed


class IndexWriter:
    """Writes stores into the index; remembers recently written series (see module docstring)."""

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

    def remember_all(self, learned: dict[str, _KnownSeries]) -> None:
        """Keep what a batch's transaction learned (:attr:`IndexedBatch.learned`) once it has committed."""
        for series_uid, known in learned.items():
            self.remember(series_uid, known)

    def forget(self, series_uid: str) -> None:
        """Drop what is remembered of a series."""
        with self._lock:
            self._known.pop(series_uid, None)

    def forget_all(self, series_uids: Iterable[str]) -> None:
        """Drop what is remembered of each series (after a failed transaction)."""
        for series_uid in series_uids:
            self.forget(series_uid)

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
        batch = self.index_many(conn, [IndexItem(actor, identity, values, stored)])
        return batch.results[0], batch.learned.get(identity.series_instance_uid)

    def index_many(self, conn: Connection, items: Sequence[IndexItem]) -> IndexedBatch:
        """Index *items* in the caller's transaction, exactly as if stored one after another; audit each.

        The rows, counters, versions, outcomes and audit entries (in item order) are those of
        one transaction per item; the counters are written once per row and the audit chain
        head is locked once. Call :meth:`remember_all` with the batch's ``learned`` after the
        commit, :meth:`forget_all` with its series after a failure. Safe to re-run after a
        rollback (nothing is remembered here).
        """
        transaction = _Transaction(self, conn, items)
        results = [transaction.index(item) for item in items]
        transaction.finish()
        return IndexedBatch(results, transaction.learned)


class _Transaction:
    """One index transaction's state: the series rows it used, its counter changes and audit records."""

    def __init__(self, writer: IndexWriter, conn: Connection, items: Sequence[IndexItem]) -> None:
        self.writer = writer
        self.conn = conn
        self.learned: dict[str, _KnownSeries] = {}
        self.proven: set[str] = set()  # series whose rows this transaction wrote or locked
        self.counts: defaultdict[tuple[str, int], int] = defaultdict(int)  # (table, row id) -> instances added
        self.versions: list[dict[str, Any]] = []  # instance_versions rows, inserted at the end
        self.records: list[AuditRecord] = []
        self.instances = _lock_instances(conn, list(dict.fromkeys(i.identity.sop_instance_uid for i in items)))

    def _versions_of(self, instance_id: int) -> list[tuple[Any, ...]]:
        """(version, sha256, object key) of every version of an instance, with those this transaction adds."""
        adding = [
            (v["version"], v["sha256"], v["object_key"]) for v in self.versions if v["instance_id"] == instance_id
        ]
        return _VERSIONS_OF.rows(self.conn, {"instance_id": instance_id}) + adding

    def index(self, item: IndexItem) -> StoreResult:
        conn, identity, stored = self.conn, item.identity, item.stored
        row = self.instances.get(identity.sop_instance_uid)
        if row is None:
            version, outcome = 1, StoreOutcome.STORED
        else:
            versions = self._versions_of(row.id)
            for number, digest, stored_key in versions:
                if digest == stored.sha256:  # these bytes are already archived
                    self._audit(item, StoreOutcome.DUPLICATE, number)
                    return _result(StoreOutcome.DUPLICATE, identity, stored, number, stored_key)
            version, outcome = max(number for number, _, _ in versions) + 1, StoreOutcome.NEW_VERSION

        known = self._series(item, new_instance=row is None)
        columns = {
            **item.values.image,
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
            [(instance_id,)] = _INSERT[_INSTANCES.name].rows(conn, columns)
        else:
            instance_id = row.id
            if row.series_id != known.series_id:  # the new version names another series
                [(old_study,)] = _STUDY_OF_SERIES.rows(conn, {"row_id": row.series_id})
                self._count(row.series_id, old_study, -1)
                self._count(known.series_id, known.study_id, +1)
            _UPDATE[_INSTANCES.name].count(conn, {**columns, "row_id": instance_id})
            _DELETE_INDICATIONS.count(conn, {"row_id": instance_id})
        self.instances[identity.sop_instance_uid] = _InstanceRow(instance_id, known.series_id)
        _INSERT_INDICATION.run_many(conn, [_indication_row(instance_id, each) for each in item.values.indications])
        self.versions.append(
            {
                "instance_id": instance_id,
                "version": version,
                "object_key": stored.key,
                "size_bytes": stored.size,
                "sha256": stored.sha256,
                "transfer_syntax_uid": stored.transfer_syntax_uid,
                "received_by": audit.actor_label(item.actor),
                "received_at": utcnow(),
            }
        )
        self._audit(item, outcome, version)
        return _result(outcome, identity, stored, version, stored.key)

    def _series(self, item: IndexItem, *, new_instance: bool) -> _KnownSeries:
        """The series (and study) rows of *item*, written when its values are not known to be there.

        Known: used earlier in this transaction with the same values, or remembered from a
        committed one; remembered rows are proven to exist by the first counter update of
        this transaction, which locks them (a new version uses them unproven, as one store does).
        """
        identity = item.identity
        series_uid = identity.series_instance_uid
        fingerprint = item.values.hierarchy_fingerprint(identity)
        known = self.learned.get(series_uid)
        if known is None:
            known = self.writer._recall(series_uid, fingerprint)
        elif known.fingerprint != fingerprint:
            known = None  # the device changed the values mid-series (maybe back): write them
        if known is not None and new_instance and series_uid not in self.proven:
            try:
                _bump_instances(self.conn, known.series_id, known.study_id, +1)
            except _StaleCache:
                self.writer.forget(series_uid)
                known = None
            else:
                new_instance = False  # counted
                self.proven.add(series_uid)
        if known is None:
            series_id, study_id = _upsert_hierarchy(self.conn, identity, item.values)
            known = _KnownSeries(series_id, study_id, fingerprint)
            self.proven.add(series_uid)
        if new_instance:
            self._count(known.series_id, known.study_id, +1)
        self.learned[series_uid] = known
        return known

    def _count(self, series_id: int, study_id: int, delta: int) -> None:
        self.counts[_SERIES.name, series_id] += delta
        self.counts[_STUDIES.name, study_id] += delta

    def _audit(self, item: IndexItem, outcome: StoreOutcome, version: int) -> None:
        identity, stored = item.identity, item.stored
        self.records.append(
            AuditRecord(
                actor=item.actor,
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
            )
        )

    def finish(self) -> None:
        """Insert the versions, write the counter changes (rows in a fixed order), chain the audit entries."""
        _INSERT_VERSION.run_many(self.conn, self.versions)
        self.versions.clear()
        for (table, row_id), delta in sorted(self.counts.items()):
            if delta and _ADD[table, "number_of_instances"].count(self.conn, {"row_id": row_id, "delta": delta}) != 1:
                raise RuntimeError(f"{table} row {row_id}, written in this transaction, is gone")
        self.counts.clear()
        audit.append_all(self.conn, self.records)
        self.records.clear()


def _lock_instances(conn: Connection, uids: Sequence[str]) -> dict[str, _InstanceRow]:
    """The instance rows of *uids* that exist, locked, by SOP Instance UID."""
    found: dict[str, _InstanceRow] = {}
    for start in range(0, len(uids), _FIND_CHUNK):
        chunk = uids[start : start + _FIND_CHUNK]
        count = 1 << (len(chunk) - 1).bit_length()  # a power of two: few statements to prepare
        padded = {f"uid{n}": chunk[min(n, len(chunk) - 1)] for n in range(count)}
        for uid, instance_id, series_id in _find_instances(count).rows(conn, padded):
            found[uid] = _InstanceRow(instance_id, series_id)
    return found


def _bump_instances(conn: Connection, series_id: int, study_id: int, delta: int) -> None:
    """Add *delta* to the instance counters of a series and its study (PS3.4 C.3.4 aggregates)."""
    for table, row_id in ((_SERIES.name, series_id), (_STUDIES.name, study_id)):
        if _ADD[table, "number_of_instances"].count(conn, {"row_id": row_id, "delta": delta}) != 1:
            raise _StaleCache(f"{table} row {row_id} is gone")


def _upsert(
    conn: Connection, table: Table, key_value: str, values: dict[str, Any], *, on_insert: dict[str, Any]
) -> tuple[int, dict[str, Any] | None]:
    """Lock the row whose unique key is *key_value*; update the *values* that differ, or insert it.

    Returns the row id and the locked row as it was (None when it was inserted).
    """
    now = utcnow()
    key = _UNIQUE_KEY[table.name]
    values = {name: value for name, value in values.items() if name != key}
    found = _LOCK_BY_KEY[table.name].rows(conn, {"key": key_value})
    if not found:
        row = {**values, **on_insert, key: key_value, "created_at": now, "updated_at": now}
        [(inserted,)] = _INSERT[table.name].rows(conn, row)
        return int(inserted), None
    current = dict(zip(_READ_COLUMNS[table.name], found[0], strict=True))
    changed = {name: value for name, value in values.items() if current[name] != value}
    if changed:
        _UPDATE[table.name].count(conn, {**changed, "updated_at": now, "row_id": current["id"]})
    return int(current["id"]), current


def _upsert_hierarchy(conn: Connection, identity: Identity, values: IndexValues) -> tuple[int, int]:
    """Insert or update the component, study and series rows; return (series id, study id)."""
    component_id, _ = _upsert(
        conn, _COMPONENTS, values.component_key, values.patient, on_insert={"number_of_studies": 0}
    )
    study_id, study = _upsert(
        conn,
        _STUDIES,
        identity.study_instance_uid,
        values.study,
        on_insert={
            "component_id": component_id,
            "modalities_in_study": "",
            "number_of_series": 0,
            "number_of_instances": 0,
        },
    )
    if study is None:
        _ADD[_COMPONENTS.name, "number_of_studies"].count(conn, {"row_id": component_id, "delta": 1})
    elif study["component_id"] != component_id:  # finding 7: never file an instance under another component
        [(owner,)] = _COMPONENT_KEY.rows(conn, {"row_id": study["component_id"]})
        raise ComponentMismatch(identity.study_instance_uid, str(owner), values.component_key)
    modalities = split_multi(study["modalities_in_study"]) if study is not None else []
    series_id, series = _upsert(
        conn,
        _SERIES,
        identity.series_instance_uid,
        values.series,
        on_insert={"study_id": study_id, "number_of_instances": 0},
    )
    if series is None:
        _ADD[_STUDIES.name, "number_of_series"].count(conn, {"row_id": study_id, "delta": 1})
    elif series["study_id"] != study_id:  # nor under another study
        raise InvalidInstance(
            f"series {identity.series_instance_uid} belongs to another study than {identity.study_instance_uid}"
        )
    modality = values.series.get("modality") or (series["modality"] if series is not None else None)
    if modality and modality not in modalities:
        _UPDATE[_STUDIES.name].count(
            conn, {"modalities_in_study": join_multi([*modalities, modality]), "row_id": study_id}
        )
    return series_id, study_id


def _indication_row(instance_id: int, item: IndicationValues) -> dict[str, Any]:
    """The index row of one Indication Sequence item (DICONDE 0014,2012) of the served version."""
    return {
        "instance_id": instance_id,
        "indication_number": item.number,
        "indication_label": item.label,
        "indication_type": item.types,
        "indication_disposition": item.disposition,
        "indication_description": item.description,
    }


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
