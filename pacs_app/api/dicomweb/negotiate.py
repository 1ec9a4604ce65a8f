"""The transfer syntaxes a WADO-RS client accepts for DICOM instances, from its Accept header
(PS3.18 §8.7.3): ``multipart/related; type="application/dicom"; transfer-syntax=UID`` ranges,
``transfer-syntax=*`` for any, Explicit VR Little Endian where a range names none."""

from __future__ import annotations

from python_multipart.multipart import parse_options_header

from pacs_app.core.errors import NotAcceptable
from pacs_app.dicom.transcode import EXPLICIT_LE

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
