"""QIDO-RS searches (PS3.18 §10.6) and WADO-RS retrieval of whole studies and series (§10.4).

The routes are thin: :mod:`pacs_app.services.qido` matches and authorizes;
:func:`pacs_app.services.dicomweb.stored_files` lists what a retrieval streams, each file in
a transfer syntax the client accepts (:mod:`pacs_app.api.dicomweb.negotiate`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from pacs_app.api.deps import SIGNED_IN, SessionDep, as_actor
from pacs_app.api.dicomweb import PREFIX, base_url, warning
from pacs_app.api.dicomweb.negotiate import accepted_syntaxes, part_type
from pacs_app.api.dicomweb.wado import (
    BASE,
    DICOM_JSON,
    FOR_PARAM,
    RETRIEVE,
    SERIES,
    STUDY_ID_PARAM,
    STUDY_NAMING,
    study_params,
)
from pacs_app.services import dicomweb, qido
from pacs_app.storage import Storage, get_storage

router = APIRouter(prefix=PREFIX, tags=["dicomweb"])

_QIDO_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
    for name, description in (
        ("limit", f"at most this many matches ({qido.DEFAULT_LIMIT}; up to {qido.MAX_LIMIT})"),
        ("offset", "skip this many matches"),
        (
            "{attribute}",
            "a matching key: keyword or tag, e.g. PatientID=PID-001, StudyDate="
            "20260101-20260131, PatientName=DOE*, ModalitiesInStudy=CT; a search of series "
            "or instances in every study matches the study's keys too, and one of instances "
            "the series' (Modality, SeriesNumber, SeriesDescription, SeriesInstanceUID)",
        ),
    )
]
SEARCH: dict[str, Any] = {
    **SIGNED_IN,
    "parameters": _QIDO_PARAMS,
    "responses": {"200": {"content": {DICOM_JSON: {}}}},
}
SEARCH_IN_STUDY: dict[str, Any] = {
    **SEARCH,
    "parameters": [FOR_PARAM, STUDY_ID_PARAM, *_QIDO_PARAMS],
}


def _answer(result: qido.QidoResult) -> Response:
    warnings = []
    if result.more:
        warnings.append(warning("There are additional results that can be requested"))
    if result.ignored:
        warnings.append(
            warning(f"The following matching keys are not supported: {', '.join(result.ignored)}")
        )
    if result.not_included:
        warnings.append(
            warning(
                "The following includefield attributes are not returned at this level: "
                + ", ".join(result.not_included)
            )
        )
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    return Response(orjson.dumps(result.matches), media_type=DICOM_JSON, headers=headers)


def _query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in STUDY_NAMING]


async def _search(request: Request, session, search, **where) -> Response:
    """Answer ``search(session, actor, query, base_url, **where)`` for the request's token."""
    query, base = _query(request), base_url(request)
    return await as_actor(
        request,
        session,
        lambda s, actor, _address: _answer(
            search(session=s, actor=actor, query=query, base_url=base, **where)
        ),
    )


@router.get("/studies", summary="Search for studies (QIDO-RS)", openapi_extra=SEARCH)
async def search_studies(request: Request, session: SessionDep) -> Response:
    return await _search(request, session, qido.search_studies)


@router.get("/series", summary="Search for series in every study (QIDO-RS)", openapi_extra=SEARCH)
async def search_all_series(request: Request, session: SessionDep) -> Response:
    return await _search(request, session, qido.search_series)


@router.get(
    "/instances", summary="Search for instances in every study (QIDO-RS)", openapi_extra=SEARCH
)
async def search_all_instances(request: Request, session: SessionDep) -> Response:
    return await _search(request, session, qido.search_instances)


@router.get(
    BASE + "/series", summary="Search for a study's series (QIDO-RS)", openapi_extra=SEARCH_IN_STUDY
)
async def search_series(study: str, request: Request, session: SessionDep) -> Response:
    return await _search(
        request, session, qido.search_series, study_uid=study, **study_params(request)
    )


@router.get(
    BASE + "/instances",
    summary="Search for a study's instances (QIDO-RS)",
    openapi_extra=SEARCH_IN_STUDY,
)
async def search_study_instances(study: str, request: Request, session: SessionDep) -> Response:
    return await _search(
        request, session, qido.search_instances, study_uid=study, **study_params(request)
    )


@router.get(
    SERIES + "/instances",
    summary="Search for a series' instances (QIDO-RS)",
    openapi_extra=SEARCH_IN_STUDY,
)
async def search_series_instances(
    study: str, series: str, request: Request, session: SessionDep
) -> Response:
    return await _search(
        request,
        session,
        qido.search_instances,
        study_uid=study,
        series_uid=series,
        **study_params(request),
    )


# --- WADO-RS: a whole study or series, streamed -------------------------------------------

CHUNK = 1024 * 1024


def _stream(
    items: list[dicomweb.Outgoing], unconverted: int, storage: Storage
) -> StreamingResponse:
    """``multipart/related; type="application/dicom"``, one part per stored file, each in the
    transfer syntax its Content-Type names; a file sent as stored is read a chunk at a time
    (a study may be gigabytes), a converted one is made in memory one at a time."""
    boundary = secrets.token_hex(16).encode()

    def parts() -> Iterator[bytes]:
        for item in items:
            syntax, body = dicomweb.file_body(item, storage, CHUNK)
            yield (
                b"--" + boundary + b"\r\nContent-Type: " + part_type(syntax).encode() + b"\r\n\r\n"
            )
            yield from body
            yield b"\r\n"
        yield b"--" + boundary + b"--\r\n"

    headers = {}
    if unconverted:
        headers["Warning"] = warning(
            f"{unconverted} instance(s) could not be converted to a transfer syntax you accept "
            "and are sent as stored, each part naming its transfer syntax; ask with "
            "transfer-syntax=* to accept every stored syntax"
        )
    return StreamingResponse(
        parts(),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary.decode()}',
        headers=headers,
    )


async def _retrieve(request: Request, session, study: str, series: str | None) -> Response:
    chosen = study_params(request)

    def work(s, actor, address):
        accepted = accepted_syntaxes(request.headers.get("accept"))
        files = dicomweb.stored_files(
            session=s,
            actor=actor,
            study_uid=study,
            series_uid=series,
            address=address,
            **chosen,
        )
        return _stream(*dicomweb.outgoing(files, accepted), get_storage())

    return await as_actor(request, session, work)


@router.get(
    BASE,
    summary="A study's instances (multipart/related; application/dicom)",
    openapi_extra=RETRIEVE,
)
async def retrieve_study(study: str, request: Request, session: SessionDep) -> Response:
    return await _retrieve(request, session, study, None)


@router.get(
    SERIES,
    summary="A series' instances (multipart/related; application/dicom)",
    openapi_extra=RETRIEVE,
)
async def retrieve_series(
    study: str, series: str, request: Request, session: SessionDep
) -> Response:
    return await _retrieve(request, session, study, series)
