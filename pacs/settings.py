"""DICOM listener configuration (``PACS_`` environment variables, DESIGN.md interface contract)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.settings import LimitSettings


class DicomSettings(BaseSettings):
    """Where and as whom the DIMSE listener answers."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address to bind")
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    ae_title: str = Field(default="NDTPACS", min_length=1, max_length=16)
    max_associations: int = Field(default=32, ge=1)
    network_timeout: float = Field(default=60.0, gt=0)
    strict_ae: bool = Field(
        default=False,
        description="Accept associations only from known peers, checked by AE title and address (PACS_STRICT_AE)",
    )
    fast_store: bool = Field(
        default=True,
        description="C-STORE requests bypass pynetdicom's DIMSE layer (pacs/fast_store.py; PACS_FAST_STORE)",
    )
    plain_pynetdicom: bool = Field(
        default=False,
        description="Run on plain pynetdicom: no patches of its internals, no fast path "
        "(pacs/pynetdicom_compat.py; PACS_PLAIN_PYNETDICOM)",
    )
    limits: LimitSettings = Field(default_factory=LimitSettings, description="PDU, timeout and peer limits")
    shutdown_grace: float = Field(default=30.0, ge=0, description="Seconds open associations get to finish")
    dicom_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="DICOM receiver processes sharing the port (SO_REUSEPORT) to use several cores "
        "(PACS_DICOM_WORKERS)",
    )

    @model_validator(mode="after")
    def _workers_need_a_fixed_port(self) -> DicomSettings:
        if self.dicom_workers > 1 and self.dicom_port == 0:
            raise ValueError("PACS_DICOM_WORKERS > 1 needs a fixed DICOM port (the workers share it), not 0")
        return self
