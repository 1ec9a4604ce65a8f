"""Whether a re-sent DICOM file is the instance stored under its SOP Instance UID.

A PACS that receives an instance it holds already keeps the one it holds: what a radiologist
may have read and reported on must not change under them. A plain re-send is the same bytes.
Two files of one instance may also differ only in their file meta information (group 0002:
the sending application, the source AE title), which a PACS forwarding it rewrites; that is
still the same instance. Anything else (another transfer syntax, other pixels, a corrected
patient name, another object wrongly given the same UID) is different data, and the sender
must be told that what it sent was not stored.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from pydicom.uid import UID

from pacs_app.dicom.rawheader import Unsupported, dataset_start

CHUNK = 1024 * 1024


def difference(stored: BinaryIO, sent: BinaryIO) -> str | None:
    """``None`` when the two files hold byte for byte the same data set (their file meta
    information aside); otherwise what differs, in words, to tell the sender.

    Both files are read from their start; neither is decoded. A file whose file meta
    information the direct parser does not read (no preamble, say) is compared whole.

    Example::

        with open(stored_path, "rb") as a, open(sent_path, "rb") as b:
            difference(a, b)  # None, or e.g. "its pixel data or other attributes differ"
    """
    stored_syntax, stored_at, stored_size = _dataset_of(stored)
    sent_syntax, sent_at, sent_size = _dataset_of(sent)
    if stored_syntax and sent_syntax and stored_syntax != sent_syntax:
        return (
            f"it is encoded in another transfer syntax ({_syntax_name(sent_syntax)}) than the "
            f"stored one ({_syntax_name(stored_syntax)})"
        )
    different = "its pixel data or other attributes differ from the stored one's"
    if stored_size - stored_at != sent_size - sent_at:
        return different
    stored.seek(stored_at)
    sent.seek(sent_at)
    while True:
        a, b = stored.read(CHUNK), sent.read(CHUNK)
        if a != b:
            return different
        if not a:
            return None


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
