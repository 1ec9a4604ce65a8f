"""The study state machine: routing, claiming, reading, verifying, delivering, cancelling.

Every status change of a study goes through :func:`move`, which knows the one table of
allowed transitions (:data:`TRANSITIONS`), writes the change with a conditional UPDATE (the row
must still be in the state the caller saw, so two people acting at once cannot both win), stamps
the turnaround times, and adds the audit record and the notifications in the same transaction.

::

    received ──release──▶ unassigned (tele pool) ──claim──▶ assigned ──open──▶ in_progress
        │                    │                                 ▲                 │ save draft
        └──────assign────────┴────────────assign───────────────┘                 ▼
                                                  delivered ◀─deliver─ verified ◀─verify─ reported

Unassign (with a reason) sends a study back to ``received``; a radiologist's release sends it
back to where radiologists of their kind pick it up; ``cancelled`` is reachable from every
state before verification.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from pacs_app.config import settings
from pacs_app.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from pacs_app.models import (
    AuditEvent,
    Centre,
    NotificationKind,
    Priority,
    Role,
    Study,
    StudyStatus,
    TurnaroundTarget,
    User,
)
from pacs_app.models.base import utcnow
from pacs_app.services import audit, notifications
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Action, Actor, can, require, study_visibility
from pacs_app.services.dto import RadiologistOption, StudyPublic, WorklistItem, WorklistPage
from pacs_app.services.studies import study_public

S = StudyStatus


class Step(StrEnum):
    RELEASE_TO_POOL = "release to the pool"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    CLAIM = "claim"
    RELEASE = "release"
    OPEN = "open for reading"
    SAVE_DRAFT = "save a draft of"
    VERIFY = "verify"
    DELIVER = "deliver"
    CANCEL = "cancel"
    ADDENDUM = "add an addendum to"
    SET_PRIORITY = "change the priority of"


READABLE = (S.ASSIGNED, S.IN_PROGRESS, S.REPORTED)
BEFORE_VERIFICATION = (S.RECEIVED, S.AI_PROCESSING, S.UNASSIGNED, *READABLE)

# step -> the states it may start from. Who may take it is authz's answer (see _ACTIONS).
TRANSITIONS: dict[Step, tuple[StudyStatus, ...]] = {
    Step.RELEASE_TO_POOL: (S.RECEIVED,),
    Step.ASSIGN: (S.RECEIVED, S.UNASSIGNED, *READABLE),
    Step.UNASSIGN: READABLE,
    Step.CLAIM: (S.RECEIVED, S.UNASSIGNED),
    Step.RELEASE: READABLE,
    Step.OPEN: (S.ASSIGNED,),
    Step.SAVE_DRAFT: READABLE,
    Step.VERIFY: (S.IN_PROGRESS, S.REPORTED),
    Step.DELIVER: (S.VERIFIED,),
    Step.CANCEL: BEFORE_VERIFICATION,
    Step.ADDENDUM: (S.VERIFIED, S.DELIVERED),
    Step.SET_PRIORITY: BEFORE_VERIFICATION,
}

_ACTIONS: dict[Step, Action] = {
    Step.RELEASE_TO_POOL: Action.ROUTE_STUDY,
    Step.ASSIGN: Action.ROUTE_STUDY,
    Step.UNASSIGN: Action.ROUTE_STUDY,
    Step.CLAIM: Action.CLAIM_STUDY,
    Step.RELEASE: Action.WRITE_REPORT,
    Step.OPEN: Action.WRITE_REPORT,
    Step.SAVE_DRAFT: Action.WRITE_REPORT,
    Step.VERIFY: Action.WRITE_REPORT,
    Step.DELIVER: Action.DELIVER_REPORT,
    Step.CANCEL: Action.CANCEL_STUDY,
    Step.ADDENDUM: Action.WRITE_REPORT,
    Step.SET_PRIORITY: Action.SET_PRIORITY,
}

_STATUS_WORDS = {
    S.RECEIVED: "waiting for its centre to route it",
    S.AI_PROCESSING: "being analysed",
    S.UNASSIGNED: "in the reading pool",
    S.ASSIGNED: "assigned",
    S.IN_PROGRESS: "being read",
    S.REPORTED: "being reported",
    S.VERIFIED: "verified",
    S.DELIVERED: "delivered",
    S.CANCELLED: "cancelled",
}


def status_words(status: StudyStatus) -> str:
    return _STATUS_WORDS[StudyStatus(status)]


def load_visible(session: Session, actor: Actor, study_id: str) -> Study:
    """The study, if the actor may see it; otherwise 404, as if it did not exist."""
    study = session.exec(
        select(Study).where(Study.study_id == (study_id or "").strip().upper())
    ).first()
    if study is None or not can(actor, Action.VIEW_STUDY, study):
        raise NotFound(f"No study {study_id!r}.")
    return study


def check_step(session: Session, actor: Actor, study: Study, step: Step) -> None:
    """Refuse ``step`` unless the actor may take it and the study's status allows it."""
    require(actor, _ACTIONS[step], study)
    if study.status not in TRANSITIONS[step]:
        raise InvalidTransition(_refusal(session, study, step))


def _refusal(session: Session, study: Study, step: Step) -> str:
    message = f"Cannot {step.value} study {study.study_id}: it is {status_words(study.status)}"
    if study.assigned_radiologist_id and study.status in (*READABLE, S.VERIFIED, S.DELIVERED):
        message += f" by {_display_name(session, study.assigned_radiologist_id)}"
    if study.status in (S.VERIFIED, S.DELIVERED) and step is Step.SAVE_DRAFT:
        message += "; a signed report changes only by an addendum"
    return message + "."


def _display_name(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id else None
    if user is None:
        return "another radiologist"
    return user.full_name or user.username


def move(
    session: Session,
    actor: Actor,
    study: Study,
    step: Step,
    *,
    to: StudyStatus | None = None,
    audit_action: AuditAction,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
    **values: Any,
) -> Study:
    """Apply ``step`` to ``study`` if nobody changed it since it was read; audit it.

    The caller commits. A lost race (another user moved the study first) raises
    :class:`Conflict` saying what happened, and nothing is written.
    """
    check_step(session, actor, study, step)
    now = utcnow()
    seen_status, seen_radiologist = study.status, study.assigned_radiologist_id
    changes: dict[str, Any] = {"updated_at": now, **values}
    if to is not None:
        changes["status"] = to
    result = session.execute(
        update(Study)
        .where(
            Study.id == study.id,
            Study.status == seen_status,
            Study.assigned_radiologist_id.is_(None)
            if seen_radiologist is None
            else Study.assigned_radiologist_id == seen_radiologist,
        )
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        session.expire_all()
        fresh = session.get(Study, study.id)
        if fresh is None:
            raise NotFound(f"No study {study.study_id!r}.")
        if fresh.assigned_radiologist_id and fresh.assigned_radiologist_id != seen_radiologist:
            raise Conflict(
                f"Study {fresh.study_id} was just taken by "
                f"{_display_name(session, fresh.assigned_radiologist_id)}."
            )
        raise Conflict(
            f"Study {fresh.study_id} changed meanwhile: it is now "
            f"{status_words(fresh.status)}. Reload and try again."
        )
    session.expire(study)
    session.refresh(study)
    audit.record_study(
        session,
        action=audit_action,
        actor=actor,
        study=study,
        address=address,
        detail={
            "from": seen_status.value,
            "to": study.status.value,
            **(detail or {}),
        },
    )
    return study


def _require_reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"Give a reason to {what}.")
    if len(reason) > 500:
        raise InvalidInput("The reason is too long (500 characters at most).")
    return reason


def _radiologist_for(session: Session, study: Study, radiologist_id: int) -> User:
    """The user a study may be assigned to: an active radiologist of its centre, or tele."""
    user = session.get(User, radiologist_id)
    if user is None:
        raise InvalidInput(f"There is no user {radiologist_id}.")
    if user.role is not Role.RADIOLOGIST:
        raise InvalidInput(f"{user.username} is not a radiologist.")
    if not user.is_active:
        raise InvalidInput(f"{user.username} is deactivated and cannot be assigned studies.")
    if user.centre_id is not None and user.centre_id != study.centre_id:
        raise InvalidInput(
            f"{user.username} is an internal radiologist of another centre; assign a "
            "radiologist of this centre or a tele-radiologist."
        )
    return user


def assign(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    radiologist_id: int | None,
    reason: str | None = None,
    address: str | None = None,
) -> StudyPublic:
    """Assign a study to a radiologist, or (``radiologist_id=None``) release it to the pool.

    Taking a study away from a radiologist who has it (a reassignment) needs a reason.
    """
    study = load_visible(session, actor, study_id)
    if radiologist_id is None:
        return release_to_pool(session=session, actor=actor, study_id=study_id, address=address)
    check_step(session, actor, study, Step.ASSIGN)
    radiologist = _radiologist_for(session, study, radiologist_id)
    previous = study.assigned_radiologist_id
    if previous == radiologist.id:
        raise InvalidTransition(
            f"Study {study.study_id} is already assigned to {_display_name(session, previous)}."
        )
    detail: dict[str, Any] = {"radiologist": radiologist.username}
    if previous is not None:
        detail["reason"] = _require_reason(reason, "take the study from its radiologist")
        detail["previous_radiologist"] = _display_name(session, previous)
    move(
        session,
        actor,
        study,
        Step.ASSIGN,
        to=S.ASSIGNED,
        audit_action=AuditAction.STUDY_ASSIGNED,
        address=address,
        detail=detail,
        assigned_radiologist_id=radiologist.id,
        assigned_at=study.assigned_at or utcnow(),
    )
    notifications.notify(
        session,
        [radiologist.id],
        NotificationKind.ASSIGNED_TO_YOU,
        study,
        f"Study {study.study_id} ({_describe(study)}) was assigned to you.",
    )
    if previous is not None:
        notifications.notify(
            session,
            [previous],
            NotificationKind.UNASSIGNED_FROM_YOU,
            study,
            f"Study {study.study_id} was reassigned to another radiologist.",
        )
    session.commit()
    return study_public(session, study)


def release_to_pool(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> StudyPublic:
    study = load_visible(session, actor, study_id)
    move(
        session,
        actor,
        study,
        Step.RELEASE_TO_POOL,
        to=S.UNASSIGNED,
        audit_action=AuditAction.STUDY_RELEASED_TO_POOL,
        address=address,
    )
    if study.priority is not Priority.ROUTINE:
        notify_urgent(session, study, tele=True)
    session.commit()
    return study_public(session, study)


def unassign(
    *, session: Session, actor: Actor, study_id: str, reason: str, address: str | None = None
) -> StudyPublic:
    """Take a study back from its radiologist, to the centre's own queue, with a reason."""
    study = load_visible(session, actor, study_id)
    check_step(session, actor, study, Step.UNASSIGN)
    reason = _require_reason(reason, "unassign the study")
    previous = study.assigned_radiologist_id
    move(
        session,
        actor,
        study,
        Step.UNASSIGN,
        to=S.RECEIVED,
        audit_action=AuditAction.STUDY_UNASSIGNED,
        address=address,
        detail={"reason": reason, "previous_radiologist": _display_name(session, previous)},
        assigned_radiologist_id=None,
    )
    notifications.notify(
        session,
        [previous],
        NotificationKind.UNASSIGNED_FROM_YOU,
        study,
        f"Study {study.study_id} was taken back by its centre.",
    )
    session.commit()
    return study_public(session, study)


def claim(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> StudyPublic:
    """A radiologist takes a free study. Of two claiming at once, exactly one wins, and the
    other is told who has it, even when taking it moved the study out of their sight (a
    tele-radiologist sees the pool only)."""
    try:
        study = load_visible(session, actor, study_id)
    except NotFound:
        taken = _just_taken(session, study_id) if actor.role is Role.RADIOLOGIST else None
        if taken is None:
            raise
        raise Conflict(
            f"Study {taken.study_id} was just taken by "
            f"{_display_name(session, taken.assigned_radiologist_id)}."
        ) from None
    if study.assigned_radiologist_id is not None:
        if study.assigned_radiologist_id == actor.user_id:
            raise InvalidTransition(f"You already have study {study.study_id}.")
        raise Conflict(
            f"Study {study.study_id} is already taken by "
            f"{_display_name(session, study.assigned_radiologist_id)}."
        )
    move(
        session,
        actor,
        study,
        Step.CLAIM,
        to=S.ASSIGNED,
        audit_action=AuditAction.STUDY_CLAIMED,
        address=address,
        assigned_radiologist_id=actor.user_id,
        assigned_at=study.assigned_at or utcnow(),
    )
    session.commit()
    return study_public(session, study)


# How long after a study left the pool a radiologist who tried to claim it is told who took
# it (after that, a study outside their sight is simply not found).
CLAIM_RACE_WINDOW = timedelta(minutes=2)


def _just_taken(session: Session, study_id: str) -> Study | None:
    """The study, if it was claimed or assigned from the pool moments ago."""
    study = session.exec(
        select(Study).where(Study.study_id == (study_id or "").strip().upper())
    ).first()
    if study is None or study.assigned_radiologist_id is None:
        return None
    recent = session.exec(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.resource_type == "study",
            AuditEvent.resource_id == study.study_id,
            col(AuditEvent.action).in_(
                [AuditAction.STUDY_CLAIMED.value, AuditAction.STUDY_ASSIGNED.value]
            ),
            AuditEvent.at >= utcnow() - CLAIM_RACE_WINDOW,
        )
    ).one()
    return study if recent else None


def release(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> StudyPublic:
    """The reading radiologist gives a study back: a tele-radiologist to the pool, an
    internal radiologist to the centre's queue. The draft stays with the study."""
    study = load_visible(session, actor, study_id)
    move(
        session,
        actor,
        study,
        Step.RELEASE,
        to=S.UNASSIGNED if actor.is_tele_radiologist else S.RECEIVED,
        audit_action=AuditAction.STUDY_RELEASED,
        address=address,
        assigned_radiologist_id=None,
    )
    session.commit()
    return study_public(session, study)


def open_for_reading(
    session: Session, actor: Actor, study: Study, *, address: str | None = None
) -> bool:
    """Mark the first opening by the assigned radiologist (assigned -> in_progress).

    Called when that radiologist opens the viewer or the report; anyone else opening the
    study changes nothing. Returns whether the study moved. The caller commits.
    """
    if study.status is not S.ASSIGNED or not can(actor, Action.WRITE_REPORT, study):
        return False
    try:
        move(
            session,
            actor,
            study,
            Step.OPEN,
            to=S.IN_PROGRESS,
            audit_action=AuditAction.STUDY_OPENED,
            address=address,
            first_opened_at=study.first_opened_at or utcnow(),
        )
    except Conflict:
        return False
    return True


def mark_opened(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> bool:
    """The viewer (or the report page) was opened: the assigned radiologist's first look
    starts the reading (assigned -> in_progress, "first opened" for turnaround)."""
    study = load_visible(session, actor, study_id)
    moved = open_for_reading(session, actor, study, address=address)
    if moved:
        session.commit()
    return moved


def set_priority(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    priority: Priority | str,
    address: str | None = None,
) -> StudyPublic:
    """Raise (centre users and technicians) or change (administrators) a study's priority."""
    study = load_visible(session, actor, study_id)
    try:
        new = Priority(str(priority).lower())
    except ValueError as exc:
        raise InvalidInput(f"Unknown priority {priority!r}: use routine, urgent or stat.") from exc
    check_step(session, actor, study, Step.SET_PRIORITY)
    if new == study.priority:
        raise InvalidInput(f"Study {study.study_id} is already {new.value}.")
    if new.rank < study.priority.rank and not actor.is_admin:
        raise InvalidInput("Only an administrator may lower a study's priority.")
    old = study.priority
    move(
        session,
        actor,
        study,
        Step.SET_PRIORITY,
        audit_action=AuditAction.STUDY_PRIORITY_CHANGED,
        address=address,
        detail={"priority_from": old.value, "priority_to": new.value},
        priority=new,
        priority_rank=new.rank,
    )
    if new.rank > old.rank and new is not Priority.ROUTINE:
        notify_urgent(session, study, tele=study.status is S.UNASSIGNED)
    session.commit()
    return study_public(session, study)


def cancel(
    *, session: Session, actor: Actor, study_id: str, reason: str, address: str | None = None
) -> StudyPublic:
    study = load_visible(session, actor, study_id)
    check_step(session, actor, study, Step.CANCEL)
    reason = _require_reason(reason, "cancel the study")
    move(
        session,
        actor,
        study,
        Step.CANCEL,
        to=S.CANCELLED,
        audit_action=AuditAction.STUDY_CANCELLED,
        address=address,
        detail={"reason": reason},
        cancelled_at=utcnow(),
    )
    session.commit()
    return study_public(session, study)


# --- who is told -----------------------------------------------------------------------


def _describe(study: Study) -> str:
    parts = [study.modality or "study"]
    if study.body_part:
        parts.append(study.body_part.lower())
    if study.priority is not Priority.ROUTINE:
        parts.append(study.priority.value.upper())
    return " ".join(parts)


def _active_users(session: Session, *clauses: Any) -> list[int]:
    return list(session.exec(select(User.id).where(col(User.is_active), *clauses)))


def notify_urgent(session: Session, study: Study, *, tele: bool) -> None:
    """An urgent or STAT study arrived (or was raised): tell its centre's managers and
    internal radiologists, the administrators, and the tele-radiologists when it is in the
    pool they read from."""
    people = _active_users(
        session,
        or_(
            and_(
                User.centre_id == study.centre_id,
                col(User.role).in_([Role.CENTRE, Role.RADIOLOGIST]),
            ),
            User.role == Role.ADMIN,
            and_(User.role == Role.RADIOLOGIST, col(User.centre_id).is_(None)) if tele else False,
        ),
    )
    notifications.notify(
        session,
        people,
        NotificationKind.URGENT_ARRIVED,
        study,
        f"{study.priority.value.upper()} study {study.study_id} ({_describe(study)}) is waiting.",
    )


def notify_delivered(session: Session, study: Study, *, addendum: bool = False) -> None:
    people = _active_users(
        session,
        User.centre_id == study.centre_id,
        col(User.role).in_([Role.CENTRE, Role.TECHNICIAN]),
    )
    what = "An addendum to the report" if addendum else "The report"
    notifications.notify(
        session,
        people,
        NotificationKind.REPORT_DELIVERED,
        study,
        f"{what} of study {study.study_id} ({_describe(study)}) was delivered.",
    )


# --- worklists ---------------------------------------------------------------------------


class Worklist(StrEnum):
    MINE = "mine"  # a radiologist's studies still to read or deliver
    AVAILABLE = "available"  # free studies the radiologist may claim
    ALL = "all"  # everything the actor may see, not closed


def target_minutes(priority: Priority, targets: dict[Priority, int] | None = None) -> int:
    """The turnaround target of ``priority``: from ``targets`` (see :func:`tat_targets`), else
    the configuration's."""
    priority = Priority(priority)
    if targets and priority in targets:
        return targets[priority]
    return {
        Priority.STAT: settings.tat_target_minutes_stat,
        Priority.URGENT: settings.tat_target_minutes_urgent,
        Priority.ROUTINE: settings.tat_target_minutes_routine,
    }[priority]


def tat_targets(session: Session) -> dict[Priority, int]:
    """Every priority's target in minutes: an administrator's where set, else the config's."""
    stored = {row.priority: row.minutes for row in session.exec(select(TurnaroundTarget)).all()}
    return {p: stored.get(p.value) or target_minutes(p) for p in Priority}


def set_tat_target(
    *,
    session: Session,
    actor: Actor,
    priority: Priority | str,
    minutes: int | str,
    address: str | None = None,
) -> dict[Priority, int]:
    """An administrator sets a priority's turnaround target (audited)."""
    require(actor, Action.MANAGE_TEMPLATES)
    try:
        priority = Priority(str(priority).lower())
    except ValueError as exc:
        raise InvalidInput(f"Unknown priority {priority!r}: use routine, urgent or stat.") from exc
    try:
        minutes = int(str(minutes).strip())
    except ValueError as exc:
        raise InvalidInput(f"The target {minutes!r} is not a whole number of minutes.") from exc
    if not 1 <= minutes <= 60 * 24 * 30:
        raise InvalidInput("A target is between 1 minute and 30 days.")
    existing = session.get(TurnaroundTarget, priority.value)
    old = existing.minutes if existing else target_minutes(priority)
    row = existing or TurnaroundTarget(priority=priority.value, minutes=minutes)
    row.minutes, row.updated_at, row.updated_by_id = minutes, utcnow(), actor.user_id
    session.add(row)
    audit.record(
        session,
        action=AuditAction.TAT_TARGET_CHANGED,
        actor=actor,
        resource_type="turnaround_target",
        resource_id=priority.value,
        address=address,
        detail={"from_minutes": old, "to_minutes": minutes},
    )
    session.commit()
    return tat_targets(session)


def _worklist_clauses(actor: Actor, kind: Worklist, status: StudyStatus | None) -> list[Any]:
    clauses: list[Any] = [study_visibility(actor)]
    if kind is Worklist.MINE:
        if actor.role is not Role.RADIOLOGIST:
            raise InvalidInput("Only radiologists have a 'mine' worklist.")
        clauses += [
            Study.assigned_radiologist_id == actor.user_id,
            col(Study.status).in_([*READABLE, S.VERIFIED]),
        ]
    elif kind is Worklist.AVAILABLE:
        if actor.role is not Role.RADIOLOGIST:
            raise InvalidInput("Only radiologists claim studies.")
        free = [S.UNASSIGNED] if actor.is_tele_radiologist else [S.RECEIVED, S.UNASSIGNED]
        clauses += [col(Study.assigned_radiologist_id).is_(None), col(Study.status).in_(free)]
    else:
        clauses.append(
            Study.status == status
            if status
            else col(Study.status).notin_([S.DELIVERED, S.CANCELLED])
        )
    return clauses


def worklist(
    *,
    session: Session,
    actor: Actor,
    kind: Worklist | str = Worklist.ALL,
    status: StudyStatus | str | None = None,
    page: int = 1,
    page_size: int = 50,
    now: datetime | None = None,
) -> WorklistPage:
    """Most urgent first, then longest waiting, with the waiting time and overdue flag."""
    try:
        kind = Worklist(kind)
        status = StudyStatus(status) if status else None
    except ValueError as exc:
        raise InvalidInput(f"Unknown worklist or status: {exc}") from exc
    page = max(1, page)
    page_size = min(max(1, page_size), 200)
    now = now or utcnow()
    clauses = _worklist_clauses(actor, kind, status)
    total = session.exec(select(func.count()).select_from(Study).where(*clauses)).one()
    rows = session.exec(
        select(Study)
        .where(*clauses)
        .order_by(col(Study.priority_rank).desc(), col(Study.received_at), col(Study.id))
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    centres = {c.id: c for c in session.exec(select(Centre))} if rows else {}
    names = _names(session, {r.assigned_radiologist_id for r in rows} - {None})
    from pacs_app.services.ai import job_states  # ai -> workflow: import late

    ai_states = job_states(session, [r.id for r in rows])
    targets = tat_targets(session)
    items = []
    for row in rows:
        end = row.delivered_at or row.cancelled_at or now
        waited = max(0, int((end - row.received_at).total_seconds()))
        target = target_minutes(row.priority, targets)
        items.append(
            WorklistItem(
                **study_public(
                    session, row, centre=centres.get(row.centre_id), uploader=""
                ).model_dump(exclude={"differences"}),
                assigned_to=names.get(row.assigned_radiologist_id, ""),
                ai_status=ai_states.get(row.id, ""),
                waiting_seconds=waited,
                target_minutes=target,
                overdue=waited > target * 60,
            )
        )
    return WorklistPage(
        items=items,
        total=total,
        page=page,
        page_size=page_size,
        stamp=worklist_stamp(session=session, actor=actor),
    )


def worklist_stamp(*, session: Session, actor: Actor) -> str:
    """A cheap fingerprint of what the actor may see: it changes when any of it changes.

    Pages poll it and reload their rows only when it moves.
    """
    count, latest = session.exec(
        select(func.count(), func.max(Study.updated_at)).where(study_visibility(actor))
    ).one()
    if isinstance(latest, datetime):
        latest = latest.isoformat()
    return f"{count}:{latest}"


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        u.id: u.full_name or u.username
        for u in session.exec(select(User).where(col(User.id).in_(ids)))
    }


def radiologist_options(
    *, session: Session, actor: Actor, study_id: str
) -> list[RadiologistOption]:
    """Who the actor may assign this study to: its centre's internal radiologists and the
    tele-radiologists, active ones only."""
    study = load_visible(session, actor, study_id)
    require(actor, Action.ROUTE_STUDY, study)
    users = session.exec(
        select(User)
        .where(
            col(User.is_active),
            User.role == Role.RADIOLOGIST,
            or_(User.centre_id == study.centre_id, col(User.centre_id).is_(None)),
        )
        .order_by(col(User.full_name), col(User.username))
    ).all()
    return [
        RadiologistOption(
            id=u.id,
            name=u.full_name or u.username,
            username=u.username,
            tele=u.centre_id is None,
        )
        for u in users
    ]


# --- what a page offers ------------------------------------------------------------------


class ReadingPanel(BaseModel):
    """A study's place in the workflow and what the actor may do with it now."""

    study_id: str
    status: StudyStatus
    status_words: str
    priority: Priority
    assigned_to: str
    assigned_radiologist_id: int | None
    steps: list[str]  # Step names the actor may take now
    radiologists: list[RadiologistOption]  # whom the actor may assign it to
    times: dict[str, datetime | None]  # received, assigned, opened, verified, delivered


def allowed_steps(actor: Actor, study: Study) -> list[Step]:
    """The steps the actor could take on the study now (each still re-checked when taken)."""
    allowed = []
    for step, sources in TRANSITIONS.items():
        if study.status in sources and can(actor, _ACTIONS[step], study):
            allowed.append(step)
    if Step.CLAIM in allowed and study.assigned_radiologist_id is not None:
        allowed.remove(Step.CLAIM)
    return allowed


def reading_panel(*, session: Session, actor: Actor, study_id: str) -> ReadingPanel:
    study = load_visible(session, actor, study_id)
    steps = allowed_steps(actor, study)
    options = (
        radiologist_options(session=session, actor=actor, study_id=study_id)
        if Step.ASSIGN in steps
        else []
    )
    return ReadingPanel(
        study_id=study.study_id,
        status=study.status,
        status_words=status_words(study.status),
        priority=study.priority,
        assigned_to=_display_name(session, study.assigned_radiologist_id)
        if study.assigned_radiologist_id
        else "",
        assigned_radiologist_id=study.assigned_radiologist_id,
        steps=[s.name for s in steps],
        radiologists=options,
        times={
            "received": study.received_at,
            "assigned": study.assigned_at,
            "opened": study.first_opened_at,
            "verified": study.verified_at,
            "delivered": study.delivered_at,
        },
    )
