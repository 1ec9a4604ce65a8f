"""Studies, series and instances: the DICOM hierarchy as the database indexes it.

The header fields that lists, searches and the viewer need are columns or JSON here, filled
at ingest, so that no query opens a DICOM file.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from pacs_app.models.base import enum_column, timestamp_field


class StudyStatus(StrEnum):
    RECEIVED = "received"
    AI_PROCESSING = "ai_processing"
    UNASSIGNED = "unassigned"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    REPORTED = "reported"
    VERIFIED = "verified"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"

    @property
    def rank(self) -> int:
        return {"routine": 0, "urgent": 1, "stat": 2}[self.value]


class Study(SQLModel, table=True):
    __tablename__ = "study"
    __table_args__ = (
        UniqueConstraint("centre_id", "study_instance_uid", name="uq_study_centre_uid"),
        Index("ix_study_received", "received_at", "id"),
        Index("ix_study_centre_received", "centre_id", "received_at", "id"),
        Index("ix_study_status_received", "status", "received_at", "id"),
        Index("ix_study_priority_rank_received", "priority_rank", "received_at", "id"),
        Index("ix_study_modality_received", "modality", "received_at", "id"),
        Index("ix_study_patient_id", "patient_id"),
        # keyset orders: (sort column, id)
        Index("ix_study_patient_name_norm", "patient_name_norm", "id"),
        Index("ix_study_priority_rank_id", "priority_rank", "id"),
        Index("ix_study_updated", "updated_at"),  # worklists' change stamp
        Index("ix_study_dicom_study_id", "dicom_study_id"),
        Index("ix_study_referring_physician_norm", "referring_physician_norm"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_id: str = Field(max_length=8, unique=True)
    study_instance_uid: str = Field(max_length=64)
    centre_id: int = Field(foreign_key="centre.id", index=True, ondelete="RESTRICT")
    uploaded_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )

    # What the study shows: the form's value where given, else the DICOM header's.
    patient_name: str = Field(default="", max_length=200)
    # Upper-cased, '^' as spaces: what searches and sorting use.
    patient_name_norm: str = Field(default="", max_length=200)
    patient_id: str = Field(default="", max_length=64)
    patient_age: str = Field(default="", max_length=8)
    patient_sex: str = Field(default="", max_length=1)
    modality: str = Field(default="", max_length=16)
    body_part: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=200)
    accession_number: str = Field(default="", max_length=16)
    study_date: date | None = None
    # The first header's, kept to match QIDO-RS keys on (pacs_app.dicom.matching): the
    # study time's first instant as HHMMSS.FFFFFF, the referring physician's name as names
    # are matched, the DICOM Study ID (not ``study_id``, this server's own).
    study_time: str = Field(default="", max_length=13)
    referring_physician_norm: str = Field(default="", max_length=200)
    dicom_study_id: str = Field(default="", max_length=16)
    clinical_notes: str = Field(default="", max_length=4000)
    # The header's own values for the fields above, kept when the form disagreed.
    header_values: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))

    priority: Priority = Field(
        default=Priority.ROUTINE, sa_column=enum_column(Priority, "priority", 8)
    )
    # 0 routine, 1 urgent, 2 STAT: for "most urgent first" ordering and its index.
    priority_rank: int = 0
    status: StudyStatus = Field(
        default=StudyStatus.RECEIVED, sa_column=enum_column(StudyStatus, "study_status", 16)
    )
    assigned_radiologist_id: int | None = Field(
        default=None, foreign_key="user_account.id", index=True, ondelete="SET NULL"
    )

    num_series: int = 0
    num_instances: int = 0
    size_bytes: int = Field(default=0, sa_type=BigInteger)
    next_instance_number: int = 1  # for storage keys instance_NNN.dcm

    received_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    # Turnaround time: each step's first time (a reassignment keeps the first assignment).
    assigned_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    first_opened_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    verified_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    delivered_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    cancelled_at: datetime | None = timestamp_field(nullable=True, default_now=False)


class Series(SQLModel, table=True):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("study_pk", "series_instance_uid", name="uq_series_uid"),)

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", index=True, ondelete="CASCADE")
    series_instance_uid: str = Field(max_length=64)
    series_number: int | None = None
    modality: str = Field(default="", max_length=16)
    body_part: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=200)
    num_instances: int = 0


class Instance(SQLModel, table=True):
    __tablename__ = "instance"
    __table_args__ = (
        UniqueConstraint("study_pk", "sop_instance_uid", name="uq_instance_sop"),
        Index("ix_instance_series_number", "series_pk", "instance_number"),
        # a study's instances, and whether it received one since a time (the AI queue's
        # settle and requeue checks: pacs_app.services.ai.received_since)
        Index("ix_instance_study_received", "study_pk", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", ondelete="CASCADE")
    series_pk: int = Field(foreign_key="series.id", ondelete="CASCADE")
    number: int  # the NNN of instance_NNN.dcm, 1-based within the study
    sop_instance_uid: str = Field(max_length=64)
    sop_class_uid: str = Field(default="", max_length=64)
    instance_number: int | None = None
    transfer_syntax_uid: str = Field(default="", max_length=64)
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    storage_key: str = Field(max_length=255, unique=True)
    size_bytes: int = Field(default=0, sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    # The header as DICOM JSON (PS3.18 F.2), bulk data left out.
    dicom_json: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    received_at: datetime = timestamp_field()
