"""Whether a re-sent DICOM file is the instance stored under its SOP Instance UID.

A PACS that receives an instance it holds already keeps the one it holds: what a radiologist
may have read and reported on must not change under them. A plain re-send is the same bytes.
Two files of one instance may also differ only in their file meta information (group 0002:
the sending application, the source AE title), which a PACS forwarding it rewrites; that is
still the same instance. So is the same instance re-encoded without loss by a router or
another PACS (implicit to explicit VR, big to little endian, compressed with RLE, JPEG-LS,
JPEG 2000 or JPEG lossless, or decompressed, its trailing padding dropped): every attribute
holds the same value and the decoded pixels are the same, sample for sample (in their Bits
Stored: the bits above, which the standard has readers ignore, are not compared once
decoded). Anything else (a lossy re-encoding, other pixels, a corrected patient name,
another object wrongly given the same UID) is different data, and the sender must be told
that what it sent was not stored, and what differs (by attribute name, never its value: the
message reaches logs and the audit).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from pacs_app.dicom.rawheader import Unsupported, dataset_start
from pacs_app.dicom.transcode import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE

CHUNK = 1024 * 1024
PIXEL_DATA = 0x7FE00010
PLANAR_CONFIGURATION = 0x00280006  # compared with the pixels: the order of their samples
TRAILING_PADDING = 0xFFFCFFFC
# how the pixels were re-encoded, which a lossless codec notes (DCMTK's JPEG lossless does)
DERIVATION_DESCRIPTION = 0x00082111
# JPEG 2000's reversible colour transform (YBR_RCT) decodes to the RGB samples encoded: a
# lossless JPEG 2000 or HTJ2K colour image decompressed says RGB
PHOTOMETRIC_INTERPRETATION = 0x00280004
JPEG_2000 = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
# transfer syntaxes that give back the very samples encoded
LOSSLESS = {
    IMPLICIT_LE,
    EXPLICIT_LE,
    DEFLATED_LE,
    EXPLICIT_BE,
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.57",  # JPEG lossless, non-hierarchical (process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 (lossless only)
    "1.2.840.10008.1.2.4.201",  # HTJ2K (lossless only)
    "1.2.840.10008.1.2.4.202",  # HTJ2K with RPCL options (lossless only)
}
# files parsed and compared by value only up to this size (both are read whole), and
# decoded pixels only up to this size per file: larger, told apart by their bytes alone
MAX_PARSED = 256 * 1024 * 1024
MAX_DECODED = 512 * 1024 * 1024
UNCOMPARED = "its pixel data or other attributes differ from the stored one's"


def difference(stored: BinaryIO, sent: BinaryIO) -> str | None:
    """``None`` when the sent file holds the stored instance's data (their file meta
    information aside, and a lossless re-encoding being the same data); otherwise what
    differs, in words, to tell the sender.

    Both files are read from their start. The data sets are first compared byte for byte;
    only when they differ are the two files parsed, attribute by attribute, and their pixels
    decoded where they are encoded otherwise. A file whose file meta information the direct
    parser does not read (no preamble, say) is compared whole first.

    Example::

        with open(stored_path, "rb") as a, open(sent_path, "rb") as b:
            difference(a, b)  # None, or e.g. "its PatientName (0010,0010) differs ..."
    """
    stored_syntax, stored_at, stored_size = _dataset_of(stored)
    sent_syntax, sent_at, sent_size = _dataset_of(sent)
    recoded = bool(stored_syntax and sent_syntax and stored_syntax != sent_syntax)
    if not recoded and _same_bytes(stored, stored_at, stored_size, sent, sent_at, sent_size):
        return None
    if recoded and not (stored_syntax in LOSSLESS and sent_syntax in LOSSLESS):
        return _recoded(sent_syntax, stored_syntax)
    if max(stored_size, sent_size) > MAX_PARSED:
        differs: str | None = UNCOMPARED
    else:
        differs = _by_value(stored, sent, recoded)
    if differs and recoded:
        return f"{differs}; {_recoded(sent_syntax, stored_syntax)}"
    return differs


def _by_value(stored: BinaryIO, sent: BinaryIO, recoded: bool) -> str | None:
    """The two files parsed: their first attribute of another value, or their pixels if
    those differ."""
    try:
        stored.seek(0)
        sent.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decoder's notes on padding, say
            a = pydicom.dcmread(stored, force=True)
            b = pydicom.dcmread(sent, force=True)
            return _dataset_difference(a, b, "", recoded) or _pixel_difference(a, b, recoded)
    except Exception:  # not readable alike: not shown to be the same data
        return UNCOMPARED


def _recoded(sent_syntax: str, stored_syntax: str) -> str:
    return (
        f"it is encoded in another transfer syntax ({_syntax_name(sent_syntax)}) than the "
        f"stored one ({_syntax_name(stored_syntax)})"
    )


def _same_bytes(a: BinaryIO, a_at: int, a_size: int, b: BinaryIO, b_at: int, b_size: int) -> bool:
    if a_size - a_at != b_size - b_at:
        return False
    a.seek(a_at)
    b.seek(b_at)
    while True:
        x, y = a.read(CHUNK), b.read(CHUNK)
        if x != y:
            return False
        if not x:
            return True


def _dataset_difference(a: Dataset, b: Dataset, within: str, recoded: bool = False) -> str | None:
    """The first attribute whose value differs (by name), outside the pixel data, the file
    meta information and what only says how it is encoded; of two encodings (``recoded``),
    also outside what says how the one was made from the other."""
    skipped = {DERIVATION_DESCRIPTION} if recoded else set()
    # keys(): iterating a Dataset itself would read every element's value
    tags_a = {t for t in a.keys() if _compared(t) and t not in skipped}  # noqa: SIM118
    tags_b = {t for t in b.keys() if _compared(t) and t not in skipped}  # noqa: SIM118
    for tag in sorted(tags_a ^ tags_b):
        if tag in tags_b:
            return f"it has {_named(tag, within)}, which the stored one has not"
        return f"it lacks {_named(tag, within)}, which the stored one has"
    for tag in sorted(tags_a):
        if recoded and tag == PHOTOMETRIC_INTERPRETATION and _photometric(a) == _photometric(b):
            continue  # the decoded pixels are compared below
        if not _same_element(a, b, tag):
            ea, eb = a[tag], b[tag]
            if ea.VR == "SQ" and eb.VR == "SQ" and len(ea.value) == len(eb.value):
                for n, (x, y) in enumerate(zip(ea.value, eb.value, strict=True)):
                    inner = _dataset_difference(x, y, f"{_named(tag, within)} item {n + 1}: ")
                    if inner:
                        return inner
                continue
            return f"its {_named(tag, within)} differs from the stored one's"
    return None


def _photometric(ds: Dataset) -> str:
    value = str(ds.get("PhotometricInterpretation", "")).strip()
    in_jpeg_2000 = str(ds.file_meta.get("TransferSyntaxUID", "")) in JPEG_2000
    return "RGB" if value == "YBR_RCT" and in_jpeg_2000 else value


def _compared(tag: BaseTag) -> bool:
    return tag.group != 0x0002 and tag not in (PIXEL_DATA, PLANAR_CONFIGURATION, TRAILING_PADDING)


def _same_element(a: Dataset, b: Dataset, tag: BaseTag) -> bool:
    """The same value: the same bytes as read (one VR known to one reader and not the
    other, say) or, once read, equal values (another byte order)."""
    raw_a, raw_b = a.get_item(tag), b.get_item(tag)
    if (
        isinstance(raw_a, RawDataElement)
        and isinstance(raw_b, RawDataElement)
        and raw_a.is_little_endian
        and raw_b.is_little_endian
        and raw_a.value == raw_b.value
    ):
        return True
    ea, eb = a[tag], b[tag]
    if ea.VR == "SQ" or eb.VR == "SQ":
        return False  # compared item by item
    return _equal(ea.value, eb.value)


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(x == y)
    except ValueError:  # arrays
        return bool(np.array_equal(x, y))


def _pixel_difference(a: Dataset, b: Dataset, recoded: bool) -> str | None:
    """What differs in the two data sets' pixels, ``recoded`` (both losslessly) or not:
    the same bytes in the same sample order are the same; other bytes of one lossy syntax
    are other pixels; otherwise the two decode to the same samples or not."""
    pixels = "its pixel data differ from the stored one's"
    if PIXEL_DATA not in a or PIXEL_DATA not in b:
        return pixels if PIXEL_DATA in a or PIXEL_DATA in b else None
    order_a, order_b = a.get(PLANAR_CONFIGURATION), b.get(PLANAR_CONFIGURATION)
    if order_a == order_b and a.get_item(PIXEL_DATA).value == b.get_item(PIXEL_DATA).value:
        return None
    syntax = str(a.file_meta.get("TransferSyntaxUID", ""))
    if not recoded and syntax not in LOSSLESS:
        return pixels  # one lossy (or unknown) encoding, other bytes: other pixels
    if max(_decoded_size(a), _decoded_size(b)) > MAX_DECODED:
        return f"{pixels} (too large to compare decoded)"
    decoded_a, decoded_b = a.pixel_array, b.pixel_array
    if decoded_a.shape != decoded_b.shape or not np.array_equal(decoded_a, decoded_b):
        return pixels
    return None


def _decoded_size(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 16)
    return frames * int(ds.Rows) * int(ds.Columns) * samples * max(1, bits // 8)


def _named(tag: BaseTag, within: str) -> str:
    keyword = keyword_for_tag(tag)
    where = f"({tag.group:04X},{tag.element:04X})"
    return f"{within}{keyword} {where}" if keyword else f"{within}{where}"


def _dataset_of(fp: BinaryIO) -> tuple[str, int, int]:
    """The file's transfer syntax ('' when unread), where its data set starts, and its size."""
    size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    try:
        syntax, start = dataset_start(fp, size)
    except Unsupported:
        syntax, start = "", 0
    return syntax, start, size


def _syntax_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid
