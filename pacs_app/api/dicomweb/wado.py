"""WADO-RS: metadata, instances, frames and rendered images (PS3.18 §10.4)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.services import dicomweb
from pacs_app.storage import get_storage

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
BASE = "/studies/{study}"
SERIES = BASE + "/series/{series}"
INSTANCE = SERIES + "/instances/{sop}"


def _multipart(parts: list[bytes], content_type: str) -> Response:
    boundary = secrets.token_hex(16)
    body = (
        b"".join(
            b"--"
            + boundary.encode()
            + b"\r\nContent-Type: "
            + content_type.encode()
            + b"\r\n\r\n"
            + part
            + b"\r\n"
            for part in parts
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    return Response(
        body, media_type=f'multipart/related; type="{content_type}"; boundary={boundary}'
    )


def _json(body: str) -> Response:
    return Response(body, media_type=DICOM_JSON)


@router.get(BASE + "/metadata", summary="Study metadata (DICOM JSON)")
def study_metadata(
    study: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    return _json(dicomweb.metadata(session=session, actor=actor, study_uid=study, address=address))


@router.get(SERIES + "/metadata", summary="Series metadata (DICOM JSON)")
def series_metadata(
    study: str, series: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    return _json(
        dicomweb.metadata(
            session=session, actor=actor, study_uid=study, series_uid=series, address=address
        )
    )


@router.get(INSTANCE + "/metadata", summary="Instance metadata (DICOM JSON)")
def instance_metadata(
    study: str, series: str, sop: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    return _json(
        dicomweb.metadata(
            session=session,
            actor=actor,
            study_uid=study,
            series_uid=series,
            sop_uid=sop,
            address=address,
        )
    )


def _found(session, actor, study, series, sop):
    return dicomweb.instance(
        session=session,
        actor=actor,
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        storage=get_storage(),
    )


@router.get(INSTANCE, summary="The original instance (multipart/related; application/dicom)")
def retrieve_instance(
    study: str, series: str, sop: str, actor: CurrentActor, session: SessionDep
) -> Response:
    found = _found(session, actor, study, series, sop)
    return _multipart([found.path.read_bytes()], "application/dicom")


@router.get(
    INSTANCE + "/frames/{frames}", summary="Frames as uncompressed little-endian pixel data"
)
def retrieve_frames(
    study: str, series: str, sop: str, frames: str, actor: CurrentActor, session: SessionDep
) -> Response:
    found = _found(session, actor, study, series, sop)
    indexes = dicomweb.parse_frame_numbers(frames, found.frames)
    parts = dicomweb.raw_frames(found, indexes)
    return _multipart(parts, "application/octet-stream")


def _rendered_response(
    found, frame: int, window: str | None, accept: str | None, quality: int
) -> Response:
    fmt = "png" if accept and "image/png" in accept else "jpeg"
    body = dicomweb.rendered(
        found, frame=frame, window=dicomweb.parse_window(window), fmt=fmt, quality=quality
    )
    return Response(
        body, media_type=f"image/{fmt}", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get(INSTANCE + "/rendered", summary="The first frame rendered as JPEG or PNG")
def rendered_instance(
    study: str,
    series: str,
    sop: str,
    actor: CurrentActor,
    session: SessionDep,
    window: Annotated[str | None, Query(description="center,width[,linear]")] = None,
    quality: Annotated[int, Query(ge=1, le=100)] = 90,
    accept_param: Annotated[str | None, Query(alias="accept")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    found = _found(session, actor, study, series, sop)
    return _rendered_response(found, 0, window, accept_param or accept, quality)


@router.get(INSTANCE + "/frames/{frame}/rendered", summary="One frame rendered as JPEG or PNG")
def rendered_frame(
    study: str,
    series: str,
    sop: str,
    frame: int,
    actor: CurrentActor,
    session: SessionDep,
    window: Annotated[str | None, Query(description="center,width[,linear]")] = None,
    quality: Annotated[int, Query(ge=1, le=100)] = 90,
    accept_param: Annotated[str | None, Query(alias="accept")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    found = _found(session, actor, study, series, sop)
    [index] = dicomweb.parse_frame_numbers(str(frame), found.frames)
    return _rendered_response(found, index, window, accept_param or accept, quality)
