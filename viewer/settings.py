"""HTTP server configuration (``PACS_`` environment variables, DESIGN.md interface contract)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HttpSettings(BaseSettings):
    """Where the HTTP server listens."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address to bind")
    http_port: int = Field(default=8042, ge=0, le=65535)
    session_idle_timeout: float = Field(
        default=1800, gt=0, description="Seconds of inactivity after which a browser session ends (default 30 min)"
    )
    trust_proxy: bool = Field(
        default=False,
        description=(
            "Behind a TLS-terminating reverse proxy: take the scheme and client address from X-Forwarded-Proto / "
            "X-Forwarded-For sent by forwarded_allow_ips (never set this when clients reach the server directly)"
        ),
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Comma-separated addresses of the trusted proxy (with trust_proxy), or *"
    )
