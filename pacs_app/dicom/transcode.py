"""Transfer syntax negotiation and conversion for retrieving stored instances.

A DICOMweb client names the transfer syntaxes it accepts (PS3.18 §8.7.3.5); where it names
none, it gets Explicit VR Little Endian, as the standard has required since 2016c. A stored
instance goes out as it is stored where its syntax is accepted (or the client accepts any,
``transfer-syntax=*``); otherwise it is converted to uncompressed little endian: compressed
pixel data is decoded (pydicom's decoders, as the viewer uses), a deflated or implicit VR
dataset re-encoded. What cannot be converted (big endian, retired since 2004; pixel data no
decoder reads) says so with :class:`CannotConvert`; the caller decides what to send instead.

Nothing here changes the stored file: conversions are made in memory for one answer.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.uid import UID

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
ANY = "*"
# What this server converts to: uncompressed little endian, the form every client reads.
TARGETS = (EXPLICIT_LE, IMPLICIT_LE)
# Syntaxes whose pixel data lost information when compressed; decoded, the pixel data must
# still say so (PS3.3 C.7.6.1.1.5, Lossy Image Compression).
LOSSY = {
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
}

# The media types a compressed frame goes out as (PS3.18 Table 8.7.3-5), each with the
# transfer syntaxes it carries, its default first; the x- names are older clients' (the
# cornerstone loaders').
FRAME_MEDIA = {
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/x-jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": (
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    ),
    "image/jxl": ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "image/x-dicom-rle": ("1.2.840.10008.1.2.5",),
}


def frame_media(syntax: str) -> str | None:
    """The standard media type of a frame compressed in ``syntax``; None for another."""
    return next(
        (m for m, uids in FRAME_MEDIA.items() if syntax in uids and not m.startswith("image/x-")),
        None,
    )


class CannotConvert(Exception):
    """The instance cannot be converted to any accepted transfer syntax; ``reason`` says why
    (safe to show: it names syntaxes, never values of the file)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def syntax_name(uid: str) -> str:
    if not uid:
        return "no transfer syntax (a file without its meta information)"
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def target(stored: str, accepted: Iterable[str]) -> str | None:
    """The transfer syntax to send an instance stored in ``stored`` in: None to send it as
    stored, else the (uncompressed) syntax to convert it to.

    Raises :class:`CannotConvert` when no accepted syntax is one this server converts to.
    """
    accepted = list(accepted)
    if ANY in accepted or (stored and stored in accepted):
        return None
    # (a file stored without meta information, "", gets it when converted)
    wanted = [s for s in accepted if s in TARGETS]
    if not wanted:
        raise CannotConvert(
            f"the instance is stored as {syntax_name(stored)} and this server converts only "
            f"to Explicit VR Little Endian ({EXPLICIT_LE}) or Implicit VR Little Endian "
            f"({IMPLICIT_LE}); none of the accepted transfer syntaxes "
            f"({', '.join(accepted)}) is one of them"
        )
    if stored == EXPLICIT_BE:
        raise CannotConvert(
            f"the instance is stored as {syntax_name(stored)}, which this server does not "
            "convert; ask with transfer-syntax=* to get it as stored"
        )
    return wanted[0]


def convert(source: str | Path | BinaryIO, to: str) -> bytes:
    """The instance stored at ``source`` (a path or an open file) as a PS3.10 file in ``to``
    (one of :data:`TARGETS`).

    Raises :class:`CannotConvert` when its pixel data cannot be decoded or it cannot be
    written in ``to``.
    """
    if to not in TARGETS:
        raise ValueError(f"cannot convert to {to}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on odd values it reads as they are
        try:
            ds = pydicom.dcmread(source, force=True)
        except Exception as exc:  # pydicom raises many types on odd files
            raise CannotConvert(
                f"the stored file could not be read ({type(exc).__name__})"
            ) from exc
        meta = ds.file_meta
        stored = str(meta.get("TransferSyntaxUID", ""))
        if stored == EXPLICIT_BE or (not stored and not ds.is_little_endian):
            raise CannotConvert(f"the instance is stored as {syntax_name(EXPLICIT_BE)}")
        if stored and UID(stored).is_compressed and "PixelData" in ds:
            try:
                # Decoded to RGB where the codestream is YCbCr, as the viewer shows it.
                ds.decompress(generate_instance_uid=False)
            except Exception as exc:  # each decoder plugin raises its own
                raise CannotConvert(
                    f"its pixel data ({syntax_name(stored)}) could not be decoded: "
                    f"{type(exc).__name__}"
                ) from exc
            if stored in LOSSY and not ds.get("LossyImageCompression"):
                ds.LossyImageCompression = "01"
        meta.TransferSyntaxUID = to
        if not meta.get("MediaStorageSOPClassUID") and ds.get("SOPClassUID"):
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
        if not meta.get("MediaStorageSOPInstanceUID") and ds.get("SOPInstanceUID"):
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = io.BytesIO()
        try:
            ds.save_as(
                out, enforce_file_format=True, implicit_vr=to == IMPLICIT_LE, little_endian=True
            )
        except Exception as exc:  # a value pydicom cannot write as it read it
            raise CannotConvert(
                f"it could not be written as {syntax_name(to)}: {type(exc).__name__}"
            ) from exc
    return out.getvalue()
