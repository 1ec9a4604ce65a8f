"""QIDO-RS (PS3.18 §10.6): search for studies, their series and instances by DICOM attributes,
within a study or series or in every study the actor may see (All Series, All Instances).

So that a DICOMweb client (OHIF, Weasis, 3D Slicer, ``dicomweb-client``) finds what the actor
may see, answered from the index like the study lists, never from files. A query is a list of
``(key, value)`` pairs as the URL gives them: a key is an attribute's keyword or tag
(``PatientID`` or ``00100020``), or one of ``limit``, ``offset``, ``includefield`` and
``fuzzymatching``. Each match has the attributes the index holds, the required return
attributes of its level (PS3.18 §10.6.3.3) and those ``includefield`` names (or, for ``all``,
every attribute of its level) that a representative instance's header holds: the first
stored instance of the study or series, or the instance itself.

Matching follows PS3.4 C.2.2.2: an empty value matches everything, ``*`` and ``?`` are
wildcards in text, a UID may be a list (``1.2.3,1.2.4``), a date a range
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

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, and_, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import bulk
from pacs_app.dicom.dicomjson import attributes
from pacs_app.dicom.matching import normalize_name, time_bounds
from pacs_app.models import Instance, Series, Study
from pacs_app.services import dicomweb
from pacs_app.services.authz import Actor, study_visibility

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CONTROLS = {"limit", "offset", "includefield", "fuzzymatching"}
_DATE = re.compile(r"\d{8}")


@dataclass(frozen=True)
class QidoResult:
    """The matches as DICOM JSON, whether more follow the page (``limit``), the matching
    keys that were ignored (not supported at this level) and the ``includefield`` attributes
    not returned (not of this level)."""

    matches: list[dict[str, Any]]
    more: bool = False
    ignored: list[str] = field(default_factory=list)
    not_included: list[str] = field(default_factory=list)


@dataclass
class _Query:
    keys: dict[str, str]
    limit: int
    offset: int
    ignored: list[str]
    include: list[str] = field(default_factory=list)  # includefield's keywords
    include_all: bool = False


def _parse(query: Sequence[tuple[str, str]], supported: set[str]) -> _Query:
    keys: dict[str, str] = {}
    ignored: list[str] = []
    include: list[str] = []
    include_all = False
    limit, offset = DEFAULT_LIMIT, 0
    for raw_key, value in query:
        key = raw_key.strip()
        if key in _CONTROLS:
            if key == "includefield":
                for name in _listed(value):
                    if name.lower() == "all":
                        include_all = True
                        continue
                    keyword = _keyword(name)
                    if keyword is None:
                        raise InvalidInput(f"includefield {name!r} is not a DICOM attribute.")
                    if keyword not in include:
                        include.append(keyword)
            elif key in ("limit", "offset"):
                number = _whole(value, key)
                if number < 0:
                    raise InvalidInput(f"{key} cannot be negative.")
                if key == "limit":
                    limit = min(number, MAX_LIMIT) if number else DEFAULT_LIMIT
                else:
                    offset = number
            continue  # fuzzymatching: names already match without regard to case
        keyword = _keyword(key)
        if keyword is None:
            raise InvalidInput(f"{key!r} is neither a DICOM attribute nor a QIDO-RS parameter.")
        if keyword in supported:
            keys[keyword] = value.strip()
        elif keyword not in ignored:
            ignored.append(keyword)
    return _Query(keys, limit, offset, ignored, include, include_all)


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


def _name(column, value: str) -> ColumnElement[bool]:
    """Person names as the study lists compare them: ``column`` holds them upper case with
    ``^`` as spaces (:func:`normalize_name`); wildcards kept."""
    name = normalize_name(value.replace("*", "\0").replace("?", "\1"))
    name = name.replace("\0", "*").replace("\1", "?")
    return _text(column, name)


def _time(text: str, key: str) -> tuple[str, str]:
    bounds = time_bounds(text)
    if bounds is None:
        raise InvalidInput(f"{key} {text!r} is not a time (HHMMSS) or a range of times.")
    return bounds


def _times(column, value: str, key: str) -> ColumnElement[bool]:
    """Single time or range matching (PS3.4 C.2.2.2.5) on ``column``, which holds each
    time's first instant (:func:`time_bounds`); a time of fewer components names all of
    them: ``1015`` matches 10:15:00 to 10:15:59.999999. Times of one day: a range that
    crosses midnight is refused."""
    if "-" not in value:
        first, last = _time(value, key)
        return and_(column >= first, column <= last)
    start, _, end = value.partition("-")
    clauses = [column != ""]  # a study without a time matches no range
    if start:
        clauses.append(column >= _time(start, key)[0])
    if end:
        clauses.append(column <= _time(end, key)[1])
    if not (start or end):
        raise InvalidInput(f"{key} '-' names no time.")
    if start and end and _time(start, key)[0] > _time(end, key)[1]:
        raise InvalidInput(f"{key} {value!r} ends before it starts.")
    return and_(*clauses)


def _whole(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{key} must be a whole number, not {value!r}.") from None


def _integer(column, value: str, key: str) -> ColumnElement[bool]:
    return column == _whole(value, key)


def _dicom_date(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


# What each level's matches may take from a representative instance's header: for a study,
# the Patient, General Study and Patient Study modules (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2); for
# a series, those and the General Series, Frame of Reference and General Equipment modules.
# A series or study attribute asked of an instance comes from the instance's own header.
STUDY_LEVEL = frozenset(
    {
        # Patient
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "TypeOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientBirthName",
        "PatientMotherBirthName",
        "EthnicGroup",
        "PatientComments",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "ResponsiblePerson",
        "ResponsiblePersonRole",
        "ResponsibleOrganization",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "QualityControlSubject",
        # General Study
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianName",
        "StudyID",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyDescription",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "RequestingService",
        "ProcedureCodeSequence",
        "ReasonForPerformedProcedureCodeSequence",
        "ReferencedStudySequence",
        "TimezoneOffsetFromUTC",
        # Patient Study
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientBodyMassIndex",
        "Occupation",
        "AdditionalPatientHistory",
        "AdmissionID",
        "MedicalAlerts",
        "Allergies",
        "SmokingStatus",
        "PregnancyStatus",
        "LastMenstrualDate",
        "PatientSexNeutered",
        "PatientState",
    }
)
SERIES_LEVEL = STUDY_LEVEL | {
    # General Series
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Laterality",
    "SeriesDate",
    "SeriesTime",
    "PerformingPhysicianName",
    "ProtocolName",
    "SeriesDescription",
    "OperatorsName",
    "ReferencedPerformedProcedureStepSequence",
    "BodyPartExamined",
    "PatientPosition",
    "RequestAttributesSequence",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription",
    "AnatomicalOrientationType",
    # Frame of Reference
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    # General Equipment
    "Manufacturer",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
}
# Required return attributes (PS3.18 Table 10.6.3-3 to -5) the index does not hold.
_STUDY_REQUIRED = (
    "StudyTime",
    "ReferringPhysicianName",
    "PatientBirthDate",
    "StudyID",
    "TimezoneOffsetFromUTC",
)
_SERIES_REQUIRED = (
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
    "TimezoneOffsetFromUTC",
)
_INSTANCE_REQUIRED = ("BitsAllocated", "TimezoneOffsetFromUTC")


def _tag(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


def _wanted(q: _Query, required: Sequence[str], level: frozenset[str] | None) -> list[str]:
    """The tags a match takes from its header: the level's required ones, and those asked
    for that belong to the level (``level`` None: any, for an instance's own header)."""
    if q.include_all and level is not None:
        asked: Sequence[str] = sorted(level)
    else:
        asked = [k for k in q.include if level is None or k in level]
    return [_tag(k) for k in dict.fromkeys([*required, *asked])]


def _answer(
    q: _Query, matches: list[dict[str, Any]], more: bool, level: frozenset[str] | None
) -> QidoResult:
    """The result, naming the ``includefield`` attributes that the matches lack because they
    are neither of ``level`` (None: any) nor among the index's attributes of a match."""
    outside = [
        k
        for k in q.include
        if matches
        and level is not None
        and k not in level
        and not any(_tag(k) in m for m in matches)
    ]
    return QidoResult(matches, more, q.ignored, outside)


def _first_headers(session: Session, column, keys: list[int]) -> dict[int, dict[str, Any]]:
    """The header (DICOM JSON) of the first stored instance of each study or series in
    ``keys``, by ``column`` (``Instance.study_pk`` or ``Instance.series_pk``)."""
    if not keys:
        return {}
    first = dict(
        session.exec(
            select(column, func.min(Instance.id)).where(col(column).in_(keys)).group_by(column)
        ).all()
    )
    documents = dict(
        session.exec(
            select(Instance.id, Instance.dicom_json).where(
                col(Instance.id).in_(list(first.values()))
            )
        ).all()
    )
    return {key: documents.get(pk) or {} for key, pk in first.items()}


def _study_fields(study: Study) -> dict[str, Any]:
    """The patient and study attributes the index holds (the form's values, where the
    uploader typed them), as :func:`attributes` takes them: at every level these, not a
    header's, are what a match says."""
    return {
        "StudyInstanceUID": study.study_instance_uid,
        "StudyDate": _dicom_date(study.study_date),
        "AccessionNumber": study.accession_number,
        "StudyDescription": study.description,
        "PatientName": study.patient_name,
        "PatientID": study.patient_id,
        "PatientSex": study.patient_sex,
        "PatientAge": study.patient_age,
    }


def _with_header(match: dict[str, Any], header: dict[str, Any], tags: list[str]) -> dict:
    """``match`` and those of ``tags`` that ``header`` holds (bulk values left out: they are
    an instance's, by its metadata), in tag order; the index's own values stay (the caller
    puts the study's in ``header``, over the instance's)."""
    extra = {
        t: header[t]
        for t in tags
        if t in header and t not in match and "BulkDataURI" not in header[t]
    }
    return dict(sorted({**match, **extra}.items())) if extra else match


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
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
}
_STUDY_ORDER = (col(Study.received_at).desc(), col(Study.id).desc())


def _study_clauses(k: dict[str, str]) -> list[ColumnElement[bool]]:
    """What the study-level matching keys in ``k`` ask of :class:`Study`."""
    clauses: list[ColumnElement[bool]] = []
    if k.get("StudyInstanceUID"):
        clauses.append(_uids(Study.study_instance_uid, k["StudyInstanceUID"]))
    if k.get("PatientID"):
        clauses.append(_text(Study.patient_id, k["PatientID"]))
    if k.get("PatientName"):
        clauses.append(_name(Study.patient_name_norm, k["PatientName"]))
    if k.get("AccessionNumber"):
        clauses.append(_text(Study.accession_number, k["AccessionNumber"]))
    if k.get("StudyDescription"):
        clauses.append(_text(Study.description, k["StudyDescription"]))
    if k.get("StudyDate"):
        clauses.append(_dates(Study.study_date, k["StudyDate"], "StudyDate"))
    if k.get("StudyTime"):
        clauses.append(_times(Study.study_time, k["StudyTime"], "StudyTime"))
    if k.get("ReferringPhysicianName"):
        clauses.append(_name(Study.referring_physician_norm, k["ReferringPhysicianName"]))
    if k.get("StudyID"):
        clauses.append(_text(Study.dicom_study_id, k["StudyID"]))
    if k.get("ModalitiesInStudy"):
        other = aliased(Series)  # not the series a series or instance search matches
        clauses.append(
            exists().where(
                other.study_pk == Study.id, _modalities(other.modality, k["ModalitiesInStudy"])
            )
        )
    return clauses


def _modalities_in(session: Session, study_pks: Sequence[int]) -> dict[int, list[str]]:
    """Each study's modalities, sorted."""
    modalities: dict[int, list[str]] = {}
    if study_pks:
        for study_pk, modality in session.exec(
            select(Series.study_pk, Series.modality)
            .where(col(Series.study_pk).in_(list(study_pks)))
            .distinct()
            .order_by(Series.study_pk, Series.modality)
        ):
            if modality:
                modalities.setdefault(study_pk, []).append(modality)
    return modalities


def _study_values(study: Study, modalities: list[str]) -> dict[str, Any]:
    """A study's attributes from the index (PS3.18 Table 10.6.3-3, less those its header
    gives), as :func:`attributes` takes them: a study's match, and a series' or instance's
    found outside a study.

    A study none of whose series names a modality has no ModalitiesInStudy, rather than an
    empty one: OHIF 3's study list reads every match's ``Value`` of it, and one study without
    one ended the whole list in an error."""
    return {
        **({"ModalitiesInStudy": modalities} if modalities else {}),
        **_study_fields(study),
        "NumberOfStudyRelatedSeries": study.num_series,
        "NumberOfStudyRelatedInstances": study.num_instances,
    }


def search_studies(
    *, session: Session, actor: Actor, query: Sequence[tuple[str, str]], base_url: str
) -> QidoResult:
    """The studies the actor may see that match ``query``, newest received first.

    ``base_url`` is the DICOMweb root (``.../dicomweb``) the Retrieve URLs are under. Raises
    :class:`InvalidInput` for a parameter that is not one, or a value that cannot match."""
    q = _parse(query, _STUDY_KEYS)
    rows, more = _page(
        session,
        select(Study)
        .where(study_visibility(actor), *_study_clauses(q.keys))
        .order_by(*_STUDY_ORDER),
        q,
    )
    modalities = _modalities_in(session, [s.id for s in rows])
    headers = _first_headers(session, Instance.study_pk, [s.id for s in rows])
    naming = _naming(session, actor, rows)
    tags = _wanted(q, _STUDY_REQUIRED, STUDY_LEVEL)
    return _answer(
        q,
        [
            _with_header(
                attributes(
                    SpecificCharacterSet="ISO_IR 192",
                    InstanceAvailability="ONLINE",
                    **_study_values(s, modalities.get(s.id, [])),
                    RetrieveURL=f"{base_url}/studies/{s.study_instance_uid}{naming[s.id]}",
                ),
                headers.get(s.id, {}),
                tags,
            )
            for s in rows
        ],
        more,
        STUDY_LEVEL,
    )


def _naming(session: Session, actor: Actor, studies: Sequence[Study]) -> dict[int, str]:
    """By study: what its Retrieve URLs end with, ``?study_id=`` and its Study ID where the
    actor may see another study of its StudyInstanceUID (another centre's), whose retrieval
    must name it (:func:`dicomweb.visible_study`); otherwise nothing."""
    uids = {s.study_instance_uid for s in studies}
    shared = (
        set(
            session.exec(
                select(Study.study_instance_uid)
                .where(study_visibility(actor), col(Study.study_instance_uid).in_(uids))
                .group_by(col(Study.study_instance_uid))
                .having(func.count() > 1)
            )
        )
        if uids
        else set()
    )
    return {
        s.id: f"?study_id={s.study_id}" if s.study_instance_uid in shared else "" for s in studies
    }


class _Studies:
    """The studies of a page of series or instances, by primary key: their index attributes
    (over any header's, at every level) and, for matches found outside a study, their
    study-level attributes."""

    def __init__(
        self, session: Session, actor: Actor, studies: Sequence[Study], scoped: bool
    ) -> None:
        self.by_pk = {s.id: s for s in studies}
        self.scoped = scoped
        # what each Retrieve URL ends with to name its study (see _naming)
        self.naming = _naming(session, actor, studies)
        self._modalities = {} if scoped else _modalities_in(session, list(self.by_pk))
        self._index = {pk: attributes(**_study_fields(s)) for pk, s in self.by_pk.items()}

    def index(self, pk: int) -> dict[str, Any]:
        """The study's patient and study attributes as DICOM JSON."""
        return self._index[pk]

    def values(self, pk: int) -> dict[str, Any]:
        """What a match takes of its study: nothing within a study, else the study's
        attributes (keywords and values)."""
        if self.scoped:
            return {}
        return _study_values(self.by_pk[pk], self._modalities.get(pk, []))


# --- series ----------------------------------------------------------------------------------

_SERIES_KEYS = {"SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"}


def _series_clauses(k: dict[str, str]) -> list[ColumnElement[bool]]:
    """What the series-level matching keys in ``k`` ask of :class:`Series`."""
    clauses: list[ColumnElement[bool]] = []
    if k.get("SeriesInstanceUID"):
        clauses.append(_uids(Series.series_instance_uid, k["SeriesInstanceUID"]))
    if k.get("Modality"):
        clauses.append(_modalities(Series.modality, k["Modality"]))
    if k.get("SeriesNumber"):
        clauses.append(_integer(Series.series_number, k["SeriesNumber"], "SeriesNumber"))
    if k.get("SeriesDescription"):
        clauses.append(_text(Series.description, k["SeriesDescription"]))
    return clauses


def search_series(
    *,
    session: Session,
    actor: Actor,
    query: Sequence[tuple[str, str]],
    base_url: str,
    study_uid: str | None = None,
    comparing: str | None = None,
    study_id: str | None = None,
) -> QidoResult:
    """The series the actor may see that match ``query``, in series number order: of the
    study ``study_uid`` (one the actor may not see raises :class:`NotFound`), or, with
    ``study_uid`` None, of every study the actor may see (PS3.18's All Series: study-level
    keys match too, each match has its study's attributes, newest study first)."""
    if study_uid is None:
        q = _parse(query, _STUDY_KEYS | _SERIES_KEYS)
        clauses = [study_visibility(actor), *_study_clauses(q.keys)]
    else:
        study = dicomweb.visible_study(session, actor, study_uid, comparing, study_id)
        q = _parse(query, _SERIES_KEYS)
        clauses = [Series.study_pk == study.id]
    rows, more = _page(
        session,
        select(Series, Study)
        .join(Study, col(Study.id) == Series.study_pk)
        .where(*clauses, *_series_clauses(q.keys))
        .order_by(*_STUDY_ORDER, *dicomweb.SERIES_ORDER),
        q,
    )
    studies = _Studies(
        session, actor, list({st.id: st for _, st in rows}.values()), study_uid is not None
    )
    headers = _first_headers(session, Instance.series_pk, [s.id for s, _ in rows])
    required = _SERIES_REQUIRED if studies.scoped else (*_SERIES_REQUIRED, *_STUDY_REQUIRED)
    tags = _wanted(q, required, SERIES_LEVEL)
    return _answer(
        q,
        [
            _with_header(
                attributes(
                    **{
                        **studies.values(st.id),
                        "SpecificCharacterSet": "ISO_IR 192",
                        "Modality": s.modality,
                        "SeriesDescription": s.description,
                        "SeriesNumber": s.series_number,
                        "BodyPartExamined": s.body_part,
                        "StudyInstanceUID": st.study_instance_uid,
                        "SeriesInstanceUID": s.series_instance_uid,
                        "NumberOfSeriesRelatedInstances": s.num_instances,
                        "RetrieveURL": (
                            f"{base_url}/studies/{st.study_instance_uid}"
                            f"/series/{s.series_instance_uid}{studies.naming[st.id]}"
                        ),
                    }
                ),
                {**headers.get(s.id, {}), **studies.index(st.id)},
                tags,
            )
            for s, st in rows
        ],
        more,
        SERIES_LEVEL,
    )


# --- instances -------------------------------------------------------------------------------

_INSTANCE_KEYS = {"SOPInstanceUID", "SOPClassUID", "InstanceNumber"}


def _instance_clauses(k: dict[str, str]) -> list[ColumnElement[bool]]:
    """What the instance-level matching keys in ``k`` ask of :class:`Instance`."""
    clauses: list[ColumnElement[bool]] = []
    if k.get("SOPInstanceUID"):
        clauses.append(_uids(Instance.sop_instance_uid, k["SOPInstanceUID"]))
    if k.get("SOPClassUID"):
        clauses.append(_uids(Instance.sop_class_uid, k["SOPClassUID"]))
    if k.get("InstanceNumber"):
        clauses.append(_integer(Instance.instance_number, k["InstanceNumber"], "InstanceNumber"))
    return clauses


def search_instances(
    *,
    session: Session,
    actor: Actor,
    query: Sequence[tuple[str, str]],
    base_url: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
    comparing: str | None = None,
    study_id: str | None = None,
) -> QidoResult:
    """The instances the actor may see that match ``query``, in series and instance number
    order: of one series (``series_uid``) of the study ``study_uid``, of the whole study
    (series-level keys match too; each match has its series' attributes), or, with
    ``study_uid`` None, of every study the actor may see (PS3.18's All Instances: study-
    and series-level keys match too, each match has its study's and series' attributes,
    newest study first). A study the actor may not see raises :class:`NotFound`."""
    if study_uid is None:
        q = _parse(query, _STUDY_KEYS | _SERIES_KEYS | _INSTANCE_KEYS)
        clauses = [study_visibility(actor), *_study_clauses(q.keys)]
        found: list[Study] = []
    else:
        study = dicomweb.visible_study(session, actor, study_uid, comparing, study_id)
        q = _parse(query, _INSTANCE_KEYS if series_uid else _SERIES_KEYS | _INSTANCE_KEYS)
        clauses = [Instance.study_pk == study.id]
        if series_uid is not None:
            clauses.append(Instance.series_pk == dicomweb.series_of(session, study, series_uid).id)
        found = [study]
    rows, more = _page(
        session,
        select(
            Instance.study_pk,
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
            col(Series.description).label("series_description"),
            col(Series.num_instances).label("series_instances"),
            Instance.dicom_json,
        )
        .join(Series, col(Series.id) == Instance.series_pk)
        .join(Study, col(Study.id) == Instance.study_pk)
        .where(*clauses, *_series_clauses(q.keys), *_instance_clauses(q.keys))
        .order_by(*_STUDY_ORDER, *dicomweb.INSTANCE_ORDER),
        q,
    )
    if study_uid is None and rows:
        pks = list(dict.fromkeys(r.study_pk for r in rows))
        found = list(session.exec(select(Study).where(col(Study.id).in_(pks))))
    studies = _Studies(session, actor, found, study_uid is not None)
    required = [*_INSTANCE_REQUIRED]
    if series_uid is None:
        required += _SERIES_REQUIRED
    if study_uid is None:
        required += _STUDY_REQUIRED
    tags = _wanted(q, required, None)
    return _answer(
        q,
        [_instance_match(r, q, studies, series_uid is None, tags, base_url) for r in rows],
        more,
        None,  # an instance's own header holds any attribute
    )


def _instance_match(
    r, q: _Query, studies: _Studies, with_series: bool, tags: list[str], base_url: str
) -> dict[str, Any]:
    """An instance's match: the index's attributes (its series' too where the search was
    not within one series, its study's where not within one study), the required ones from
    its header and those ``includefield`` asks for (``tags``; ``all``: its whole header, bulk
    values by URI), the study's patient and study attributes as the index holds them."""
    study_uid = studies.by_pk[r.study_pk].study_instance_uid
    url = (
        dicomweb.instance_url(base_url, study_uid, r.series_instance_uid, r.sop_instance_uid)
        + studies.naming[r.study_pk]
    )
    series = (
        {
            "SeriesDescription": r.series_description,
            "NumberOfSeriesRelatedInstances": r.series_instances,
        }
        if with_series
        else {}
    )
    match = attributes(
        **{
            **studies.values(r.study_pk),
            **series,
            "SpecificCharacterSet": "ISO_IR 192",
            "SOPClassUID": r.sop_class_uid,
            "SOPInstanceUID": r.sop_instance_uid,
            "AvailableTransferSyntaxUID": r.transfer_syntax_uid,
            "Modality": r.modality,
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": r.series_instance_uid,
            "SeriesNumber": r.series_number,
            "InstanceNumber": r.instance_number,
            "Rows": r.rows,
            "Columns": r.columns,
            "NumberOfFrames": r.number_of_frames if (r.rows or r.columns) else None,
            "InstanceAvailability": "ONLINE",
            "RetrieveURL": url,
        }
    )
    header = {**(r.dicom_json or {}), **studies.index(r.study_pk)}
    if q.include_all:
        header = copy.deepcopy(header)
        bulk.fill_uris(header, url + "/bulk")
        return dict(sorted({**header, **match}.items()))
    return _with_header(match, header, tags)


__all__ = ["QidoResult", "search_instances", "search_series", "search_studies"]
