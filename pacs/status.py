"""DIMSE status codes by name (PS3.4 Annex C and GG, PS3.7 Annex C). No bare hex elsewhere."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Status values returned by our service class providers."""

    SUCCESS = 0x0000
    PENDING = 0xFF00  # PS3.4 C.4.1.1.4: pending, all optional keys supported
    PENDING_WARNING = 0xFF01  # PS3.4 C.4.1.1.4: pending, some optional keys not supported
    CANCEL = 0xFE00  # PS3.7 C.4: matching/sub-operations terminated by C-CANCEL
    WARNING_SUBOPS_FAILED = 0xB000  # PS3.4 C.4.2.1.4: sub-operations complete, one or more failures
    # PS3.4 B.2.3 / GG.4: C-STORE
    OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (object store or database unavailable)
    INSTANCE_TOO_LARGE = 0xA700  # Refused: out of resources, beyond PACS_MAX_INSTANCE_SIZE (or a deflate bomb)
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand (malformed data set, bad UIDs)
    # PS3.4 C.4.1.1.4: C-FIND
    FIND_OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000  # C-FIND/C-GET/C-MOVE: unable to process
    # PS3.4 C.4.2.1.4 / C.4.3.1.4: C-MOVE / C-GET
    OUT_OF_RESOURCES_MATCHES = 0xA701  # unable to calculate number of matches
    OUT_OF_RESOURCES_SUBOPS = 0xA702  # unable to perform sub-operations
    MOVE_DESTINATION_UNKNOWN = 0xA801
    # PS3.7 C.4: general
    PROCESSING_FAILURE = 0x0110
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    NOT_AUTHORIZED = 0x0124
    INVALID_ARGUMENT_VALUE = 0x0115
    MISSING_ATTRIBUTE = 0x0120
    NO_SUCH_ACTION = 0x0123
    RESOURCE_LIMITATION = 0x0213
    # PS3.4 J.3.2.1.2: storage commitment Failure Reason (0008,1197)
    CLASS_INSTANCE_CONFLICT = 0x0119
