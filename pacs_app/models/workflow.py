"""Reading workflow: reports with immutable signed versions, templates, in-app notifications.

A :class:`Report` holds the one working draft of a study (saved as the radiologist types).
Signing copies it into a :class:`ReportVersion`, which is never updated or deleted afterwards
(an ORM guard below refuses it); an addendum is a further version. What the centre receives is
the signed version plus its addenda, in order.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from pacs_app.models.base import enum_column, timestamp_field


class VersionKind(StrEnum):
    SIGNED = "signed"  # the verified report
    ADDENDUM = "addendum"  # text added after verification


class DraftSource(StrEnum):
    BLANK = "blank"
    TEMPLATE = "template"
    AI = "ai"  # the radiologist accepted an AI draft into the editor


class Report(SQLModel, table=True):
    __tablename__ = "report"

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", unique=True, ondelete="CASCADE")
    findings: str = Field(default="", sa_type=Text)
    impression: str = Field(default="", sa_type=Text)
    # Where the draft started from, for the record (template name or AI model and version).
    source: DraftSource = Field(
        default=DraftSource.BLANK,
        sa_column=enum_column(DraftSource, "draft_source", 16),
    )
    source_detail: str = Field(default="", max_length=200)
    draft_saved_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    draft_saved_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    # Bumped on every save: a client that saves from a stale copy is told so, not silently lost.
    revision: int = 0
    created_at: datetime = timestamp_field()


class ReportVersion(SQLModel, table=True):
    __tablename__ = "report_version"
    __table_args__ = (UniqueConstraint("report_id", "number", name="uq_report_version_number"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True, ondelete="CASCADE")
    number: int  # 1 is the signed report, 2.. the addenda
    kind: VersionKind = Field(sa_column=enum_column(VersionKind, "version_kind", 16))
    findings: str = Field(default="", sa_type=Text)
    impression: str = Field(default="", sa_type=Text)
    text: str = Field(default="", sa_type=Text)  # an addendum's text
    signed_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    # Kept as text too, so the signature survives a renamed or removed account.
    signed_by_name: str = Field(max_length=200)
    signed_at: datetime = timestamp_field()


@event.listens_for(ReportVersion, "before_update")
@event.listens_for(ReportVersion, "before_delete")
def _versions_are_immutable(_mapper: Any, _connection: Any, target: ReportVersion) -> None:
    raise ValueError(f"report version {target.id} is signed and cannot be changed")


class KeyImage(SQLModel, table=True):
    """An image (a frame of an instance) the reading radiologist marked as showing what the
    report describes: listed with the report and printed in its PDF."""

    __tablename__ = "key_image"
    __table_args__ = (
        UniqueConstraint("study_pk", "sop_instance_uid", "frame", name="uq_key_image"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", index=True, ondelete="CASCADE")
    series_instance_uid: str = Field(max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    frame: int = 0  # 0-based
    # the window it was looked at with when marked (greyscale), which its PDF print uses
    window_center: float | None = None
    window_width: float | None = None
    # its VOI LUT function (LINEAR, LINEAR_EXACT, SIGMOID); None: the image's own
    window_function: str | None = Field(default=None, max_length=16)
    # how it was turned when marked (pacs_app.dicom.orientation.Turn), which its print keeps
    rotation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    flipped: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    marked_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    marked_at: datetime = timestamp_field()
    # the measurements its marker had drawn on it when the report was signed (None before:
    # then they are the marker's as kept), [{"kind", "p", "label"}]: its print and its
    # presentation state show them
    marks: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ReportTemplate(SQLModel, table=True):
    __tablename__ = "report_template"
    __table_args__ = (Index("ix_report_template_match", "modality", "body_part"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    modality: str = Field(default="", max_length=16)  # "" matches every modality
    body_part: str = Field(default="", max_length=64)  # "" matches every body part
    findings: str = Field(default="", sa_type=Text)
    impression: str = Field(default="", sa_type=Text)
    is_active: bool = True
    updated_at: datetime = timestamp_field()
    updated_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )


class NotificationKind(StrEnum):
    URGENT_ARRIVED = "urgent_arrived"
    ASSIGNED_TO_YOU = "assigned_to_you"
    REPORT_DELIVERED = "report_delivered"
    UNASSIGNED_FROM_YOU = "unassigned_from_you"


class Notification(SQLModel, table=True):
    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_user_unread", "user_id", "read_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    kind: NotificationKind = Field(sa_column=enum_column(NotificationKind, "notification_kind", 32))
    study_pk: int | None = Field(default=None, foreign_key="study.id", ondelete="CASCADE")
    study_id: str = Field(default="", max_length=8)
    # No patient names: the Study ID, modality and priority say enough to act on.
    message: str = Field(max_length=300)
    created_at: datetime = timestamp_field()
    read_at: datetime | None = timestamp_field(nullable=True, default_now=False)


class TurnaroundTarget(SQLModel, table=True):
    """An administrator's turnaround target for a priority (receipt to delivery, minutes);
    where none is set, TAT_TARGET_MINUTES_* from the configuration applies."""

    __tablename__ = "turnaround_target"

    priority: str = Field(primary_key=True, max_length=8)
    minutes: int
    updated_at: datetime = timestamp_field()
    updated_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )


class DrawnMeasurements(SQLModel, table=True):
    """What one user measured on a study's images in the viewer (lengths, ROIs, angles), so
    that another tab, browser or day shows them again: an object of each image
    (``SOP Instance UID:frame``, 0-based) to its measurements as the viewer keeps them."""

    __tablename__ = "drawn_measurements"
    __table_args__ = (UniqueConstraint("study_pk", "user_id", name="uq_drawn_measurements"),)

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    images: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # each save adds one; a save names the one it was made from (services.drawn)
    revision: int = Field(default=0)
    updated_at: datetime = timestamp_field()
