"""Indications a device sent in the NDE Indication module: Indication Sequence (0014,2012).

Read from group 0014 or the legacy ``astm.org/diconde/iod/NdeIndication`` block
(0021), so both encodings index the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from storage.dicom.diconde.legacy import LegacyBlocks, value_of
from storage.index.attributes import join_multi

log = logging.getLogger(__name__)

MAX_INDICATIONS = 1000  # per instance: a hostile sequence must not bloat the index


@dataclass(frozen=True)
class IndicationValues:
    """The indexed values of one Indication Sequence item."""

    number: int | None
    label: str | None
    types: str | None  # "\\a\\b\\" (VM 1-n)
    disposition: str | None
    description: str | None


def _text(value: object, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()[:limit] or None


def read_indications(ds: Dataset) -> list[IndicationValues]:
    """One :class:`IndicationValues` per item of (0014,2012) in *ds* (empty when there is none)."""
    sequence = value_of(ds, "IndicationSequence")
    if not sequence or isinstance(sequence, bytes | str):
        return []
    result: list[IndicationValues] = []
    for item in sequence:
        if len(result) >= MAX_INDICATIONS:
            log.warning("IndicationSequence has more than %d items: the rest is not indexed", MAX_INDICATIONS)
            break
        if not isinstance(item, Dataset):
            continue
        legacy = LegacyBlocks(item)  # the item's own legacy blocks, looked up at most once
        number = value_of(item, "IndicationNumber", legacy)
        try:
            number = int(number) if number not in (None, "") else None
        except (TypeError, ValueError):
            number = None
        types = value_of(item, "IndicationType", legacy)
        if isinstance(types, MultiValue | list | tuple):
            type_list = [str(t).strip().upper() for t in types]
        else:
            type_list = [str(types).strip().upper()] if types not in (None, "") else []
        disposition = _text(value_of(item, "IndicationDisposition", legacy), 16)
        result.append(
            IndicationValues(
                number=number,
                label=_text(value_of(item, "IndicationLabel", legacy), 64),
                types=join_multi(type_list) or None,
                disposition=disposition.upper() if disposition else None,
                description=_text(value_of(item, "IndicationDescription", legacy), 1024),
            )
        )
    return result
