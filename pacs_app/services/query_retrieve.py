"""DICOM Query/Retrieve for devices allowed to (PS3.4 Annex C, Study Root information model):
C-FIND at the STUDY, SERIES and IMAGE levels, answered by the QIDO-RS searches
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

LEVELS = ("STUDY", "SERIES", "IMAGE")
# the unique keys of each level and of the levels above it, always in an answer
UNIQUE_KEYS = {
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
# what an identifier holds that is not an attribute to match or return
_CONTROL = {"QueryRetrieveLevel", "SpecificCharacterSet"}
MAX_MATCHES = 5000  # one C-FIND answers at most this many; a narrower query finds the rest


class IdentifierRefused(InvalidInput):
    """The identifier is not one of the information model (PS3.4 C.4.1.1.4's status A900):
    no or an unknown QueryRetrieveLevel, or not the unique keys a retrieval needs."""

    code = "identifier_refused"


def _level(identifier: Dataset) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        named = f"{level!r}" if level else "none"
        raise IdentifierRefused(f"QueryRetrieveLevel is {named}: STUDY, SERIES or IMAGE")
    return level


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
    if not value:
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
    *, session: Session, actor: Actor, identifier: Dataset, ae_title: str, address: str | None
) -> Found:
    """The studies, series or instances ``actor`` may see that match ``identifier`` (a
    C-FIND request's), each answered with the attributes it asks for (empty where not
    held), the unique keys of its level, and ``ae_title`` as where to retrieve it. The query
    is audited (its level and how many matched; never a value).

    Raises :class:`IdentifierRefused` for an identifier not of the model, and
    :class:`InvalidInput` for a value that cannot match (a date that is not one).
    """
    level = _level(identifier)
    matching, wanted = _keys(identifier)
    returned = list(dict.fromkeys([*UNIQUE_KEYS[level], *wanted]))
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
        matching = [(k, v) for k, v in matching if k not in UNIQUE_KEYS[level][:-1]]
    query = [*matching, *(("includefield", k) for k in returned)]
    matches: list[Dataset] = []
    cut = False
    for page in _pages(session, actor, search, query, scope):
        matches.extend(_answer(m, level, returned, ae_title) for m in page)
        if len(matches) > MAX_MATCHES:
            matches, cut = matches[:MAX_MATCHES], True
            break
    audit.record(
        session,
        action=AuditAction.DICOM_QUERIED,
        actor=actor,
        address=address,
        detail={"level": level, "matches": len(matches), **({"cut": True} if cut else {})},
    )
    session.commit()
    return Found(matches, cut)


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


def _answer(match: dict, level: str, returned: list[str], ae_title: str) -> Dataset:
    held = Dataset.from_json(match, bulk_data_uri_handler=lambda *_: b"")
    answer = Dataset()
    answer.SpecificCharacterSet = "ISO_IR 192"  # the searches' text is Unicode
    answer.QueryRetrieveLevel = level
    for keyword in returned:
        tag = tag_for_keyword(keyword)
        if keyword in held:
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
) -> list[dicomweb.StoredFile]:
    """The stored files a C-GET or C-MOVE of ``identifier`` sends: of the studies (STUDY
    level), the series of one study (SERIES) or the instances of one series (IMAGE) it names
    by their unique keys, in series and instance order; each study's retrieval is audited
    (with the AE title a C-MOVE sends to, its ``destination``).

    Raises :class:`IdentifierRefused` where the unique keys are missing, and
    :class:`NotFound` for a study or series the actor may not see."""
    level = _level(identifier)

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
    if level == "STUDY":
        for study_uid in listed("StudyInstanceUID"):
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
