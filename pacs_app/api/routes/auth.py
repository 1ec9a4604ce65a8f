"""`/auth`: OAuth2 password sign-in, the current user, sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep, TokenDep
from pacs_app.config import settings
from pacs_app.services import auth
from pacs_app.services.dto import UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Sign in (OAuth2 password form) and get a bearer token",
    responses={
        401: {"description": "Wrong credentials or inactive account"},
        429: {"description": "Too many failed sign-ins"},
    },
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    address: AddressDep,
) -> TokenResponse:
    issued = auth.authenticate(
        session=session, username=form.username, password=form.password, address=address
    )
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=settings.access_token_expire_minutes * 60,
    )


@router.get("/me", response_model=UserPublic, summary="The signed-in user")
def me(actor: CurrentActor, session: SessionDep) -> UserPublic:
    return auth.current_user(session=session, actor=actor)


@router.post("/logout", status_code=204, summary="Revoke the bearer token")
def logout(actor: CurrentActor, session: SessionDep, token: TokenDep, address: AddressDep) -> None:
    auth.sign_out(session=session, token=token, address=address)
