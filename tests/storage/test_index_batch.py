"""Indexing several received objects in one transaction (``Archive.index_stored``).

A batch must leave exactly what the same objects stored one by one (``Archive.store_file``)
leave: rows, counters, versions, outcomes, audit entries. Each test runs on SQLite and on
PostgreSQL, with two archives on two databases: one fed one by one, one in a batch.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import Table, create_engine, select, text
from sqlalchemy.engine import make_url

from storage.archive import Archive, StoreOutcome
from storage.audit import Actor
from storage.errors import IndexUnavailable
from storage.factory import open_archive
from storage.index import migrate
from storage.index.attributes import split_multi
from storage.index.db import Database
from storage.index.models import AuditEvent, Component, Indication, Instance, InstanceVersion, Series, Study
from storage.ingest.index_writer import IndexItem
from tests.support.factories import make_instance, write_part10
from tests.support.servers import PG_URL, make_settings

DEVICE = Actor("DEVICE1", "127.0.0.1:4000")
OTHER = Actor("DEVICE2", "127.0.0.1:4001")


@pytest.fixture(params=["sqlite", "postgres"])
def twins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Archive, Archive]]:
    """Two empty archives on two databases of one kind (file object stores)."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / f'index-{n}.sqlite'}" for n in range(2)]
        schemas: list[str] = []
    else:
        if not PG_URL:
            pytest.skip("PACS_TEST_DATABASE_URL not set (PostgreSQL tests)")
        schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        urls = [
            make_url(PG_URL).update_query_dict({"options": f"-csearch_path={s}"}).render_as_string(hide_password=False)
            for s in schemas
        ]
        for url in urls:
            db = Database(url)
            migrate.upgrade(db.engine)
            db.dispose()
    archives = [open_archive(make_settings(tmp_path / f"data-{n}", url)) for n, url in enumerate(urls)]
    yield archives[0], archives[1]
    for archive in archives:
        archive.db.dispose()
    if schemas:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def examined(archive: Archive, path: Path, actor: Actor) -> IndexItem:
    """What ``store_file`` has at its index step: the file examined, its object written."""
    item = archive.examine(path, actor)
    archive.objects.put_file(item.stored.key, path)
    return item


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def snapshot(archive: Archive) -> dict[str, Any]:
    """The whole index by natural keys: no row ids, no timestamps."""
    skip = {"id", "created_at", "updated_at", "received_at", "occurred_at"}

    def rows(model: type[Any]) -> list[dict[str, Any]]:
        with archive.db.engine.connect() as conn:
            found = conn.execute(select(_table(model)).order_by(_table(model).c.id)).mappings().all()
        return [dict(row) for row in found]

    components = {r["id"]: r["patient_id"] for r in rows(Component)}
    studies = {r["id"]: r["study_instance_uid"] for r in rows(Study)}
    series = {r["id"]: r["series_instance_uid"] for r in rows(Series)}
    instances = {r["id"]: r["sop_instance_uid"] for r in rows(Instance)}

    def natural(model: type[Any], references: dict[str, dict[int, str]] | None = None, *, ordered: bool = False) -> Any:
        """Rows of *model* with the ids of *references* (column -> id -> natural key) replaced."""
        references = references or {}
        keyed = [
            {k: references[k][v] if k in references else v for k, v in r.items() if k not in skip} for r in rows(model)
        ]
        return keyed if ordered else sorted(keyed, key=repr)

    report = archive.verify_audit()
    assert report.ok, report.problems
    return {
        "components": natural(Component),
        "studies": natural(Study, {"component_id": components}),
        "series": natural(Series, {"study_id": studies}),
        "instances": natural(Instance, {"series_id": series}),
        "versions": natural(InstanceVersion, {"instance_id": instances}),
        "indications": natural(Indication, {"instance_id": instances}),
        # In chain order; the hashes differ with the time of each entry.
        "audit": [
            {k: v for k, v in entry.items() if k not in ("prev_hash", "hash")}
            for entry in natural(AuditEvent, ordered=True)
        ],
        "audit_entries": report.entries,
    }


def _indicated(ds: Dataset) -> Dataset:
    item = Dataset()
    item.IndicationNumber = 1
    item.IndicationLabel = "C1"
    item.IndicationType = ["CRACK", "LINEAR"]
    item.IndicationDisposition = "REJECT"
    ds.IndicationSequence = Sequence([item])
    return ds


def _scenario(folder: Path) -> tuple[list[Path], list[tuple[Path, Actor]]]:
    """Files stored before the batch, and the batch (file, sender) in order."""
    folder.mkdir()
    names = iter(range(1000))

    def file(ds: Dataset) -> Path:
        return write_part10(ds, folder / f"{next(names)}.dcm")

    inspection, weld, other_series = generate_uid(), generate_uid(), generate_uid()
    second_inspection, second_part = generate_uid(), generate_uid()

    def weld_image(**attributes: Any) -> Dataset:
        defaults = {
            "StudyInstanceUID": inspection,
            "SeriesInstanceUID": weld,
            "PatientID": "SN-BATCH-1",
            "PatientName": "Valve^Body",
            "AccessionNumber": "JOB-B1",
            "StudyID": "1",
            "SeriesDescription": "pass 1",
        }
        return make_instance(**{**defaults, **attributes})

    def part_image(name: str = "Pump^Casing") -> Dataset:
        return _indicated(
            make_instance(
                StudyInstanceUID=second_inspection,
                SeriesInstanceUID=second_part,
                PatientID="SN-BATCH-2",
                PatientName=name,
                AccessionNumber="JOB-B2",
                StudyID="2",
            )
        )

    resent = weld_image()
    before = [file(resent), file(weld_image())]
    changed = copy.deepcopy(resent)  # the same SOP instance again, other bytes, in another series
    changed.SeriesInstanceUID, changed.Modality, changed.InstanceNumber = other_series, "DX", 7
    twice = part_image()
    twice_changed = copy.deepcopy(twice)
    twice_changed.IndicationSequence[0].IndicationDisposition = "ACCEPT"
    twice_path = file(twice)
    batch = [
        (file(weld_image()), DEVICE),  # a remembered series
        (file(weld_image()), DEVICE),
        (file(weld_image(SeriesInstanceUID=other_series, Modality="DX")), DEVICE),  # a new series
        (file(weld_image(SeriesInstanceUID=other_series, Modality="DX")), OTHER),
        (before[0], DEVICE),  # a duplicate of a stored instance
        (file(changed), OTHER),  # a new version, moving to the other series
        (file(weld_image(SeriesDescription="pass 2")), DEVICE),  # values changed mid-series ...
        (file(weld_image()), DEVICE),  # ... and back
        (twice_path, OTHER),  # a new component, inspection and series
        (twice_path, OTHER),  # the same bytes again in the batch: a duplicate
        (file(twice_changed), DEVICE),  # other bytes: a new version of an instance new in the batch
        (file(part_image("Pump^Casing rev B")), OTHER),  # the component renamed
    ]
    return before, batch


def test_a_batch_indexes_exactly_what_stores_one_by_one_index(twins: tuple[Archive, Archive], tmp_path: Path) -> None:
    one_by_one, batched = twins
    before, batch = _scenario(tmp_path / "files")
    for archive in twins:
        for path in before:
            archive.store_file(path, DEVICE)
    expected = [one_by_one.store_file(path, actor) for path, actor in batch]
    results = batched.index_stored([examined(batched, path, actor) for path, actor in batch])
    assert results == expected
    stored, duplicate, new_version = StoreOutcome.STORED, StoreOutcome.DUPLICATE, StoreOutcome.NEW_VERSION
    assert [r.outcome for r in results] == [stored] * 4 + [duplicate, new_version] + [stored] * 3 + [
        duplicate,
        new_version,
        stored,
    ]
    state = snapshot(batched)
    assert state == snapshot(one_by_one)
    assert state["audit_entries"] == len(before) + len(batch)
    assert len(state["indications"]) == 2  # the served version of each indicated instance
    # What the batch remembered serves the next store exactly like the one-by-one archive.
    later = write_part10(
        make_instance(
            StudyInstanceUID=results[0].study_instance_uid,
            SeriesInstanceUID=results[2].series_instance_uid,
            PatientID="SN-BATCH-1",
            PatientName="Valve^Body",
            AccessionNumber="JOB-B1",
            StudyID="1",
            SeriesDescription="pass 1",
            Modality="DX",
        ),
        tmp_path / "later.dcm",
    )
    assert batched.store_file(later, DEVICE) == one_by_one.store_file(later, DEVICE)
    assert snapshot(batched) == snapshot(one_by_one)


def test_a_failed_batch_leaves_nothing_and_remembers_nothing(twins: tuple[Archive, Archive], tmp_path: Path) -> None:
    archive, reference = twins
    before, batch = _scenario(tmp_path / "files")
    unrelated = write_part10(make_instance(), tmp_path / "unrelated.dcm")
    for path in before:
        archive.store_file(path, DEVICE)
    state = snapshot(archive)
    items = [examined(archive, path, actor) for path, actor in batch]
    # The last object cannot be indexed (NULL in a NOT NULL column): the transaction rolls
    # back after the new series, inspection and component rows were written in it.
    broken = replace(items[-1], stored=replace(items[-1].stored, header_json=None))
    with pytest.raises(IndexUnavailable):
        archive.index_stored([*items[:-1], broken])
    assert snapshot(archive) == state
    remembered = set(archive.index_writer._known)  # the remembered series are the subject here
    assert not remembered & {item.identity.series_instance_uid for item in items}
    # SQLite hands the rolled-back row ids out again: a series remembered from the failed
    # batch would now count into this unrelated one.
    archive.store_file(unrelated, DEVICE)
    archive.index_stored(items)
    for path in [*before, unrelated]:
        reference.store_file(path, DEVICE)
    for path, actor in batch:
        reference.store_file(path, actor)
    assert snapshot(archive) == snapshot(reference)


def test_concurrent_batches_of_one_study_make_one_row_per_entity(
    twins: tuple[Archive, Archive], tmp_path: Path
) -> None:
    """Threads index overlapping batches of one study (every instance twice): one row each, counters exact."""
    archive, _ = twins
    study_uid, series_uids = generate_uid(), [generate_uid(), generate_uid()]
    paths = [
        write_part10(
            make_instance(
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=series_uids[n % 2],
                PatientID="SN-BATCH-RACE",
                AccessionNumber="JOB-RACE",
                StudyID="1",
                Modality=["CT", "DX"][n % 2],
                InstanceNumber=n + 1,
            ),
            tmp_path / f"{n}.dcm",
        )
        for n in range(48)
    ]
    items = [examined(archive, path, DEVICE) for path in paths]
    errors: list[BaseException] = []
    outcomes: list[StoreOutcome] = []

    def worker(chunk: list[IndexItem]) -> None:
        for start in range(0, len(chunk), 4):
            try:
                outcomes.extend(result.outcome for result in archive.index_stored(chunk[start : start + 4]))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

    chunks = [items[n::4] for n in range(4)] + [items[n::4][::-1] for n in range(4)]  # each instance twice
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (outcomes.count(StoreOutcome.STORED), outcomes.count(StoreOutcome.DUPLICATE)) == (48, 48)
    state = snapshot(archive)
    [study] = state["studies"]
    assert (study["number_of_series"], study["number_of_instances"]) == (2, 48)
    assert sorted(split_multi(study["modalities_in_study"])) == ["CT", "DX"]
    assert [s["number_of_instances"] for s in state["series"]] == [24, 24]
    assert (len(state["components"]), len(state["instances"]), len(state["versions"])) == (1, 48, 48)
    assert state["audit_entries"] == 96
