"""Reading a parsed header with pydicom's own results, minus pydicom's per-access overhead.

Ingest reads every element of a received header: the identity and the index read some
by tag, the DICOM JSON reads them all. pydicom converts a raw element on first access
and keeps the result in the data set. :func:`element` does that same conversion (pydicom's
converters: its values, warnings and errors; its hooks when any are customised) and keeps
it the same way, but skips ``Dataset.__getitem__``/``__setitem__`` for plain elements
(public, read in full, VR neither SQ, UN nor ambiguous), where they would do nothing more,
and reuses the immutable values it converted before from the same bytes under the same
conditions (VR, byte order, character set, validation mode, pydicom's value options).
:func:`json_dict` equals ``Dataset.to_json_dict(..., suppress_invalid_tags=True)`` (same
strict conversion of what is still raw, same elements dropped), serialising the common
VRs itself; sequences, binary and AT values go through pydicom's own code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableSequence
from typing import Any, cast

from pydicom import config, valuerep
from pydicom import hooks as pydicom_hooks
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import PIXEL_KEYWORDS, Dataset
from pydicom.hooks import hooks
from pydicom.multival import MultiValue
from pydicom.tag import _LUT_DESCRIPTOR_TAGS
from pydicom.uid import UID
from pydicom.valuerep import AMBIGUOUS_VR, BYTES_VR, FLOAT_VR, INT_VR, IS, VR, DSfloat, PersonName
from pydicom.values import convert_value

log = logging.getLogger(__name__)

# VRs whose elements need nothing from Dataset.__getitem__ beyond the conversion itself.
_PLAIN_VRS = frozenset(str(v) for v in VR) - {str(v) for v in AMBIGUOUS_VR} - {"SQ", "UN"}
_SPECIFIC_CHARACTER_SET = 0x00080005
# DataElement.to_json_dict: the VRs of its generic branch (and PN), and their JSON number types.
_BYTES_VRS = frozenset(str(v) for v in BYTES_VR)
_JSON_OWN = _PLAIN_VRS - _BYTES_VRS - {"AT"}
_JSON_INT = frozenset(str(v) for v in INT_VR - {VR.AT})
_JSON_FLOAT = frozenset(str(v) for v in FLOAT_VR)


def _dictionary_vr(tag: int) -> str | None:
    entry = DicomDictionary.get(tag)
    return None if entry is None else entry[0]


# Converted values, by everything their conversion depends on. The instances of a series
# repeat most of their header values (UIDs, names, dates, image geometry), and pydicom's
# conversion of one (validation, UID and PersonName objects) costs far more than a lookup.
# Only immutable results are kept (never a MultiValue), and only successful conversions.
_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_LIMIT = 4096  # entries, then it starts afresh
_CACHE_MAX_LENGTH = 256  # bytes of one value
_CACHED_TYPES = frozenset({str, int, float, UID, PersonName, IS, DSfloat})


def _cache_key(raw: RawDataElement, vr: str, encoding: Any) -> tuple[Any, ...] | None:
    if not 0 < raw.length <= _CACHE_MAX_LENGTH or vr in _BYTES_VRS:
        return None
    return (
        vr,
        raw.value,
        raw.is_little_endian,
        tuple(encoding) if isinstance(encoding, list | MultiValue) else encoding,
        config.settings.reading_validation_mode,
        config.datetime_conversion,
        config.use_DS_numpy,
        config.use_IS_numpy,
        valuerep.DSclass,
    )


def _convert(raw: RawDataElement, vr: str, ds: Dataset) -> DataElement:
    """``convert_raw_data_element`` of a plain element, without the hooks when they are pydicom's defaults."""
    encoding = ds.original_character_set or ds._character_set
    if (
        hooks.raw_element_vr is pydicom_hooks.raw_element_vr
        and hooks.raw_element_value is pydicom_hooks.raw_element_value
        and not hooks.raw_element_kwargs
        and not config.data_element_callback
    ):
        # What the default hooks do for a plain element (the LUT descriptors are not taken
        # this way); on any error pydicom converts it again, with its own error handling.
        key = _cache_key(raw, vr, encoding)
        value = _CACHE.get(key) if key is not None else None
        if value is None:
            try:
                value = convert_value(vr, raw, encoding)
            except Exception:  # noqa: BLE001
                return convert_raw_data_element(raw, encoding=encoding, ds=ds)
            if key is not None and type(value) in _CACHED_TYPES:
                if len(_CACHE) >= _CACHE_LIMIT:
                    _CACHE.clear()
                _CACHE[key] = value
        return DataElement(raw.tag, vr, value, raw.value_tell, raw.length == 0xFFFFFFFF, already_converted=True)
    return convert_raw_data_element(raw, encoding=encoding, ds=ds)


def element(ds: Dataset, tag: int) -> DataElement | None:
    """``ds[tag]`` (converted from raw on first access, kept in *ds*), or None when absent."""
    raw = ds._dict.get(tag)  # type: ignore[call-overload]  # an int finds its BaseTag key
    if raw is None or not isinstance(raw, RawDataElement):
        return raw
    vr = raw.VR if raw.VR is not None else _dictionary_vr(tag)
    if (
        vr in _PLAIN_VRS
        and tag & 0x10000 == 0  # public (private groups are odd)
        and tag != _SPECIFIC_CHARACTER_SET
        and tag not in PIXEL_KEYWORDS
        and tag not in _LUT_DESCRIPTOR_TAGS
        and not (raw.value is None and raw.length != 0)  # not a deferred read
    ):
        converted = _convert(raw, vr, ds)
        if converted.VR in _PLAIN_VRS:
            ds._dict[raw.tag] = converted
            return converted
    return ds[tag]


def value(ds: Dataset, tag: int) -> Any:
    """The value of element *tag* in *ds* (None when absent), as ``ds[tag].value``."""
    found = element(ds, tag)
    return None if found is None else found.value


def _vm(value: Any) -> int:
    """``DataElement.VM`` for the value types conversion yields; -1 for any other type."""
    if value is None:
        return 0
    if isinstance(value, str | bytes | PersonName):
        return 1 if value else 0
    if isinstance(value, MutableSequence | tuple):
        return len(value)
    if isinstance(value, int | float):
        return 1
    return -1


def _element_json(elem: DataElement, handler: Callable[[DataElement], str] | None, threshold: int) -> dict[str, Any]:
    """``elem.to_json_dict(handler, threshold)``."""
    vr = elem.VR
    vm = _vm(elem.value) if vr in _JSON_OWN else -1
    if vm < 0:
        return elem.to_json_dict(bulk_data_element_handler=handler, bulk_data_threshold=threshold)
    out: dict[str, Any] = {"vr": vr}
    if vm == 0:
        return out
    values = elem.value if vm > 1 else [elem.value]
    if vr == "PN":
        names = []
        for v in values:
            comps = {"Alphabetic": v.components[0]}
            if len(v.components) > 1:
                comps["Ideographic"] = v.components[1]
            if len(v.components) > 2:
                comps["Phonetic"] = v.components[2]
            names.append(comps)
        out["Value"] = names
    elif vr in _JSON_INT:
        out["Value"] = [int(v) if v is not None else empty_value_for_VR(vr) for v in values]
    elif vr in _JSON_FLOAT:
        out["Value"] = [float(v) if v is not None else empty_value_for_VR(vr) for v in values]
    else:
        out["Value"] = [v for v in values]  # noqa: C416 - a list of the items, whatever the container
    return out


def json_dict(
    ds: Dataset, *, bulk_data_threshold: int, bulk_data_element_handler: Callable[[DataElement], str] | None
) -> dict[str, Any]:
    """``ds.to_json_dict(bulk_data_threshold, bulk_data_element_handler, suppress_invalid_tags=True)``."""
    out: dict[str, Any] = {}
    with config.strict_reading():
        for key in ds.keys():  # noqa: SIM118 - iterating the Dataset would convert every element
            json_key = f"{key:08X}"
            try:
                converted = cast(DataElement, element(ds, key))  # present: *key* is one of its keys
                out[json_key] = _element_json(converted, bulk_data_element_handler, bulk_data_threshold)
            except Exception as exc:  # noqa: BLE001 - like pydicom: an element that cannot be serialised is left out
                log.warning("Error while processing tag %s: %s", json_key, exc)
    return out
