"""In-app notifications: a row per person told, read when they open or dismiss it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from pacs_app.models import Notification, NotificationKind, Study
from pacs_app.models.base import utcnow
from pacs_app.services.authz import Actor
from pacs_app.services.dto import NotificationList, NotificationPublic


def notify(
    session: Session,
    user_ids: Iterable[int | None],
    kind: NotificationKind,
    study: Study | None,
    message: str,
) -> int:
    """Add one notification per user (the caller commits, with the change it announces)."""
    count = 0
    for user_id in sorted({u for u in user_ids if u is not None}):
        session.add(
            Notification(
                user_id=user_id,
                kind=kind,
                study_pk=study.id if study else None,
                study_id=study.study_id if study else "",
                message=message[:300],
            )
        )
        count += 1
    return count


def unread_count(*, session: Session, actor: Actor) -> int:
    return session.exec(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == actor.user_id, col(Notification.read_at).is_(None))
    ).one()


def list_for(
    *, session: Session, actor: Actor, unread_only: bool = False, limit: int = 30
) -> NotificationList:
    """The actor's own notifications, newest first (nobody reads anyone else's)."""
    query = select(Notification).where(Notification.user_id == actor.user_id)
    if unread_only:
        query = query.where(col(Notification.read_at).is_(None))
    rows = session.exec(
        query.order_by(col(Notification.id).desc()).limit(min(max(1, limit), 200))
    ).all()
    return NotificationList(
        items=[NotificationPublic.model_validate(r) for r in rows],
        unread=unread_count(session=session, actor=actor),
    )


def mark_read(*, session: Session, actor: Actor, ids: Iterable[int] | None = None) -> int:
    """Mark the actor's notifications read: the given ones, or all. Returns how many."""
    query = update(Notification).where(
        Notification.user_id == actor.user_id, col(Notification.read_at).is_(None)
    )
    if ids is not None:
        ids = list(ids)
        if not ids:
            return 0
        query = query.where(col(Notification.id).in_(ids))
    result = session.execute(query.values(read_at=utcnow()))
    session.commit()
    return result.rowcount
