"""The archive core's annotations and its once-per-window audit, without HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.archive import Archive
from storage.audit import Actor, AuditRecord
from storage.dicom.spacing import Spacing
from storage.errors import NotFound
from storage.index.models import Annotation, AuditEvent
from storage.records.annotations import AnnotationConflict, Annotations, Draft, InvalidAnnotation, measure
from tests.support.factories import make_instance, write_part10

INSPECTOR = Actor(name="inspector", address="10.0.0.5:40000", kind="user")


def _count(archive: Archive, model: Any, *where: Any) -> int:
    with archive.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def image(archive: Archive, tmp_path: Path) -> str:
    ds = make_instance(rows=100, columns=200)  # PixelSpacing 0.1 \\ 0.1
    archive.store_file(write_part10(ds, tmp_path / "img.dcm"), INSPECTOR)
    return str(ds.SOPInstanceUID)


def test_measure_uses_the_spacing_per_axis() -> None:
    anisotropic = Spacing(row_mm=0.2, column_mm=0.1, attribute="PixelSpacing")
    assert measure("length", [(0, 0), (30, 40)], None) == (50.0, "px")
    assert measure("length", [(0, 0), (10, 10)], anisotropic)[0] == pytest.approx(math.hypot(1.0, 2.0))
    assert measure("profile", [(0, 0), (10, 0)], anisotropic) == (pytest.approx(1.0), "mm")
    # 45 degrees in pixels is not 45 degrees on the object when rows are twice as far apart
    assert measure("angle", [(10, 0), (0, 0), (10, 10)], None) == (pytest.approx(45.0), "deg")
    assert measure("angle", [(10, 0), (0, 0), (10, 10)], anisotropic)[0] == pytest.approx(math.degrees(math.atan(2)))
    assert measure("angle", [(0, 0), (0, 0), (5, 5)], None) == (0.0, "deg")  # degenerate arm: no NaN
    assert measure("rect", [(10, 10), (0, 5)], anisotropic) == (pytest.approx(1.0 * 1.0), "mm2")
    assert measure("ellipse", [(0, 0), (20, 10)], None) == (pytest.approx(math.pi * 10 * 5), "px2")


@pytest.mark.parametrize(
    ("draft", "reason"),
    [
        (Draft("circle", [(1, 1), (2, 2)]), "kind must be one of"),
        (Draft("length", [(1, 1)]), "exactly 2 points"),
        (Draft("angle", [(1, 1), (2, 2)]), "exactly 3 points"),
        (Draft("length", [(math.nan, 1), (2, 2)]), "finite"),
        (Draft("length", [(1, math.inf), (2, 2)]), "finite"),
        (Draft("length", [(True, 1), (2, 2)]), "finite numeric"),
        (Draft("length", [("1", 1), (2, 2)]), "finite numeric"),  # type: ignore[list-item]
        (Draft("length", [(1, 1, 1), (2, 2)]), "pair"),  # type: ignore[list-item]
        (Draft("length", [(1, 1), (200.01, 2)]), "outside the image"),
        (Draft("length", [(1, 1), (2, 100.5)]), "outside the image"),
        (Draft("length", [(1, 1), (2, 2)], frame=2), "frame must be between 1 and 1"),
        (Draft("length", [(1, 1), (2, 2)], text="\ud800"), "surrogate"),
        (Draft("length", [(1, 1), (2, 2)], label="a\nb"), "control"),
        (Draft("length", [(1, 1), (2, 2)], note="x" * 2001), "longer than 2000"),
        (Draft("length", [(1, 1), (2, 2)], instance_version=0), "instance_version"),
    ],
)
def test_invalid_drafts_change_nothing(archive: Archive, image: str, draft: Draft, reason: str) -> None:
    entries = _count(archive, AuditEvent)
    with pytest.raises(InvalidAnnotation, match=reason):
        archive.db.run(lambda uow: Annotations().create(uow, image, draft, INSPECTOR))
    assert _count(archive, Annotation) == 0
    assert _count(archive, AuditEvent) == entries


def test_create_and_withdraw_are_kept_and_audited(archive: Archive, image: str) -> None:
    book = Annotations()
    note = "crack indication?\nsee the second exposure"
    kept = archive.db.run(
        lambda uow: book.create(uow, image, Draft("length", [(0, 0), (200, 100)], note=note, label="  "), INSPECTOR)
    )
    assert (kept.value, kept.unit) == (pytest.approx(math.hypot(20, 10)), "mm")
    assert (kept.author, kept.note, kept.label) == ("user:inspector", note, None)  # blank label: none
    assert kept.created_at.tzinfo is not None
    with pytest.raises(NotFound):
        archive.db.run(lambda uow: book.create(uow, "1.2.3.999", Draft("length", [(0, 0), (1, 1)]), INSPECTOR))
    with pytest.raises(AnnotationConflict, match="version 1 is served"):
        archive.db.run(
            lambda uow: book.create(uow, image, Draft("length", [(0, 0), (1, 1)], instance_version=3), INSPECTOR)
        )
    gone = archive.db.run(
        lambda uow: book.withdraw(uow, kept.id, Actor(name="level3", kind="user"), reason="duplicate")
    )
    assert (gone.withdrawn, gone.withdrawn_by, gone.withdrawal_reason) == (True, "user:level3", "duplicate")
    with pytest.raises(AnnotationConflict, match="already withdrawn by user:level3"):
        archive.db.run(lambda uow: book.withdraw(uow, kept.id, INSPECTOR))
    with pytest.raises(NotFound):
        archive.db.run(lambda uow: book.withdraw(uow, kept.id + 1, INSPECTOR))
    assert archive.db.run(lambda uow: book.list(uow, image), write=False).items == []
    [again] = archive.db.run(lambda uow: book.list(uow, image, include_withdrawn=True), write=False).items
    assert (again.id, again.points, again.withdrawn_by) == (kept.id, [(0.0, 0.0), (200.0, 100.0)], "user:level3")
    assert _count(archive, Annotation) == 1  # withdrawn, not deleted
    assert _count(archive, AuditEvent, AuditEvent.action == "annotation-create") == 1
    assert _count(archive, AuditEvent, AuditEvent.action == "annotation-withdraw") == 1
    assert archive.verify_audit().ok


def test_record_once_per_actor_series_and_window(archive: Archive) -> None:
    def view(series: str, sop: str, actor: Actor = INSPECTOR, outcome: str = "success") -> AuditRecord:
        return AuditRecord(actor, "api-pixels", outcome, "1.2.3", series, sop)

    hour = timedelta(hours=1)
    assert archive.record_once(view("1.2.3.1", "1.2.3.1.1"), hour)
    assert not archive.record_once(view("1.2.3.1", "1.2.3.1.2"), hour)  # same series, another slice
    assert archive.record_once(view("1.2.3.2", "1.2.3.2.1"), hour)  # another series
    assert archive.record_once(view("1.2.3.1", "1.2.3.1.2", Actor(name="auditor", kind="user")), hour)
    assert archive.record_once(view("1.2.3.1", "1.2.3.1.3", outcome="failure"), hour)
    assert archive.record_once(view("1.2.3.1", "1.2.3.1.4"), timedelta(0))  # the window has passed
    assert _count(archive, AuditEvent, AuditEvent.action == "api-pixels") == 5
    assert archive.verify_audit().ok
