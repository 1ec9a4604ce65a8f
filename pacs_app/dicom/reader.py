"""Read and validate a DICOM file's header for ingest, without decoding pixel data.

:func:`read_header` parses the header (``stop_before_pixels``), checks that the file is DICOM,
complete (not truncated) and carries the UIDs a PACS needs, and returns what the index keeps:
the study/series/instance fields and the whole header as DICOM JSON. Every refusal is an
:class:`InvalidDicom` whose message names the file and the reason.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import rawheader
from pacs_app.dicom.dicomjson import dataset_to_json, first_text, raw_elements

PIXEL_TAGS = rawheader.PIXEL_TAGS
UNDEFINED_LENGTH = rawheader.UNDEFINED
NOT_IN_UID = re.compile(r"[\s\\]")
REQUIRED_UIDS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
}


class InvalidDicom(InvalidInput):
    """A file was refused at ingest; the message names the file and the reason."""

    code = "invalid_dicom"

    def __init__(self, filename: str, reason: str):
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


@dataclass(frozen=True)
class DicomHeader:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_name: str
    patient_id: str
    patient_age: str
    patient_sex: str
    modality: str
    body_part: str
    study_description: str
    series_description: str
    accession_number: str
    study_date: date | None
    series_number: int | None
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int
    dicom_json: dict[str, Any]


def _date(value: str) -> date | None:
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 else None
    except ValueError:
        return None


def _truncation(fp: BinaryIO, ds: pydicom.Dataset, size: int) -> str | None:
    """Why the file is incomplete (a header value or the pixel data shorter than declared)."""
    for elem in raw_elements(ds):
        if (
            isinstance(elem, RawDataElement)
            and elem.length != UNDEFINED_LENGTH
            and elem.value is not None
            and len(elem.value) < elem.length
        ):
            return f"the file is truncated (element {elem.tag} is cut short)"
    pos = fp.tell()
    if pos >= size:
        return None
    fp.seek(pos)
    head = fp.read(8)
    if len(head) < 8:
        return "the file is truncated (in the pixel data header)"
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    group, element = struct.unpack("<HH" if little else ">HH", head[:4])
    if (group << 16 | element) not in PIXEL_TAGS:
        return None
    implicit = ds.is_implicit_VR if ds.is_implicit_VR is not None else False
    return _pixel_data_truncation(fp, pos, size, little, implicit)


def _pixel_data_truncation(
    fp: BinaryIO, pos: int, size: int, little: bool, implicit: bool
) -> str | None:
    """Why the pixel data element whose tag starts at ``pos`` is incomplete, if it is."""
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < (8 if implicit else 12):
        return "the file is truncated (in the pixel data header)"
    if implicit:
        length, offset = struct.unpack("<I" if little else ">I", head[4:8])[0], 8
    else:
        length, offset = struct.unpack("<I" if little else ">I", head[8:12])[0], 12
    if length == UNDEFINED_LENGTH:
        try:
            _check_fragments(fp, pos + offset, size, little, "")
        except InvalidDicom as exc:
            return exc.reason
    elif pos + offset + length > size:
        return (
            f"the file is truncated (pixel data declares {length} bytes, "
            f"{max(0, size - pos - offset)} present)"
        )
    return None


def _check_fragments(fp: BinaryIO, pos: int, size: int, little: bool, name: str) -> None:
    """Walk the items of encapsulated pixel data up to the Sequence Delimitation Item."""
    fmt = "<HHI" if little else ">HHI"
    while pos + 8 <= size:
        fp.seek(pos)
        group, element, length = struct.unpack(fmt, fp.read(8))
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED_LENGTH:
            raise InvalidDicom(name, "the compressed pixel data is malformed")
        pos += 8 + length
    raise InvalidDicom(name, "the file is truncated (the compressed pixel data ends early)")


def _read_with_pydicom(
    fp: BinaryIO, size: int, name: str
) -> tuple[dict[str, Any], str, bool, str | None]:
    """The header through pydicom, for files the direct parser leaves alone: its JSON, the
    transfer syntax, whether the file has the DICM preamble, and why it is incomplete if it is."""
    has_preamble = fp.read(132)[128:132] == b"DICM"
    fp.seek(0)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except (InvalidDicomError, EOFError, OSError) as exc:
        raise InvalidDicom(name, f"not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types on garbage input
        reason = "not a DICOM file" if not has_preamble else f"unreadable header ({exc})"
        raise InvalidDicom(name, reason) from exc
    # Before anything converts them, the raw elements tell whether the file is complete.
    truncation = _truncation(fp, ds, size)
    try:
        dicom_json = dataset_to_json(ds)
    except Exception as exc:
        if not has_preamble:
            raise InvalidDicom(
                name, "not a DICOM file (no DICM preamble and no readable DICOM dataset)"
            ) from exc
        raise InvalidDicom(name, f"the header has an invalid value ({exc})") from exc
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return dicom_json, transfer_syntax, has_preamble, truncation


def read_header(path: str | os.PathLike[str], filename: str | None = None) -> DicomHeader:
    """Parse and validate the header of the DICOM file at ``path``.

    ``filename`` is the name the user knows the file by (used in messages). Files without the
    128-byte preamble are accepted when they parse as a dataset with the required UIDs.

    Raises :class:`InvalidDicom` when the file is not DICOM, is truncated, lacks
    StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID, or has a header that cannot be read.
    """
    return _read_header(Path(path), filename)


def _read_header(path: Path, filename: str | None) -> DicomHeader:
    name = filename or path.name
    size = path.stat().st_size
    if size == 0:
        raise InvalidDicom(name, "the file is empty")
    with path.open("rb") as fp:
        try:
            raw = rawheader.parse(fp, size)
        except rawheader.Unsupported:
            fp.seek(0)
            with warnings.catch_warnings():  # pydicom warns on odd values; refusals are ours
                warnings.simplefilter("ignore")
                dicom_json, transfer_syntax, has_preamble, truncation = _read_with_pydicom(
                    fp, size, name
                )
        else:
            dicom_json, transfer_syntax, has_preamble = (
                raw.dicom_json,
                raw.transfer_syntax_uid,
                True,
            )
            truncation = (
                _pixel_data_truncation(fp, raw.pixel_data_at, size, True, raw.implicit)
                if raw.pixel_data_at is not None
                else None
            )
    uids = {k: first_text(dicom_json, tag, 200) for k, tag in REQUIRED_UIDS.items()}
    if not has_preamble and not any(uids.values()):
        raise InvalidDicom(name, "not a DICOM file (no DICM preamble and no DICOM identifiers)")
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise InvalidDicom(name, f"missing required UID: {', '.join(missing)}")
    for keyword, uid in uids.items():
        if len(uid) > 64 or NOT_IN_UID.search(uid):
            raise InvalidDicom(name, f"{keyword} is not a valid UID")
    if truncation:
        raise InvalidDicom(name, truncation)

    def text(tag: str, limit: int) -> str:
        return first_text(dicom_json, tag, limit)

    def number(tag: str) -> int | None:
        try:
            value = int(float(text(tag, 16)))
        except ValueError:
            return None
        return value

    return DicomHeader(
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=text("00080016", 64),
        transfer_syntax_uid=transfer_syntax[:64],
        patient_name=text("00100010", 200),
        patient_id=text("00100020", 64),
        patient_age=text("00101010", 8),
        patient_sex=text("00100040", 1).upper(),
        modality=text("00080060", 16).upper(),
        body_part=text("00180015", 64).upper(),
        study_description=text("00081030", 200),
        series_description=text("0008103E", 200),
        accession_number=text("00080050", 16),
        study_date=_date(text("00080020", 8)),
        series_number=number("00200011"),
        instance_number=number("00200013"),
        rows=number("00280010"),
        columns=number("00280011"),
        number_of_frames=max(1, number("00280008") or 1),
        dicom_json=dicom_json,
    )
