"""The indexed attributes: which DICOM keyword lives in which index column, at which level.

One table serves ingest (what to extract), matching (which column to compare) and
responses (what the index can return). Protocol adapters read it; they never
name columns themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, cached_property
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy.orm import InstrumentedAttribute

from storage.dicom import header
from storage.dicom.diconde.legacy import legacy_reader
from storage.index.models import Component, Instance, Series, Study


class Level(StrEnum):
    """Query/Retrieve levels (PS3.4 C.3): DICONDE component, inspection, series, image."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        """0 for PATIENT down to 3 for IMAGE."""
        return list(Level).index(self)


@dataclass(frozen=True)
class IndexedAttribute:
    """A DICOM attribute kept in an index column."""

    keyword: str
    level: Level
    column: InstrumentedAttribute[Any]
    multi: bool = False  # VM 1-n, stored as "\\a\\b\\"
    derived: bool = False  # maintained by the archive, not read from the file

    @property
    def vr(self) -> str:
        """The attribute's Value Representation (PS3.6)."""
        return str(dictionary_VR(tag_for_keyword(self.keyword)))  # type: ignore[arg-type]

    @cached_property
    def tag(self) -> int:
        """The attribute's tag as an integer."""
        return int(tag_for_keyword(self.keyword))  # type: ignore[arg-type]

    @cached_property
    def column_key(self) -> str:
        """The name of the attribute's index column."""
        return str(self.column.key)

    @cached_property
    def is_int(self) -> bool:
        """True when the index column holds integers."""
        return self.column.type.python_type is int


_P, _ST, _SE, _I = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

ATTRIBUTES: tuple[IndexedAttribute, ...] = (
    IndexedAttribute("PatientID", _P, Component.patient_id),
    IndexedAttribute("PatientName", _P, Component.patient_name),
    IndexedAttribute("PatientBirthDate", _P, Component.patient_birth_date),
    IndexedAttribute("EthnicGroup", _P, Component.ethnic_group),
    IndexedAttribute("ComponentManufacturer", _P, Component.component_manufacturer),
    IndexedAttribute("MaterialThickness", _P, Component.material_thickness, multi=True),
    IndexedAttribute("MaterialGrade", _P, Component.material_grade),
    IndexedAttribute("ComponentWelderIDs", _P, Component.component_welder_ids, multi=True),
    IndexedAttribute("NumberOfPatientRelatedStudies", _P, Component.number_of_studies, derived=True),
    IndexedAttribute("StudyInstanceUID", _ST, Study.study_instance_uid),
    IndexedAttribute("StudyDate", _ST, Study.study_date),
    IndexedAttribute("StudyTime", _ST, Study.study_time),
    IndexedAttribute("AccessionNumber", _ST, Study.accession_number),
    IndexedAttribute("StudyID", _ST, Study.study_id),
    IndexedAttribute("StudyDescription", _ST, Study.study_description),
    IndexedAttribute("ReferringPhysicianName", _ST, Study.referring_physician_name),
    IndexedAttribute("PhysiciansOfRecord", _ST, Study.physicians_of_record),
    IndexedAttribute("ExpiryDate", _ST, Study.expiry_date),
    IndexedAttribute("ApprovalStatus", _ST, Study.approval_status),
    IndexedAttribute("NameOfPhysiciansReadingStudy", _ST, Study.name_of_physicians_reading_study),
    IndexedAttribute("ModalitiesInStudy", _ST, Study.modalities_in_study, multi=True, derived=True),
    IndexedAttribute("NumberOfStudyRelatedSeries", _ST, Study.number_of_series, derived=True),
    IndexedAttribute("NumberOfStudyRelatedInstances", _ST, Study.number_of_instances, derived=True),
    IndexedAttribute("SeriesInstanceUID", _SE, Series.series_instance_uid),
    IndexedAttribute("Modality", _SE, Series.modality),
    IndexedAttribute("SeriesNumber", _SE, Series.series_number),
    IndexedAttribute("SeriesDescription", _SE, Series.series_description),
    IndexedAttribute("SeriesDate", _SE, Series.series_date),
    IndexedAttribute("SeriesTime", _SE, Series.series_time),
    IndexedAttribute("PerformingPhysicianName", _SE, Series.performing_physician_name),
    IndexedAttribute("OperatorsName", _SE, Series.operators_name),
    IndexedAttribute("StationName", _SE, Series.station_name),
    IndexedAttribute("Manufacturer", _SE, Series.manufacturer),
    IndexedAttribute("DeviceSerialNumber", _SE, Series.device_serial_number),
    IndexedAttribute("NumberOfSeriesRelatedInstances", _SE, Series.number_of_instances, derived=True),
    IndexedAttribute("SOPInstanceUID", _I, Instance.sop_instance_uid),
    IndexedAttribute("SOPClassUID", _I, Instance.sop_class_uid),
    IndexedAttribute("InstanceNumber", _I, Instance.instance_number),
    IndexedAttribute("ContentDate", _I, Instance.content_date),
    IndexedAttribute("ContentTime", _I, Instance.content_time),
    IndexedAttribute("Rows", _I, Instance.rows),
    IndexedAttribute("Columns", _I, Instance.columns),
    IndexedAttribute("NumberOfFrames", _I, Instance.number_of_frames),
    IndexedAttribute("PixelSpacing", _I, Instance.pixel_spacing, multi=True),
    IndexedAttribute("ImagerPixelSpacing", _I, Instance.imager_pixel_spacing, multi=True),
)

BY_KEYWORD: dict[str, IndexedAttribute] = {a.keyword: a for a in ATTRIBUTES}

# The unique key of each level (PS3.4 C.2.2.1.1).
UNIQUE_KEYS: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


@cache
def attributes_at(level: Level) -> tuple[IndexedAttribute, ...]:
    """The indexed attributes stored at *level* itself."""
    return tuple(a for a in ATTRIBUTES if a.level is level)


def join_multi(values: list[str]) -> str:
    """Encode a multi-valued attribute for its column: ``\\a\\b\\`` (empty when none)."""
    values = [v for v in values if v]
    return "\\" + "\\".join(values) + "\\" if values else ""


def split_multi(stored: str | None) -> list[str]:
    """Decode a column written by :func:`join_multi`."""
    return [v for v in (stored or "").split("\\") if v]


# Alternative encodings of indexed attributes (the legacy DICONDE private blocks, PS3.5 §7.8):
# each factory takes a data set and returns its reader, which takes a public tag and returns
# that attribute's value from the alternative encoding, or None.
FallbackReader = Callable[[int], Any]
FALLBACK_READERS: list[Callable[[Dataset], FallbackReader]] = [legacy_reader]


def fallback_readers(ds: Dataset) -> list[FallbackReader]:
    """The registered alternative-encoding readers, set up once for *ds*."""
    return [factory(ds) for factory in FALLBACK_READERS]


def extract(ds: Dataset, attribute: IndexedAttribute, fallbacks: list[FallbackReader]) -> Any:
    """The value of *attribute* in *ds*, converted for its index column (None when absent).

    *fallbacks* are :func:`fallback_readers` of *ds*, asked in turn when *ds* has no value.
    """
    value = header.value(ds, attribute.tag)
    if value is None or value == "":
        for reader in fallbacks:
            value = reader(attribute.tag)
            if value not in (None, ""):
                break
        else:
            return None
    if attribute.multi:
        items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        return join_multi([_clean(v) for v in items])
    if isinstance(value, MultiValue):
        value = "\\".join(_clean(v) for v in value)
    if attribute.is_int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return _clean(value)


def _clean(value: Any) -> str:
    """Tag values are untrusted: NUL cannot be stored in a PostgreSQL text column."""
    return str(value).replace("\x00", "")
