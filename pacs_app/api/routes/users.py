"""`/users` and `/centres`: account administration, scoped by the domain layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.models import Currency, Role
from pacs_app.services import users
from pacs_app.services.dto import CentrePublic, Page, UserPublic
from pacs_app.services.users import CentreDetail

router = APIRouter(tags=["users"])


class UserCreate(BaseModel):
    username: str
    password: str = Field(min_length=1)
    role: Role
    centre_id: int | None = None
    email: str | None = None
    full_name: str | None = None


class UserUpdate(BaseModel):
    """Fields left out stay as they are; ``""`` clears the full name or the e-mail;
    ``"centre_id": null`` makes a radiologist a tele-radiologist. The username cannot change."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = None
    email: str | None = None
    role: str | None = None
    centre_id: int | None = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_password: str


class CentreCreate(BaseModel):
    name: str
    code: str
    default_currency: Currency = Currency.USD


class CentreUpdate(BaseModel):
    """Fields left out stay as they are. The code cannot change (it names the stored files)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    code: str | None = None
    default_currency: str | None = Field(default=None, description="USD, INR or AED")
    auto_release_to_pool: bool | None = Field(
        default=None, description="New studies go straight to the tele-radiology pool"
    )
    ai_auto_process: bool | None = Field(
        default=None, description="Queue an AI analysis for every uploaded study"
    )


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


@router.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    summary="Edit a user (name, e-mail; role and centre within the caller's rights)",
)
def update_user(
    user_id: int, body: UserUpdate, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> UserPublic:
    changes = body.model_dump(exclude_unset=True)
    return users.update_user(
        session=session,
        actor=actor,
        user_id=user_id,
        full_name=changes.get("full_name"),
        email=changes.get("email"),
        role=changes.get("role"),
        centre_id=changes.get("centre_id", users.KEEP),
        address=address,
    )


@router.post(
    "/users/{user_id}/password",
    response_model=UserPublic,
    summary="Reset a user's password (admin; centre manager for its technicians and doctors)",
)
def reset_password(
    user_id: int,
    body: PasswordReset,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> UserPublic:
    return users.reset_password(
        session=session,
        actor=actor,
        user_id=user_id,
        new_password=body.new_password,
        address=address,
    )


@router.get("/centres", response_model=list[CentrePublic], summary="Centres the caller may see")
def list_centres(
    actor: CurrentActor,
    session: SessionDep,
    q: Annotated[str | None, Query(description="Search name or code")] = None,
) -> list[CentrePublic]:
    return users.list_centres(session=session, actor=actor, search=q)


@router.get(
    "/centres/{centre_id}",
    response_model=CentreDetail,
    summary="A centre with its settings (admin, or the centre's own users)",
)
def get_centre(centre_id: int, actor: CurrentActor, session: SessionDep) -> CentreDetail:
    return users.get_centre(session=session, actor=actor, centre_id=centre_id)


@router.patch("/centres/{centre_id}", response_model=CentreDetail, summary="Edit a centre (admin)")
def update_centre(
    centre_id: int,
    body: CentreUpdate,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> CentreDetail:
    return users.update_centre(
        session=session,
        actor=actor,
        centre_id=centre_id,
        name=body.name,
        code=body.code,
        currency=body.default_currency,
        auto_release_to_pool=body.auto_release_to_pool,
        ai_auto_process=body.ai_auto_process,
        address=address,
    )


@router.post(
    "/centres/{centre_id}/deactivate",
    response_model=CentreDetail,
    summary="Deactivate a centre (admin): its accounts are switched off, uploads stop",
)
def deactivate_centre(
    centre_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> CentreDetail:
    return users.set_centre_active(
        session=session, actor=actor, centre_id=centre_id, active=False, address=address
    )


@router.post(
    "/centres/{centre_id}/activate",
    response_model=CentreDetail,
    summary="Reactivate a centre (admin) and the accounts its deactivation switched off",
)
def activate_centre(
    centre_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> CentreDetail:
    return users.set_centre_active(
        session=session, actor=actor, centre_id=centre_id, active=True, address=address
    )


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
