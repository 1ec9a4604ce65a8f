"""The DICOM data dictionary (PS3.6, as pydicom ships it) in the form the viewer's tag browser
uses: each standard tag's keyword, and the masks of repeating groups (overlays, curves)."""

from __future__ import annotations

import functools
import json

import pydicom
from pydicom.datadict import DicomDictionary, RepeatersDictionary


@functools.cache
def keywords() -> dict[str, object]:
    """``{"version", "tags": {"GGGGEEEE": keyword}, "repeaters": {"60xx3000": keyword}}``.

    A repeater's mask has ``x`` where any hexadecimal digit may stand (``60xx3000`` is every
    overlay group's Overlay Data). Retired tags are kept: old files carry them."""
    tags = {f"{tag:08X}": entry[4] for tag, entry in DicomDictionary.items() if entry[4]}
    repeaters = {mask.upper().replace("X", "x"): e[4] for mask, e in RepeatersDictionary.items()}
    return {"version": pydicom.__version__, "tags": tags, "repeaters": repeaters}


@functools.cache
def keywords_json() -> bytes:
    """:func:`keywords` as compact JSON, built once per process."""
    return json.dumps(keywords(), separators=(",", ":")).encode()
