"""Centres and user accounts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from pacs_app.models.base import enum_column, timestamp_field


class Role(StrEnum):
    ADMIN = "admin"
    CENTRE = "centre"
    TECHNICIAN = "technician"
    RADIOLOGIST = "radiologist"


class Currency(StrEnum):
    USD = "USD"
    INR = "INR"
    AED = "AED"


class Centre(SQLModel, table=True):
    __tablename__ = "centre"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    code: str = Field(max_length=16, unique=True, index=True)
    default_currency: Currency = Field(
        default=Currency.USD,
        sa_column=enum_column(Currency, "currency", 3),
    )
    is_active: bool = Field(default=True)
    # New studies go straight to the tele-radiology pool; when off, they wait in the centre's
    # own queue ("received") until a centre user assigns them or releases them to the pool.
    auto_release_to_pool: bool = Field(default=True)
    # Queue an AI analysis for every study this centre uploads (one can be asked for anyway).
    ai_auto_process: bool = Field(default=True)
    created_at: datetime = timestamp_field()


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    email: str | None = Field(default=None, max_length=254, unique=True)
    full_name: str | None = Field(default=None, max_length=200)
    hashed_password: str = Field(max_length=255)
    role: Role = Field(
        sa_column=enum_column(Role, "role", 16, index=True),
    )
    centre_id: int | None = Field(
        default=None, foreign_key="centre.id", index=True, ondelete="RESTRICT"
    )
    is_active: bool = Field(default=True)
    created_at: datetime = timestamp_field()
    last_login_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    # Tokens issued before this moment stop working (a password change or reset signs out
    # every open session of the account).
    password_changed_at: datetime | None = timestamp_field(nullable=True, default_now=False)
