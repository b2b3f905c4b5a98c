"""Archive-core configuration (pydantic-settings, ``PACS_`` environment variables).

Defaults give the embedded archive: a SQLite index and a file object store inside
the data directory (DESIGN.md, "Embedded default and production").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    """Where the index and the objects live."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    data_dir: Path = Field(default=Path("./pacs-data"), description="Data directory")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the index; default SQLite in the data dir"
    )
    storage_url: str | None = Field(
        default=None, description="file:///path or s3://bucket; default files in the data dir"
    )
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_secure: bool = False
    s3_region: str | None = None
    deferred_index: bool = Field(
        default=True,
        description=(
            "pacs serve with the file object store: answer a C-STORE once the object is durable and index it "
            "in a separate indexer process (reads wait for it); false, or an S3 store: index before answering"
        ),
    )
    audit_syslog: str | None = Field(
        default=None,
        description="Forward every audit entry to this syslog collector: tcp://HOST:PORT or tls://HOST:PORT (IHE ATNA)",
    )
    audit_syslog_ca: Path | None = Field(
        default=None, description="CA certificate file that signs the collector's TLS certificate (tls:// only)"
    )
    query_max_results: int = Field(
        default=10_000, ge=1, description="Hard cap on results of any one query (C-FIND, QIDO)"
    )

    @property
    def resolved_database_url(self) -> str:
        """The index URL, defaulting to ``sqlite:///<data_dir>/index.sqlite``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'index.sqlite'}"

    @property
    def resolved_storage_url(self) -> str:
        """The object store URL, defaulting to ``file://<data_dir>/objects``."""
        if self.storage_url:
            return self.storage_url
        return (self.data_dir.resolve() / "objects").as_uri()

    @property
    def indexes_deferred(self) -> bool:
        """Deferred indexing is on: asked for, and the objects live on local disk like the intake.

        With S3 the object must be in the bucket before the sender is told it is safe (an intake
        on a node's disk is not where an S3 deployment keeps its data), so S3 indexes immediately.
        """
        return self.deferred_index and self.resolved_storage_url.startswith("file:")

    @property
    def intake_dir(self) -> Path:
        """Acknowledged objects waiting for the indexer (deferred indexing, storage/ingest/intake.py)."""
        return self.data_dir.resolve() / "intake"

    @property
    def spool_dir(self) -> Path:
        """Where incoming objects are spooled before they enter the object store."""
        return self.data_dir.resolve() / "spool"


@lru_cache
def get_storage_settings() -> StorageSettings:
    """Settings from the environment, read once per process."""
    return StorageSettings()
