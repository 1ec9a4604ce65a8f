"""A direct parser of well-formed DICOM headers, straight from the file's bytes to DICOM JSON.

Ingest reads the header of every instance it stores, and ``pydicom.dcmread`` alone costs more
than the whole budget (0.5 ms per instance). Most files a PACS receives are plain: a preamble
and file meta group, then a little-endian dataset (explicit or implicit VR) in one simple
character set. For those this module walks the elements with :mod:`struct`, down into
sequences, stops at the pixel data, and encodes each value with the same encoder
:mod:`pacs_app.dicom.dicomjson` uses, so the JSON is the same as from the pydicom path.

Anything out of the ordinary (no preamble, big endian, deflate, an unknown or missing VR,
private tags whose VR only a private dictionary knows, an element running past the end of the
file, a character set other than ASCII, Latin-1 or UTF-8, ...) raises :class:`Unsupported`, and
the caller reads the file with pydicom instead, which also writes the error messages for
broken files. ``tests/dicom/test_rawheader.py`` checks both give the same JSON on every test
file, and that the common files take this path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.valuerep import VR

from pacs_app.dicom.dicomjson import SIMPLE_CHARSETS, _encode, _Fallback

FIRST_READ = 64 * 1024
UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
CHARSET_TAG = 0x00080005
PIXEL_REPRESENTATION = 0x00280103
IMPLICIT_LE = "1.2.840.10008.1.2"
# Transfer syntaxes whose dataset is not explicit VR little endian as written.
NOT_EXPLICIT_LE = {
    "1.2.840.10008.1.2.2",  # explicit VR big endian (retired)
    "1.2.840.10008.1.2.1.99",  # deflated: the dataset is zlib-compressed
}
VR_NAMES = {vr.value.encode("ascii"): vr.value for vr in VR if " " not in vr.value}
KNOWN_VRS = frozenset(VR_NAMES)
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
)

_TAG_VR16 = struct.Struct("<HH2sH")
_U32 = struct.Struct("<I")
_TAG_LEN = struct.Struct("<HHI")


class Unsupported(Exception):
    """This file is not one the direct parser handles; read it with pydicom."""


@dataclass(frozen=True)
class RawHeader:
    transfer_syntax_uid: str
    dicom_json: dict[str, Any]
    # Where the top-level pixel data element starts (its tag), or None when the file has none.
    pixel_data_at: int | None
    implicit: bool


class _Buffer:
    """The file's leading bytes, read further on demand (headers are rarely over 64 KiB)."""

    __slots__ = ("data", "fp", "size")

    def __init__(self, fp: BinaryIO, size: int):
        self.fp, self.size = fp, size
        self.data = fp.read(FIRST_READ)

    def need(self, end: int) -> bytes:
        if end > len(self.data):
            if end > self.size:
                raise Unsupported("an element runs past the end of the file")
            more = max(end - len(self.data), len(self.data))
            self.fp.seek(len(self.data))
            self.data += self.fp.read(more)
            if end > len(self.data):
                raise Unsupported("the file is shorter than it said")
        return self.data


# A parsed dataset: tag -> (VR, raw value or, for a sequence, its items).
_Elements = dict[int, tuple[str, Any]]


class _Parser:
    def __init__(self, buf: _Buffer, implicit: bool):
        self.buf = buf
        self.implicit = implicit
        self.pixel_data_at: int | None = None

    def dataset(self, pos: int, end: int | None, top: bool) -> tuple[_Elements, int]:
        """Elements from ``pos`` to ``end`` (``None``: to an item delimiter, or for the top
        level, to the pixel data or the end of the file). Returns them and the next position."""
        buf, implicit = self.buf, self.implicit
        data = buf.data
        available = len(data)
        out: _Elements = {}
        limit = buf.size if end is None else end
        while pos < limit:
            if pos + 12 > available:
                data = buf.need(min(pos + 12, buf.size) if pos + 8 <= buf.size else pos + 8)
                available = len(data)
            if implicit:
                group, element, length = _TAG_LEN.unpack_from(data, pos)
                vr = None
                header = 8
            else:
                group, element, vr, length = _TAG_VR16.unpack_from(data, pos)
                header = 8
                if vr in LONG_VRS:
                    if pos + 12 > available:
                        raise Unsupported("an element header runs past the end of the file")
                    length = _U32.unpack_from(data, pos + 8)[0]
                    header = 12
                elif vr not in KNOWN_VRS:
                    # pydicom treats an odd VR as a switch to implicit VR; leave it to pydicom
                    if group == 0xFFFE:
                        group, element, length = _TAG_LEN.unpack_from(data, pos)
                    else:
                        raise Unsupported(f"unknown VR {vr!r}")
            tag = group << 16 | element
            if group == 0xFFFE:
                if tag == ITEM_END and end is None and not top:
                    return out, pos + 8
                raise Unsupported("a delimiter where an element was expected")
            if top and tag in PIXEL_TAGS:
                self.pixel_data_at = pos
                return out, pos
            pos += header
            if vr is None:
                vr = _implicit_vr(tag)
            elif vr == b"UN":
                raise Unsupported("a UN element (pydicom may know its VR)")
            else:
                vr = VR_NAMES[vr]
            is_sequence = vr == "SQ"
            if length == UNDEFINED:
                if not is_sequence:
                    raise Unsupported("an undefined-length element that is not a sequence")
                items, pos = self.sequence(pos, None)
                data = buf.data
                available = len(data)
                out[tag] = ("SQ", items)
                continue
            value_end = pos + length
            if end is not None and value_end > end:
                raise Unsupported("an element runs past the end of its item")
            if value_end > available:
                data = buf.need(value_end)
                available = len(data)
            if is_sequence:
                items, _ = self.sequence(pos, value_end)
                data = buf.data
                available = len(data)
                out[tag] = ("SQ", items)
            else:
                out[tag] = (vr, data[pos:value_end])
            pos = value_end
        if end is None and not top:
            raise Unsupported("an undefined-length item without its delimiter")
        if pos != limit:
            raise Unsupported("the last element overruns its item")
        return out, pos

    def sequence(self, pos: int, end: int | None) -> tuple[list[_Elements], int]:
        buf = self.buf
        items: list[_Elements] = []
        while end is None or pos < end:
            data = buf.need(pos + 8)
            group, element, length = _TAG_LEN.unpack_from(data, pos)
            tag = group << 16 | element
            pos += 8
            if tag == SEQUENCE_END:
                if end is not None:
                    raise Unsupported("a sequence delimiter inside a defined-length sequence")
                return items, pos
            if tag != ITEM:
                raise Unsupported("a sequence holds something other than items")
            if length == UNDEFINED:
                item, pos = self.dataset(pos, None, top=False)
            else:
                buf.need(pos + length)
                item, pos = self.dataset(pos, pos + length, top=False)
            items.append(item)
        if pos != end:
            raise Unsupported("the last item overruns its sequence")
        return items, pos


def _implicit_vr(tag: int) -> str:
    if tag & 0xFFFF == 0:
        return "UL"  # group length
    if tag >> 16 & 1:
        raise Unsupported("a private element in implicit VR (its VR is in a private dictionary)")
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _charset(elements: _Elements, inherited: str) -> str:
    raw = elements.get(CHARSET_TAG)
    if raw is None:
        return inherited
    terms = [t.strip() for t in raw[1].decode("latin-1").strip(" \x00").split("\\")]
    if len(terms) == 1 and terms[0] in SIMPLE_CHARSETS:
        return SIMPLE_CHARSETS[terms[0]]
    raise Unsupported("a character set other than ASCII, Latin-1 or UTF-8")


_KEYS: dict[int, str] = {}


def _key(tag: int) -> str:
    """The DICOM JSON key of a tag, remembered (the same few hundred tags recur)."""
    key = f"{tag:08X}"
    if len(_KEYS) < 100_000:
        _KEYS[tag] = key
    return key


# The JSON of recently seen values: the instances of a series repeat most of their header
# (patient, study, equipment, geometry but the position), so a value's JSON is usually the
# previous instance's. Keyed by what the encoding depends on; short values only (a bulk value
# would keep its bytes alive). The cached dicts are shared between headers: read-only.
_VALUES: dict[tuple[str, bytes, str], dict[str, Any]] = {}
_VALUES_MAX = 4096
_VALUE_MAX_BYTES = 256


def _encoded(vr: str, value: bytes, encoding: str) -> dict[str, Any]:
    if len(value) > _VALUE_MAX_BYTES:
        return _encode(vr, value, True, encoding)
    key = (vr, value, encoding)
    found = _VALUES.get(key)
    if found is None:
        found = _encode(vr, value, True, encoding)  # raises before it is kept
        if len(_VALUES) >= _VALUES_MAX:
            _VALUES.clear()  # new series: their values replace the old ones'
        _VALUES[key] = found
    return found


def _to_json(elements: _Elements, inherited: str) -> dict[str, Any]:
    encoding = _charset(elements, inherited)
    pixel_rep = 0
    raw = elements.get(PIXEL_REPRESENTATION)
    if raw is not None and not isinstance(raw[1], list) and len(raw[1]) >= 2:
        pixel_rep = raw[1][0] | raw[1][1] << 8
    out: dict[str, Any] = {}
    for tag in sorted(elements):  # in file order, which is tag order but for odd writers
        vr, value = elements[tag]
        key = _KEYS.get(tag) or _key(tag)
        if vr == "SQ":
            out[key] = {"vr": "SQ", "Value": [_to_json(item, encoding) for item in value]}
            continue
        if len(vr) != 2:  # a dictionary VR with alternatives, from implicit VR
            if vr != "US or SS":
                raise Unsupported(f"an element whose VR is {vr!r}")
            vr = "SS" if pixel_rep == 1 else "US"
        try:
            out[key] = _encoded(vr, value, encoding)
        except (_Fallback, ValueError) as exc:
            raise Unsupported(f"element {key}: {exc or 'left to pydicom'}") from exc
    return out


def _file_meta(buf: _Buffer) -> tuple[str, int]:
    """The transfer syntax and where the dataset starts, from the file meta group."""
    pos, syntax = 132, None
    while True:
        data = buf.need(pos + 8)
        group, element, vr, length = _TAG_VR16.unpack_from(data, pos)
        if group != 0x0002:
            break
        if vr in LONG_VRS:
            length = _U32.unpack_from(buf.need(pos + 12), pos + 8)[0]
            pos += 12
        elif vr in KNOWN_VRS:
            pos += 8
        else:
            raise Unsupported("the file meta group is not explicit VR")
        if length == UNDEFINED:
            raise Unsupported("an undefined length in the file meta group")
        if element == 0x0010:
            syntax = buf.need(pos + length)[pos : pos + length].decode("ascii").strip("\x00 ")
        pos += length
    if not syntax:
        raise Unsupported("no transfer syntax in the file meta group")
    return syntax, pos


def dataset_start(fp: BinaryIO, size: int) -> tuple[str, int]:
    """The transfer syntax of the DICOM file ``fp`` (``size`` bytes long), read from the file
    meta group, and the offset at which its data set starts.

    Raises :class:`Unsupported` for a file without a preamble or with a file meta group this
    parser does not read.
    """
    buf = _Buffer(fp, size)
    if buf.data[128:132] != b"DICM":
        raise Unsupported("no preamble")
    try:
        return _file_meta(buf)
    except (ValueError, struct.error) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc


def parse(fp: BinaryIO, size: int) -> RawHeader:
    """The header of the DICOM file ``fp`` (``size`` bytes long), as DICOM JSON.

    Raises :class:`Unsupported` for any file it does not handle exactly as pydicom would.
    """
    try:
        return _parse(fp, size)
    except (ValueError, struct.error, RecursionError) as exc:  # odd bytes, absurd nesting
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc


def _parse(fp: BinaryIO, size: int) -> RawHeader:
    buf = _Buffer(fp, size)
    if buf.data[128:132] != b"DICM":
        raise Unsupported("no preamble")
    syntax, pos = _file_meta(buf)
    if syntax in NOT_EXPLICIT_LE:
        raise Unsupported(f"transfer syntax {syntax}")
    implicit = syntax == IMPLICIT_LE
    if pos + 6 <= size:
        # pydicom reads the dataset as explicit or implicit VR by what its first element looks
        # like, whatever the transfer syntax says
        looks_explicit = buf.need(pos + 6)[pos + 4 : pos + 6] in KNOWN_VRS
        if looks_explicit == implicit:
            raise Unsupported("the dataset does not match its transfer syntax")
    parser = _Parser(buf, implicit)
    elements, _ = parser.dataset(pos, None, top=True)
    return RawHeader(
        transfer_syntax_uid=syntax,
        dicom_json=_to_json(elements, "latin-1"),
        pixel_data_at=parser.pixel_data_at,
        implicit=implicit,
    )
