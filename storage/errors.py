"""Domain errors of the archive core; each protocol maps them to its own statuses once."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every error the archive core raises on purpose."""


class InvalidInstance(ArchiveError):
    """The object is not a DICOM instance we can accept (malformed, truncated, bad UIDs)."""


class TooLarge(InvalidInstance):
    """The object is larger than the archive accepts (``PACS_MAX_INSTANCE_SIZE``, the inflation bound of deflate)."""


class StorageUnavailable(ArchiveError):
    """The object store cannot be written or read (down, full, unwritable)."""


class IndexUnavailable(ArchiveError):
    """The database cannot be reached or refused the transaction."""


class NotFound(ArchiveError):
    """No such record or object."""


class InvalidQuery(ArchiveError):
    """A query carries a value that cannot be matched (bad range, bad UID list, ...)."""
