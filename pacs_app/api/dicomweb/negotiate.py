"""What a WADO-RS client accepts, from its Accept header (PS3.18 §8.7.3): for DICOM
instances, ``multipart/related; type="application/dicom"; transfer-syntax=UID`` ranges,
``transfer-syntax=*`` for any, Explicit VR Little Endian where a range names none; for frames,
``application/octet-stream`` or image media types, with the same transfer syntax parameter."""

from __future__ import annotations

from python_multipart.multipart import parse_options_header

from pacs_app.core.errors import NotAcceptable
from pacs_app.dicom.transcode import EXPLICIT_LE, FRAME_MEDIA

DICOM = "application/dicom"
# What a multipart range's type may be for it to take DICOM instances.
_DICOM_TYPES = {DICOM, "application/*", "*/*"}


def _ranges(accept: str) -> list[str]:
    """The media ranges of an Accept header: split at commas outside double quotes."""
    parts, current, quoted = [], [], False
    for ch in accept:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _range(text: str) -> tuple[str, dict[str, str]]:
    """A media range's type and parameters, lower case names (as multipart bodies are read)."""
    media, options = parse_options_header(text)
    return media.decode("latin-1"), {
        k.decode("latin-1"): v.decode("latin-1") for k, v in options.items()
    }


def _accepted(q: str | None) -> bool:
    try:
        return q is None or float(q) > 0
    except ValueError:
        return True


def accepted_syntaxes(accept: str | None) -> list[str]:
    """The transfer syntax UIDs (or ``*``) the client takes DICOM instances in, in the order
    it lists them.

    Raises :class:`NotAcceptable` when no range of ``accept`` takes DICOM instances.
    """
    if not accept or not accept.strip():
        return [EXPLICIT_LE]
    syntaxes: list[str] = []
    for text in _ranges(accept):
        media, params = _range(text)
        if not media or not _accepted(params.get("q")):
            continue
        if media in ("multipart/related", "multipart/*"):
            if params.get("type", DICOM).lower() not in _DICOM_TYPES:
                continue
        elif media not in (DICOM, "*/*"):
            continue
        syntax = params.get("transfer-syntax") or EXPLICIT_LE
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    if not syntaxes:
        raise NotAcceptable(
            f'This resource is DICOM instances (multipart/related; type="{DICOM}"), which the '
            f"Accept header ({accept[:200]}) does not take."
        )
    return syntaxes


def part_type(syntax: str) -> str:
    """The Content-Type of a part holding an instance in ``syntax`` ("" for a file sent as
    stored without meta information, whose syntax is not known)."""
    return f"{DICOM}; transfer-syntax={syntax}" if syntax else DICOM


OCTET_STREAM = "application/octet-stream"


def accepted_frame_types(accept: str | None) -> list[tuple[str, str]]:
    """What the client takes frames or bulk pixel data in (PS3.18 §8.7.3.3 and Table
    8.7.3-5), in the order it lists them: pairs of a part's media type
    (``application/octet-stream``, ``image/jpeg``..., ``image/*`` for any compressed one) and
    a transfer syntax UID (or ``*`` for any). ``application/octet-stream`` without a transfer
    syntax is uncompressed (Explicit VR Little Endian); an image type without one is that
    type's default syntax, ``image/*`` any.

    Raises :class:`NotAcceptable` when no range of ``accept`` takes frames.
    """
    if not accept or not accept.strip():
        return [(OCTET_STREAM, EXPLICIT_LE)]
    wanted: list[tuple[str, str]] = []
    for text in _ranges(accept):
        media, params = _range(text)
        if not media or not _accepted(params.get("q")):
            continue
        if media in ("multipart/related", "multipart/*"):
            media = params.get("type", OCTET_STREAM).lower()
        if media in ("*/*", "application/*"):
            media = OCTET_STREAM
        syntax = params.get("transfer-syntax")
        if media == OCTET_STREAM:
            choice = (media, syntax or EXPLICIT_LE)
        elif media == "image/*":
            choice = (media, syntax or "*")
        elif media in FRAME_MEDIA:
            choice = (media, syntax or FRAME_MEDIA[media][0])
        else:
            continue
        if choice not in wanted:
            wanted.append(choice)
    if not wanted:
        raise NotAcceptable(
            f'This resource is frames (multipart/related; type="{OCTET_STREAM}", or an image '
            f"type), which the Accept header ({accept[:200]}) does not take."
        )
    return wanted
