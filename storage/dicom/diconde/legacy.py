"""Legacy (2010, "DICONDE10") private encoding: ``astm.org/diconde/iod/*`` blocks.

Before DICOM 2011 the NDE attributes lived in private blocks of groups 0009, 0011
and 0021. Each legacy element maps one-to-one to a public group-0014 tag by the
low-byte rule (reference diconde.md §4): public = (0014,HHLL), LL the legacy
element's low byte, HH fixed per private creator. Creator names are matched
case-insensitively (DCMTK spells ``NdeCTImage``, vtk-dicom ``NdeCtImage``).

The archive keeps such files byte-exact; :func:`legacy_value` lets the index read
them as if their values were in group 0014.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydicom.datadict import add_private_dict_entries, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.values import convert_value

from storage.dicom import header
from storage.dicom.diconde._table import GROUP_0014
from storage.dicom.diconde.dictionary import name_from_keyword

log = logging.getLogger(__name__)

CREATOR_PREFIX = "astm.org/diconde/iod/"


@dataclass(frozen=True)
class LegacyCreator:
    """One legacy private creator: its group and the high byte HH of its public successors."""

    name: str  # canonical spelling (DCMTK / vtk-dicom)
    group: int
    high: int  # public tag = (0014, high << 8 | low byte of the legacy element)
    elements: tuple[int, ...] | None = None  # public element numbers, when narrower than the HH range


CREATORS: tuple[LegacyCreator, ...] = (
    LegacyCreator(CREATOR_PREFIX + "Component", 0x0011, 0x00),
    LegacyCreator(CREATOR_PREFIX + "ComponentStudy", 0x0009, 0x10, (0x1020,)),
    LegacyCreator(CREATOR_PREFIX + "ComponentSeries", 0x0009, 0x10, (0x1010, 0x1040)),
    LegacyCreator(CREATOR_PREFIX + "NdeIndication", 0x0021, 0x20),
    LegacyCreator(CREATOR_PREFIX + "NDEGeometry", 0x0021, 0x22),
    LegacyCreator(CREATOR_PREFIX + "NdeCTImage", 0x0009, 0x50),
    LegacyCreator(CREATOR_PREFIX + "NdeCtDetector", 0x0009, 0x30),
    LegacyCreator(CREATOR_PREFIX + "NdeDxDetector", 0x0009, 0x30),
    LegacyCreator(CREATOR_PREFIX + "NdeCtCalibrationData", 0x0009, 0x30),
    LegacyCreator(CREATOR_PREFIX + "NdeDxCalibrationData", 0x0009, 0x30),
    LegacyCreator(CREATOR_PREFIX + "NdeUsEquipment", 0x0009, 0x40),
    LegacyCreator(CREATOR_PREFIX + "NdeUsEquipmentSettings", 0x0009, 0x40),
)
# Spellings seen in the wild besides the canonical one (registered for display too).
_ALIASES = {CREATOR_PREFIX + "NdeCTImage": (CREATOR_PREFIX + "NdeCtImage",)}
_BY_LOWER = {c.name.lower(): c for c in CREATORS}

_lock = threading.Lock()
_registered = False


def _public_tags(creator: LegacyCreator) -> list[tuple[int, str, str, str]]:
    """(public tag, VR, VM, keyword) of the group-0014 attributes *creator* can carry."""
    rows = []
    for tag, vr, vm, keyword, _retired in GROUP_0014:
        element = tag & 0xFFFF
        if element >> 8 != creator.high:
            continue
        if creator.elements is not None and element not in creator.elements:
            continue
        rows.append((tag, vr, vm, keyword))
    return rows


def register_private_dictionaries() -> int:
    """Register every legacy creator with pydicom (idempotent); return the entries added."""
    global _registered
    with _lock:
        if _registered:
            return 0
        added = 0
        for creator in CREATORS:
            entries = {
                (creator.group << 16) | 0x1000 | (tag & 0xFF): (vr, vm, name_from_keyword(keyword), "")
                for tag, vr, vm, keyword in _public_tags(creator)
            }
            for name in (creator.name, *_ALIASES.get(creator.name, ())):
                add_private_dict_entries(name, entries)
                added += len(entries)
        _registered = True
        return added


def creator_for(tag: int) -> LegacyCreator | None:
    """The legacy creator whose block can hold the public group-0014 *tag*."""
    if tag >> 16 != 0x0014:
        return None
    element = tag & 0xFFFF
    for creator in CREATORS:
        if element >> 8 == creator.high and (creator.elements is None or element in creator.elements):
            return creator
    return None


@cache
def _creator_of(tag: int) -> LegacyCreator | None:
    return creator_for(tag)


def _blocks(ds: Dataset, group: int) -> dict[str, int]:
    """Lower-cased private creator -> block byte, for the legacy creators present in *group*."""
    found: dict[str, int] = {}
    low = (group << 16) | 0x0010
    # One pass over the tags (iterating the Dataset itself would convert every element); plain
    # integer arithmetic, as BaseTag's comparison operators are slow.
    for tag in ds.keys():  # noqa: SIM118
        if not 0 <= tag - low <= 0xEF:
            continue
        value = ds[tag].value
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        name = str(value).strip().lower()
        if name in _BY_LOWER:
            found.setdefault(name, int(tag) & 0xFF)
    return found


class LegacyBlocks:
    """The legacy private blocks of one data set, each group looked up once (on first need)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._groups: dict[int, dict[str, int]] = {}

    def value(self, tag: int) -> Any:
        """The value of public group-0014 *tag* from a legacy private block (None when absent)."""
        creator = _creator_of(tag)
        if creator is None:
            return None
        blocks = self._groups.get(creator.group)
        if blocks is None:
            blocks = self._groups[creator.group] = _blocks(self.ds, creator.group)
        block = blocks.get(creator.name.lower())
        if block is None:
            return None
        try:
            element = self.ds.get(Tag(creator.group, (block << 8) | (tag & 0xFF)))
            return None if element is None else _as_public(element, tag)
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            # A malformed optional legacy value is not indexed; it never makes a file unstorable.
            log.warning("legacy DICONDE %s not readable: %s", public_keyword(tag), exc)
            return None


def _as_public(element: DataElement, public_tag: int) -> Any:
    """The element's value, decoded with the public VR when it was read as UN (implicit VR)."""
    if element.VR != "UN" or not isinstance(element.value, bytes):
        return element.value
    vr = str(dictionary_VR(public_tag))
    if vr == "SQ":
        return None  # a sequence read as UN cannot be decoded here
    raw = RawDataElement(BaseTag(public_tag), vr, len(element.value), element.value, 0, False, True, True, False)
    return convert_value(vr, raw)


def legacy_reader(ds: Dataset) -> Callable[[int], Any]:
    """The index's fallback reader for *ds*: public tag -> value from a legacy block (or None)."""
    return LegacyBlocks(ds).value


def legacy_value(ds: Dataset, keyword: str) -> Any:
    """The value of group-0014 *keyword* from a legacy private block of *ds* (None when absent)."""
    tag = tag_for_keyword(keyword)
    return None if tag is None else LegacyBlocks(ds).value(tag)


def value_of(ds: Dataset, keyword: str, legacy: LegacyBlocks | None = None) -> Any:
    """*keyword*'s value from group 0014 or, failing that, from a legacy private block.

    *legacy*, the :class:`LegacyBlocks` of *ds*, saves looking its blocks up again.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    value = header.value(ds, tag)
    if value is None or value == "":
        return (legacy or LegacyBlocks(ds)).value(tag)
    return value


def has_legacy_blocks(ds: Dataset) -> bool:
    """True when *ds* carries any ``astm.org/diconde/iod/*`` private block."""
    return any(_blocks(ds, group) for group in {c.group for c in CREATORS})


def to_legacy(ds: Dataset) -> Dataset:
    """A copy of *ds* with its group-0014 attributes moved into legacy private blocks.

    Attributes without a legacy predecessor (e.g. ComponentWelderIDs) stay public.
    Used by the demo and the tests to produce 2010-style files.
    """
    out = copy.deepcopy(ds)
    _move_to_legacy(out)
    return out


def _move_to_legacy(ds: Dataset) -> None:
    for element in list(ds):
        if element.tag.group != 0x0014:
            continue
        creator = creator_for(int(element.tag))
        if creator is None:
            continue
        value = element.value
        if element.VR == "SQ":
            items = Sequence()
            for item in value:
                _move_to_legacy(item)
                items.append(item)
            value = items
        block = ds.private_block(creator.group, creator.name, create=True)
        block.add_new(int(element.tag) & 0xFF, element.VR, value)
        del ds[element.tag]


def public_keyword(tag: int) -> str:
    """The group-0014 keyword of a public *tag* ('' when unknown)."""
    return str(keyword_for_tag(tag) or "")
