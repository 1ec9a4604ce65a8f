"""STOW-RS (PS3.18 §10.5): store instances a DICOMweb client sends, for the sender's centre.

The instances go through ingest as an upload without a form (the headers fill the study),
and all together or not at all, as every upload here: when one is refused, none is stored,
and the answer lists every instance as failed, the refused ones with their reason (Failure
Reason, PS3.18 Table I.2-2) and the others with "processing failure". An instance whose SOP
Instance UID the study holds already is answered as stored when it is the same data set, and
as failed (Duplicate SOP Instance) when its data differ: the stored one is kept, the rest of
the request is stored, and the answer is 202 (some stored) or 409 (none).

Failure reasons used (this server's conformance, see the README):

- ``0xC000`` cannot understand: not a DICOM file, truncated, or without the UIDs a PACS needs;
- ``0xC409`` the instance's StudyInstanceUID is not the study the request was sent to
  (``POST .../studies/{study}``);
- ``0x0110`` processing failure: the instance was fine, but another one was refused;
- ``0x0111`` duplicate SOP instance: the study holds other data under its SOP Instance UID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom.dicomjson import attributes
from pacs_app.dicom.reader import DicomHeader, InvalidDicom, read_header
from pacs_app.services import dicomweb, ingest
from pacs_app.services.authz import Actor
from pacs_app.storage import Storage

CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xC409
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111


@dataclass(frozen=True)
class StowResult:
    """The Store Instances Response (PS3.18 Annex I) as DICOM JSON; whether none of the
    instances is stored (``refused``: none was stored, or each conflicts with what the study
    holds) or only some (``partial``); ``problem`` says why, naming the first failed one."""

    response: dict[str, Any]
    refused: bool
    problem: str | None = None
    partial: bool = False


@dataclass(frozen=True)
class _Refusal:
    reason: int
    message: str


def store_instances(
    *,
    session: Session,
    actor: Actor,
    files: list[ingest.StagedFile],
    storage: Storage,
    base_url: str,
    study_uid: str | None = None,
    address: str | None = None,
) -> StowResult:
    """Store ``files`` (one DICOM instance each) for the actor's centre; with ``study_uid``,
    every instance must belong to that study.

    ``base_url`` is the DICOMweb root the Retrieve URLs are under. Raises
    :class:`PermissionDenied` unless the actor may upload for a centre (technician or
    centre user), :class:`InvalidInput` for a request without instances; ingest's errors
    (storage, a lost race) as :func:`ingest.ingest` raises them.

    Example::

        result = store_instances(session=s, actor=tech, files=[StagedFile("instance 1", p)],
                                 storage=get_storage(), base_url="https://pacs/dicomweb")
        result.response["00081199"]  # ReferencedSOPSequence: what was stored
    """
    centre = ingest.upload_centre(session, actor)
    if not files:
        raise InvalidInput("The request holds no instances: send at least one DICOM file.")
    headers: list[tuple[ingest.StagedFile, DicomHeader | None]] = []
    refusals: dict[int, _Refusal] = {}
    for number, staged in enumerate(files):
        try:
            header: DicomHeader | None = read_header(staged.path, staged.name)
        except InvalidDicom as exc:
            header = None
            refusals[number] = _Refusal(CANNOT_UNDERSTAND, exc.message)
        else:
            if study_uid is not None and header.study_instance_uid != study_uid:
                refusals[number] = _Refusal(
                    STUDY_MISMATCH,
                    f"{staged.name}: it belongs to another study than the one it was sent "
                    "to (its StudyInstanceUID differs from the request's)",
                )
        headers.append((staged, header))
    if refusals:
        return _refused(headers, refusals)
    accepted = [(staged, header) for staged, header in headers if header is not None]
    # an instance the study holds already is not stored again: answered as stored when it is
    # the same, as failed when the study holds other data under its UID
    result = ingest.store_parsed(
        session, actor, centre, accepted, ingest.StudyForm(), storage, address
    )
    conflicts = {
        (o.name, o.sop_instance_uid): o.detail for o in result.files if o.status == "conflict"
    }
    kept = [h for s, h in accepted if (s.name, h.sop_instance_uid) not in conflicts]
    failed = [h for s, h in accepted if (s.name, h.sop_instance_uid) in conflicts]
    studies = {header.study_instance_uid for header in kept}
    sequences = {
        "ReferencedSOPSequence": [
            attributes(
                ReferencedSOPClassUID=header.sop_class_uid,
                ReferencedSOPInstanceUID=header.sop_instance_uid,
                RetrieveURL=dicomweb.instance_url(
                    base_url,
                    header.study_instance_uid,
                    header.series_instance_uid,
                    header.sop_instance_uid,
                ),
            )
            for header in kept
        ],
        "FailedSOPSequence": [
            attributes(
                ReferencedSOPClassUID=header.sop_class_uid,
                ReferencedSOPInstanceUID=header.sop_instance_uid,
                FailureReason=DUPLICATE_SOP_INSTANCE,
            )
            for header in failed
        ],
    }
    response = attributes(
        RetrieveURL=f"{base_url}/studies/{studies.pop()}" if len(studies) == 1 else None,
        **{keyword: items for keyword, items in sequences.items() if items},
    )
    if not conflicts:
        return StowResult(response=response, refused=False)
    (name, _), detail = next(iter(conflicts.items()))
    others = len(conflicts) - 1
    return StowResult(
        response=response,
        refused=not kept,
        partial=bool(kept),
        problem=f"{name}: {detail}" + (f" (and {others} more not stored)" if others else ""),
    )


def _refused(
    headers: list[tuple[ingest.StagedFile, DicomHeader | None]], refusals: dict[int, _Refusal]
) -> StowResult:
    first = refusals[min(refusals)]
    failed = []
    for number, (_staged, header) in enumerate(headers):
        refusal = refusals.get(number)
        failed.append(
            attributes(
                ReferencedSOPClassUID=header.sop_class_uid if header else None,
                ReferencedSOPInstanceUID=header.sop_instance_uid if header else None,
                FailureReason=refusal.reason if refusal else PROCESSING_FAILURE,
            )
        )
    others = len(refusals) - 1
    also = f" (and {others} more refused)" if others else ""
    return StowResult(
        response=attributes(FailedSOPSequence=failed),
        refused=True,
        problem=f"{first.message}{also}; nothing of the request was stored",
    )
