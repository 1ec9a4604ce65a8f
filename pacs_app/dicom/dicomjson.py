"""A fast DICOM JSON (PS3.18 F.2) encoder for headers read with ``stop_before_pixels``.

pydicom's ``Dataset.to_json_dict`` converts every raw element into a ``DataElement`` first,
which costs several milliseconds for a typical CT header; ingest needs the JSON of every
instance, so this encoder works on the raw bytes directly and hands only what it does not
cover (sequences, text in character sets other than ASCII/Latin-1/UTF-8, ambiguous cases) to
pydicom. ``tests/dicom/test_dicomjson.py`` checks that both give the same JSON.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement

BULK_THRESHOLD = 1024
TEXT_MULTI = {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "SH", "LO", "UC"}
TEXT_SINGLE = {"ST", "LT", "UT", "UR"}
BINARY_NUMBERS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
_BINARY_SIZES = {vr: struct.calcsize(code) for vr, code in BINARY_NUMBERS.items()}
_ONE_LITTLE = {vr: struct.Struct("<" + code) for vr, code in BINARY_NUMBERS.items()}
BULK = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
SIMPLE_CHARSETS = {
    "": "latin-1",
    "ISO_IR 6": "latin-1",
    "ISO_IR 100": "latin-1",
    "ISO_IR 192": "utf-8",
}
# VRs whose text the Specific Character Set applies to.
CHARSET_VRS = {"SH", "LO", "UC", "ST", "LT", "UT", "PN"}


# How each VR's value is encoded (text kinds first, so that "kind <= _NUMBER_STRING" is text).
_MULTI, _SINGLE, _PERSON, _NUMBER_STRING, _BINARY, _ATTRIBUTE, _BULK = range(7)
_KIND = {
    **dict.fromkeys(TEXT_MULTI, _MULTI),
    **dict.fromkeys(TEXT_SINGLE, _SINGLE),
    "PN": _PERSON,
    "IS": _NUMBER_STRING,
    "DS": _NUMBER_STRING,
    **dict.fromkeys(BINARY_NUMBERS, _BINARY),
    "AT": _ATTRIBUTE,
    **dict.fromkeys(BULK, _BULK),
}


class _Fallback(Exception):
    """This element is left to pydicom."""


_TOP_LEVEL = "top level"  # no enclosing dataset: the default repertoire applies


def _charset(ds: pydicom.Dataset, inherited: str | None) -> str | None:
    """The codec for ``ds``'s text, or ``None`` when pydicom must decode it. A sequence item
    without its own Specific Character Set uses its parent's (``inherited``, which is ``None``
    when that was one only pydicom decodes)."""
    raw = ds.get_item(0x00080005) if 0x00080005 in ds else None
    if raw is None:
        return "latin-1" if inherited == _TOP_LEVEL else inherited
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, list | pydicom.multival.MultiValue):
        value = "\\".join(value)
    terms = [t.strip() for t in str(value or "").strip(" \x00").split("\\")]
    if len(terms) == 1 and terms[0] in SIMPLE_CHARSETS:
        return SIMPLE_CHARSETS[terms[0]]
    return None  # other character sets: pydicom decodes them


def _number(text: str, vr: str) -> int | float:
    if vr == "IS":
        try:
            value = float(text)  # IS may be written as "1.0"; anything else raises
        except ValueError:
            raise ValueError(f"{text!r} is not an integer string (IS)") from None
        if not value.is_integer():
            raise ValueError(f"invalid IS value {text!r}")
        return int(value)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a decimal string (DS)") from None


def _encode(vr: str, value: bytes, little: bool, encoding: str | None) -> dict[str, Any]:
    """The JSON of one value (``vr`` already resolved): a function of its arguments alone,
    which :mod:`pacs_app.dicom.rawheader` relies on to reuse results."""
    kind = _KIND.get(vr)
    if kind is None:
        raise _Fallback
    if kind <= _NUMBER_STRING:  # text: multi-valued, single-valued, person name, numbers
        if vr in CHARSET_VRS:
            if encoding is None:
                raise _Fallback
            text = value.decode(encoding)
        else:
            text = value.decode("latin-1")
        text = text.rstrip(" \x00")
        if not text:
            return {"vr": vr}
        if kind == _SINGLE:
            return {"vr": vr, "Value": [text]}
        if kind == _MULTI and "\\" not in text:  # the common case: one value
            return {"vr": vr, "Value": [text if vr == "UI" else text.lstrip(" ")]}
        parts = text.split("\\")
        if kind == _MULTI:
            return {"vr": vr, "Value": parts if vr == "UI" else [p.strip(" ") for p in parts]}
        if kind == _PERSON:
            if "=" in text:
                raise _Fallback
            return {
                "vr": vr,
                "Value": [{"Alphabetic": p.strip()} if p.strip() else None for p in parts],
            }
        return {"vr": vr, "Value": [_number(p.strip(), vr) if p.strip() else None for p in parts]}
    if kind == _BINARY:
        size = _BINARY_SIZES[vr]
        if len(value) == size and little:  # the common case: one value
            return {"vr": vr, "Value": list(_ONE_LITTLE[vr].unpack(value))}
        code = BINARY_NUMBERS[vr]
        count = len(value) // size
        if not count:
            return {"vr": vr}
        fmt = ("<" if little else ">") + code * count
        return {"vr": vr, "Value": list(struct.unpack(fmt, value[: count * size]))}
    if kind == _ATTRIBUTE:
        count = len(value) // 4
        fmt = ("<" if little else ">") + "HH" * count
        nums = struct.unpack(fmt, value[: count * 4])
        return (
            {"vr": vr, "Value": [f"{nums[i]:04X}{nums[i + 1]:04X}" for i in range(0, len(nums), 2)]}
            if count
            else {"vr": vr}
        )
    if not value:  # bulk
        return {"vr": vr}
    if len(value) > BULK_THRESHOLD:
        return {"vr": vr, "BulkDataURI": ""}
    return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}


def _resolve_vr(elem: RawDataElement, pixel_rep: int) -> str:
    vr = elem.VR
    tag = elem.tag
    if vr is None or vr == "UN":
        if tag.element == 0:
            return "UL"  # group length
        if tag.is_private:
            raise _Fallback  # pydicom knows private VRs from the private creator
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
    if vr == "US or SS":
        return "SS" if pixel_rep == 1 else "US"
    if " or " in vr:
        raise _Fallback
    return vr


def dataset_to_json(ds: pydicom.Dataset, *, _encoding: str | None = _TOP_LEVEL) -> dict[str, Any]:
    """The DICOM JSON model of ``ds``: bulk values over 1 KiB are left out (``BulkDataURI``
    empty), smaller binary values are inlined as base64."""
    encoding = _charset(ds, _encoding)
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    pixel_rep = 0
    if 0x00280103 in ds:
        raw = ds.get_item(0x00280103)
        if isinstance(raw, RawDataElement) and raw.value and len(raw.value) >= 2:
            pixel_rep = struct.unpack("<H" if little else ">H", raw.value[:2])[0]
    out: dict[str, Any] = {}
    for elem in raw_elements(ds):
        key = f"{int(elem.tag):08X}"
        try:
            if not isinstance(elem, RawDataElement) or elem.value is None:
                raise _Fallback
            vr = _resolve_vr(elem, pixel_rep)
            if vr == "SQ":
                raise _Fallback
            out[key] = _encode(vr, elem.value, little, encoding)
        except ValueError as exc:
            raise ValueError(f"element {elem.tag} has an invalid value: {exc}") from exc
        except _Fallback:
            out[key] = _pydicom_element(ds, elem.tag, encoding)
    return out


def raw_elements(ds: pydicom.Dataset):
    """The dataset's elements as read, unconverted, in tag order (no per-element lookups)."""
    store = getattr(ds, "_dict", None)  # pydicom 3 keeps raw elements here
    if not isinstance(store, dict):
        return ds.elements()
    values = list(store.values())
    if any(values[i].tag > values[i + 1].tag for i in range(len(values) - 1)):
        values.sort(key=lambda e: e.tag)
    return values


def _pydicom_element(ds: pydicom.Dataset, tag, encoding: str | None) -> dict[str, Any]:
    element = ds[tag]  # pydicom converts the raw element here
    if element.VR == "SQ":
        return {
            "vr": "SQ",
            "Value": [dataset_to_json(item, _encoding=encoding) for item in element.value],
        }
    return element.to_json_dict(
        bulk_data_element_handler=lambda _e: "", bulk_data_threshold=BULK_THRESHOLD
    )


def first_text(dicom_json: dict[str, Any], tag: str, limit: int | None = None) -> str:
    """The first value of ``tag`` (``GGGGEEEE``) in DICOM JSON as text, a person name's
    Alphabetic group, at most ``limit`` characters (``''`` when absent)."""
    values = dicom_json.get(tag, {}).get("Value") or []
    if not values or values[0] is None:
        return ""
    value = values[0]
    if isinstance(value, dict):  # a person name
        value = value.get("Alphabetic", "")
    return str(value).strip().replace("\x00", "")[:limit]


def attributes(**values: Any) -> dict[str, Any]:
    """A dataset in DICOM JSON from keywords and plain values, sorted by tag: a PN value as
    its Alphabetic group, a list as several values (of an SQ, its items' DICOM JSON), an
    empty value (None, "" or []) as an attribute without ``Value``.

    Example::

        attributes(PatientID="PID-1", ModalitiesInStudy=["CT", "SR"])
        # {"00100020": {"vr": "LO", "Value": ["PID-1"]}, "00080061": {...}} (in tag order)
    """
    return dict(sorted(_keyword_element(k, v) for k, v in values.items()))


def _keyword_element(keyword: str, value: Any) -> tuple[str, dict[str, Any]]:
    tag = f"{tag_for_keyword(keyword):08X}"
    vr = dictionary_VR(keyword)
    if value in (None, "", []):
        return tag, {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [{"Alphabetic": v} for v in values]
    return tag, {"vr": vr, "Value": values}
