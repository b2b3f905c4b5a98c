"""The one mapping table DICOM keyword <-> NDT label (DICONDE, ASTM E2339; diconde.md §2.2).

Code and database keep the DICOM keywords; the REST API and the viewer show these
labels. An in-file Data Element Label Sequence (0014,0200) overrides the display
label of the tags it lists, for that file only (:func:`labels_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydicom.datadict import dictionary_description, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset

from storage.dicom.diconde.legacy import value_of


@dataclass(frozen=True)
class Term:
    """One DICOM keyword with its NDT label and the DICONDE module it belongs to."""

    keyword: str
    label: str
    module: str

    @property
    def tag(self) -> str:
        """The tag as 8 hex digits, as in DICOM JSON (PS3.18 F.2): ``00100020``."""
        tag = tag_for_keyword(self.keyword)
        return f"{int(tag):08X}" if tag is not None else ""


# Levels: DICOM Patient = Component, Study = Inspection (component study), Series = Component series.
LEVEL_LABELS: Mapping[str, str] = {
    "PATIENT": "Component",
    "STUDY": "Inspection",
    "SERIES": "Component series",
    "IMAGE": "Image",
}

TERMS: tuple[Term, ...] = (
    # Component (DICOM Patient module + group 0014)
    Term("PatientName", "Component Name", "Component"),
    Term("PatientID", "Component ID / Serial Number", "Component"),
    Term("PatientBirthDate", "Manufacturing Date", "Component"),
    Term("OtherPatientIDs", "Other Component IDs", "Component"),
    Term("OtherPatientNames", "Other Component Names", "Component"),
    Term("OtherPatientIDsSequence", "Other Component IDs Sequence", "Component"),
    Term("EthnicGroup", "Material Name", "Component"),
    Term("PatientComments", "Component Notes", "Component"),
    Term("ComponentManufacturer", "Component Manufacturer", "Component"),
    Term("ComponentManufacturingProcedure", "Manufacturing Procedure", "Component"),
    Term("MaterialThickness", "Material Thickness (mm)", "Component"),
    Term("MaterialGrade", "Material Grade", "Component"),
    Term("MaterialPipeDiameter", "Pipe Diameter (mm)", "Component"),
    Term("MaterialNotes", "Material Notes", "Component"),
    Term("ComponentShape", "Component Shape", "Component"),
    Term("ComponentWelderIDs", "Welder IDs", "Component"),
    Term("NumberOfPatientRelatedStudies", "Number of Inspections", "Component"),
    # Component Study = one inspection
    Term("StudyInstanceUID", "Inspection UID", "Component Study"),
    Term("StudyDate", "Inspection Date", "Component Study"),
    Term("StudyTime", "Inspection Time", "Component Study"),
    Term("StudyID", "Inspection ID", "Component Study"),
    Term("AccessionNumber", "Order / Job Number", "Component Study"),
    Term("StudyDescription", "Inspection Description", "Component Study"),
    Term("ReferringPhysicianName", "Component Owner", "Component Study"),
    Term("PhysiciansOfRecord", "Inspecting Company", "Component Study"),
    Term("NameOfPhysiciansReadingStudy", "Certifying Inspector", "Component Study"),
    Term("StudyComments", "Examination Notes", "Component Study"),
    Term("ExpiryDate", "Expiry Date", "Component Study"),
    Term("ModalitiesInStudy", "Techniques in Inspection", "Component Study"),
    Term("NumberOfStudyRelatedSeries", "Number of Series", "Component Study"),
    Term("NumberOfStudyRelatedInstances", "Number of Images", "Component Study"),
    # NDE Approval (RT Approval attributes reused)
    Term("ApprovalStatus", "Approval Status", "NDE Approval"),
    Term("ReviewDate", "Review Date", "NDE Approval"),
    Term("ReviewTime", "Review Time", "NDE Approval"),
    Term("ReviewerName", "Reviewer", "NDE Approval"),
    Term("SecondaryApprovalStatus", "Secondary Approval Status", "NDE Approval"),
    # Component Series
    Term("Modality", "Technique", "Component Series"),
    Term("SeriesDescription", "Series Description", "Component Series"),
    Term("PerformingPhysicianName", "Inspector", "Component Series"),
    Term("OperatorsName", "Operator", "Component Series"),
    Term("ActualEnvironmentalConditions", "Actual Environmental Conditions", "Component Series"),
    Term("EnvironmentalConditions", "Environmental Conditions", "Component Series"),
    # NDE Equipment
    Term("InstitutionName", "Company Name", "NDE Equipment"),
    Term("InstitutionAddress", "Company Address", "NDE Equipment"),
    Term("InstitutionalDepartmentName", "Department Name", "NDE Equipment"),
    Term("GantryID", "Scanner ID", "NDE Equipment"),
    Term("StationName", "Station", "NDE Equipment"),
    Term("Manufacturer", "Equipment Manufacturer", "NDE Equipment"),
    Term("DeviceSerialNumber", "Equipment Serial Number", "NDE Equipment"),
    # NDE Indication
    Term("IndicationSequence", "Indications", "NDE Indication"),
    Term("IndicationNumber", "Indication Number", "NDE Indication"),
    Term("IndicationLabel", "Indication Label", "NDE Indication"),
    Term("IndicationType", "Indication Type", "NDE Indication"),
    Term("IndicationDisposition", "Disposition", "NDE Indication"),
    Term("IndicationDescription", "Indication Description", "NDE Indication"),
)

BY_KEYWORD: Mapping[str, Term] = {t.keyword: t for t in TERMS}
BY_LABEL: Mapping[str, str] = {t.label.lower(): t.keyword for t in TERMS}


def vocabulary() -> list[dict[str, str]]:
    """The table as JSON-ready rows (keyword, tag, label, module) for the REST API and the viewer."""
    return [{"keyword": t.keyword, "tag": t.tag, "label": t.label, "module": t.module} for t in TERMS]


def ndt_label(keyword: str) -> str:
    """The NDT label of a DICOM keyword; the PS3.6 name when the table has no NDT meaning for it."""
    term = BY_KEYWORD.get(keyword)
    if term is not None:
        return term.label
    tag = tag_for_keyword(keyword)
    return str(dictionary_description(tag)) if tag is not None else keyword


def keyword_for_label(label: str) -> str | None:
    """The DICOM keyword behind an NDT label (case-insensitive), or None."""
    return BY_LABEL.get(label.strip().lower())


def file_labels(ds: Dataset) -> dict[str, str]:
    """Display labels a file defines for itself: Data Element Label Sequence (0014,0200).

    Items carry Data Element (0014,0202) AT and Data Element Name (0014,0203); they may
    sit directly in the sequence or in a nested Data Element Label Item Sequence (0014,0201).
    Legacy private blocks are not searched: the label dictionary postdates them.
    """
    labels: dict[str, str] = {}
    sequence = value_of(ds, "DataElementLabelSequence") or []
    for item in sequence:
        for entry in [item, *(item.get("DataElementLabelItemSequence") or [])]:
            tag, name = entry.get("DataElement"), entry.get("DataElementName")
            if tag is None or not name:
                continue
            keyword = keyword_for_tag(int(tag)) or f"{int(tag):08X}"
            labels[keyword] = str(name).strip()
    return labels


def labels_for(ds: Dataset | None = None) -> dict[str, str]:
    """Keyword -> display label: the NDT table, overridden by *ds*'s own label dictionary."""
    labels = {t.keyword: t.label for t in TERMS}
    if ds is not None:
        labels.update(file_labels(ds))
    return labels
