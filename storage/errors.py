"""Domain errors of the archive core; each protocol maps them to its own statuses once."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every error the archive core raises on purpose."""


class InvalidInstance(ArchiveError):
    """The object is not a DICOM instance we can accept (malformed, truncated, bad UIDs)."""


class TooLarge(InvalidInstance):
    """The object is larger than the archive accepts (``PACS_MAX_INSTANCE_SIZE``, the inflation bound of deflate)."""


class ComponentMismatch(InvalidInstance):
    """The instance's study already belongs to another component than the one it names (a patient mismatch).

    Never filed under either silently: refused before the acknowledgement, or set aside.
    """

    def __init__(self, study_instance_uid: str, owner: str, named: str) -> None:
        self.study_instance_uid = study_instance_uid
        self.owner = owner
        self.named = named
        super().__init__(
            f"component mismatch: study {study_instance_uid} belongs to component {owner!r}, "
            f"the instance names {named!r} (PatientID 0010,0020)"
        )


class StorageUnavailable(ArchiveError):
    """The object store cannot be written or read (down, full, unwritable)."""


class IndexUnavailable(ArchiveError):
    """The database cannot be reached or refused the transaction."""


class NotFound(ArchiveError):
    """No such record or object."""


class InvalidQuery(ArchiveError):
    """A query carries a value that cannot be matched (bad range, bad UID list, ...)."""
