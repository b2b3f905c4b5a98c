"""HTTP server configuration (``PACS_`` environment variables, DESIGN.md interface contract)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HttpSettings(BaseSettings):
    """Where the HTTP server listens."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address to bind")
    http_port: int = Field(default=8042, ge=0, le=65535)
