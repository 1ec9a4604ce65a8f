"""DICOM Query/Retrieve for devices allowed to (PS3.4 Annex C, the Study Root and Patient Root
information models): C-FIND at the (PATIENT,) STUDY, SERIES and IMAGE levels, answered by the
QIDO-RS searches
(:mod:`pacs_app.services.qido`), so a query over DIMSE sees exactly what the device's
account sees over DICOMweb; and the files a C-GET or C-MOVE sends, by the same rules as a
WADO-RS retrieval (:func:`pacs_app.services.dicomweb.stored_files`, audited per study).

Plain Python over pydicom data sets; the listener (:mod:`pacs_app.dimse.listener`) speaks
the protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from sqlmodel import Session

from pacs_app.core.errors import InvalidInput, NotFound
from pacs_app.services import audit, dicomweb, qido
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Actor

STUDY_ROOT, PATIENT_ROOT = "STUDY_ROOT", "PATIENT_ROOT"
LEVELS = {
    STUDY_ROOT: ("STUDY", "SERIES", "IMAGE"),
    PATIENT_ROOT: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
}
# the unique keys of each level and of the levels above it (Study Root), always in an answer
UNIQUE_KEYS = {
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
# What a PATIENT level query matches and returns (the Patient module, PS3.4 C.6.1.1.2);
# another attribute asked for there is returned empty.
PATIENT_LEVEL = frozenset(
    {
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "EthnicGroup",
        "PatientComments",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    }
)
# what an identifier holds that is not an attribute to match or return
_CONTROL = {"QueryRetrieveLevel", "SpecificCharacterSet"}
MAX_MATCHES = 5000  # one C-FIND answers at most this many; a narrower query finds the rest


class IdentifierRefused(InvalidInput):
    """The identifier is not one of the information model (PS3.4 C.4.1.1.4's status A900):
    no or an unknown QueryRetrieveLevel, or not the unique keys a retrieval needs."""

    code = "identifier_refused"


def _level(identifier: Dataset, model: str) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS[model]:
        named = f"{level!r}" if level else "none"
        *others, last = LEVELS[model]
        raise IdentifierRefused(f"QueryRetrieveLevel is {named}: {', '.join(others)} or {last}")
    return level


def _unique_keys(model: str, level: str) -> tuple[str, ...]:
    if model == STUDY_ROOT:
        return UNIQUE_KEYS[level]
    return ("PatientID", *UNIQUE_KEYS.get(level, ()))


def _text(value) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _keys(identifier: Dataset) -> tuple[list[tuple[str, str]], list[str]]:
    """The identifier's matching keys (as QIDO-RS query pairs) and every attribute it asks
    to be returned, by keyword; private and sequence attributes are left out."""
    matching: list[tuple[str, str]] = []
    wanted: list[str] = []
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in _CONTROL or element.tag.is_private:
            continue
        wanted.append(keyword)
        if isinstance(element.value, DicomSequence) or element.VR == "SQ":
            continue  # sequence matching is not offered: returned if held, never matched
        value = _text(element.value).strip()
        if value and value != "*":  # "*" matches everything, as an empty value does
            matching.append((keyword, value))
    return matching, wanted


def _single(identifier: Dataset, keyword: str, level: str) -> str | None:
    """The one value of the upper level's unique key ``keyword`` (None where absent)."""
    value = _text(identifier.get(keyword, "")).strip()
    if not value or value == "*":  # universal: no value
        return None
    if "\\" in value or "*" in value or "?" in value:
        raise IdentifierRefused(f"{level} level: one {keyword}, not several or a wildcard")
    return value


@dataclass(frozen=True)
class Found:
    """A C-FIND's answers, in the order the searches give them, and whether more matched
    than one C-FIND answers (:data:`MAX_MATCHES`)."""

    matches: list[Dataset]
    cut: bool = False


def find(
    *,
    session: Session,
    actor: Actor,
    identifier: Dataset,
    ae_title: str,
    address: str | None,
    model: str = STUDY_ROOT,
) -> Found:
    """The patients, studies, series or instances ``actor`` may see that match
    ``identifier`` (a C-FIND request's, of the information ``model``), each answered with
    the attributes it asks for (empty where not held), the unique keys of its level, and
    ``ae_title`` as where to retrieve it. The query is audited (its level and how many
    matched; never a value).

    Raises :class:`IdentifierRefused` for an identifier not of the model, and
    :class:`InvalidInput` for a value that cannot match (a date that is not one).
    """
    level = _level(identifier, model)
    matching, wanted = _keys(identifier)
    returned = list(dict.fromkeys([*_unique_keys(model, level), *wanted]))
    if level == "PATIENT":
        matches, cut = _patients(session, actor, matching, returned, ae_title)
    else:
        matches, cut = _below_patients(
            session, actor, identifier, level, model, matching, returned, ae_title
        )
    audit.record(
        session,
        action=AuditAction.DICOM_QUERIED,
        actor=actor,
        address=address,
        detail={"level": level, "matches": len(matches), **({"cut": True} if cut else {})},
    )
    session.commit()
    return Found(matches, cut)


def _below_patients(
    session, actor, identifier, level, model, matching, returned, ae_title
) -> tuple[list[Dataset], bool]:
    """A STUDY, SERIES or IMAGE level query's answers, and whether they were cut."""
    patient_id = _single(identifier, "PatientID", level) if model == PATIENT_ROOT else None
    fixed: dict[str, str] = {}
    if level == "STUDY":
        search, scope = qido.search_studies, {}
    elif level == "SERIES":
        search = qido.search_series
        scope = {"study_uid": _single(identifier, "StudyInstanceUID", level)}
    else:
        search = qido.search_instances
        scope = {
            "study_uid": _single(identifier, "StudyInstanceUID", level),
            "series_uid": _single(identifier, "SeriesInstanceUID", level),
        }
        if scope["series_uid"] and not scope["study_uid"]:
            raise IdentifierRefused("IMAGE query: a SeriesInstanceUID needs its StudyInstanceUID")
    if scope.get("study_uid"):
        # the upper levels' unique keys chose the study and series: not matching keys again
        upper = ("PatientID", *UNIQUE_KEYS[level][:-1])
        matching = [(k, v) for k, v in matching if k not in upper]
        if model == PATIENT_ROOT:  # the study must be the patient's; answers name them
            owner = _patient_of(session, actor, scope["study_uid"], patient_id)
            if owner is None:
                return [], False
            fixed["PatientID"] = owner
    query = [*matching, *(("includefield", k) for k in returned)]
    matches: list[Dataset] = []
    for page in _pages(session, actor, search, query, scope):
        matches.extend(_answer(_held(m), level, returned, ae_title, fixed=fixed) for m in page)
        if len(matches) > MAX_MATCHES:
            return matches[:MAX_MATCHES], True
    return matches, False


def _held(match: dict) -> Dataset:
    """A search's match (DICOM JSON) as a data set."""
    return Dataset.from_json(match, bulk_data_uri_handler=lambda *_: b"")


def _patient_of(session, actor, study_uid: str, patient_id: str | None) -> str | None:
    """The PatientID of the study ``study_uid`` the actor may see (None where it may not,
    or where ``patient_id`` is given and the study is another patient's)."""
    query = [("StudyInstanceUID", study_uid), ("includefield", "PatientID")]
    if patient_id is not None:
        query.append(("PatientID", patient_id))
    found = qido.search_studies(session=session, actor=actor, query=query, base_url="")
    if not found.matches:
        return None
    return str(_held(found.matches[0]).get("PatientID", "") or "")


def _patients(session, actor, matching, returned, ae_title) -> tuple[list[Dataset], bool]:
    """A PATIENT level query's answers: the studies matching its patient attributes, one
    answer per patient (by PatientID; a study without one is a patient of its own), with
    the attributes of the patient's newest study and how many studies, series and
    instances the actor may see of them; and whether they were cut."""
    keys = [(k, v) for k, v in matching if k in PATIENT_LEVEL]
    asked = [k for k in returned if k in PATIENT_LEVEL]
    query = [*keys, *(("includefield", k) for k in asked)]
    patients: dict[tuple, list] = {}  # the first study's match, studies, series, instances
    cut = False
    for page in _pages(session, actor, qido.search_studies, query, {}):
        for match in page:
            held = _held(match)
            patient_id = str(held.get("PatientID", "") or "")
            key = (patient_id,) if patient_id else ("", str(held.get("StudyInstanceUID", "")))
            entry = patients.setdefault(key, [held, 0, 0, 0])
            entry[1] += 1
            entry[2] += int(held.get("NumberOfStudyRelatedSeries", 0) or 0)
            entry[3] += int(held.get("NumberOfStudyRelatedInstances", 0) or 0)
        if len(patients) > MAX_MATCHES:
            cut = True
            break
    answers = []
    for held, studies, series, instances in list(patients.values())[:MAX_MATCHES]:
        counts = {
            "NumberOfPatientRelatedStudies": str(studies),
            "NumberOfPatientRelatedSeries": str(series),
            "NumberOfPatientRelatedInstances": str(instances),
        }
        fixed = {k: v for k, v in counts.items() if k in returned}
        answers.append(_answer(held, "PATIENT", returned, ae_title, fixed, PATIENT_LEVEL))
    return answers, cut


def _pages(session, actor, search, query, scope) -> Iterator[list[dict]]:
    offset = 0
    while True:
        limit = [("limit", str(qido.MAX_LIMIT)), ("offset", str(offset))]
        try:
            result = search(
                session=session, actor=actor, query=[*query, *limit], base_url="", **scope
            )
        except NotFound:
            return  # a study or series the actor may not see matches nothing
        yield result.matches
        if not result.more:
            return
        offset += len(result.matches)


def _answer(
    held: Dataset,
    level: str,
    returned: list[str],
    ae_title: str,
    fixed: dict[str, str] | None = None,
    of_level: frozenset[str] | None = None,
) -> Dataset:
    """The answer to a match (``held``): each attribute of ``returned`` as ``fixed`` gives
    it or as held (where it is ``of_level``, when that is given), else empty."""
    answer = Dataset()
    answer.SpecificCharacterSet = "ISO_IR 192"  # the searches' text is Unicode
    answer.QueryRetrieveLevel = level
    for keyword in returned:
        tag = tag_for_keyword(keyword)
        if fixed and keyword in fixed:
            setattr(answer, keyword, fixed[keyword])
        elif keyword in held and (of_level is None or keyword in of_level):
            answer[tag] = held[keyword]
        else:  # asked for, not held: returned empty (PS3.4 C.2.2.1.3)
            vr = dictionary_VR(tag)
            answer[tag] = DataElement(tag, vr, [] if vr == "SQ" else None)
    answer.RetrieveAETitle = ae_title
    return answer


def retrieval(
    *,
    session: Session,
    actor: Actor,
    identifier: Dataset,
    address: str | None,
    destination: str | None = None,
    model: str = STUDY_ROOT,
) -> list[dicomweb.StoredFile]:
    """The stored files a C-GET or C-MOVE of ``identifier`` (of the information ``model``)
    sends: of the patients' studies the actor may see (PATIENT level), the studies (STUDY),
    the series of one study (SERIES) or the instances of one series (IMAGE) it names by
    their unique keys, in series and instance order; each study's retrieval is audited
    (with the AE title a C-MOVE sends to, its ``destination``).

    Raises :class:`IdentifierRefused` where the unique keys are missing, and
    :class:`NotFound` for a study or series the actor may not see."""
    level = _level(identifier, model)

    def listed(keyword: str) -> list[str]:
        values = [v.strip() for v in _text(identifier.get(keyword, "")).split("\\")]
        values = [v for v in values if v]
        if not values or any("*" in v or "?" in v for v in values):
            raise IdentifierRefused(f"{level} retrieval: {keyword} missing or with wildcards")
        return list(dict.fromkeys(values))

    files: list[dicomweb.StoredFile] = []
    common = {
        "session": session,
        "actor": actor,
        "address": address,
        "via": "dimse",
        "destination": destination,
    }
    if level in ("PATIENT", "STUDY"):
        if level == "PATIENT":
            study_uids = _studies_of(session, actor, listed("PatientID"))
        else:
            study_uids = listed("StudyInstanceUID")
        for study_uid in study_uids:
            files += dicomweb.stored_files(study_uid=study_uid, **common)
        return files
    study_uid = _single(identifier, "StudyInstanceUID", level)
    if study_uid is None:
        raise IdentifierRefused(f"{level} retrieval: StudyInstanceUID missing")
    if level == "SERIES":
        for series_uid in listed("SeriesInstanceUID"):
            files += dicomweb.stored_files(study_uid=study_uid, series_uid=series_uid, **common)
        return files
    series_uid = _single(identifier, "SeriesInstanceUID", level)
    if series_uid is None:
        raise IdentifierRefused("IMAGE retrieval: SeriesInstanceUID missing")
    return dicomweb.stored_files(
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uids=listed("SOPInstanceUID"),
        **common,
    )


def _studies_of(session: Session, actor: Actor, patient_ids: list[str]) -> list[str]:
    """The StudyInstanceUIDs of the studies of ``patient_ids`` the actor may see."""
    uids: list[str] = []
    for patient_id in patient_ids:
        query = [("PatientID", patient_id), ("includefield", "StudyInstanceUID")]
        for page in _pages(session, actor, qido.search_studies, query, {}):
            uids += [str(_held(match).StudyInstanceUID) for match in page]
    return list(dict.fromkeys(uids))
