"""The DICOM-JSON -> view mapping: index values and stored headers as the API's NDT-named models.

Pure functions, no I/O: what a route returns is one of these applied to what the core answered.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydicom.datadict import dictionary_description, keyword_for_tag

from storage.dicom.diconde.vocabulary import BY_KEYWORD as NDT_TERMS
from storage.dicom.diconde.vocabulary import TERMS
from storage.dicom.spacing import Spacing as PixelSpacing
from storage.dicom.spacing import numbers, pixel_spacing
from storage.index.catalog import InstanceRecord
from storage.records.annotations import AnnotationRecord
from viewer.api.models import (
    AnnotationOut,
    ComponentSummary,
    ImageRef,
    InspectionSummary,
    InstanceDetail,
    Point,
    Spacing,
    Tag,
    Window,
)

MAX_VALUE_CHARS = 2048


def component_summary(v: dict[str, Any], latest: str | None = None) -> ComponentSummary:
    """A component (DICOM Patient) from its index values."""
    return ComponentSummary(
        serial=v["PatientID"],
        name=v.get("PatientName"),
        manufacturing_date=v.get("PatientBirthDate"),
        material=v.get("EthnicGroup"),
        material_grade=v.get("MaterialGrade"),
        manufacturer=v.get("ComponentManufacturer"),
        material_thickness=v.get("MaterialThickness") or [],
        welder_ids=v.get("ComponentWelderIDs") or [],
        inspection_count=v.get("NumberOfPatientRelatedStudies") or 0,
        latest_inspection_date=latest if latest is not None else v.get("LatestStudyDate"),
    )


def inspection_summary(v: dict[str, Any], with_component: bool = True) -> InspectionSummary:
    """An inspection (DICOM Study) from its index values, with its component when known."""
    return InspectionSummary(
        uid=v["StudyInstanceUID"],
        date=v.get("StudyDate"),
        time=v.get("StudyTime"),
        order=v.get("AccessionNumber"),
        inspection_id=v.get("StudyID"),
        description=v.get("StudyDescription"),
        owner=v.get("ReferringPhysicianName"),
        company=v.get("PhysiciansOfRecord"),
        expiry_date=v.get("ExpiryDate"),
        modalities=v.get("ModalitiesInStudy") or [],
        series_count=v.get("NumberOfStudyRelatedSeries") or 0,
        image_count=v.get("NumberOfStudyRelatedInstances") or 0,
        component=component_summary(v) if with_component and v.get("PatientID") else None,
        device_approval_status=v.get("ApprovalStatus"),
    )


def pixels_url(sop_uid: str, frame: int | str = 1) -> str:
    """The raw-frame URL of an image."""
    return f"/api/images/{sop_uid}/frames/{frame}/pixels"


def image_ref(study_uid: str, series_uid: str, v: dict[str, Any]) -> ImageRef:
    """An image of a series, with the URLs of its details, pixels and thumbnail."""
    uid = v["SOPInstanceUID"]
    return ImageRef(
        uid=uid,
        sop_class_uid=v.get("SOPClassUID"),
        number=v.get("InstanceNumber"),
        rows=v.get("Rows"),
        columns=v.get("Columns"),
        frames=v.get("NumberOfFrames") or 1,
        details_url=f"/api/images/{uid}",
        pixels_url=pixels_url(uid),
        thumbnail_url=f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{uid}/thumbnail",
    )


def first_value(header: dict[str, Any], tag: str) -> Any:
    """The first value of *tag* in a DICOM JSON header, or None."""
    values = header.get(tag, {}).get("Value") or []
    return values[0] if values else None


def spacing_view(calibration: PixelSpacing | None) -> Spacing | None:
    """The API model of a pixel spacing."""
    return Spacing(**dataclasses.asdict(calibration)) if calibration else None


def stored_windows(header: dict[str, Any]) -> list[Window]:
    """The stored VOI windows (Window Center / Width / Explanation)."""
    centers, widths = numbers(header, "00281050"), numbers(header, "00281051")
    explanations = header.get("00281055", {}).get("Value") or []
    return [
        Window(center=c, width=w, explanation=str(explanations[i]) if i < len(explanations) else None)
        for i, (c, w) in enumerate(zip(centers, widths, strict=False))
        if w > 0
    ]


def element_text(element: dict[str, Any]) -> str:
    """A DICOM JSON element's value as text (PS3.18 F.2)."""
    vr = element.get("vr", "")
    if "BulkDataURI" in element or "InlineBinary" in element:
        return "(binary data)"
    values = element.get("Value") or []
    if vr == "SQ":
        return f"({len(values)} item{'s' if len(values) != 1 else ''})"
    parts = []
    for value in values:
        if isinstance(value, dict):
            groups = [str(value.get(k, "")) for k in ("Alphabetic", "Ideographic", "Phonetic")]
            while groups and not groups[-1]:
                groups.pop()
            parts.append("=".join(groups))  # PS3.5 6.2: PN component groups
        else:
            parts.append(str(value))
    text = "\\".join(parts)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def tag_list(header: dict[str, Any]) -> list[Tag]:
    """Every attribute of a header, NDT-labelled ones first in vocabulary order."""
    tags = []
    for key, element in header.items():
        try:
            number = int(key, 16)
        except ValueError:
            continue
        keyword = keyword_for_tag(number) or ""
        try:
            name = dictionary_description(number)
        except KeyError:
            name = "Private or unknown"
        tags.append(
            Tag(
                tag=f"{key[:4]},{key[4:]}",
                keyword=keyword,
                name=name,
                ndt_label=NDT_TERMS[keyword].label if keyword in NDT_TERMS else None,
                vr=str(element.get("vr", "")),
                value=element_text(element),
            )
        )
    order = {term.keyword: i for i, term in enumerate(TERMS)}
    tags.sort(key=lambda t: (0, order[t.keyword], "") if t.keyword in order else (1, 0, t.tag))
    return tags


def instance_detail(record: InstanceRecord) -> InstanceDetail:
    """An image's geometry, pixel description and attributes."""
    h, v = record.header, record.values
    uid = v["SOPInstanceUID"]
    return InstanceDetail(
        uid=uid,
        sop_class_uid=v.get("SOPClassUID"),
        inspection_uid=record.study_instance_uid,
        series_uid=record.series_instance_uid,
        serial=record.patient_id,
        modality=first_value(h, "00080060"),
        rows=int(v.get("Rows") or first_value(h, "00280010") or 0),
        columns=int(v.get("Columns") or first_value(h, "00280011") or 0),
        frames=int(v.get("NumberOfFrames") or 1),
        samples_per_pixel=int(first_value(h, "00280002") or 1),
        bits_stored=first_value(h, "00280101"),
        signed=first_value(h, "00280103") == 1,
        photometric=first_value(h, "00280004"),
        rescale_slope=(numbers(h, "00281053") or [1.0])[0] or 1.0,
        rescale_intercept=(numbers(h, "00281052") or [0.0])[0],
        windows=stored_windows(h),
        spacing=spacing_view(pixel_spacing(h)),
        transfer_syntax_uid=record.transfer_syntax_uid,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        version=record.version,
        pixels_url=pixels_url(uid, "{frame}"),
        tags=tag_list(h),
    )


def annotation(a: AnnotationRecord) -> AnnotationOut:
    """A kept annotation."""
    return AnnotationOut(
        id=a.id,
        image_uid=a.sop_instance_uid,
        instance_version=a.instance_version,
        frame=a.frame,
        kind=a.kind,
        points=[Point(x=x, y=y) for x, y in a.points],
        value=a.value,
        unit=a.unit,
        text=a.text,
        spacing=spacing_view(a.spacing),
        label=a.label,
        note=a.note,
        author=a.author,
        created_at=a.created_at,
        withdrawn=a.withdrawn,
        withdrawn_at=a.withdrawn_at,
        withdrawn_by=a.withdrawn_by,
        withdrawal_reason=a.withdrawal_reason,
    )
