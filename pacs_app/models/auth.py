"""Server-side state of access tokens: tokens revoked by sign-out before they expire."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from pacs_app.models.base import timestamp_field


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_token"

    jti: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    expires_at: datetime = timestamp_field(index=True, default_now=False)
    revoked_at: datetime = timestamp_field()
