"""AI analysis: jobs (the database is the queue), their findings and drafts, learned models.

AI output is kept apart from the radiologist's report: a finding or the draft reaches a report
only when a radiologist accepts it, and that decision is recorded here and in the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Float, Index, Text
from sqlmodel import Field, SQLModel

from pacs_app.models.base import enum_column, timestamp_field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DONE_WITH_WARNINGS = "done_with_warnings"
    FAILED = "failed"


class Decision(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EDITED = "edited"  # accepted with the radiologist's wording
    REJECTED = "rejected"


class AIJob(SQLModel, table=True):
    __tablename__ = "ai_job"
    __table_args__ = (
        Index("ix_ai_job_queue", "status", "priority_rank", "id"),
        Index("ix_ai_job_study", "study_pk", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", ondelete="CASCADE")
    status: JobStatus = Field(
        default=JobStatus.QUEUED, sa_column=enum_column(JobStatus, "ai_job_status", 24)
    )
    trigger: str = Field(default="upload", max_length=16)  # upload | manual
    requested_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    priority_rank: int = 0  # the study's, so STAT studies are analysed first
    attempts: int = 0
    worker: str = Field(default="", max_length=120)  # host:pid of the worker running it
    device: str = Field(default="", max_length=32)  # cpu, cuda
    plugins: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    timings: dict[str, float] | None = Field(default=None, sa_column=Column(JSON))
    warnings: list[str] | None = Field(default=None, sa_column=Column(JSON))
    error: str = Field(default="", sa_type=Text)
    # The draft report: AI-generated, kept apart from the radiologist's report.
    draft_technique: str = Field(default="", sa_type=Text)
    draft_findings: str = Field(default="", sa_type=Text)
    draft_impression: str = Field(default="", sa_type=Text)
    created_at: datetime = timestamp_field()
    started_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    heartbeat_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    finished_at: datetime | None = timestamp_field(nullable=True, default_now=False)


class AIFinding(SQLModel, table=True):
    __tablename__ = "ai_finding"
    __table_args__ = (Index("ix_ai_finding_job", "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="ai_job.id", ondelete="CASCADE")
    study_pk: int = Field(foreign_key="study.id", index=True, ondelete="CASCADE")
    plugin: str = Field(max_length=80)
    plugin_version: str = Field(max_length=32)
    code: str = Field(max_length=80)
    title: str = Field(max_length=300)
    severity: str = Field(max_length=16)
    value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    unit: str = Field(default="", max_length=32)
    value_text: str = Field(default="", max_length=300)
    method: str = Field(sa_type=Text)
    limitations: str = Field(sa_type=Text)
    series_uid: str = Field(default="", max_length=64)
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    report_text: str = Field(default="", sa_type=Text)
    # Learned models not validated for clinical use: kept for the record, never shown as a
    # finding in the clinical UI nor put in a draft.
    validated: bool = True
    decision: Decision = Field(
        default=Decision.PENDING, sa_column=enum_column(Decision, "ai_decision", 16)
    )
    decision_text: str = Field(default="", sa_type=Text)  # the radiologist's wording if edited
    decided_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    decided_at: datetime | None = timestamp_field(nullable=True, default_now=False)


class LearnedModel(SQLModel, table=True):
    """A learned-model plugin: a local MONAI bundle, checked against its sha256 before use."""

    __tablename__ = "learned_model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    version: str = Field(max_length=32)
    kind: str = Field(default="monai_bundle", max_length=32)
    task: str = Field(default="segmentation", max_length=32)
    modalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body_parts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    spatial_size: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # (low, high) in modality units mapped to 0..1; None scales each image by its own range
    intensity_range: list[float] | None = Field(default=None, sa_column=Column(JSON))
    bundle_path: str = Field(max_length=500)
    sha256: str = Field(max_length=64)
    licence: str = Field(default="", max_length=200)
    intended_use: str = Field(default="", sa_type=Text)
    validated: bool = False
    enabled: bool = True
    created_at: datetime = timestamp_field()
    created_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
