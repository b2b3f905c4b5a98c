"""A small, hand-computed evaluated history for the quality metrics (index rows, written directly).

Eight inspections in March 2024 (see tests/storage/test_quality.py for the figures expected):

| key | date     | component (welders) | company | evaluations (attempt: disposition author) | current indications |
|-----|----------|---------------------|---------|-------------------------------------------|---------------------|
| S1  | 20240304 | C1 Pipe (W1)        | NDT-A   | 1: REJECT alice                           | POROSITY 2, CRACK 1 |
| S2  | 20240311 | C1 Pipe (W1)        | NDT-A   | 1: ACCEPT alice, re-inspects S1           | -                   |
| S3  | 20240305 | C2 Pipe (W1, W2)    | NDT-A   | 1: REJECT alice, 2: ACCEPT bob            | POROSITY 1          |
| S4  | 20240306 | C2 Pipe (W1, W2)    | NDT-B   | 1: ACCEPT bob (UT, ISO5817:C)             | POROSITY, INCLUSION |
| S5  | 20240307 | C3 Vessel (W2)      | NDT-B   | 1: REJECT bob                             | LACK_OF_FUSION, POR.|
| S6  | 20240308 | C3 Vessel (W2)      | NDT-B   | 1: HOLD bob                               | CRACK 1             |
| S7  | 20240309 | C4 Vessel (none)    | NDT-A   | -                                         | -                   |
| S8  | 20240310 | C4 Vessel (none)    | NDT-A   | 1: ACCEPT alice                           | -                   |

S1 also has a withdrawn porosity; S5's porosity was a crack in its first version.
Method RT and standard ISO5817:B unless said. Received at 08:00 on the inspection date; the
first evaluation after 2, 4, 1, 3, 8, 4, -, 6 hours; S1 approved 24 h and S2 8 h after evaluation.

And a p-chart history in 2025 (company ``PCHART``): January 40 evaluated / 4 rejected,
February 10 / 1, March 10 / 7.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from storage.index.db import Database
from storage.index.models import (
    Component,
    Evaluation,
    Instance,
    MarkedIndication,
    MarkedIndicationVersion,
    Qualification,
    Series,
    Signature,
    Study,
    User,
)

NOW = datetime(2024, 3, 12, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
ROOT = "1.2.826.0.1.3680043.10.1000"


def _at(day: str, hour: float) -> datetime:
    return datetime(int(day[:4]), int(day[4:6]), int(day[6:]), tzinfo=UTC) + timedelta(hours=hour)


class Builder:
    """Adds components, inspections, evaluations, indications and signatures to one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.components: dict[str, Component] = {}
        self.studies: dict[str, Study] = {}
        self.instances: dict[str, Instance] = {}
        self.evaluations: dict[tuple[str, int], Evaluation] = {}
        self.numbers: dict[str, int] = {}

    def component(self, key: str, name: str, material: str, welders: list[str]) -> None:
        row = Component(
            patient_id=key,
            patient_name=name,
            ethnic_group=material,
            component_welder_ids="".join(f"\\{w}" for w in welders) + "\\" if welders else None,
        )
        self.s.add(row)
        self.s.flush()
        self.components[key] = row

    def inspection(self, key: str, component: str, day: str, company: str, received_hour: float = 8) -> None:
        n = len(self.studies) + 1
        study = Study(
            component_id=self.components[component].id,
            study_instance_uid=f"{ROOT}.{n}",
            study_date=day,
            physicians_of_record=company,
            modalities_in_study="\\DX\\",
            created_at=_at(day, received_hour),
            updated_at=_at(day, received_hour),
        )
        self.s.add(study)
        self.s.flush()
        series = Series(study_id=study.id, series_instance_uid=f"{ROOT}.{n}.1", modality="DX")
        self.s.add(series)
        self.s.flush()
        image = Instance(
            series_id=series.id,
            sop_instance_uid=f"{ROOT}.{n}.1.1",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
            rows=16,
            columns=16,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            object_key=f"k{n}",
            size_bytes=1,
            sha256="0" * 64,
            header_json="{}",
        )
        self.s.add(image)
        self.s.flush()
        self.studies[key] = study
        self.instances[key] = image

    def evaluation(
        self,
        key: str,
        attempt: int,
        disposition: str,
        author: str,
        hours: float,
        *,
        method: str = "RT",
        standard: str = "ISO5817:B",
        reinspection_of: str | None = None,
    ) -> None:
        study = self.studies[key]
        row = Evaluation(
            study_id=study.id,
            attempt=attempt,
            method=method,
            disposition=disposition,
            standard=standard,
            standard_meaning=standard,
            reinspection_of=self.studies[reinspection_of].study_instance_uid if reinspection_of else None,
            dispositions="{}",
            author=f"user:{author}",
            created_at=_at(study.study_date or "", 8 + hours),
        )
        self.s.add(row)
        self.s.flush()
        self.evaluations[(key, attempt)] = row

    def indication(self, key: str, *types: str, withdrawn: bool = False) -> None:
        """One marked indication whose versions carry *types* in order (the last is current)."""
        study = self.studies[key]
        number = self.numbers[key] = self.numbers.get(key, 0) + 1
        head = MarkedIndication(
            study_id=study.id,
            instance_id=self.instances[key].id,
            sop_instance_uid=self.instances[key].sop_instance_uid,
            number=number,
            version=len(types),
            created_by="user:alice",
        )
        self.s.add(head)
        self.s.flush()
        for v, kind in enumerate(types, start=1):
            self.s.add(
                MarkedIndicationVersion(
                    indication_id=head.id,
                    version=v,
                    instance_version=1,
                    frame_number=1,
                    kind="point",
                    geometry=json.dumps({"points": [[1, 1]]}),
                    indication_type=kind,
                    unit="px",
                    withdrawn=withdrawn and v == len(types),
                    author="user:alice",
                )
            )
        self.s.flush()

    def sign(self, key: str, attempt: int, meaning: str, signer: str, at: datetime) -> None:
        self.s.add(
            Signature(
                study_id=self.studies[key].id,
                evaluation_id=self.evaluations[(key, attempt)].id,
                meaning=meaning,
                signer=signer,
                printed_name=signer,
                signed_at=at,
                qualification="{}",
                content="{}",
                content_sha256="0" * 64,
            )
        )

    def person(self, name: str, *qualifications: dict[str, Any], active: bool = True) -> None:
        user = User(username=name, full_name=name.title(), role="inspector", active=active)
        self.s.add(user)
        self.s.flush()
        for q in qualifications:
            self.s.add(Qualification(user_id=user.id, certificate=f"{name}-{q['method']}", **q))
        self.s.flush()


def build_march_2024(b: Builder) -> None:
    """The eight inspections of the table above, their signatures and the people who signed."""
    b.component("C1", "Pipe", "P265GH", ["W1"])
    b.component("C2", "Pipe", "P265GH", ["W1", "W2"])
    b.component("C3", "Vessel", "S355", ["W2"])
    b.component("C4", "Vessel", "S355", [])
    for key, comp, day, company in (
        ("S1", "C1", "20240304", "NDT-A"),
        ("S2", "C1", "20240311", "NDT-A"),
        ("S3", "C2", "20240305", "NDT-A"),
        ("S4", "C2", "20240306", "NDT-B"),
        ("S5", "C3", "20240307", "NDT-B"),
        ("S6", "C3", "20240308", "NDT-B"),
        ("S7", "C4", "20240309", "NDT-A"),
        ("S8", "C4", "20240310", "NDT-A"),
    ):
        b.inspection(key, comp, day, company)
    b.evaluation("S1", 1, "REJECT", "alice", 2)
    b.evaluation("S2", 1, "ACCEPT", "alice", 4, reinspection_of="S1")
    b.evaluation("S3", 1, "REJECT", "alice", 1)
    b.evaluation("S3", 2, "ACCEPT", "bob", 25)
    b.evaluation("S4", 1, "ACCEPT", "bob", 3, method="UT", standard="ISO5817:C")
    b.evaluation("S5", 1, "REJECT", "bob", 8)
    b.evaluation("S6", 1, "HOLD", "bob", 4)
    b.evaluation("S8", 1, "ACCEPT", "alice", 6)
    b.indication("S1", "POROSITY")
    b.indication("S1", "POROSITY")
    b.indication("S1", "CRACK")
    b.indication("S1", "POROSITY", "POROSITY", withdrawn=True)
    b.indication("S3", "POROSITY")
    b.indication("S4", "POROSITY")
    b.indication("S4", "INCLUSION")
    b.indication("S5", "LACK_OF_FUSION")
    b.indication("S5", "CRACK", "POROSITY")
    b.indication("S6", "CRACK")
    b.person(
        "alice",
        {"method": "RT", "level": 2, "valid_until": date(2026, 6, 30), "vision_test": date(2024, 1, 15)},
    )
    b.person(
        "bob",
        {"method": "RT", "level": 2, "valid_until": date(2024, 3, 6), "vision_test": date(2024, 1, 10)},
        {"method": "UT", "level": 2, "valid_until": date(2025, 1, 1), "vision_test": date(2023, 2, 1)},
    )
    b.person("carol", {"method": "RT", "level": 3, "valid_until": date(2024, 5, 1), "vision_test": date(2024, 1, 1)})
    b.person("erin", {"method": "RT", "level": 2, "valid_until": date(2024, 4, 1), "vision_test": date(2024, 3, 1)})
    b.person(
        "frank",
        {"method": "RT", "level": 2, "valid_until": date(2024, 3, 20), "vision_test": date(2024, 3, 1)},
        active=False,
    )
    b.sign("S1", 1, "evaluated", "alice", _at("20240304", 10.1))
    b.sign("S1", 1, "approved", "carol", _at("20240305", 10))
    b.sign("S2", 1, "evaluated", "alice", _at("20240311", 12.1))
    b.sign("S2", 1, "approved", "carol", _at("20240311", 20))
    b.sign("S3", 1, "evaluated", "bob", _at("20240305", 9.1))
    b.sign("S4", 1, "evaluated", "bob", _at("20240306", 11.1))  # UT vision test expired 2024-02-01
    b.sign("S5", 1, "evaluated", "bob", _at("20240307", 16.1))  # RT certificate expired 2024-03-06
    b.sign("S8", 1, "evaluated", "alice", _at("20240310", 14.1))
    b.sign("S8", 1, "reviewed", "dave", _at("20240310", 15))  # no account, no qualification


def build_pchart_2025(b: Builder) -> None:
    """Evaluated inspections per month in 2025: (n, rejected) = Jan (40, 4), Feb (10, 1), Mar (10, 7)."""
    b.component("P1", "Flange", "P265GH", ["W9"])
    for month, n, rejected in ((1, 40, 4), (2, 10, 1), (3, 10, 7)):
        for i in range(n):
            key = f"P{month}-{i}"
            b.inspection(key, "P1", f"2025{month:02d}{1 + i % 28:02d}", "PCHART")
            b.evaluation(key, 1, "REJECT" if i < rejected else "ACCEPT", "alice", 1)
    # Received but not evaluated, and on hold: neither is in a subgroup.
    b.inspection("P3-open", "P1", "20250315", "PCHART")
    b.inspection("P3-hold", "P1", "20250316", "PCHART")
    b.evaluation("P3-hold", 1, "HOLD", "alice", 1)


def build(db: Database) -> dict[str, str]:
    """Write both histories; returns the StudyInstanceUID of each inspection key."""

    def work(session: Session) -> dict[str, str]:
        b = Builder(session)
        build_march_2024(b)
        build_pchart_2025(b)
        session.flush()
        return {k: s.study_instance_uid for k, s in b.studies.items()}

    return db.run(lambda uow: work(uow.session))
