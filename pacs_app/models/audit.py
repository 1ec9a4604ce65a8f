"""Audit trail: who did what to which resource, when, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from pacs_app.models.base import timestamp_field


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_action_at", "action", "at"),
        Index("ix_audit_event_username_action_at", "username", "action", "at"),
        Index("ix_audit_event_address_action_at", "address", "action", "at"),
        Index("ix_audit_event_resource", "resource_type", "resource_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp_field(index=True)
    # The acting user when known; ``username`` keeps the name typed at a failed sign-in too.
    actor_id: int | None = Field(
        default=None, foreign_key="user_account.id", index=True, ondelete="SET NULL"
    )
    username: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64)
    outcome: str = Field(default="success", max_length=16)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    centre_id: int | None = Field(default=None, foreign_key="centre.id", ondelete="SET NULL")
    address: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
