"""How header values are kept for matching: names, times, the DICOM Study ID.

Study lists and QIDO-RS match on columns, never on files; these functions make those
columns' values from a header, for ingest and for the migration that filled them for the
studies stored before them, so that both agree.

Example::

    normalize_name("Doe^Jane")  # "DOE JANE"
    time_bounds("1015")  # ("101500.000000", "101559.999999")
"""

from __future__ import annotations

import re
from typing import Any

from pacs_app.dicom.dicomjson import first_text

_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")


def normalize_name(name: str) -> str:
    """Person names as searched and sorted: upper case, DICOM ``^`` as spaces."""
    return " ".join(name.replace("^", " ").upper().split())


def time_bounds(value: str) -> tuple[str, str] | None:
    """The first and last instant a DICOM time (TM) names, as ``HHMMSS.FFFFFF`` text that
    sorts as time does; a time of fewer components names all of them (``1015`` is 10:15:00
    to 10:15:59.999999). The old ``HH:MM:SS`` form is read too. None when it is not a time."""
    match = _TIME.fullmatch(value.strip().replace(":", ""))
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if fraction is not None and seconds is None:
        return None
    if int(hours) > 23 or int(minutes or 0) > 59 or int(seconds or 0) > 60:
        return None
    first = f"{hours}{minutes or '00'}{seconds or '00'}.{(fraction or '').ljust(6, '0')}"
    last = f"{hours}{minutes or '59'}{seconds or '59'}.{(fraction or '').ljust(6, '9')}"
    return first, last


def study_matching_values(dicom_json: dict[str, Any]) -> tuple[str, str, str]:
    """What a study keeps to match QIDO-RS's StudyTime, ReferringPhysicianName and StudyID
    on, from a header in DICOM JSON: the time's first instant (``''`` when it has none or
    it is not a time), the referring physician's name as names are matched, the Study ID."""
    bounds = time_bounds(first_text(dicom_json, "00080030", 28))
    return (
        bounds[0] if bounds else "",
        normalize_name(first_text(dicom_json, "00080090", 200))[:200],
        first_text(dicom_json, "00200010", 16),
    )
