"""The audit trail: one function records who did what to which resource, from where.

Records carry identifiers (user id, username, resource type and id, centre id, address),
never patient data: the ``detail`` dict is for codes and reasons, not names.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import insert
from sqlmodel import Session, col, func, select

from pacs_app.core.errors import InvalidInput
from pacs_app.models import AuditEvent
from pacs_app.models.base import utcnow
from pacs_app.services.authz import Action, Actor, require
from pacs_app.services.dto import AuditEventPublic, Page


class AuditAction(StrEnum):
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN_LOCKED = "auth.login_locked"
    LOGOUT = "auth.logout"
    TOKEN_REJECTED = "auth.token_rejected"
    ACCESS_DENIED = "authz.denied"
    USER_CREATED = "user.created"
    USER_ACTIVATED = "user.activated"
    USER_DEACTIVATED = "user.deactivated"
    PASSWORD_CHANGED = "user.password_changed"
    PASSWORD_RESET = "user.password_reset"
    USER_UPDATED = "user.updated"
    CENTRE_CREATED = "centre.created"
    CENTRE_UPDATED = "centre.updated"
    CENTRE_DEACTIVATED = "centre.deactivated"
    CENTRE_ACTIVATED = "centre.activated"
    STUDY_UPLOADED = "study.uploaded"
    STUDY_VIEWED = "study.viewed"
    STUDIES_COMPARED = "study.compared"  # the patient's other studies listed beside it
    STUDY_DELETED = "study.deleted"
    INSTANCE_DOWNLOADED = "instance.downloaded"
    STUDY_RELEASED_TO_POOL = "study.released_to_pool"
    STUDY_ASSIGNED = "study.assigned"
    STUDY_UNASSIGNED = "study.unassigned"
    STUDY_CLAIMED = "study.claimed"
    STUDY_RELEASED = "study.released"
    STUDY_OPENED = "study.opened_for_reading"
    STUDY_PRIORITY_CHANGED = "study.priority_changed"
    STUDY_CANCELLED = "study.cancelled"
    REPORT_STARTED = "report.started"
    REPORT_TEMPLATE_APPLIED = "report.template_applied"
    REPORT_VERIFIED = "report.verified"
    REPORT_ADDENDUM = "report.addendum"
    REPORT_DELIVERED = "report.delivered"
    REPORT_DOWNLOADED = "report.downloaded"
    KEY_IMAGE_MARKED = "report.key_image_marked"
    KEY_IMAGE_UNMARKED = "report.key_image_unmarked"
    TEMPLATE_CHANGED = "template.changed"
    TAT_TARGET_CHANGED = "turnaround.target_changed"
    AI_REQUESTED = "ai.requested"
    AI_FINDING_DECIDED = "ai.finding_decided"
    AI_DRAFT_ACCEPTED = "ai.draft_accepted"
    AI_MODEL_REGISTERED = "ai.model_registered"
    DEVICE_CREATED = "device.created"
    DEVICE_UPDATED = "device.updated"
    DEVICE_ACTIVATED = "device.activated"
    DEVICE_DEACTIVATED = "device.deactivated"
    DEVICE_DELETED = "device.deleted"
    # a DICOM association the listener refused (unknown AE title, address, inactive device)
    DICOM_REFUSED = "dicom.association_refused"
    # a device's C-FIND: its level and how many matched (retrievals are study.viewed)
    DICOM_QUERIED = "dicom.queried"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class EventFields(TypedDict, total=False):
    """What an audit event records (``action`` is required)."""

    action: Required[AuditAction | str]
    actor: Actor | None
    username: str | None  # defaults to the actor's; set for events without an actor
    outcome: Outcome
    resource_type: str | None
    resource_id: str | int | None
    centre_id: int | None  # defaults to the actor's centre
    address: str | None
    detail: dict[str, Any] | None  # codes and reasons, never patient data
    at: datetime | None


def record(session: Session, **event: Unpack[EventFields]) -> AuditEvent:
    """Add an audit event to ``session``; the caller's commit stores it with the change itself.

    ``username`` defaults to the actor's; pass it for events without an actor (a failed
    sign-in records the name that was typed).
    """
    added = AuditEvent(**_values(event))
    session.add(added)
    return added


_INSERT_EVENT = insert(AuditEvent.__table__).inline()  # no RETURNING: it may be pipelined


def write(session: Session, **event: Unpack[EventFields]) -> None:
    """:func:`record`, inserted at once with a prepared statement instead of through the unit
    of work: for ingest, which records an event per request and writes its other rows the
    same way. The event still commits or rolls back with the transaction."""
    session.connection().execute(_INSERT_EVENT, _values(event))


def _values(event: EventFields) -> dict[str, Any]:
    """An event's column values (every column but the id)."""
    actor = event.get("actor")
    username = event.get("username") or (actor.username if actor else None) or None
    address = event.get("address")
    resource_id = event.get("resource_id")
    centre_id = event.get("centre_id")
    return {
        "at": event.get("at") or utcnow(),
        "actor_id": actor.user_id if actor else None,
        "username": username[:64] if username else None,
        "action": str(event["action"]),
        "outcome": str(event.get("outcome", Outcome.SUCCESS)),
        "resource_type": event.get("resource_type"),
        "resource_id": str(resource_id) if resource_id is not None else None,
        "centre_id": centre_id if centre_id is not None else (actor.centre_id if actor else None),
        "address": address[:64] if address else None,
        "detail": event.get("detail"),
    }


def record_study(
    session: Session,
    *,
    action: AuditAction,
    actor: Actor,
    study,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """:func:`record` for an action on a study (by its Study ID, in its centre)."""
    return record(
        session,
        action=action,
        actor=actor,
        resource_type="study",
        resource_id=study.study_id,
        centre_id=study.centre_id,
        address=address,
        detail=detail,
    )


def list_events(
    *,
    session: Session,
    actor: Actor,
    action: str | None = None,
    username: str | None = None,
    page: int = 1,
    page_size: int = 50,
    date_from: date | None = None,
    date_to: date | None = None,
    resource_id: str | None = None,
    resource_type: str | None = None,
    outcome: str | None = None,
) -> Page[AuditEventPublic]:
    """Newest first, for administrators.

    Filters (all optional, combined with AND): ``action`` (exact, e.g. ``"user.created"``),
    ``username`` (exact, case-insensitive), ``date_from`` / ``date_to`` (UTC days, both
    inclusive), ``resource_id`` (exact: a Study ID, a user or centre id), ``resource_type``
    (``"study"``, ``"user"``, ``"centre"``...) and ``outcome``.

    Raises :class:`PermissionDenied` for non-administrators and :class:`InvalidInput` when
    ``date_from`` is after ``date_to``.
    """
    require(actor, Action.VIEW_AUDIT)
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("The start date is after the end date.")
    page = max(1, page)
    page_size = min(max(1, page_size), 200)
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if username and username.strip():
        query = query.where(AuditEvent.username == username.strip().lower())
    if date_from:
        query = query.where(AuditEvent.at >= datetime.combine(date_from, time.min, tzinfo=UTC))
    if date_to:
        end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC)
        query = query.where(AuditEvent.at < end)
    if resource_id and resource_id.strip():
        wanted = resource_id.strip()
        # Study IDs are upper case; accept them typed in lower case too.
        query = query.where(col(AuditEvent.resource_id).in_({wanted, wanted.upper()}))
    if resource_type:
        query = query.where(AuditEvent.resource_type == resource_type)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return Page[AuditEventPublic](
        items=[AuditEventPublic.of(r) for r in rows],
        total=total,
        page=page,
        page_size=page_size,
    )
