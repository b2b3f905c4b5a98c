"""Request and response models of indications, evaluations and signatures (DESIGN.md Interfaces, Records)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from viewer.api.models import Point, Spacing

IndicationKind = Literal["point", "line", "polyline", "rect", "ellipse", "polygon"]
Disposition = Literal["ACCEPT", "REJECT", "HOLD"]


class Term(BaseModel):
    """One entry of a configured vocabulary."""

    code: str
    meaning: str


class IndicationCreate(BaseModel):
    """An indication to mark on an image; the archive computes its sizes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: IndicationKind
    points: list[Point] = Field(min_length=1, max_length=500, description="Image pixels: x = column, y = row")
    frame: int = Field(1, ge=1, le=1_000_000)
    type: str = Field(max_length=64, description="A code of GET /api/indication-types")
    label: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=1024)


class IndicationChange(BaseModel):
    """A new version of an indication: given fields replace the previous version's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(None, max_length=500, description="Why; required once the evaluation is signed")
    kind: IndicationKind | None = None
    points: list[Point] | None = Field(None, min_length=1, max_length=500)
    frame: int | None = Field(None, ge=1, le=1_000_000)
    type: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=1024)
    withdrawn: bool | None = None
    version: int | None = Field(None, ge=1, description="The version the change is based on (409 if stale)")


class Sizes(BaseModel):
    """Sizes computed by the archive from the calibrated spacing (mm) or in pixels (px)."""

    length: float | None
    width: float | None
    area: float | None
    unit: str
    spacing: Spacing | None


class IndicationOut(BaseModel):
    """One version of an indication marked on an image."""

    id: int
    number: int = Field(description="IndicationNumber (0014,2014) within the inspection")
    version: int
    latest_version: int
    source: Literal["inspector"] = "inspector"
    inspection_uid: str
    image_uid: str
    image_version: int
    frame: int
    kind: IndicationKind
    points: list[Point]
    type: str
    label: str | None
    description: str | None
    sizes: Sizes
    withdrawn: bool
    author: str
    created_at: datetime
    reason: str | None


class DeviceIndicationOut(BaseModel):
    """An indication the device sent inside the image (Indication Sequence (0014,2012))."""

    source: Literal["device"] = "device"
    number: int | None
    label: str | None
    types: list[str]
    disposition: str | None
    description: str | None
    kind: str | None
    points: list[Point]


class ImageIndications(BaseModel):
    """The indications of an image: the inspectors' (newest versions) and the device's."""

    image_uid: str
    inspection_uid: str
    items: list[IndicationOut]
    device: list[DeviceIndicationOut]


class EvaluationIn(BaseModel):
    """An evaluation of an inspection (a new attempt each time)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    disposition: Disposition
    standard: str = Field(max_length=64, description="A code of GET /api/acceptance-standards")
    comment: str | None = Field(None, max_length=4000)
    indications: dict[str, Disposition] = Field(default_factory=dict, max_length=1000)
    repair_id: str | None = Field(None, max_length=64, description="RepairID (0014,0105) of a rejected weld")
    reinspection_of: str | None = Field(None, max_length=64, pattern=r"^[0-9.]+$")
    reason: str | None = Field(None, max_length=500, description="Required once the inspection has been signed")


class EvaluationOut(BaseModel):
    """A recorded evaluation attempt."""

    id: int
    inspection_uid: str
    attempt: int
    method: str
    disposition: Disposition
    standard: str
    standard_meaning: str
    comment: str | None
    repair_id: str | None
    reinspection_of: str | None
    indications: dict[str, str]
    author: str
    created_at: datetime
    reason: str | None


class SignatureIn(BaseModel):
    """Sign the current evaluation: the meaning and the signer's password, re-entered (21 CFR 11.200)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    meaning: Literal["evaluated", "reviewed", "approved"]
    password: str = Field(min_length=1, max_length=1024)


class SignatureOut(BaseModel):
    """A signature (21 CFR 11.50): printed name, UTC time, meaning; valid until what it signed changes."""

    id: int
    meaning: str
    signer: str
    printed_name: str
    role: str | None
    signed_at: datetime
    evaluation_attempt: int
    qualification: dict[str, Any]
    content_sha256: str
    valid: bool
    invalidated: bool


class SignResult(BaseModel):
    """The signature just made and the inspection's status after it."""

    signature: SignatureOut
    status: str
    released: bool


class EvaluationState(BaseModel):
    """An inspection's evaluation state."""

    inspection_uid: str
    status: str
    device_approval_status: str | None
    evaluation: EvaluationOut | None
    signatures: list[SignatureOut]
    content_sha256: str = Field(description="SHA-256 of what a signature would sign now")
    export_uid: str | None = Field(description="SOPInstanceUID of the DICONDE export (GSPS)")
    report_uid: str | None = Field(description="SOPInstanceUID of the Encapsulated PDF report")
    report_url: str | None
    reinspections: list[str]
