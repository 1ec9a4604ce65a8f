"""AI analysis in the domain: queueing jobs, the job queue itself, results and decisions.

The database is the queue. A job is claimed by one conditional UPDATE (``WHERE status =
'queued'``; on PostgreSQL the candidate is picked with ``FOR UPDATE SKIP LOCKED``), so two
workers never run the same job. A worker reports a heartbeat while it runs; a job whose worker
went silent (crash, restart) is queued again, or failed with the reason after
``AI_JOB_MAX_ATTEMPTS`` tries, so no job stays "running" for ever.

A draft speaks of the whole study, never of part of it: an analysis queued by an upload waits
until the study has received nothing for ``AI_SETTLE_SECONDS``, and one that ends with
instances added to its study since it began is queued again instead of stored.

This module never imports torch: the analysis itself (``pacs_app.ai.pipeline``) runs in worker
processes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Row, ScalarSelect, Select, func, insert, update
from sqlmodel import Session, col, select

from pacs_app.config import settings
from pacs_app.core import db
from pacs_app.core.errors import Conflict, InvalidInput, NotFound
from pacs_app.models import (
    AIFinding,
    AIJob,
    Centre,
    Decision,
    DraftSource,
    Instance,
    JobStatus,
    LearnedModel,
    Report,
    Study,
)
from pacs_app.models.base import utcnow
from pacs_app.services import audit, workflow
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Action, Actor, can, require
from pacs_app.services.dto import AIDraftPublic

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS, JobStatus.FAILED)


# --- what the API and the pages see ------------------------------------------------------


class AIJobPublic(BaseModel):
    id: int
    study_id: str
    status: JobStatus
    trigger: str
    attempts: int
    device: str
    plugins: list[dict[str, Any]]
    timings: dict[str, float]
    warnings: list[str]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class AIFindingPublic(BaseModel):
    id: int
    plugin: str
    plugin_version: str
    code: str
    title: str
    severity: str
    value: float | None
    unit: str
    value_text: str
    method: str
    limitations: str
    series_uid: str
    evidence: dict[str, Any]
    report_text: str
    decision: Decision
    decision_text: str


class AIReport(BaseModel):
    """``GET /ai/report/{study_id}``: the latest analysis of a study."""

    study_id: str
    job: AIJobPublic | None
    findings: list[AIFindingPublic] = []  # radiologists and administrators only
    draft: AIDraftPublic | None = None  # idem
    plugins: list[str] = []  # "name version" of every plugin that ran


def _job_public(job: AIJob, study_id: str) -> AIJobPublic:
    return AIJobPublic(
        id=job.id,
        study_id=study_id,
        status=job.status,
        trigger=job.trigger,
        attempts=job.attempts,
        device=job.device,
        plugins=job.plugins or [],
        timings=job.timings or {},
        warnings=job.warnings or [],
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def latest_job(session: Session, study: Study) -> AIJob | None:
    return session.exec(
        select(AIJob).where(AIJob.study_pk == study.id).order_by(col(AIJob.id).desc()).limit(1)
    ).first()


def plugin_names(job_or_plugins: AIJob | list[dict[str, Any]]) -> list[str]:
    """ "name version" of each plugin that ran (from a job, or from the pipeline's list)."""
    plugins = job_or_plugins.plugins if isinstance(job_or_plugins, AIJob) else job_or_plugins
    return [f"{p['name']} {p['version']}" for p in (plugins or []) if p.get("ran", True)]


def draft_of(job: AIJob | None) -> AIDraftPublic | None:
    if job is None or job.status not in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS):
        return None
    if not (job.draft_findings or job.draft_impression):
        return None
    return AIDraftPublic(
        model=", ".join(plugin_names(job)) or "AI pipeline",
        version=f"job {job.id}",
        findings="\n\n".join(p for p in (job.draft_technique, job.draft_findings) if p),
        impression=job.draft_impression,
        created_at=job.finished_at or job.created_at,
    )


# --- queueing ----------------------------------------------------------------------------


def enqueue(
    session: Session, study: Study, *, trigger: str, requested_by_id: int | None = None
) -> AIJob:
    """Queue an analysis of ``study`` unless one is already queued or running (the caller
    commits)."""
    active = _active_job_id(session, study)
    if active is not None:
        return session.get(AIJob, active)
    return _new_job(session, study, trigger=trigger, requested_by_id=requested_by_id)


def _new_job(
    session: Session, study: Study, *, trigger: str, requested_by_id: int | None = None
) -> AIJob:
    job = AIJob(
        study_pk=study.id,
        trigger=trigger,
        requested_by_id=requested_by_id,
        priority_rank=study.priority_rank,
    )
    session.add(job)
    session.flush()
    return job


def _active_job_id(session: Session, study: Study) -> int | None:
    # what the transaction has pending (the upload's rows) does not change the answer
    with session.no_autoflush:
        return session.execute(_active_jobs(study.id)).scalar()


_JOBS = AIJob.__table__
_INSERT_JOB = insert(_JOBS)


def _active_jobs(study_pk: ColumnElement[int] | int) -> Select:
    """The id of the study's queued or running analysis, if it has one."""
    return (
        select(_JOBS.c.id).where(_JOBS.c.study_pk == study_pk, _JOBS.c.status.in_(ACTIVE)).limit(1)
    )


def active_job_of(study_pk: ColumnElement[int]) -> ScalarSelect[int]:
    """:func:`_active_jobs` as a column for a query over studies (NULL when there is none):
    ingest reads it with the study it locks, in one statement."""
    return _active_jobs(study_pk).scalar_subquery()


def enqueue_after_upload(
    session: Session,
    study_pk: int,
    priority_rank: int,
    centre: Centre | Row,
    active_job: int | None,
) -> None:
    """Called by ingest, inside the upload's transaction, when it stored new instances: queue
    an analysis unless one is queued or running already (``active_job``, read with
    :func:`active_job_of`: an upload in several parts).

    Ingest writes its rows with prepared statements, not the unit of work, and so does this:
    an upload of one instance per request comes hundreds of times a second."""
    if centre.ai_auto_process and active_job is None:
        job = AIJob(study_pk=study_pk, trigger="upload", priority_rank=priority_rank)
        session.connection().execute(_INSERT_JOB, job.model_dump(exclude={"id"}))


def request_analysis(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> AIJobPublic:
    """``POST /ai/process-study/{study_id}``: queue (or re-run) the analysis."""
    study = workflow.load_visible(session, actor, study_id)
    require(actor, Action.RUN_AI, study)
    job = enqueue(session, study, trigger="manual", requested_by_id=actor.user_id)
    audit.record_study(
        session, action=AuditAction.AI_REQUESTED, actor=actor, study=study, address=address
    )
    session.commit()
    return _job_public(job, study.study_id)


def ai_report(*, session: Session, actor: Actor, study_id: str) -> AIReport:
    study = workflow.load_visible(session, actor, study_id)
    job = latest_job(session, study)
    report = AIReport(
        study_id=study.study_id, job=_job_public(job, study.study_id) if job else None
    )
    if job is None or not can(actor, Action.VIEW_AI_FINDINGS, study):
        return report
    rows = session.exec(
        select(AIFinding)
        .where(AIFinding.job_id == job.id, col(AIFinding.validated))
        .order_by(col(AIFinding.id))
    ).all()
    report.findings = [_finding_public(f) for f in rows]
    report.draft = draft_of(job)
    report.plugins = plugin_names(job)
    return report


def _finding_public(f: AIFinding) -> AIFindingPublic:
    return AIFindingPublic(
        **{k: getattr(f, k) for k in AIFindingPublic.model_fields if k not in {"evidence"}},
        evidence=f.evidence or {},
    )


def job_states(session: Session, study_pks: list[int]) -> dict[int, str]:
    """The latest job's status per study, for worklists (one query)."""
    if not study_pks:
        return {}
    latest = (
        select(AIJob.study_pk, func.max(AIJob.id).label("job_id"))
        .where(col(AIJob.study_pk).in_(study_pks))
        .group_by(AIJob.study_pk)
        .subquery()
    )
    rows = session.exec(
        select(AIJob.study_pk, AIJob.status, AIJob.error).join(latest, AIJob.id == latest.c.job_id)
    ).all()
    return {pk: status.value for pk, status, _error in rows}


def evidence_image(*, session: Session, actor: Actor, finding_id: int, storage) -> bytes:
    """The overlay image a finding cites, for those who may see AI findings of its study."""
    finding = session.get(AIFinding, finding_id)
    study = session.get(Study, finding.study_pk) if finding else None
    if (
        finding is None
        or study is None
        or not finding.validated
        or not can(actor, Action.VIEW_AI_FINDINGS, study)
    ):
        raise NotFound(f"No AI finding {finding_id}.")
    key = (finding.evidence or {}).get("overlay")
    if not key or not storage.exists(key):
        raise NotFound(f"AI finding {finding_id} has no overlay image.")
    with storage.open(key) as handle:
        return handle.read()


# --- the radiologist's decisions ---------------------------------------------------------


def decide(
    *,
    session: Session,
    actor: Actor,
    finding_id: int,
    decision: Decision | str,
    text: str = "",
    address: str | None = None,
) -> AIFindingPublic:
    """Accept, edit (accept with new wording) or reject one AI finding (the reading
    radiologist, before verification). Audited."""
    finding = session.get(AIFinding, finding_id)
    study = session.get(Study, finding.study_pk) if finding else None
    if finding is None or study is None or not can(actor, Action.VIEW_STUDY, study):
        raise NotFound(f"No AI finding {finding_id}.")
    workflow.check_step(session, actor, study, workflow.Step.SAVE_DRAFT)
    try:
        decision = Decision(decision)
    except ValueError as exc:
        raise InvalidInput("Decide accepted, edited or rejected.") from exc
    if decision is Decision.PENDING:
        raise InvalidInput("Decide accepted, edited or rejected.")
    text = (text or "").strip()
    if decision is Decision.EDITED and not text:
        raise InvalidInput("An edited finding needs your wording.")
    finding.decision = decision
    finding.decision_text = text if decision is Decision.EDITED else ""
    finding.decided_by_id, finding.decided_at = actor.user_id, utcnow()
    session.add(finding)
    audit.record_study(
        session,
        action=AuditAction.AI_FINDING_DECIDED,
        actor=actor,
        study=study,
        address=address,
        detail={"finding": finding.code, "plugin": finding.plugin, "decision": decision.value},
    )
    session.commit()
    return _finding_public(finding)


def accept_draft(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    replace: bool = False,
    address: str | None = None,
):
    """Put the AI draft into the radiologist's draft report, marked as AI-generated.

    Accepting the draft accepts its pending findings; findings the radiologist rejected stay
    out, edited ones enter in the radiologist's wording. Text already written is replaced only
    when asked.
    """
    from pacs_app.services import reports

    study = workflow.load_visible(session, actor, study_id)
    workflow.check_step(session, actor, study, workflow.Step.SAVE_DRAFT)
    job = latest_job(session, study)
    draft = draft_of(job)
    if draft is None:
        raise NotFound(f"Study {study.study_id} has no finished AI draft.")
    existing = session.exec(select(Report).where(Report.study_pk == study.id)).first()
    if existing is not None and (existing.findings or existing.impression) and not replace:
        raise Conflict("The draft already has text; confirm to replace it with the AI draft.")
    findings = session.exec(
        select(AIFinding)
        .where(AIFinding.job_id == job.id, col(AIFinding.validated))
        .order_by(col(AIFinding.id))
    ).all()
    now = utcnow()
    lines = []
    for f in findings:
        if f.decision is Decision.PENDING:
            f.decision, f.decided_by_id, f.decided_at = Decision.ACCEPTED, actor.user_id, now
            session.add(f)
        if f.decision is Decision.ACCEPTED and f.report_text:
            lines.append(f"- {f.report_text}")
        elif f.decision is Decision.EDITED:
            lines.append(f"- {f.decision_text}")
    technique = "\n".join(  # the draft's own heading is replaced by the one below
        line
        for line in job.draft_technique.splitlines()
        if not line.startswith("AI-GENERATED PRELIMINARY DRAFT")
    ).strip()
    body = "\n".join(
        part for part in (technique, "Findings:\n" + "\n".join(lines) if lines else "") if part
    )
    header = f"[AI-generated preliminary draft: {draft.model}; reviewed by the radiologist]"
    result = reports.save_draft(
        session=session,
        actor=actor,
        study_id=study_id,
        findings=f"{header}\n\n{body}",
        impression=job.draft_impression,
        address=address,
    )
    report = session.exec(select(Report).where(Report.study_pk == study.id)).one()
    report.source, report.source_detail = DraftSource.AI, f"{draft.model} ({draft.version})"[:200]
    session.add(report)
    audit.record_study(
        session,
        action=AuditAction.AI_DRAFT_ACCEPTED,
        actor=actor,
        study=study,
        address=address,
        detail={"job": job.id, "plugins": plugin_names(job)},
    )
    session.commit()
    return result.model_copy(update={"source": "ai", "source_detail": report.source_detail})


# --- the queue, for workers --------------------------------------------------------------


def received_since(study_pk, since):
    """Whether the study (a key, or a column to correlate with) received an instance at or
    after ``since``, as an SQL expression: the one rule for a study still receiving, which an
    upload's analysis waits out (:func:`claim_next`) and which sends a finished one back to
    the queue (:func:`complete`). Workflow changes to the study do not count."""
    return (
        select(Instance.id)
        .where(Instance.study_pk == study_pk, col(Instance.received_at) >= since)
        .exists()
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def claim_next(session: Session, *, worker: str) -> AIJob | None:
    """Take the most urgent, oldest queued job for this worker, or None. Never the same job
    for two workers."""
    while True:
        pick = (
            select(AIJob.id)
            .where(AIJob.status == JobStatus.QUEUED)
            .order_by(col(AIJob.priority_rank).desc(), col(AIJob.id))
            .limit(1)
        )
        if settings.ai_settle_seconds:  # an upload's analysis: once its study is quiet
            quiet = utcnow() - timedelta(seconds=settings.ai_settle_seconds)
            pick = pick.where((AIJob.trigger != "upload") | ~received_since(AIJob.study_pk, quiet))
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        job_id = session.exec(pick).first()
        if job_id is None:
            session.rollback()
            return None
        now = utcnow()
        claimed = session.execute(
            update(AIJob)
            .where(AIJob.id == job_id, AIJob.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                attempts=AIJob.attempts + 1,
                started_at=now,
                heartbeat_at=now,
                error="",
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:
            job = session.get(AIJob, job_id)
            session.refresh(job)
            _touch_study(session, job.study_pk)
            session.commit()
            return job
        session.commit()
        # another worker took it between the pick and the update: pick again


def heartbeat(session: Session, job_id: int, *, worker: str) -> bool:
    """Say the job is still being worked on; False if it is no longer this worker's."""
    result = session.execute(
        update(AIJob)
        .where(AIJob.id == job_id, AIJob.status == JobStatus.RUNNING, AIJob.worker == worker)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


@dataclass
class FindingRecord:
    plugin: str
    plugin_version: str
    code: str
    title: str
    severity: str
    method: str
    limitations: str
    value: float | None = None
    unit: str = ""
    value_text: str = ""
    series_uid: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    report_text: str = ""
    validated: bool = True


@dataclass
class Outcome:
    """What the pipeline hands back to be stored."""

    findings: list[FindingRecord]
    plugins: list[dict[str, Any]]
    timings: dict[str, float]
    warnings: list[str]
    device: str
    technique: str = ""
    draft_findings: str = ""
    impression: str = ""


class Completion(StrEnum):
    STORED = "stored"
    REQUEUED = "requeued"  # the study received instances since the job began
    LOST = "lost"  # the job is no longer this worker's


def complete(session: Session, job_id: int, outcome: Outcome, *, worker: str) -> Completion:
    """Store a finished job's findings and draft (only if the job is still this worker's),
    or, where its study received instances since the job began, queue it again: its draft
    would speak of part of the study.

    The study's row is locked first (written), so an upload into it either commits before
    the check (and is seen) or waits for this commit (and then finds no analysis queued or
    running, and queues one). An upload takes its time stamp once it holds that lock, and a
    claim's is taken before it commits, so what came after the analysis read the study is
    never older than the job's start."""
    session.rollback()  # what the analysis read: the checks below read afresh
    with db.write_transaction(session):
        job = session.get(AIJob, job_id, populate_existing=True)
        if job is None or job.status is not JobStatus.RUNNING or job.worker != worker:
            session.rollback()
            return Completion.LOST
        _touch_study(session, job.study_pk)
        if session.exec(select(received_since(job.study_pk, job.started_at))).one():
            job.status, job.worker = JobStatus.QUEUED, ""
            job.attempts = max(0, job.attempts - 1)  # not a failed try
            job.started_at = job.heartbeat_at = None
            session.add(job)
            session.commit()
            return Completion.REQUEUED
        _store_outcome(session, job, outcome)
        session.commit()
    return Completion.STORED


def _store_outcome(session: Session, job: AIJob, outcome: Outcome) -> None:
    for f in outcome.findings:
        session.add(AIFinding(job_id=job.id, study_pk=job.study_pk, **f.__dict__))
    job.status = JobStatus.DONE_WITH_WARNINGS if outcome.warnings else JobStatus.DONE
    job.plugins, job.timings, job.warnings = outcome.plugins, outcome.timings, outcome.warnings
    job.device = outcome.device
    job.draft_technique = outcome.technique
    job.draft_findings = outcome.draft_findings
    job.draft_impression = outcome.impression
    job.finished_at = utcnow()
    session.add(job)


def _touch_study(session: Session, study_pk: int) -> None:
    """Move the study's change stamp, so worklists showing the AI state refresh."""
    session.execute(
        update(Study)
        .where(Study.id == study_pk)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def fail(session: Session, job_id: int, reason: str, *, worker: str | None = None) -> None:
    query = update(AIJob).where(AIJob.id == job_id, AIJob.status == JobStatus.RUNNING)
    if worker is not None:
        query = query.where(AIJob.worker == worker)
    session.execute(
        query.values(
            status=JobStatus.FAILED, error=reason[:4000], finished_at=utcnow()
        ).execution_options(synchronize_session=False)
    )
    session.commit()


def recover_stale(session: Session, *, now: datetime | None = None) -> tuple[int, int]:
    """Jobs left running by a worker that stopped reporting: queue them again, or fail them
    with the reason once they have had their tries. Returns (requeued, failed)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.ai_job_stale_seconds)
    stale = col(AIJob.heartbeat_at) < cutoff
    failed = session.execute(
        update(AIJob)
        .where(AIJob.status == JobStatus.RUNNING, stale)
        .where(AIJob.attempts >= settings.ai_job_max_attempts)
        .values(
            status=JobStatus.FAILED,
            finished_at=now,
            error=(
                "The worker stopped while analysing this study (crash or restart), "
                f"{settings.ai_job_max_attempts} time(s); not retried again. Re-run it to try "
                "once more."
            ),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    requeued = session.execute(
        update(AIJob)
        .where(AIJob.status == JobStatus.RUNNING, stale)
        .values(status=JobStatus.QUEUED, worker="")
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return requeued, failed


# --- learned models ---------------------------------------------------------------------


class LearnedModelPublic(BaseModel):
    model_config = {"from_attributes": True}

    id: int
    name: str
    version: str
    kind: str
    task: str
    modalities: list[str]
    body_parts: list[str]
    labels: list[str]
    bundle_path: str
    sha256: str
    licence: str
    intended_use: str
    validated: bool
    enabled: bool
    state: str = ""  # ready | weights not installed | sha256 mismatch | invalid bundle: ...


def list_models(*, session: Session, actor: Actor) -> list[LearnedModelPublic]:
    require(actor, Action.MANAGE_MODELS)
    from pacs_app.ai.models import model_state

    out = []
    for row in session.exec(select(LearnedModel).order_by(col(LearnedModel.name))):
        item = LearnedModelPublic.model_validate(row)
        item.state = model_state(model_spec(row))
        out.append(item)
    return out


def model_spec(row: LearnedModel):
    from pacs_app.ai.models import ModelSpec

    return ModelSpec(
        name=row.name,
        version=row.version,
        kind=row.kind,
        modalities=tuple(row.modalities),
        body_parts=tuple(row.body_parts),
        bundle_path=row.bundle_path,
        sha256=row.sha256,
        licence=row.licence,
        intended_use=row.intended_use,
        validated=row.validated,
        task=row.task,
        labels=tuple(row.labels),
        spatial_size=tuple(row.spatial_size),
        intensity_range=tuple(row.intensity_range) if row.intensity_range else None,
    )


class PluginPublic(BaseModel):
    name: str
    version: str
    kind: str
    description: str


class AICatalogue(BaseModel):
    """The admin's page: plugins, learned models with their state, and the latest jobs."""

    plugins: list[PluginPublic]
    models: list[LearnedModelPublic]
    jobs: list[AIJobPublic]
    queued: int
    running: int


def catalogue(*, session: Session, actor: Actor, limit: int = 30) -> AICatalogue:
    require(actor, Action.MANAGE_MODELS)
    from pacs_app.ai.plugins import default_plugins

    rows = session.exec(
        select(AIJob, Study.study_id)
        .join(Study, Study.id == AIJob.study_pk)
        .order_by(col(AIJob.id).desc())
        .limit(limit)
    ).all()
    counts = dict(
        session.exec(
            select(AIJob.status, func.count())
            .where(col(AIJob.status).in_(ACTIVE))
            .group_by(AIJob.status)
        ).all()
    )
    return AICatalogue(
        plugins=[
            PluginPublic(name=p.name, version=p.version, kind=p.kind, description=p.description)
            for p in default_plugins()
        ],
        models=list_models(session=session, actor=actor),
        jobs=[_job_public(job, sid) for job, sid in rows],
        queued=counts.get(JobStatus.QUEUED, 0),
        running=counts.get(JobStatus.RUNNING, 0),
    )


def register_model(
    *,
    session: Session,
    actor: Actor | None,
    name: str,
    version: str,
    bundle_path: str,
    sha256: str,
    modalities: list[str],
    task: str,
    labels: list[str],
    spatial_size: list[int],
    body_parts: list[str] | None = None,
    intensity_range: tuple[float, float] | None = None,
    licence: str = "",
    intended_use: str = "",
    validated: bool = False,
    address: str | None = None,
) -> LearnedModelPublic:
    """Register a local MONAI bundle as a learned-model plugin (administrators; ``actor=None``
    is the command line on the server). The bundle is read (network from the allow-list, no
    config expressions) and its weights must match ``sha256`` before anything is stored."""
    from pathlib import Path

    from pacs_app.ai.models import ModelError, read_bundle, sha256_of

    if actor is not None:
        require(actor, Action.MANAGE_MODELS)
    name, version = (name or "").strip(), (version or "").strip()
    if not name or not version:
        raise InvalidInput("A model needs a name and a version.")
    if task not in ("segmentation", "classification"):
        raise InvalidInput("The task is segmentation or classification.")
    if not modalities:
        raise InvalidInput("Name at least one modality the model applies to.")
    if not labels or not spatial_size:
        raise InvalidInput("Give the model's output labels and its input size.")
    folder = Path(bundle_path).expanduser().resolve()
    try:
        info = read_bundle(folder)
    except ModelError as exc:
        raise InvalidInput(f"The bundle at {folder} is refused: {exc.message}") from exc
    expected = (sha256 or "").strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise InvalidInput("Give the weights' sha256 (64 hexadecimal digits).")
    actual = sha256_of(info.weights_path)
    if actual != expected:
        raise InvalidInput(
            f"The weights file {info.weights_path} does not match the given sha256 "
            f"(it is {actual}); nothing was registered."
        )
    if session.exec(select(LearnedModel).where(LearnedModel.name == name)).first():
        raise Conflict(f"A model named {name!r} is already registered.")
    row = LearnedModel(
        name=name,
        version=version,
        task=task,
        modalities=[m.strip().upper() for m in modalities if m.strip()],
        body_parts=[b.strip().upper() for b in (body_parts or []) if b.strip()],
        labels=list(labels),
        spatial_size=[int(v) for v in spatial_size],
        intensity_range=list(intensity_range) if intensity_range else None,
        bundle_path=str(folder),
        sha256=expected,
        licence=licence,
        intended_use=intended_use,
        validated=validated,
        created_by_id=actor.user_id if actor else None,
    )
    session.add(row)
    session.flush()
    from pacs_app.services import audit as audit_log

    audit_log.record(
        session,
        action=AuditAction.AI_MODEL_REGISTERED,
        actor=actor,
        username=None if actor else "cli",
        resource_type="learned_model",
        resource_id=row.id,
        address=address,
        detail={"name": name, "version": version, "validated": validated},
    )
    session.commit()
    item = LearnedModelPublic.model_validate(row)
    from pacs_app.ai.models import model_state

    item.state = model_state(model_spec(row))
    return item
