"""SQLAlchemy 2 typed models of the index.

DICONDE (ASTM E2339) reuses the DICOM information model under NDT names: the
Patient is the inspected *component*, the Study one *inspection* of it, the Series
a component series. Tables and columns keep the DICOM keywords in snake_case (the
comment on each column gives tag and VR); the NDT names live in the API and UI.

Multi-valued attributes (VM 1-n) are stored wrapped in backslashes, ``\\CT\\DX\\``,
so that matching one value is a single ``LIKE`` (see :mod:`storage.index.query`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


UID = String(64)


class Component(Base):
    """PATIENT level: the inspected component (DICONDE Component module)."""

    __tablename__ = "components"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)  # (0010,0020) LO: component ID / serial
    patient_name: Mapped[str | None] = mapped_column(Text, index=True)  # (0010,0010) PN: component name
    patient_birth_date: Mapped[str | None] = mapped_column(Text)  # (0010,0030) DA: manufacturing date
    ethnic_group: Mapped[str | None] = mapped_column(Text, index=True)  # (0010,2160) SH: material name
    component_manufacturer: Mapped[str | None] = mapped_column(Text, index=True)  # (0014,0028) ST
    material_thickness: Mapped[str | None] = mapped_column(Text)  # (0014,0030) DS 1-n
    material_grade: Mapped[str | None] = mapped_column(Text)  # (0014,0042) ST
    component_welder_ids: Mapped[str | None] = mapped_column(Text)  # (0014,0100) LO 1-n
    number_of_studies: Mapped[int] = mapped_column(Integer, default=0)  # (0020,1200)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Study(Base):
    """STUDY level: one inspection of a component (DICONDE Component Study)."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)  # (0020,000D) UI
    study_date: Mapped[str | None] = mapped_column(Text, index=True)  # (0008,0020) DA
    study_time: Mapped[str | None] = mapped_column(Text)  # (0008,0030) TM
    accession_number: Mapped[str | None] = mapped_column(Text, index=True)  # (0008,0050) SH: order/job
    study_id: Mapped[str | None] = mapped_column(Text)  # (0020,0010) SH
    study_description: Mapped[str | None] = mapped_column(Text)  # (0008,1030) LO
    referring_physician_name: Mapped[str | None] = mapped_column(Text)  # (0008,0090) PN: owner
    physicians_of_record: Mapped[str | None] = mapped_column(Text, index=True)  # (0008,1048) PN: inspecting company
    expiry_date: Mapped[str | None] = mapped_column(Text)  # (0014,1020) DA
    approval_status: Mapped[str | None] = mapped_column(Text, index=True)  # (300E,0002) CS: NDE Approval
    name_of_physicians_reading_study: Mapped[str | None] = mapped_column(Text)  # (0008,1060) PN: certifying inspector
    modalities_in_study: Mapped[str] = mapped_column(Text, default="")  # (0008,0061) CS 1-n
    number_of_series: Mapped[int] = mapped_column(Integer, default=0)  # (0020,1206)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)  # (0020,1208)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Series(Base):
    """SERIES level: a component series (one technique / device run)."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)  # (0020,000E) UI
    modality: Mapped[str | None] = mapped_column(Text, index=True)  # (0008,0060) CS
    series_number: Mapped[int | None] = mapped_column(Integer)  # (0020,0011) IS
    series_description: Mapped[str | None] = mapped_column(Text)  # (0008,103E) LO
    series_date: Mapped[str | None] = mapped_column(Text)  # (0008,0021) DA
    series_time: Mapped[str | None] = mapped_column(Text)  # (0008,0031) TM
    performing_physician_name: Mapped[str | None] = mapped_column(Text, index=True)  # (0008,1050) PN: inspector
    operators_name: Mapped[str | None] = mapped_column(Text)  # (0008,1070) PN
    station_name: Mapped[str | None] = mapped_column(Text)  # (0008,1010) SH
    manufacturer: Mapped[str | None] = mapped_column(Text)  # (0008,0070) LO
    device_serial_number: Mapped[str | None] = mapped_column(Text)  # (0018,1000) LO
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)  # (0020,1209)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Instance(Base):
    """IMAGE level: one SOP instance; the row describes the version that is served."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)  # (0008,0018) UI
    sop_class_uid: Mapped[str] = mapped_column(UID, index=True)  # (0008,0016) UI
    instance_number: Mapped[int | None] = mapped_column(Integer)  # (0020,0013) IS
    content_date: Mapped[str | None] = mapped_column(Text)  # (0008,0023) DA
    content_time: Mapped[str | None] = mapped_column(Text)  # (0008,0033) TM
    rows: Mapped[int | None] = mapped_column(Integer)  # (0028,0010) US
    columns: Mapped[int | None] = mapped_column(Integer)  # (0028,0011) US
    number_of_frames: Mapped[int | None] = mapped_column(Integer)  # (0028,0008) IS
    pixel_spacing: Mapped[str | None] = mapped_column(Text)  # (0028,0030) DS 2
    imager_pixel_spacing: Mapped[str | None] = mapped_column(Text)  # (0018,1164) DS 2
    transfer_syntax_uid: Mapped[str] = mapped_column(Text)  # (0002,0010) UI
    version: Mapped[int] = mapped_column(Integer, default=1)
    object_key: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the served object lives: "stored" (object store) or "spooled" (local
    # receive spool, waiting for upload; see the production-storage design).
    storage_state: Mapped[str] = mapped_column(Text, default="stored")
    header_json: Mapped[str] = mapped_column(Text)  # the header as DICOM JSON (PS3.18 F.2)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Indication(Base):
    """One item of an instance's Indication Sequence (0014,2012), as sent by the device (DICONDE NDE Indication)."""

    __tablename__ = "indications"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    indication_number: Mapped[int | None] = mapped_column(Integer)  # (0014,2014) IS
    indication_label: Mapped[str | None] = mapped_column(Text)  # (0014,2016) SH
    indication_type: Mapped[str | None] = mapped_column(Text)  # (0014,201A) CS 1-n, stored "\\a\\b\\"
    indication_disposition: Mapped[str | None] = mapped_column(Text, index=True)  # (0014,201C) CS
    indication_description: Mapped[str | None] = mapped_column(Text)  # (0014,2018) ST


class InstanceVersion(Base):
    """Every version ever received of a SOP instance; originals are write-once."""

    __tablename__ = "instance_versions"
    __table_args__ = (UniqueConstraint("instance_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(Text, unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(Text)
    received_by: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Annotation(Base):
    """A measurement kept on an image: geometry in image pixels, never inside the pixels (DESIGN.md).

    Annotations are evidence that evaluations build on: rows are never deleted or edited;
    withdrawing one records who and when. Creation and withdrawal are audited in the same
    transaction (:mod:`storage.records.annotations`).
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)  # (0008,0018) UI of the annotated image
    instance_version: Mapped[int] = mapped_column(Integer)  # the instance version it was drawn on
    frame_number: Mapped[int] = mapped_column(Integer)  # 1-based, as in PS3.18 frame lists
    kind: Mapped[str] = mapped_column(String(16))  # length, angle, rect, ellipse, profile
    geometry: Mapped[str] = mapped_column(Text)  # JSON {"points": [[x, y], ...]}, image pixel coordinates
    value: Mapped[float] = mapped_column(Float)  # computed by the archive from geometry and spacing
    unit: Mapped[str] = mapped_column(String(8))  # mm, px, deg, mm2, px2
    text: Mapped[str] = mapped_column(Text, default="")  # the measurement as the viewer showed it
    spacing_attribute: Mapped[str | None] = mapped_column(Text)  # PixelSpacing, ImagerPixelSpacing, ...
    spacing_row_mm: Mapped[float | None] = mapped_column(Float)
    spacing_column_mm: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)  # "kind:name" like the audit log's actor
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_by: Mapped[str | None] = mapped_column(Text)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)


class MarkedIndication(Base):
    """An indication an inspector marked on an image (DICONDE NDE Indication, ASTM E2339): its identity.

    What it says lives in :class:`MarkedIndicationVersion` rows, never overwritten (21 CFR 11.10(e)):
    every change is a new version with author, time and reason (:mod:`storage.records.indications`).
    """

    __tablename__ = "marked_indications"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)  # (0008,0018) UI of the image
    number: Mapped[int] = mapped_column(Integer)  # (0014,2014) IndicationNumber, 1.. within the inspection
    version: Mapped[int] = mapped_column(Integer, default=1)  # the newest version
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MarkedIndicationVersion(Base):
    """One version of a marked indication: region in image pixels, type, sizes computed by the archive."""

    __tablename__ = "marked_indication_versions"
    __table_args__ = (UniqueConstraint("indication_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    indication_id: Mapped[int] = mapped_column(ForeignKey("marked_indications.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    instance_version: Mapped[int] = mapped_column(Integer)  # the image version it was drawn on
    frame_number: Mapped[int] = mapped_column(Integer)  # 1-based
    kind: Mapped[str] = mapped_column(String(16))  # point, line, polyline, rect, ellipse, polygon
    geometry: Mapped[str] = mapped_column(Text)  # JSON {"points": [[x, y], ...]}, image pixel coordinates
    indication_type: Mapped[str] = mapped_column(String(16))  # (0014,201A) CS, from the configured vocabulary
    label: Mapped[str | None] = mapped_column(Text)  # (0014,2016) SH
    description: Mapped[str | None] = mapped_column(Text)  # (0014,2018) ST
    length: Mapped[float | None] = mapped_column(Float)  # computed by the archive, in `unit`
    width: Mapped[float | None] = mapped_column(Float)
    area: Mapped[float | None] = mapped_column(Float)  # in `unit` squared
    unit: Mapped[str] = mapped_column(String(8))  # mm (calibrated) or px
    spacing_attribute: Mapped[str | None] = mapped_column(Text)
    spacing_row_mm: Mapped[float | None] = mapped_column(Float)
    spacing_column_mm: Mapped[float | None] = mapped_column(Float)
    withdrawn: Mapped[bool] = mapped_column(default=False)
    author: Mapped[str] = mapped_column(Text)  # "kind:name" like the audit log's actor
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)  # why it changed (required once signed)


class Evaluation(Base):
    """One version of an inspection's evaluation: dispositions against an acceptance standard.

    Never overwritten: a new evaluation of the same inspection is the next ``attempt``
    (EvaluationAttempt (0014,2008)); the newest one is the current one.
    """

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("study_id", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)  # (0014,2008) EvaluationAttempt, 1..
    method: Mapped[str] = mapped_column(String(8))  # NDT method of the inspection (RT, UT, ...)
    disposition: Mapped[str] = mapped_column(String(8))  # ACCEPT, REJECT, HOLD (overall)
    standard: Mapped[str] = mapped_column(Text)  # code of the acceptance standard and level applied
    standard_meaning: Mapped[str] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    repair_id: Mapped[str | None] = mapped_column(Text)  # (0014,0105) RepairID
    reinspection_of: Mapped[str | None] = mapped_column(UID)  # StudyInstanceUID of the inspection this re-inspects
    dispositions: Mapped[str] = mapped_column(Text, default="{}")  # JSON {"<indication id>": "ACCEPT|REJECT|HOLD"}
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)


class Signature(Base):
    """An electronic signature on an evaluation (21 CFR 11.50, 11.70): who, when, meaning, what exactly."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), index=True)
    meaning: Mapped[str] = mapped_column(String(16))  # evaluated, reviewed, approved
    signer: Mapped[str] = mapped_column(Text)  # user name
    printed_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    qualification: Mapped[str] = mapped_column(Text)  # JSON snapshot of the certificate used
    content: Mapped[str] = mapped_column(Text)  # the canonical serialisation that was signed
    content_sha256: Mapped[str] = mapped_column(String(64))


class InspectionState(Base):
    """The evaluation status of an inspection, kept current by the evaluation services (search filter)."""

    __tablename__ = "inspection_states"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # received, evaluated, approved, rejected, on-hold
    export_sop_instance_uid: Mapped[str | None] = mapped_column(UID)  # the DICONDE evaluation object
    report_sop_instance_uid: Mapped[str | None] = mapped_column(UID)  # the Encapsulated PDF report
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Peer(Base):
    """A known DICOM application entity (move destination, allowed sender)."""

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(Text, unique=True)
    host: Mapped[str] = mapped_column(Text)
    port: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    allow_store: Mapped[bool] = mapped_column(default=True)
    allow_query: Mapped[bool] = mapped_column(default=True)
    allow_retrieve: Mapped[bool] = mapped_column(default=True)
    allow_move_destination: Mapped[bool] = mapped_column(default=True)
    # The device account this AE title acts as (C-STORE and STOW-RS from one device: one actor).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """An account: a person (admin, inspector, auditor, quality) or a device. Never deleted, only disabled."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(Text, default="")  # as printed on reports and signatures
    email: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))  # admin, inspector, auditor, quality, device
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(Text)  # argon2id (PHC string); None: no password login
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Qualification(Base):
    """An NDT personnel certificate (ISO 9712 / NAS 410 / SNT-TC-1A): method, level, validity, vision test."""

    __tablename__ = "qualifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(8))  # RT, DR, CR, CT, UT, PAUT, TOFD, ET, MT, PT, VT, TT, ...
    level: Mapped[int] = mapped_column(Integer)  # 1, 2, 3
    certificate: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text, default="")  # certifying body
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    vision_test: Mapped[date | None] = mapped_column(Date)  # last near-vision test; valid 12 months
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token of an account; only its SHA-256 is kept (the token is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to recognise a token in a list
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginSession(Base):
    """A browser session (cookie); only the SHA-256 of the cookie value is kept."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))  # sent back in X-CSRF-Token on state-changing requests
    address: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """A failed login, kept in the database so that every HTTP process applies the same rate limit."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)  # as typed (lower case), known or not
    address: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True, default=utcnow)


class AuditEvent(Base):
    """Append-only audit log; each entry carries the hash of the one before."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(Text)  # calling AE title or user name
    actor_address: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(Text)
    study_instance_uid: Mapped[str | None] = mapped_column(UID, index=True)
    series_instance_uid: Mapped[str | None] = mapped_column(UID)
    sop_instance_uid: Mapped[str | None] = mapped_column(UID, index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditForwarding(Base):
    """How far the audit log has been sent to one syslog collector (storage/audit/forward.py)."""

    __tablename__ = "audit_forwarding"

    target: Mapped[str] = mapped_column(Text, primary_key=True)  # tcp://host:port or tls://host:port
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditHead(Base):
    """One row: the newest audit entry. Locking it serialises appends to the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
