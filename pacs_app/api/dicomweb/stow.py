"""STOW-RS (PS3.18 §10.5): ``POST /dicomweb/studies`` and ``POST /dicomweb/studies/{study}``.

The body (``multipart/related; type="application/dicom"``) is read as ``POST /studies`` reads
its own (:mod:`pacs_app.api.multipart`): each instance straight into the staging folder, under
the same size limit. An ingest process (:mod:`pacs_app.api.ingest_pool`) or, where none runs,
the thread pool then checks the token and stores them through
:func:`pacs_app.services.stow.store_instances`: 200 with the stored instances, or 409 with
every instance failed (nothing is stored when one is refused) and a ``Warning`` naming why;
202 when some were stored and others not, as their SOP Instance UIDs are stored with other
data (a ``Warning`` names the first).
"""

from __future__ import annotations

import secrets

import orjson
from fastapi import APIRouter, Request, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from pacs_app.api import ingest_pool, multipart
from pacs_app.api.deps import SIGNED_IN, SessionDep, address_of, as_actor, bearer_token
from pacs_app.api.dicomweb import PREFIX, base_url, warning
from pacs_app.api.dicomweb.wado import BASE, DICOM_JSON
from pacs_app.config import settings
from pacs_app.services import auth, stow, uploads
from pacs_app.storage import get_storage

router = APIRouter(prefix=PREFIX, tags=["dicomweb"])

STORE = {
    **SIGNED_IN,
    "requestBody": {
        "required": True,
        "description": "DICOM instances, one a part; stored for the sender's centre",
        "content": {
            'multipart/related; type="application/dicom"': {
                "schema": {"type": "string", "format": "binary"}
            }
        },
    },
    "responses": {
        "200": {
            "description": "Every instance was stored (ReferencedSOPSequence lists them)",
            "content": {DICOM_JSON: {}},
        },
        "202": {
            "description": "Some instances were stored (ReferencedSOPSequence), others not: the "
            "study holds other data under their SOP Instance UIDs (FailedSOPSequence, reason "
            "0111H; the Warning header names the first)",
            "content": {DICOM_JSON: {}},
        },
        "409": {
            "description": "An instance was refused, so none was stored, or every instance "
            "conflicts with other data stored under its SOP Instance UID (FailedSOPSequence; the "
            "Warning header says why)",
            "content": {DICOM_JSON: {}},
        },
        "415": {"description": "Not multipart/related with application/dicom parts"},
    },
}


@router.post("/studies", summary="Store instances (STOW-RS)", openapi_extra=STORE)
async def store(request: Request, session: SessionDep) -> Response:
    return await _store(request, session, None)


@router.post(BASE, summary="Store instances of one study (STOW-RS)", openapi_extra=STORE)
async def store_in_study(study: str, request: Request, session: SessionDep) -> Response:
    return await _store(request, session, study)


async def _store(request: Request, session: Session, study_uid: str | None) -> Response:
    token = bearer_token(request)
    if not auth.token_signature_valid(token):  # nothing is staged for it
        await as_actor(request, session, lambda *_: None)  # refuses it, and audits that
    files = await multipart.read_related(
        request,
        uploads.staging_root(),
        prefix=f"stow-{secrets.token_hex(8)}-",
        max_file_bytes=settings.max_upload_file_mb * 1024 * 1024,
    )
    message = {
        "kind": ingest_pool.STOW,
        "token": token,
        "address": address_of(request),
        "files": [f.as_message() for f in files],
        "study_uid": study_uid,
        "base_url": base_url(request),
    }
    pool = ingest_pool.current()
    if pool is None:
        answer = await run_in_threadpool(store_upload, session, message)
    else:
        try:
            answer = await pool.run(message)
        except BaseException:
            multipart.UploadedFile.remove(files)  # as POST /studies does
            raise
    return ingest_pool.response(answer)


def store_upload(session: Session, message: dict) -> dict:
    """Check the token and store the staged instances of a STOW-RS ``message`` (see
    :func:`_store`); the answer as an ingest process sends it back. The staged names are
    removed whatever happens."""
    files = [multipart.UploadedFile.from_message(item) for item in message["files"]]
    try:
        actor = auth.resolve_token(
            session=session, token=message["token"], address=message["address"]
        )
        result = stow.store_instances(
            session=session,
            actor=actor,
            files=[f.staged() for f in files],
            storage=get_storage(),
            base_url=message["base_url"],
            study_uid=message["study_uid"],
            address=message["address"],
        )
    finally:
        multipart.UploadedFile.remove(files)
    headers = {"content-type": DICOM_JSON}
    if result.problem:
        headers["Warning"] = warning(result.problem)
    return {
        "status": 409 if result.refused else 202 if result.partial else 200,
        "body": orjson.dumps(result.response).decode(),
        "headers": headers,
    }
