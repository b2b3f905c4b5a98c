"""Build the archive core from settings (the only place that picks implementations)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from storage.archive import Archive
from storage.dicom import diconde
from storage.index import migrate
from storage.index.catalog import Catalog
from storage.index.db import Database
from storage.objects import ObjectStore
from storage.objects.files import FileObjectStore
from storage.records.accounts import Authenticator
from storage.records.annotations import Annotations
from storage.records.peers import PeerRegistry
from storage.records.release import EvaluationDesk
from storage.settings import StorageSettings


def open_object_store(settings: StorageSettings) -> ObjectStore:
    """The object store named by ``PACS_STORAGE_URL`` (``file://`` or ``s3://``)."""
    url = settings.resolved_storage_url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileObjectStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from storage.objects.s3 import S3ObjectStore, secure_from_endpoint

        if not parsed.netloc:
            raise ValueError(f"PACS_STORAGE_URL {url!r} names no bucket (s3://BUCKET[/prefix])")
        if not settings.s3_endpoint:
            raise ValueError("PACS_STORAGE_URL is s3://...: set PACS_S3_ENDPOINT (host:port or http(s)://host:port)")
        return S3ObjectStore(
            parsed.netloc,
            prefix=unquote(parsed.path),
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=secure_from_endpoint(settings.s3_endpoint, settings.s3_secure),
            region=settings.s3_region,
        )
    raise ValueError(f"unsupported PACS_STORAGE_URL scheme {parsed.scheme!r} in {url!r}")


def open_archive(settings: StorageSettings, *, migrate_embedded: bool = True) -> Archive:
    """Open (and on the embedded SQLite default, create or upgrade) the archive."""
    diconde.register()  # DICONDE tags, UIDs and legacy private blocks (idempotent)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    if db.is_sqlite and migrate_embedded:
        migrate.upgrade(db.engine)
    elif not migrate.is_current(db.engine):
        raise RuntimeError("the index database schema is not current: run `pacs db upgrade` first")
    return Archive(
        db,
        open_object_store(settings),
        spool_dir=settings.spool_dir,
        max_results=settings.query_max_results,
    )


@dataclass(frozen=True)
class Core:
    """The archive core's services, built once by the composition root and handed to both doors."""

    archive: Archive
    catalog: Catalog
    annotations: Annotations
    peers: PeerRegistry
    accounts: Authenticator
    evaluation: EvaluationDesk


def build_core(archive: Archive) -> Core:
    """The services around *archive* (one set per process)."""
    return Core(
        archive=archive,
        catalog=Catalog(),
        annotations=Annotations(),
        peers=PeerRegistry(archive.db),
        accounts=Authenticator(archive.db),
        evaluation=EvaluationDesk(archive),
    )
