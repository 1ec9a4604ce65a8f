"""`/studies`: upload, list, detail, original-file download, delete."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from pacs_app.api import ingest_pool, multipart
from pacs_app.api.deps import (
    SIGNED_IN,
    AddressDep,
    CurrentActor,
    SessionDep,
    address_of,
    as_actor,
    bearer_token,
)
from pacs_app.config import settings
from pacs_app.core.errors import InvalidInput
from pacs_app.models import Priority, StudyStatus
from pacs_app.services import auth, ingest, studies, uploads
from pacs_app.services.dto import StudyDetail, StudyPage, StudyPublic
from pacs_app.storage import get_storage

router = APIRouter(prefix="/studies", tags=["studies"])


class UploadResponse(BaseModel):
    study_id: str | None  # set when the upload made or extended exactly one study
    studies: list[StudyPublic]
    files: list[ingest.FileOutcome]
    stored: int
    duplicates: int
    conflicts: int = 0  # files not stored: the study holds other data under their SOP UIDs


def form_from_fields(**fields: str | None) -> ingest.StudyForm:
    """Validate the upload form; a bad field is an InvalidInput naming it."""
    try:
        return ingest.StudyForm(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(message if field in message else f"{field}: {message}") from exc


FORM_FIELDS = (
    "patient_name",
    "patient_id",
    "patient_age",
    "patient_sex",
    "modality",
    "body_part",
    "clinical_notes",
    "priority",
)
UPLOAD_DOC = {
    **SIGNED_IN,
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "DICOM files or zip archives of them",
                        },
                        "patient_age": {"type": "string", "description": "years, e.g. 45, or 045Y"},
                        "patient_sex": {"type": "string", "description": "M, F or O"},
                        "priority": {"type": "string", "enum": [p.value for p in Priority]},
                        **{
                            name: {"type": "string"}
                            for name in FORM_FIELDS
                            if name not in ("patient_age", "patient_sex", "priority")
                        },
                    },
                }
            }
        },
    },
}


@router.post(
    "",
    response_model=UploadResponse,
    status_code=201,
    summary="Upload DICOM files (or zips of them) as one or more studies",
    responses={
        401: {"description": "Not signed in"},
        403: {"description": "Not a technician or centre user"},
        422: {"description": "A file or a form field was refused; nothing was stored"},
    },
    openapi_extra=UPLOAD_DOC,
)
async def upload(request: Request, session: SessionDep) -> Response:
    """The body is read as it arrives, each file straight into the staging folder under a
    name of its own, hashed on the way (see :mod:`pacs_app.api.multipart`); then the token
    is checked and the files ingested in one step (:func:`ingest_upload`), by one of the
    ingest processes (:mod:`pacs_app.api.ingest_pool`) or, where none runs, in the thread
    pool."""
    token = bearer_token(request)
    if not auth.token_signature_valid(token):  # nothing is staged for it
        await as_actor(request, session, lambda *_: None)  # refuses it, and audits that
    form = await multipart.read_form(
        request,
        uploads.staging_root(),
        prefix=f"post-{secrets.token_hex(8)}-",
        file_field="files",
        text_fields=set(FORM_FIELDS),
        max_file_bytes=settings.max_upload_file_mb * 1024 * 1024,
    )
    address = address_of(request)
    pool = ingest_pool.current()
    if pool is None:
        body = await run_in_threadpool(
            ingest_upload, session, token, address, form.files, form.fields
        )
        return Response(body, status_code=201, media_type="application/json")
    try:
        answer = await pool.run(
            {
                "token": token,
                "address": address,
                "files": [f.as_message() for f in form.files],
                "fields": form.fields,
            }
        )
    except BaseException:
        # The child stopped, or the client went away (then the child may still be at work:
        # what it has not linked yet fails cleanly, and nothing of the upload is kept).
        multipart.UploadedFile.remove(form.files)
        raise
    return ingest_pool.response(answer)


def ingest_upload(
    session: Session,
    token: str | None,
    address: str | None,
    files: list[multipart.UploadedFile],
    fields: dict[str, str],
) -> str:
    """Check the token, ingest the staged files and answer with the upload's JSON; the
    staged names are removed whatever happens (ingest has hard-linked what it stored)."""
    try:
        actor = auth.resolve_token(session=session, token=token, address=address)
        result = ingest.ingest(
            session=session,
            actor=actor,
            files=[f.staged() for f in files],
            form=form_from_fields(**fields),
            storage=get_storage(),
            address=address,
        )
    finally:
        multipart.UploadedFile.remove(files)
    return UploadResponse.model_construct(
        study_id=result.study_id,
        studies=result.studies,
        files=result.files,
        stored=result.stored,
        duplicates=result.duplicates,
        conflicts=result.conflicts,
    ).model_dump_json()


@router.get("", response_model=StudyPage, summary="Studies the caller may see")
def list_studies(
    actor: CurrentActor,
    session: SessionDep,
    status: StudyStatus | None = None,
    priority: Priority | None = None,
    modality: str | None = None,
    centre_id: int | None = None,
    date_from: Annotated[date | None, Query(description="received on or after")] = None,
    date_to: Annotated[date | None, Query(description="received on or before")] = None,
    q: Annotated[str | None, Query(description="patient name, patient ID or Study ID")] = None,
    patient_id: Annotated[str | None, Query(description="exact patient ID")] = None,
    sort: studies.SortKey = studies.SortKey.RECEIVED,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
) -> StudyPage:
    filters = studies.StudyFilters(
        status=status,
        priority=priority,
        modality=modality,
        centre_id=centre_id,
        received_from=date_from,
        received_to=date_to,
        q=q,
        patient_id=patient_id,
    )
    return studies.list_studies(
        session=session,
        actor=actor,
        filters=filters,
        sort=sort,
        descending=order == "desc",
        cursor=cursor,
        limit=limit,
    )


@router.get("/{study_id}", response_model=StudyDetail, summary="One study, with its series")
def get_study(
    study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> StudyDetail:
    return studies.get_study(session=session, actor=actor, study_id=study_id, address=address)


@router.get(
    "/{study_id}/instances/{number}/file",
    summary="Download an original DICOM file",
    response_class=FileResponse,
)
def instance_file(
    study_id: str, number: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> FileResponse:
    found = studies.instance_file(
        session=session,
        actor=actor,
        study_id=study_id,
        number=number,
        storage=get_storage(),
        address=address,
    )
    return FileResponse(found.path, media_type="application/dicom", filename=found.filename)


@router.delete(
    "/{study_id}",
    status_code=204,
    summary="Delete a study and its files (admin; confirm=<Study ID>)",
)
def delete_study(
    study_id: str,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
    confirm: Annotated[str, Query(description="repeat the Study ID")] = "",
) -> None:
    studies.delete_study(
        session=session,
        actor=actor,
        study_id=study_id,
        confirm=confirm,
        storage=get_storage(),
        address=address,
    )
