"""Request dependencies: a database session and the authenticated actor.

FastAPI runs every plain ``def`` dependency in its thread pool, one hop each way per request;
those that do no blocking work are ``async`` here so that a request pays for one hop to check
its token and one for its endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from pacs_app.config import settings
from pacs_app.core import net
from pacs_app.core.db import get_engine
from pacs_app.services import auth
from pacs_app.services.authz import Actor

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_session() -> AsyncIterator[Session]:
    """A session for the request. Opening one does no I/O (it connects on first use), so it
    is made here; closing one that still holds a transaction rolls it back, which is I/O and
    goes to the thread pool."""
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def address_of(request: Request) -> str | None:
    """The client's address, behind ``TRUSTED_PROXY_HOPS`` reverse proxies (see
    :mod:`pacs_app.core.net`), for throttling and the audit."""
    return net.client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        settings.trusted_proxy_hops,
    )


async def client_address(request: Request) -> str | None:
    return address_of(request)


AddressDep = Annotated[str | None, Depends(client_address)]


def get_current_actor(session: SessionDep, token: TokenDep, address: AddressDep) -> Actor:
    return auth.resolve_token(session=session, token=token, address=address)


CurrentActor = Annotated[Actor, Depends(get_current_actor)]


T = TypeVar("T")


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header (as OAuth2PasswordBearer reads it)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def as_actor(
    request: Request, session: Session, work: Callable[[Session, Actor, str | None], T]
) -> T:
    """Check the request's token and do ``work(session, actor, address)`` in one trip to the
    thread pool.

    For the routes a viewer or a modality calls hundreds of times a second: they take the
    request as it is instead of declaring the actor and each parameter as FastAPI
    dependencies, whose machinery (a thread-pool trip for the actor, another for the
    endpoint, a validation per parameter) costs more than their work. They document their
    parameters in ``openapi_extra``.
    """
    token = bearer_token(request)
    address = address_of(request)

    def run() -> T:
        actor = auth.resolve_token(session=session, token=token, address=address)
        return work(session, actor, address)

    return await run_in_threadpool(run)


# The OpenAPI security requirement of a route that checks the token itself (see as_actor).
SIGNED_IN: dict = {"security": [{"OAuth2PasswordBearer": []}]}
