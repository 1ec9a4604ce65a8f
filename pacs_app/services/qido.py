"""QIDO-RS (PS3.18 §10.6): search for studies, their series and instances by DICOM attributes.

So that a DICOMweb client (OHIF, Weasis, 3D Slicer, ``dicomweb-client``) finds what the actor
may see, answered from the index like the study lists, never from files. A query is a list of
``(key, value)`` pairs as the URL gives them: a key is an attribute's keyword or tag
(``PatientID`` or ``00100020``), or one of ``limit``, ``offset``, ``includefield`` and
``fuzzymatching``. Matching follows PS3.4 C.2.2.2: an empty value matches everything, ``*``
and ``?`` are wildcards in text, a UID may be a list (``1.2.3,1.2.4``), a date a range
(``20260101-20260131``, ``-20260131``, ``20260101-``). Patient names match without regard to
case or to ``^`` against spaces, as the study lists search them. A matching key this server
does not support is ignored and named in :attr:`QidoResult.ignored` (a client is told in a
``Warning`` header), rather than failing a client's whole search.

Example::

    found = search_studies(session=s, actor=tech, query=[("PatientID", "PID-001")],
                           base_url="https://pacs.example/dicomweb")
    found.matches[0]["0020000D"]["Value"][0]  # the StudyInstanceUID
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, and_, exists
from sqlmodel import Session, col, select

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom.dicomjson import attributes
from pacs_app.models import Instance, Series, Study
from pacs_app.services import dicomweb
from pacs_app.services.authz import Actor, study_visibility
from pacs_app.services.ingest import normalize_name

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CONTROLS = {"limit", "offset", "includefield", "fuzzymatching"}
_DATE = re.compile(r"\d{8}")


@dataclass(frozen=True)
class QidoResult:
    """The matches as DICOM JSON, whether more follow the page (``limit``), and the matching
    keys that were ignored (not supported at this level)."""

    matches: list[dict[str, Any]]
    more: bool = False
    ignored: list[str] = field(default_factory=list)


@dataclass
class _Query:
    keys: dict[str, str]
    limit: int
    offset: int
    ignored: list[str]


def _parse(query: Sequence[tuple[str, str]], supported: set[str]) -> _Query:
    keys: dict[str, str] = {}
    ignored: list[str] = []
    limit, offset = DEFAULT_LIMIT, 0
    for raw_key, value in query:
        key = raw_key.strip()
        if key in _CONTROLS:
            if key in ("limit", "offset"):
                number = _whole(value, key)
                if number < 0:
                    raise InvalidInput(f"{key} cannot be negative.")
                if key == "limit":
                    limit = min(number, MAX_LIMIT) if number else DEFAULT_LIMIT
                else:
                    offset = number
            continue  # includefield: the attributes below are all returned; fuzzymatching: names
        keyword = _keyword(key)
        if keyword is None:
            raise InvalidInput(f"{key!r} is neither a DICOM attribute nor a QIDO-RS parameter.")
        if keyword in supported:
            keys[keyword] = value.strip()
        elif keyword not in ignored:
            ignored.append(keyword)
    return _Query(keys, limit, offset, ignored)


def _keyword(key: str) -> str | None:
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        return keyword_for_tag(int(key, 16)) or None
    return key if tag_for_keyword(key) is not None else None


def _like(column, value: str) -> ColumnElement[bool]:
    escaped = value.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    return col(column).like(escaped.replace("*", "%").replace("?", "_"), escape="\\")


def _text(column, value: str) -> ColumnElement[bool]:
    """Single value or wildcard matching of a text attribute."""
    return _like(column, value) if ("*" in value or "?" in value) else column == value


def _listed(value: str) -> list[str]:
    """The values of a list: ``1.2.3,1.2.4`` or ``1.2.3\\1.2.4``."""
    return [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]


def _uids(column, value: str) -> ColumnElement[bool]:
    """List of UID matching."""
    return col(column).in_(_listed(value))


def _modalities(column, value: str) -> ColumnElement[bool]:
    """List of modality matching, in any case."""
    return col(column).in_([m.upper() for m in _listed(value)])


def _day(text: str, key: str) -> date:
    if not _DATE.fullmatch(text):
        raise InvalidInput(f"{key} {text!r} is not a date (YYYYMMDD) or a range of dates.")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidInput(f"{key} {text!r} is not a date of the calendar.") from None


def _dates(column, value: str, key: str) -> ColumnElement[bool]:
    """Single date or range matching (PS3.4 C.2.2.2.5)."""
    value = value.replace(".", "")
    if "-" not in value:
        return column == _day(value, key)
    start, _, end = value.partition("-")
    clauses = []
    if start:
        clauses.append(column >= _day(start, key))
    if end:
        clauses.append(column <= _day(end, key))
    if not clauses:
        raise InvalidInput(f"{key} '-' names no date.")
    if start and end and _day(start, key) > _day(end, key):
        raise InvalidInput(f"{key} {value!r} ends before it starts.")
    return and_(*clauses)


def _patient_name(value: str) -> ColumnElement[bool]:
    """Names as the study lists compare them: upper case, ``^`` as spaces, wildcards kept."""
    name = normalize_name(value.replace("*", "\0").replace("?", "\1"))
    name = name.replace("\0", "*").replace("\1", "?")
    return _text(Study.patient_name_norm, name)


def _whole(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{key} must be a whole number, not {value!r}.") from None


def _integer(column, value: str, key: str) -> ColumnElement[bool]:
    return column == _whole(value, key)


def _dicom_date(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _page(session: Session, statement, q: _Query) -> tuple[list, bool]:
    """One page of ``statement``'s rows, and whether more follow it."""
    rows = list(session.exec(statement.offset(q.offset).limit(q.limit + 1)))
    return rows[: q.limit], len(rows) > q.limit


# --- studies ---------------------------------------------------------------------------------

_STUDY_KEYS = {
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "ModalitiesInStudy",
    "StudyDescription",
}


def search_studies(
    *, session: Session, actor: Actor, query: Sequence[tuple[str, str]], base_url: str
) -> QidoResult:
    """The studies the actor may see that match ``query``, newest received first.

    ``base_url`` is the DICOMweb root (``.../dicomweb``) the Retrieve URLs are under. Raises
    :class:`InvalidInput` for a parameter that is not one, or a value that cannot match."""
    q = _parse(query, _STUDY_KEYS)
    clauses: list[ColumnElement[bool]] = [study_visibility(actor)]
    k = q.keys
    if k.get("StudyInstanceUID"):
        clauses.append(_uids(Study.study_instance_uid, k["StudyInstanceUID"]))
    if k.get("PatientID"):
        clauses.append(_text(Study.patient_id, k["PatientID"]))
    if k.get("PatientName"):
        clauses.append(_patient_name(k["PatientName"]))
    if k.get("AccessionNumber"):
        clauses.append(_text(Study.accession_number, k["AccessionNumber"]))
    if k.get("StudyDescription"):
        clauses.append(_text(Study.description, k["StudyDescription"]))
    if k.get("StudyDate"):
        clauses.append(_dates(Study.study_date, k["StudyDate"], "StudyDate"))
    if k.get("ModalitiesInStudy"):
        clauses.append(
            exists().where(
                Series.study_pk == Study.id, _modalities(Series.modality, k["ModalitiesInStudy"])
            )
        )
    rows, more = _page(
        session,
        select(Study)
        .where(and_(*clauses))
        .order_by(col(Study.received_at).desc(), col(Study.id).desc()),
        q,
    )
    modalities: dict[int, list[str]] = {}
    if rows:
        for study_pk, modality in session.exec(
            select(Series.study_pk, Series.modality)
            .where(col(Series.study_pk).in_([s.id for s in rows]))
            .distinct()
            .order_by(Series.study_pk, Series.modality)
        ):
            if modality:
                modalities.setdefault(study_pk, []).append(modality)
    return QidoResult(
        [
            attributes(
                SpecificCharacterSet="ISO_IR 192",
                StudyDate=_dicom_date(s.study_date),
                AccessionNumber=s.accession_number,
                InstanceAvailability="ONLINE",
                ModalitiesInStudy=modalities.get(s.id, []),
                StudyDescription=s.description,
                PatientName=s.patient_name,
                PatientID=s.patient_id,
                PatientSex=s.patient_sex,
                PatientAge=s.patient_age,
                StudyInstanceUID=s.study_instance_uid,
                NumberOfStudyRelatedSeries=s.num_series,
                NumberOfStudyRelatedInstances=s.num_instances,
                RetrieveURL=f"{base_url}/studies/{s.study_instance_uid}",
            )
            for s in rows
        ],
        more,
        q.ignored,
    )


# --- series ----------------------------------------------------------------------------------

_SERIES_KEYS = {"SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"}


def search_series(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    query: Sequence[tuple[str, str]],
    base_url: str,
    comparing: str | None = None,
) -> QidoResult:
    """The series of a study the actor may see (else :class:`NotFound`) that match ``query``,
    in series number order."""
    study = dicomweb.visible_study(session, actor, study_uid, comparing)
    q = _parse(query, _SERIES_KEYS)
    clauses: list[ColumnElement[bool]] = [Series.study_pk == study.id]
    k = q.keys
    if k.get("SeriesInstanceUID"):
        clauses.append(_uids(Series.series_instance_uid, k["SeriesInstanceUID"]))
    if k.get("Modality"):
        clauses.append(_modalities(Series.modality, k["Modality"]))
    if k.get("SeriesNumber"):
        clauses.append(_integer(Series.series_number, k["SeriesNumber"], "SeriesNumber"))
    if k.get("SeriesDescription"):
        clauses.append(_text(Series.description, k["SeriesDescription"]))
    rows, more = _page(
        session,
        select(Series)
        .where(and_(*clauses))
        .order_by(col(Series.series_number).asc().nulls_last(), col(Series.id)),
        q,
    )
    return QidoResult(
        [
            attributes(
                SpecificCharacterSet="ISO_IR 192",
                Modality=s.modality,
                SeriesDescription=s.description,
                SeriesNumber=s.series_number,
                BodyPartExamined=s.body_part,
                StudyInstanceUID=study.study_instance_uid,
                SeriesInstanceUID=s.series_instance_uid,
                NumberOfSeriesRelatedInstances=s.num_instances,
                RetrieveURL=(
                    f"{base_url}/studies/{study.study_instance_uid}/series/{s.series_instance_uid}"
                ),
            )
            for s in rows
        ],
        more,
        q.ignored,
    )


# --- instances -------------------------------------------------------------------------------

_INSTANCE_KEYS = {"SOPInstanceUID", "SOPClassUID", "InstanceNumber"}


def search_instances(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    query: Sequence[tuple[str, str]],
    base_url: str,
    series_uid: str | None = None,
    comparing: str | None = None,
) -> QidoResult:
    """The instances of a study (or of one of its series) the actor may see that match
    ``query``, in series and instance number order."""
    study = dicomweb.visible_study(session, actor, study_uid, comparing)
    q = _parse(query, _INSTANCE_KEYS)
    clauses: list[ColumnElement[bool]] = [Instance.study_pk == study.id]
    if series_uid is not None:
        clauses.append(Instance.series_pk == dicomweb.series_of(session, study, series_uid).id)
    k = q.keys
    if k.get("SOPInstanceUID"):
        clauses.append(_uids(Instance.sop_instance_uid, k["SOPInstanceUID"]))
    if k.get("SOPClassUID"):
        clauses.append(_uids(Instance.sop_class_uid, k["SOPClassUID"]))
    if k.get("InstanceNumber"):
        clauses.append(_integer(Instance.instance_number, k["InstanceNumber"], "InstanceNumber"))
    rows, more = _page(
        session,
        select(
            Instance.sop_class_uid,
            Instance.sop_instance_uid,
            Instance.instance_number,
            Instance.rows,
            Instance.columns,
            Instance.number_of_frames,
            Instance.transfer_syntax_uid,
            Series.series_instance_uid,
            Series.modality,
            Series.series_number,
        )
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(and_(*clauses))
        .order_by(*dicomweb.INSTANCE_ORDER),
        q,
    )
    study_url = f"{base_url}/studies/{study.study_instance_uid}"
    return QidoResult(
        [
            attributes(
                SpecificCharacterSet="ISO_IR 192",
                SOPClassUID=r.sop_class_uid,
                SOPInstanceUID=r.sop_instance_uid,
                AvailableTransferSyntaxUID=r.transfer_syntax_uid,
                Modality=r.modality,
                StudyInstanceUID=study.study_instance_uid,
                SeriesInstanceUID=r.series_instance_uid,
                SeriesNumber=r.series_number,
                InstanceNumber=r.instance_number,
                Rows=r.rows,
                Columns=r.columns,
                NumberOfFrames=r.number_of_frames if (r.rows or r.columns) else None,
                RetrieveURL=(
                    f"{study_url}/series/{r.series_instance_uid}/instances/{r.sop_instance_uid}"
                ),
            )
            for r in rows
        ],
        more,
        q.ignored,
    )


__all__ = ["QidoResult", "search_instances", "search_series", "search_studies"]
