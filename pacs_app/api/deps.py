"""Request dependencies: a database session and the authenticated actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from pacs_app.core.db import get_engine
from pacs_app.services import auth
from pacs_app.services.authz import Actor

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


AddressDep = Annotated[str | None, Depends(client_address)]


def get_current_actor(session: SessionDep, token: TokenDep, address: AddressDep) -> Actor:
    return auth.resolve_token(session=session, token=token, address=address)


CurrentActor = Annotated[Actor, Depends(get_current_actor)]
