"""`/uploads`: batches for the web uploader (one request per file, streamed to disk).

Open a batch with the form's metadata, PUT each file's raw bytes (the answer says whether it
is acceptable), then commit: everything is ingested, or nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlmodel import Session

from pacs_app.api import ingest_pool
from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep, bearer_token
from pacs_app.api.routes.studies import UploadResponse, form_from_fields
from pacs_app.core.fileio import start_writeback
from pacs_app.models import Priority
from pacs_app.services import uploads
from pacs_app.services.authz import Actor
from pacs_app.storage import get_storage

router = APIRouter(prefix="/uploads", tags=["uploads"])


class BatchOpen(BaseModel):
    patient_name: str | None = None
    patient_id: str | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    modality: str | None = None
    body_part: str | None = None
    clinical_notes: str | None = None
    priority: Priority = Priority.ROUTINE


class BatchOpened(BaseModel):
    batch_id: str


@router.post("", response_model=BatchOpened, status_code=201, summary="Open an upload batch")
def open_batch(body: BatchOpen, actor: CurrentActor, session: SessionDep) -> BatchOpened:
    form = form_from_fields(**body.model_dump(mode="json"))
    return BatchOpened(batch_id=uploads.open_batch(session=session, actor=actor, form=form))


@router.put(
    "/{batch_id}/files",
    response_model=uploads.FileCheck,
    summary="Add one file (raw bytes in the body) to a batch",
)
async def add_file(
    batch_id: str,
    request: Request,
    actor: CurrentActor,
    name: Annotated[str, Query(max_length=255)],
) -> uploads.FileCheck:
    slot = await run_in_threadpool(uploads.reserve_file, actor=actor, batch_id=batch_id, name=name)
    size = 0
    with slot.path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > slot.limit_bytes:
                out.close()
                raise uploads.too_large(slot)
            out.write(chunk)
        start_writeback(out)  # the commit's fsyncs then find it written
    return await run_in_threadpool(uploads.finish_file, actor=actor, slot=slot)


@router.post(
    "/{batch_id}/commit",
    response_model=UploadResponse,
    status_code=201,
    summary="Ingest the batch: every file is stored, or none",
)
async def commit(
    batch_id: str,
    request: Request,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> Response:
    """Every file of the batch is stored in one step, or none is (a refused file names
    itself in the answer); the staged files are then discarded."""
    # An ingest process (pacs_app.api.ingest_pool) does it where they run: a batch of a few
    # thousand slices is seconds of Python, which in the web process would slow every other
    # request (the viewers') for as long. The child checks the token again, as for
    # POST /studies; the check above answers a bad one before anything is sent to it.
    pool = ingest_pool.current()
    if pool is None:
        body = await run_in_threadpool(commit_batch, session, actor, batch_id, address)
        return Response(body, status_code=201, media_type="application/json")
    answer = await pool.run(
        {
            "kind": ingest_pool.BATCH,
            "token": bearer_token(request),
            "address": address,
            "batch_id": batch_id,
        }
    )
    return ingest_pool.response(answer)


def commit_batch(session: Session, actor: Actor, batch_id: str, address: str | None) -> str:
    """Ingest the batch; the answer's JSON (an :class:`UploadResponse`)."""
    result = uploads.commit(
        session=session, actor=actor, batch_id=batch_id, storage=get_storage(), address=address
    )
    return UploadResponse(study_id=result.study_id, **result.model_dump()).model_dump_json()


@router.delete("/{batch_id}", status_code=204, summary="Discard a batch")
def discard(batch_id: str, actor: CurrentActor) -> None:
    uploads.discard(actor=actor, batch_id=batch_id)
