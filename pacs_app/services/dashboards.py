"""What each role's dashboard shows, and who may open which one."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from pacs_app.core.errors import PermissionDenied
from pacs_app.models import AuditEvent, Centre, Role
from pacs_app.models.base import utcnow
from pacs_app.services import audit, studies, users
from pacs_app.services.audit import AuditAction, Outcome
from pacs_app.services.authz import Action, Actor, require
from pacs_app.services.dto import CentrePublic, StudyPublic


class DashboardSummary(BaseModel):
    role: Role
    centre: CentrePublic | None = None
    active_users_by_role: dict[str, int] = {}
    centres: int = 0
    failed_sign_ins_24h: int = 0
    studies_total: int = 0
    recent_studies: list[StudyPublic] = []


def enter_area(
    *,
    session: Session,
    actor: Actor,
    role: Role | str,
    address: str | None = None,
    area: str = "dashboard",
) -> None:
    """Allow ``actor`` into the pages of ``role`` (a dashboard or its sub-pages), or refuse.

    A refusal is audited and raises :class:`PermissionDenied`.
    """
    role = Role(role)
    try:
        require(actor, Action.OPEN_DASHBOARD, role)
    except PermissionDenied:
        audit.record(
            session,
            action=AuditAction.ACCESS_DENIED,
            actor=actor,
            outcome=Outcome.DENIED,
            resource_type=area,
            resource_id=role.value,
            address=address,
        )
        session.commit()
        raise


def summary(
    *, session: Session, actor: Actor, role: Role | str, address: str | None = None
) -> DashboardSummary:
    """The figures of ``role``'s dashboard, after :func:`enter_area` allowed the actor in."""
    role = Role(role)
    enter_area(session=session, actor=actor, role=role, address=address)
    result = DashboardSummary(role=role)
    if actor.centre_id is not None:
        centre = session.get(Centre, actor.centre_id)
        result.centre = CentrePublic.of(centre) if centre else None
    recent = studies.list_studies(session=session, actor=actor, limit=5)
    result.studies_total, result.recent_studies = recent.total, recent.items
    if role in (Role.ADMIN, Role.CENTRE):
        result.active_users_by_role = users.count_users_by_role(session=session, actor=actor)
    if role is Role.ADMIN:
        result.centres = session.exec(
            select(func.count()).select_from(Centre).where(col(Centre.is_active))
        ).one()
        result.failed_sign_ins_24h = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == AuditAction.LOGIN_FAILED.value)
            .where(AuditEvent.at > utcnow() - timedelta(hours=24))
        ).one()
    return result
