"""Build the FastAPI app that Reflex mounts with ``api_transformer``.

Domain errors become HTTP answers here, in one place.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from pacs_app.api.compression import JsonCompression
from pacs_app.api.deps import get_session
from pacs_app.api.dicomweb import qido, stow, wado
from pacs_app.api.routes import ai as ai_routes
from pacs_app.api.routes import auth as auth_routes
from pacs_app.api.routes import billing as billing_routes
from pacs_app.api.routes import dicom as dicom_routes
from pacs_app.api.routes import studies as studies_routes
from pacs_app.api.routes import uploads as uploads_routes
from pacs_app.api.routes import users as users_routes
from pacs_app.api.routes import workflow as workflow_routes
from pacs_app.core.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    InvalidInput,
    NotAcceptable,
    NotFound,
    PermissionDenied,
    StorageUnavailable,
    TooLarge,
    TooManyAttempts,
    UnsupportedMediaType,
)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    AuthenticationFailed: 401,
    TooManyAttempts: 429,
    PermissionDenied: 403,
    NotFound: 404,
    NotAcceptable: 406,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    StorageUnavailable: 503,
}


def _status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def error_answer(exc: DomainError) -> tuple[int, dict[str, str], dict[str, str]]:
    """The HTTP answer to a domain error: status, JSON body, headers."""
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return _status_of(exc), {"detail": exc.message, "code": exc.code}, headers


async def _domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, body, headers = error_answer(exc)
    return JSONResponse(body, status_code=status, headers=headers)


UPLOAD = "/studies"  # POST: studies_routes.upload
log = logging.getLogger("pacs_app.api")


class ResponseAborted(RuntimeError):
    """A request failed after its response began; its cause is logged, not carried."""


class PacsApi(FastAPI):
    """FastAPI, with an express lane for ``POST /studies``.

    A modality or another PACS sends one instance per request, hundreds a second. FastAPI's
    layers (its middleware, the router's walk through the routes, the dependency solver) cost
    a tenth of such a request's CPU, so this one route is called from here, with the same
    session and the same answers to domain errors. Its OpenAPI entry stays declared on the
    router, which would serve it the same way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = ended = False

        async def tracked(message: Message) -> None:
            nonlocal started, ended
            started = started or message["type"] == "http.response.start"
            ended = message["type"] == "http.response.body" and not message.get("more_body")
            await send(message)

        express = scope["method"] == "POST" and _route_path(scope) == UPLOAD
        try:
            if express:
                await self._upload(scope, receive, tracked)
            else:
                await super().__call__(scope, receive, tracked)
        except Exception as exc:
            # Logged here, by route and without its message (core.logs), rather than by the
            # server, which would print the message: it can quote patient data (a database's
            # DETAIL), as can the path and the query.
            route = UPLOAD if express else getattr(scope.get("route"), "path", "(no route)")
            log.error("%s %s failed", scope["method"], route, exc_info=exc)
            if ended:
                return  # answered already (FastAPI's error middleware sends a 500)
            if started:
                # Part of the answer is out: the server must cut the connection (a body ended
                # cleanly here would pass a cut-off file for a whole one). It is told so
                # without the cause.
                raise ResponseAborted(
                    f"{scope['method']} {route} failed after its answer began (logged)"
                ) from None
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._session() as session:
            try:
                response = await studies_routes.upload(Request(scope, receive), session)
            except DomainError as exc:
                response = await _domain_error_handler(Request(scope), exc)
        await response(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Session]:
        """The request's session, from ``get_session`` or what overrides it (tests)."""
        provider = self.dependency_overrides.get(get_session, get_session)
        if inspect.isasyncgenfunction(provider):
            async with contextlib.asynccontextmanager(provider)() as session:
                yield session
        else:
            with contextlib.contextmanager(provider)() as session:
                yield session


def _route_path(scope: Scope) -> str:
    """The path the routes see: without the prefix the app is mounted (or proxied) under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def build_api() -> FastAPI:
    api = PacsApi(
        title="PACS API",
        summary="Teleradiology PACS: authentication, studies, reports, billing.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.add_exception_handler(DomainError, _domain_error_handler)
    api.add_middleware(JsonCompression)
    # Routes are matched in order, one by one: WADO-RS first, as it serves every image a
    # viewer shows (the others are requested far less often).
    api.include_router(wado.router)
    api.include_router(qido.router)
    api.include_router(stow.router)
    api.include_router(auth_routes.router)
    api.include_router(users_routes.router)
    api.include_router(studies_routes.router)
    api.include_router(uploads_routes.router)
    api.include_router(workflow_routes.router)
    api.include_router(ai_routes.router)
    api.include_router(billing_routes.router)
    api.include_router(dicom_routes.router)

    @api.get("/health", tags=["system"], summary="Liveness check")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return api
