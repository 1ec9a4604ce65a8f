"""Bulk data (PS3.18 §8.6, Retrieve Bulkdata): the binary values over 1 KiB that DICOM JSON
metadata leaves out (overlay planes, waveform samples, ICC profiles, encapsulated documents,
private blobs) are given a ``BulkDataURI`` that names the element's path in its dataset, and
are read from the stored file when asked for.

A path is a tag, or tags and item numbers in turn down sequences (items numbered from 1):
``60003000``, ``54000100/1/54001010``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pydicom
from pydicom.tag import Tag

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
# The size of one value of each binary VR, to put big endian values in little endian order.
_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
BINARY = {"OB", "UN", *_WORD}


class BadPath(ValueError):
    """A bulk data path that names no binary element of the dataset; the message says why."""


def fill_uris(doc: dict[str, Any], base: str, _prefix: tuple[str, ...] = ()) -> None:
    """Give each value of DICOM JSON ``doc`` left out without a URI its ``BulkDataURI``,
    ``{base}/{path}``, in place."""
    for key, attribute in doc.items():
        if not isinstance(attribute, dict):
            continue
        if "BulkDataURI" in attribute and not attribute["BulkDataURI"]:
            attribute["BulkDataURI"] = f"{base}/{'/'.join((*_prefix, key))}"
        elif attribute.get("vr") == "SQ":
            for number, item in enumerate(attribute.get("Value") or [], 1):
                if isinstance(item, dict):
                    fill_uris(item, base, (*_prefix, key, str(number)))


def parse_path(text: str) -> list[int]:
    """The tags and item indexes (from 0) of a path, alternately.

    Raises :class:`BadPath` for anything else."""
    parts = text.strip("/").split("/")
    if len(parts) % 2 == 0:
        raise BadPath(f"The bulk data path {text[:100]!r} does not end with a tag.")
    out: list[int] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if not _TAG.match(part):
                raise BadPath(f"{part[:20]!r} in the bulk data path is not a tag (8 hex digits).")
            out.append(int(part, 16))
        else:
            if not part.isdigit() or int(part) < 1:
                raise BadPath(f"{part[:20]!r} in the bulk data path is not an item number.")
            out.append(int(part) - 1)
    return out


def value(ds: pydicom.Dataset, path: list[int]) -> bytes:
    """The value at ``path`` (from :func:`parse_path`) of ``ds``, a dataset read whole, in
    little endian byte order.

    Raises :class:`BadPath` where the path names no binary element.
    """
    current = ds
    for depth in range(0, len(path) - 1, 2):
        tag, index = Tag(path[depth]), path[depth + 1]
        element = current.get(tag)
        if element is None or element.VR != "SQ":
            raise BadPath(f"The instance has no sequence {tag:08X} there.")
        if index >= len(element.value):
            raise BadPath(f"The sequence {tag:08X} has no item {index + 1}.")
        current = element.value[index]
    tag = Tag(path[-1])
    element = current.get(tag)
    if element is None:
        raise BadPath(f"The instance has no element {tag:08X} there.")
    if element.VR not in BINARY or not isinstance(element.value, bytes):
        raise BadPath(f"The element {tag:08X} is not bulk data (its VR is {element.VR}).")
    data = element.value
    little = ds.original_encoding[1]
    width = _WORD.get(element.VR)
    if little is False and width:
        usable = len(data) - len(data) % width
        data = np.frombuffer(data[:usable], f">u{width}").astype(f"<u{width}").tobytes()
    return data
