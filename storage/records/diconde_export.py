"""The released evaluation as a DICOM object: a Grayscale Softcopy Presentation State with DICONDE.

Why a GSPS (PS3.3 A.33.1): it is the standard object that *references* images and carries
vector graphics over them in image pixel coordinates (Graphic Annotation module, C.10.5), so
any DICOM viewer that applies presentation states shows each indication's region on the right
image and frame, without the pixels being touched. ASTM E2339 puts the NDE Indication and
NDE Approval attributes in group 0014 / 300E, which any IOD may carry as standard extended
attributes (PS3.5 7.1); here they ride on the presentation state: EvaluatorSequence,
EvaluationAttempt, IndicationSequence (number, label, type, disposition, ROI, physical
properties) and ApprovalStatus / ReviewerName / ReviewDate / ReviewTime with the secondary
(approver) counterparts (0014,0101-0105). The object joins the inspection (same Study Instance
UID) in a new series and is stored through the one ingest path (``Archive.store_file``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from storage import __version__
from storage.records.evaluations import EvaluationRecord
from storage.records.indications import IndicationRecord
from storage.records.signatures import SignatureRecord

GSPS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State Storage
LAYER = "INDICATIONS"
# Attributes copied from the inspected images: Patient (Component) and General Study (Component Study).
STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "EthnicGroup",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "PhysiciansOfRecord",
)
APPROVAL = {"ACCEPT": "APPROVED", "REJECT": "REJECTED", "HOLD": "UNAPPROVED"}  # ApprovalStatus (300E,0002) terms


@dataclass(frozen=True)
class ImageInfo:
    """What the export needs of one inspected image."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    rows: int
    columns: int
    frames: int
    header: dict[str, Any]  # DICOM JSON (PS3.18 F.2)


@dataclass(frozen=True)
class Release:
    """Everything a released evaluation says, read in one unit of work."""

    study_instance_uid: str
    serial: str
    evaluation: EvaluationRecord
    indications: list[IndicationRecord]
    signatures: list[SignatureRecord]
    images: list[ImageInfo]
    status: str


def study_attributes(images: list[ImageInfo]) -> Dataset:
    """The Patient / Study attributes of the inspection, from the first image's stored header."""
    header = images[0].header if images else {}
    wanted: dict[str, Any] = {}
    for keyword in STUDY_KEYWORDS:
        tag = tag_for_keyword(keyword)
        key = f"{tag:08X}" if tag is not None else ""
        if key in header:
            wanted[key] = header[key]
    return Dataset.from_json(json.dumps(wanted))


def _da_tm(moment: datetime) -> tuple[str, str]:
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def _graphic(indication: IndicationRecord) -> tuple[str, list[tuple[float, float]]]:
    """GSPS Graphic Type and points (PS3.3 C.10.5.1.2) of an indication's region."""
    points = indication.points
    if indication.kind == "point":
        return "POINT", points
    if indication.kind in ("line", "polyline"):
        return "POLYLINE", points
    if indication.kind == "rect":
        (x0, y0), (x1, y1) = points
        return "POLYLINE", [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    if indication.kind == "ellipse":
        (x0, y0), (x1, y1) = points
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        horizontal = [(min(x0, x1), cy), (max(x0, x1), cy)]
        vertical = [(cx, min(y0, y1)), (cx, max(y0, y1))]
        major, minor = (horizontal, vertical) if abs(x1 - x0) >= abs(y1 - y0) else (vertical, horizontal)
        return "ELLIPSE", major + minor
    return "POLYLINE", [*points, points[0]]  # polygon: closed


def _flat(points: list[tuple[float, float]]) -> list[float]:
    return [round(v, 3) for point in points for v in point]


def _measurement(label: str, value: float, unit: str) -> Dataset:
    item = Dataset()
    item.PropertyLabel = label
    item.NumericValue = f"{value:.6g}"
    code = Dataset()
    ucum = {"mm": "mm", "mm2": "mm2", "px": "{pixels}", "px2": "{pixels}2"}[unit]
    code.CodeValue = ucum
    code.CodingSchemeDesignator = "UCUM"
    code.CodeMeaning = {"mm": "millimeter", "mm2": "square millimeter"}.get(unit, "pixels")
    item.MeasurementUnitsCodeSequence = Sequence([code])
    return item


def _indication_item(indication: IndicationRecord, disposition: str, image: ImageInfo) -> Dataset:
    item = Dataset()
    item.IndicationNumber = indication.number
    item.IndicationLabel = (indication.label or f"#{indication.number}")[:16]
    if indication.description:
        item.IndicationDescription = indication.description[:1024]
    item.IndicationType = indication.type
    item.IndicationDisposition = disposition
    graphic_type, points = _graphic(indication)
    roi = Dataset()
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = image.sop_class_uid
    referenced.ReferencedSOPInstanceUID = image.sop_instance_uid
    if image.frames > 1:
        referenced.ReferencedFrameNumber = indication.frame
    roi.ReferencedImageSequence = Sequence([referenced])
    roi.ValueType = "SCOORD"
    roi.GraphicType = graphic_type
    roi.NumberOfGraphicPoints = len(points)
    roi.GraphicData = _flat(points)
    item.IndicationROISequence = Sequence([roi])
    unit = indication.sizes.unit
    properties = []
    if indication.sizes.length is not None:
        properties.append(_measurement("LENGTH", indication.sizes.length, unit))
    if indication.sizes.width is not None:
        properties.append(_measurement("WIDTH", indication.sizes.width, unit))
    if indication.sizes.area is not None:
        properties.append(_measurement("AREA", indication.sizes.area, unit + "2"))
    if properties:
        item.IndicationPhysicalPropertySequence = Sequence(properties)
    return item


def build_export(release: Release, now: datetime) -> Dataset:
    """The GSPS carrying the evaluation, the NDE Indication and NDE Approval attributes and the regions."""
    ds = study_attributes(release.images)
    ds.SOPClassUID = GSPS_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = release.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "PR"
    ds.SeriesNumber = 990
    ds.SeriesDescription = "NDE evaluation (released)"
    ds.InstanceNumber = release.evaluation.attempt
    ds.Manufacturer = "ndt-pacs"
    ds.SoftwareVersions = __version__
    day, time = _da_tm(now)
    ds.InstanceCreationDate, ds.InstanceCreationTime = day, time
    ds.ContentDate, ds.ContentTime = day, time
    ds.PresentationCreationDate, ds.PresentationCreationTime = day, time
    ds.ContentLabel = "NDE_EVALUATION"
    ds.ContentDescription = f"{release.evaluation.disposition} against {release.evaluation.standard_meaning}"[:64]
    evaluators = [s for s in release.signatures if s.valid and s.meaning == "evaluated"]
    approvers = [s for s in release.signatures if s.valid and s.meaning == "approved"]
    ds.ContentCreatorName = evaluators[0].printed_name if evaluators else ""
    by_uid = {image.sop_instance_uid: image for image in release.images}
    active = [i for i in release.indications if not i.withdrawn and i.sop_instance_uid in by_uid]
    marked_images = [by_uid[uid] for uid in dict.fromkeys(i.sop_instance_uid for i in active)] or release.images
    # Presentation State Relationship (C.11.11): the referenced images, by series.
    series: dict[str, list[ImageInfo]] = {}
    for image in marked_images:
        series.setdefault(image.series_instance_uid, []).append(image)
    ref_series = []
    for series_uid, images in series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedImageSequence = Sequence([_ref(image) for image in images])
        ref_series.append(item)
    ds.ReferencedSeriesSequence = Sequence(ref_series)
    # Displayed Area (C.10.4) and Presentation LUT (C.11.6): the whole image, as stored.
    areas = []
    for image in marked_images:
        area = Dataset()
        area.ReferencedImageSequence = Sequence([_ref(image)])
        area.DisplayedAreaTopLeftHandCorner = [1, 1]
        area.DisplayedAreaBottomRightHandCorner = [image.columns, image.rows]
        area.PresentationSizeMode = "SCALE TO FIT"
        area.PresentationPixelAspectRatio = [1, 1]
        areas.append(area)
    ds.DisplayedAreaSelectionSequence = Sequence(areas)
    ds.PresentationLUTShape = "IDENTITY"
    # Graphic Layer (C.10.7) and Graphic Annotation (C.10.5): each region and its label.
    layer = Dataset()
    layer.GraphicLayer = LAYER
    layer.GraphicLayerOrder = 1
    layer.GraphicLayerDescription = "Indications of the released evaluation"
    ds.GraphicLayerSequence = Sequence([layer])
    annotations = []
    for indication in active:
        image = by_uid[indication.sop_instance_uid]
        annotation = Dataset()
        annotation.ReferencedImageSequence = Sequence([_ref(image, indication.frame)])
        annotation.GraphicLayer = LAYER
        graphic_type, points = _graphic(indication)
        graphic = Dataset()
        graphic.GraphicAnnotationUnits = "PIXEL"
        graphic.GraphicDimensions = 2
        graphic.NumberOfGraphicPoints = len(points)
        graphic.GraphicData = _flat(points)
        graphic.GraphicType = graphic_type
        graphic.GraphicFilled = "N"
        annotation.GraphicObjectSequence = Sequence([graphic])
        text = Dataset()
        text.AnchorPointAnnotationUnits = "PIXEL"
        disposition = release.evaluation.indications.get(str(indication.id), "")
        text.UnformattedTextValue = f"#{indication.number} {indication.type} {disposition}"[:1024]
        text.AnchorPoint = [round(points[0][0], 3), round(points[0][1], 3)]
        text.AnchorPointVisibility = "N"
        annotation.TextObjectSequence = Sequence([text])
        annotations.append(annotation)
    if annotations:
        ds.GraphicAnnotationSequence = Sequence(annotations)
    # NDE Indication (ASTM E2339).
    evaluator_items = []
    for number, signature in enumerate(evaluators + approvers, start=1):
        item = Dataset()
        item.EvaluatorNumber = number
        item.EvaluatorName = signature.printed_name
        evaluator_items.append(item)
    ds.EvaluatorSequence = Sequence(evaluator_items)
    ds.EvaluationAttempt = release.evaluation.attempt
    ds.IndicationSequence = Sequence(
        [
            _indication_item(i, release.evaluation.indications.get(str(i.id), ""), by_uid[i.sop_instance_uid])
            for i in active
        ]
    )
    # NDE Approval: the evaluator's decision, and the approver's as the secondary review.
    status = APPROVAL[release.evaluation.disposition]
    if evaluators:
        ds.ApprovalStatus = status
        ds.ReviewerName = evaluators[0].printed_name
        ds.ReviewDate, ds.ReviewTime = _da_tm(evaluators[0].signed_at)
    if approvers:
        ds.SecondaryApprovalStatus = status
        ds.SecondaryReviewerName = approvers[0].printed_name
        ds.SecondaryReviewDate, ds.SecondaryReviewTime = _da_tm(approvers[0].signed_at)
    if release.evaluation.repair_id:
        ds.RepairID = release.evaluation.repair_id
    _file_meta(ds)
    return ds


def _ref(image: ImageInfo, frame: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = image.sop_class_uid
    item.ReferencedSOPInstanceUID = image.sop_instance_uid
    if frame is not None and image.frames > 1:
        item.ReferencedFrameNumber = frame
    return item


def _file_meta(ds: Dataset) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names and comments are free text


def encapsulated_pdf(release: Release, pdf: bytes, now: datetime) -> Dataset:
    """The report as an Encapsulated PDF instance (PS3.3 A.45.1) in a new series of the inspection."""
    ds = study_attributes(release.images)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = release.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = 991
    ds.SeriesDescription = "NDE inspection report"
    ds.InstanceNumber = release.evaluation.attempt
    ds.Manufacturer = "ndt-pacs"
    ds.ConversionType = "SYN"  # synthetic: made by the archive
    day, time = _da_tm(now)
    ds.InstanceCreationDate, ds.InstanceCreationTime = day, time
    ds.ContentDate, ds.ContentTime = day, time
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"NDT inspection report {release.serial}"[:64]
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    _file_meta(ds)
    return ds
