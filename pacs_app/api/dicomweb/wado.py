"""WADO-RS: metadata, instances, frames and rendered images (PS3.18 §10.4)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import Session

from pacs_app.api.deps import SIGNED_IN, SessionDep, as_actor
from pacs_app.api.dicomweb import PREFIX, base_url
from pacs_app.api.dicomweb.negotiate import accepted_frame_types, accepted_syntaxes, part_type
from pacs_app.services import dicomweb, studies
from pacs_app.storage import get_storage

router = APIRouter(prefix=PREFIX, tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
BASE = "/studies/{study}"
SERIES = BASE + "/series/{series}"
INSTANCE = SERIES + "/instances/{sop}"


def _multipart(parts: list[bytes], content_type: str, type_: str | None = None) -> Response:
    """A multipart/related answer of ``parts``, each of ``content_type``; ``type_`` is the
    whole answer's type parameter where it differs (without the part's parameters)."""
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
        body, media_type=f'multipart/related; type="{type_ or content_type}"; boundary={boundary}'
    )


def _json(body: str) -> Response:
    return Response(body, media_type=DICOM_JSON)


def _extension_json(value: Any) -> Response:
    """The answer of one of this server's JSON extensions: about one stored file, which does
    not change, so the browser may keep it."""
    return Response(
        json.dumps(value),
        media_type="application/json",
        headers={"Cache-Control": "private, max-age=3600"},
    )


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": schema,
    }


FOR_PARAM = _param(
    "for",
    "query",
    "The Study ID of the study being read, where this one is another study of its patient "
    "shown beside it (its reading radiologist may see those)",
    {"type": "string"},
)
STUDY_ID_PARAM = _param(
    "study_id",
    "query",
    "The Study ID of the study asked of, where studies of several centres that you may see "
    "have its StudyInstanceUID (without it, such a request is answered 409)",
    {"type": "string"},
)
# the query parameters that name the study asked of (study_params), not DICOM attributes
STUDY_NAMING = (FOR_PARAM["name"], STUDY_ID_PARAM["name"])
READ: dict[str, Any] = {**SIGNED_IN, "parameters": [FOR_PARAM, STUDY_ID_PARAM]}


def _negotiated(accept: str, refused: str) -> dict[str, Any]:
    """The OpenAPI extras of a read whose form the Accept header chooses: what it takes, and
    when it is answered 406."""
    return {
        **SIGNED_IN,
        "parameters": [
            FOR_PARAM,
            STUDY_ID_PARAM,
            _param("Accept", "header", accept, {"type": "string"}),
        ],
        "responses": {"406": {"description": refused}},
    }


RETRIEVE = _negotiated(
    'multipart/related; type="application/dicom"; transfer-syntax=UID (several allowed); '
    "transfer-syntax=* for the files as stored; Explicit VR Little Endian where none is named",
    "no accepted transfer syntax can be made",
)

RENDERED_DOC: dict[str, Any] = {
    **SIGNED_IN,
    "parameters": [
        FOR_PARAM,
        STUDY_ID_PARAM,
        _param(
            "window",
            "query",
            "center,width[,function]: the function linear, linear-exact or sigmoid "
            "(without it, the image's own)",
            {"type": "string"},
        ),
        _param("quality", "query", "JPEG quality, 1-100 (90)", {"type": "integer"}),
        _param("accept", "query", "image/jpeg (default) or image/png", {"type": "string"}),
        _param(
            "overlays",
            "query",
            "true (default): overlay planes burnt in; false: without them (this server's "
            "extension, for a viewer that draws them itself)",
            {"type": "boolean"},
        ),
        _param("Accept", "header", "image/jpeg (default) or image/png", {"type": "string"}),
    ],
    "responses": {"200": {"content": {"image/jpeg": {}, "image/png": {}}}},
}


def comparing_param(request: Request) -> str | None:
    """``?for={study_id}``: the study being read, where this one is shown beside it (another
    study of its patient, which its reading radiologist may see for that)."""
    return studies.named_study_id(request.query_params.get(FOR_PARAM["name"]))


def study_params(request: Request) -> dict[str, str | None]:
    """The study a request asks of, beyond its UID: ``comparing`` (``?for=``, see
    :func:`comparing_param`) and ``study_id`` (``?study_id=``: its Study ID, which the viewer
    always sends, where several studies the user may see have the UID)."""
    return {
        "comparing": comparing_param(request),
        "study_id": studies.named_study_id(request.query_params.get(STUDY_ID_PARAM["name"])),
    }


def _metadata(request, session, **uids) -> Awaitable[Response]:
    chosen, base = study_params(request), base_url(request)
    return as_actor(
        request,
        session,
        lambda s, actor, address: _json(
            dicomweb.metadata(
                session=s,
                actor=actor,
                address=address,
                base_url=base,
                **chosen,
                **uids,
            )
        ),
    )


@router.get(BASE + "/metadata", summary="Study metadata (DICOM JSON)", openapi_extra=READ)
async def study_metadata(study: str, request: Request, session: SessionDep) -> Response:
    return await _metadata(request, session, study_uid=study)


@router.get(SERIES + "/metadata", summary="Series metadata (DICOM JSON)", openapi_extra=READ)
async def series_metadata(
    study: str, series: str, request: Request, session: SessionDep
) -> Response:
    return await _metadata(request, session, study_uid=study, series_uid=series)


@router.get(INSTANCE + "/metadata", summary="Instance metadata (DICOM JSON)", openapi_extra=READ)
async def instance_metadata(
    study: str, series: str, sop: str, request: Request, session: SessionDep
) -> Response:
    return await _metadata(request, session, study_uid=study, series_uid=series, sop_uid=sop)


def _found(request, session, actor, study, series, sop):
    return dicomweb.instance(
        session=session,
        actor=actor,
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        storage=get_storage(),
        **study_params(request),
    )


@router.get(
    INSTANCE,
    summary="One instance (multipart/related; application/dicom), in a transfer syntax the "
    "Accept header takes",
    openapi_extra=RETRIEVE,
)
async def retrieve_instance(
    study: str, series: str, sop: str, request: Request, session: SessionDep
) -> Response:
    def work(s, actor, address):
        accepted = accepted_syntaxes(request.headers.get("accept"))
        syntax, body = dicomweb.retrieve_instance(
            session=s,
            actor=actor,
            found=_found(request, s, actor, study, series, sop),
            sop_uid=sop,
            accepted=accepted,
            address=address,
            comparing=comparing_param(request),
        )
        return _multipart([body], part_type(syntax), "application/dicom")

    return await as_actor(request, session, work)


FRAMES_DOC = _negotiated(
    'multipart/related; type="application/octet-stream" (the default): uncompressed little '
    "endian, native colour and single-bit frames as stored, compressed colour decoded to "
    "interleaved RGB; with transfer-syntax=* the frames as stored "
    "(compressed ones as encoded), as the metadata describes them; "
    'type="image/jpeg" (jls, jp2, jpx, jphc, jxl, dicom-rle) or "image/*": compressed frames '
    "as stored where their syntax is that. Each part's Content-Type names its transfer syntax",
    "the frames are stored in another compressed syntax",
)


@router.get(
    INSTANCE + "/frames/{frames}",
    summary="Frames, uncompressed or as stored, in a form the Accept header takes",
    openapi_extra=FRAMES_DOC,
)
async def retrieve_frames(
    study: str, series: str, sop: str, frames: str, request: Request, session: SessionDep
) -> Response:
    def respond(_s, found):
        indexes = dicomweb.parse_frame_numbers(frames, found.frames)
        wanted = accepted_frame_types(request.headers.get("accept"))
        part, bodies = dicomweb.frames(found, indexes, wanted)
        return _multipart(bodies, part, part.split(";")[0])

    return await _of_instance(request, session, (study, series, sop), respond)


@router.get(
    INSTANCE + "/bulk/{path:path}",
    summary="A value the metadata leaves out, by its BulkDataURI (multipart/related; "
    "application/octet-stream)",
    description=(
        "Binary values over 1 KiB (overlay planes, waveform samples, ICC profiles, "
        "encapsulated documents) are left out of the metadata, which gives each a "
        "BulkDataURI ending in its path: a tag, or tags and item numbers (from 1) down "
        "sequences, e.g. 60003000 or 54000100/1/54001010. The value comes in little endian "
        "byte order. 422 for a path that names no bulk data of the instance."
    ),
    openapi_extra=READ,
)
async def bulk_data(
    study: str, series: str, sop: str, path: str, request: Request, session: SessionDep
) -> Response:
    return await _of_instance(
        request,
        session,
        (study, series, sop),
        lambda _s, found: _multipart([dicomweb.bulk_data(found, path)], "application/octet-stream"),
    )


@router.get(
    INSTANCE + "/frames/{frame}/overlays",
    summary="The overlay planes drawn over one frame (this server's extension, JSON)",
    description=(
        "Each plane: group, type (G graphics, R region of interest), label, description, "
        "rows, columns, origin (1-based image row and column of its top left bit) and bits "
        "(base64 of the plane's bits, row by row, 8 to a byte, the first in the most "
        "significant bit). An empty list where the frame has none."
    ),
    openapi_extra=READ,
)
async def frame_overlays(
    study: str, series: str, sop: str, frame: str, request: Request, session: SessionDep
) -> Response:
    def answer(_s, found):
        return dicomweb.frame_overlays(found, dicomweb.parse_frame_number(frame, found.frames))

    return await _about_instance(request, session, (study, series, sop), answer)


@router.get(
    INSTANCE + "/structured-report",
    summary="A structured report's content tree (this server's extension, JSON)",
    description=(
        "For an SR instance (any SR storage class, Key Object Selection included): the "
        "document's title, completion and verification flags, verifying observers and its "
        "content items in document order, each with its position (1.2.3, as by-reference "
        "relationships number them), depth, relationship, value type, concept name, value as "
        "text and, for references to objects of this study, the series that holds them; an "
        "image item with a presentation state of this study, how that state shows it "
        "(shown_as: rotation, flipped, window, and the marks it draws on it). "
        "422 for an instance that is not a structured report."
    ),
    openapi_extra=READ,
)
async def structured_report(
    study: str, series: str, sop: str, request: Request, session: SessionDep
) -> Response:
    return await _about_instance(
        request,
        session,
        (study, series, sop),
        lambda s, found: dicomweb.structured_report(s, found, get_storage()),
    )


@router.get(
    INSTANCE + "/waveform",
    summary="A waveform's channels, such as an ECG's leads (this server's extension, JSON)",
    description=(
        "For an instance with a Waveform Sequence (ECG, hemodynamic, respiratory...): the "
        "document's kind, its acquisition time, each multiplex group (label, sampling "
        "frequency in Hz, samples per channel) with its channels (label, UCUM units, the "
        "samples as stored, and factor and baseline: a sample's value in its units is "
        "sample * factor + baseline), the device's statements and measurements, and what "
        "could not be read. 422 for an instance that has no waveform."
    ),
    openapi_extra=READ,
)
async def waveform(
    study: str, series: str, sop: str, request: Request, session: SessionDep
) -> Response:
    return await _about_instance(
        request, session, (study, series, sop), lambda _s, found: dicomweb.waveform_channels(found)
    )


def _of_instance(request, session, uids, respond) -> Awaitable[Response]:
    """``respond(session, found)``'s answer about one instance the actor may see."""

    def work(s, actor, _address):
        return respond(s, _found(request, s, actor, *uids))

    return as_actor(request, session, work)


def _about_instance(request, session, uids, answer) -> Awaitable[Response]:
    """One of this server's JSON extensions about one instance: ``answer(session, found)``
    for an instance the actor may see."""
    return _of_instance(request, session, uids, lambda s, found: _extension_json(answer(s, found)))


def _render(request: Request, session: Session, study, series, sop, frame: str | None):
    query = request.query_params
    window = query.get("window")
    accept = query.get("accept") or request.headers.get("accept")
    quality = dicomweb.parse_quality(query.get("quality"))
    overlays = dicomweb.parse_overlays(query.get("overlays"))

    def work(s, actor, _address):
        found = _found(request, s, actor, study, series, sop)
        index = dicomweb.parse_frame_number(frame, found.frames) if frame else 0
        fmt = "png" if accept and "image/png" in accept else "jpeg"
        body = dicomweb.rendered(
            found,
            frame=index,
            window=dicomweb.parse_window(window),
            fmt=fmt,
            quality=quality,
            overlays=overlays,
        )
        return Response(
            body, media_type=f"image/{fmt}", headers={"Cache-Control": "private, max-age=3600"}
        )

    return as_actor(request, session, work)


@router.get(
    INSTANCE + "/rendered",
    summary="The first frame rendered as JPEG or PNG",
    openapi_extra=RENDERED_DOC,
)
async def rendered_instance(
    study: str, series: str, sop: str, request: Request, session: SessionDep
) -> Response:
    return await _render(request, session, study, series, sop, None)


@router.get(
    INSTANCE + "/frames/{frame}/rendered",
    summary="One frame rendered as JPEG or PNG",
    openapi_extra=RENDERED_DOC,
)
async def rendered_frame(
    study: str, series: str, sop: str, frame: str, request: Request, session: SessionDep
) -> Response:
    return await _render(request, session, study, series, sop, frame)
