"""Response models of the REST API: the DICOM hierarchy under its NDT names (DICONDE, ASTM E2339).

Component = DICOM Patient, Inspection = Study, Series = Series, Image = SOP instance.
All string values are untrusted text from the stored files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from viewer.api import display as show

DISPLAY = "The same values as people read them (present ones only): names without DICOM's ^, dates and times ISO 8601"


def _shown(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


class ComponentSummary(BaseModel):
    """A component (DICOM Patient)."""

    serial: str = Field(description="Component ID / serial number (PatientID)")
    name: str | None = Field(None, description="Component name (PatientName)")
    manufacturing_date: str | None = Field(None, description="PatientBirthDate, YYYYMMDD")
    material: str | None = Field(None, description="Material name (EthnicGroup)")
    material_grade: str | None = None
    manufacturer: str | None = Field(None, description="ComponentManufacturer (0014,0028)")
    material_thickness: list[str] = Field(default_factory=list, description="MaterialThickness (0014,0030)")
    welder_ids: list[str] = Field(default_factory=list, description="ComponentWelderIDs (0014,0100)")
    inspection_count: int = 0
    latest_inspection_date: str | None = None

    @computed_field(description=DISPLAY + ": name, manufacturing_date, latest_inspection_date")  # type: ignore[prop-decorator]
    @property
    def display(self) -> dict[str, str]:
        return _shown(
            name=show.person_name(self.name),
            manufacturing_date=show.date(self.manufacturing_date),
            latest_inspection_date=show.date(self.latest_inspection_date),
        )


class InspectionSummary(BaseModel):
    """An inspection (DICOM Study) of a component."""

    uid: str = Field(description="StudyInstanceUID")
    date: str | None = Field(None, description="StudyDate, YYYYMMDD")
    time: str | None = None
    order: str | None = Field(None, description="Order / job number (AccessionNumber)")
    inspection_id: str | None = Field(None, description="StudyID")
    description: str | None = None
    owner: str | None = Field(None, description="Component owner (ReferringPhysicianName)")
    company: str | None = Field(None, description="Inspecting company (PhysiciansOfRecord)")
    expiry_date: str | None = None
    modalities: list[str] = Field(default_factory=list)
    series_count: int = 0
    image_count: int = 0
    component: ComponentSummary | None = None
    status: str = Field("received", description="received, evaluated, approved, rejected or on-hold")
    device_approval_status: str | None = Field(None, description="ApprovalStatus (300E,0002) the device sent")
    device_indication_count: int = Field(
        0, description="Items of the Indication Sequence (0014,2012) the device sent, over all images"
    )

    @computed_field(description=DISPLAY + ": date, time, owner, company, expiry_date")  # type: ignore[prop-decorator]
    @property
    def display(self) -> dict[str, str]:
        return _shown(
            date=show.date(self.date),
            time=show.time(self.time),
            owner=show.person_name(self.owner),
            company=show.person_name(self.company),
            expiry_date=show.date(self.expiry_date),
        )


class Paged(BaseModel):
    """Paging information of a search result."""

    total: int = Field(description="Number of matches over all pages")
    offset: int
    limit: int


class ComponentPage(Paged):
    """One page of components."""

    items: list[ComponentSummary]


class InspectionPage(Paged):
    """One page of inspections."""

    items: list[InspectionSummary]


class ComponentDetail(ComponentSummary):
    """A component with its inspections over time (oldest first)."""

    inspections: list[InspectionSummary]


class ImageRef(BaseModel):
    """An image (SOP instance) in a series, with the URLs to show it."""

    uid: str
    sop_class_uid: str | None = None
    number: int | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    details_url: str
    pixels_url: str = Field(description="Raw frame 1 (append ?scale=N for a reduced resolution)")
    thumbnail_url: str = Field(description="WADO-RS thumbnail (PS3.18 10.4)")


class SeriesSummary(BaseModel):
    """A component series (one technique / device run)."""

    uid: str
    number: int | None = None
    modality: str | None = None
    description: str | None = None
    date: str | None = None
    inspector: str | None = Field(None, description="PerformingPhysicianName")
    operator: str | None = None
    station: str | None = None
    device_manufacturer: str | None = None
    device_serial: str | None = None
    images: list[ImageRef]

    @computed_field(description=DISPLAY + ": date, inspector, operator")  # type: ignore[prop-decorator]
    @property
    def display(self) -> dict[str, str]:
        return _shown(
            date=show.date(self.date),
            inspector=show.person_name(self.inspector),
            operator=show.person_name(self.operator),
        )


class InspectionDetail(InspectionSummary):
    """An inspection with its series and images."""

    series: list[SeriesSummary]


class Tag(BaseModel):
    """One attribute of an instance, value rendered as text (untrusted)."""

    tag: str = Field(description="Group,element in hex, e.g. 0010,0020")
    keyword: str
    name: str
    ndt_label: str | None = None
    vr: str
    value: str

    @computed_field(description="The value as people read it: PN without ^, DA/TM/DT in ISO 8601")  # type: ignore[prop-decorator]
    @property
    def display(self) -> str:
        return show.attribute_value(self.vr, self.value)


class Window(BaseModel):
    """A stored VOI window (WindowCenter/WindowWidth), in rescaled units."""

    center: float
    width: float
    explanation: str | None = None


class Spacing(BaseModel):
    """Physical size of a pixel and the attribute it came from."""

    row_mm: float = Field(description="Distance between rows (first value)")
    column_mm: float = Field(description="Distance between columns (second value)")
    attribute: str = Field(description="PixelSpacing, ImagerPixelSpacing or NominalScannedPixelSpacing")

    @computed_field(description="The attribute in NDT words: object, detector or scanned film pixel spacing")  # type: ignore[prop-decorator]
    @property
    def words(self) -> str:
        return show.spacing_words(self.attribute)

    @computed_field(description='The calibration as said to people: "calibrated: detector pixel spacing 0.1 mm"')  # type: ignore[prop-decorator]
    @property
    def display(self) -> str:
        return show.calibration(self.attribute, self.row_mm, self.column_mm)


class InstanceDetail(BaseModel):
    """An image: geometry, pixel description and every stored attribute (NDT ones first)."""

    uid: str
    sop_class_uid: str | None = None
    inspection_uid: str
    series_uid: str
    serial: str
    modality: str | None = None
    rows: int
    columns: int
    frames: int
    samples_per_pixel: int
    bits_stored: int | None = None
    signed: bool
    photometric: str | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    windows: list[Window]
    spacing: Spacing | None = None
    transfer_syntax_uid: str
    size_bytes: int
    sha256: str
    version: int
    pixels_url: str = Field(description="Template; replace {frame} (1-based)")
    tags: list[Tag]


AnnotationKind = Literal["length", "angle", "rect", "ellipse", "profile"]


class Point(BaseModel):
    """A point in image pixel coordinates: x = column, y = row; pixel (c, r) covers [c, c+1) x [r, r+1)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    x: float = Field(allow_inf_nan=False, description="0 (left edge) .. Columns (right edge)")
    y: float = Field(allow_inf_nan=False, description="0 (top edge) .. Rows (bottom edge)")


class AnnotationCreate(BaseModel):
    """A measurement to keep on an image. The archive computes value and unit itself."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: AnnotationKind = Field(
        description="length (2 points), angle (3 points, vertex in the middle), rect / ellipse "
        "(2 opposite corners), profile (2 points)"
    )
    points: list[Point] = Field(min_length=2, max_length=3)
    frame: int = Field(1, ge=1, le=1_000_000, description="1-based frame number")
    text: str = Field("", max_length=500, description="The measurement as the viewer showed it (e.g. ROI statistics)")
    label: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=2000)
    instance_version: int | None = Field(
        None, ge=1, description="The image version it was drawn on (InstanceDetail.version); 409 if no longer served"
    )


class AnnotationWithdraw(BaseModel):
    """Why an annotation is withdrawn (optional)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(None, max_length=500)


class AnnotationOut(BaseModel):
    """A measurement kept on an image (never deleted: withdrawn ones say who withdrew them and when)."""

    id: int
    image_uid: str = Field(description="SOPInstanceUID of the image")
    instance_version: int = Field(description="The image version it was drawn on")
    frame: int
    kind: AnnotationKind
    points: list[Point]
    value: float = Field(description="Computed by the archive: length, angle, area (rect/ellipse), profile length")
    unit: str = Field(description="mm, px, deg, mm2 or px2")
    text: str
    spacing: Spacing | None = Field(description="The calibration the value used; null: pixels")
    label: str | None = None
    note: str | None = None
    author: str
    created_at: datetime
    withdrawn: bool
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawal_reason: str | None = None


class AnnotationPage(BaseModel):
    """The annotations of an image, oldest first."""

    image_uid: str
    version: int = Field(description="The image version served now")
    items: list[AnnotationOut]


class ApiError(BaseModel):
    """An error: what was wrong."""

    detail: Any
