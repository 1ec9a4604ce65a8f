"""Data transfer objects: what the UI and the API receive instead of table rows."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from pacs_app.models import AuditEvent, Centre, Currency, Role, User

T = TypeVar("T")


class CentrePublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    code: str
    default_currency: Currency
    is_active: bool

    @classmethod
    def of(cls, centre: Centre) -> CentrePublic:
        return cls(
            id=centre.id,
            name=centre.name,
            code=centre.code,
            default_currency=centre.default_currency,
            is_active=centre.is_active,
        )


class UserPublic(BaseModel):
    """A user as shown to others: never the password hash."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    email: str | None
    full_name: str | None
    role: Role
    centre: CentrePublic | None
    is_active: bool
    is_tele_radiologist: bool
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User, centre: Centre | None) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            centre=CentrePublic.of(centre) if centre else None,
            is_active=user.is_active,
            is_tele_radiologist=user.role is Role.RADIOLOGIST and user.centre_id is None,
            last_login_at=user.last_login_at,
        )

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class IssuedToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor_id: int | None
    username: str | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    centre_id: int | None
    address: str | None
    detail: dict | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventPublic:
        return cls.model_validate(event, from_attributes=True)
