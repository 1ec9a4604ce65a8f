"""`/users` and `/centres`: account administration, scoped by the domain layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.models import Currency, Role
from pacs_app.services import users
from pacs_app.services.dto import CentrePublic, Page, UserPublic

router = APIRouter(tags=["users"])


class UserCreate(BaseModel):
    username: str
    password: str = Field(min_length=1)
    role: Role
    centre_id: int | None = None
    email: str | None = None
    full_name: str | None = None


class CentreCreate(BaseModel):
    name: str
    code: str
    default_currency: Currency = Currency.USD


@router.get("/users", response_model=Page[UserPublic], summary="Users the caller may see")
def list_users(
    actor: CurrentActor,
    session: SessionDep,
    q: Annotated[str | None, Query(description="Search username, name or e-mail")] = None,
    role: Role | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[UserPublic]:
    return users.list_users(
        session=session, actor=actor, search=q, role=role, page=page, page_size=page_size
    )


@router.post("/users", response_model=UserPublic, status_code=201, summary="Create a user")
def create_user(
    body: UserCreate, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> UserPublic:
    return users.create_user(session=session, actor=actor, address=address, **body.model_dump())


@router.post(
    "/users/{user_id}/deactivate",
    response_model=UserPublic,
    summary="Deactivate a user (their tokens stop working)",
)
def deactivate_user(
    user_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> UserPublic:
    return users.set_active(
        session=session, actor=actor, user_id=user_id, active=False, address=address
    )


@router.post("/users/{user_id}/activate", response_model=UserPublic, summary="Reactivate a user")
def activate_user(
    user_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> UserPublic:
    return users.set_active(
        session=session, actor=actor, user_id=user_id, active=True, address=address
    )


@router.get("/centres", response_model=list[CentrePublic], summary="Centres the caller may see")
def list_centres(actor: CurrentActor, session: SessionDep) -> list[CentrePublic]:
    return users.list_centres(session=session, actor=actor)


@router.post(
    "/centres", response_model=CentrePublic, status_code=201, summary="Create a centre (admin)"
)
def create_centre(
    body: CentreCreate, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> CentrePublic:
    return users.create_centre(
        session=session,
        actor=actor,
        name=body.name,
        code=body.code,
        currency=body.default_currency,
        address=address,
    )
