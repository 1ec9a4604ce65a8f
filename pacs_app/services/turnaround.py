"""Turnaround time (TAT): from receipt to assignment, first opening, verification, delivery.

Figures are per centre and per radiologist over the studies received in a date range, as
averages and percentiles in minutes, with the share delivered within the target of each
study's priority (``TAT_TARGET_MINUTES_*``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel
from sqlmodel import Session, col, select

from pacs_app.core.errors import InvalidInput
from pacs_app.models import Centre, Priority, Study, StudyStatus, User
from pacs_app.services.authz import Action, Actor, require, visible_centre_ids
from pacs_app.services.workflow import target_minutes, tat_targets

STEPS = ("assigned", "opened", "verified", "delivered")
_COLUMNS = {
    "assigned": Study.assigned_at,
    "opened": Study.first_opened_at,
    "verified": Study.verified_at,
    "delivered": Study.delivered_at,
}
MAX_RANGE_DAYS = 366


class StepFigures(BaseModel):
    count: int  # studies that reached the step
    mean_minutes: float | None
    p50_minutes: float | None
    p90_minutes: float | None


class TatRow(BaseModel):
    key: str  # centre code or radiologist name
    label: str
    studies: int
    delivered: int
    within_target: int  # delivered within their priority's target
    within_target_pct: float | None
    steps: dict[str, StepFigures]


class TatSummary(BaseModel):
    date_from: date
    date_to: date
    targets_minutes: dict[str, int]
    overall: TatRow
    by_centre: list[TatRow]
    by_radiologist: list[TatRow]


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _row(key: str, label: str, rows: list, targets: dict | None = None) -> TatRow:
    steps = {}
    for step in STEPS:
        minutes = [
            (getattr(r, step) - r.received_at).total_seconds() / 60
            for r in rows
            if getattr(r, step) is not None
        ]
        steps[step] = StepFigures(
            count=len(minutes),
            mean_minutes=round(sum(minutes) / len(minutes), 1) if minutes else None,
            p50_minutes=_round(percentile(minutes, 50)),
            p90_minutes=_round(percentile(minutes, 90)),
        )
    delivered = [r for r in rows if r.delivered is not None]
    within = sum(
        1
        for r in delivered
        if (r.delivered - r.received_at) <= timedelta(minutes=target_minutes(r.priority, targets))
    )
    return TatRow(
        key=key,
        label=label,
        studies=len(rows),
        delivered=len(delivered),
        within_target=within,
        within_target_pct=round(100 * within / len(delivered), 1) if delivered else None,
        steps=steps,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summary(
    *,
    session: Session,
    actor: Actor,
    date_from: date,
    date_to: date,
    centre_id: int | None = None,
) -> TatSummary:
    """TAT figures for studies received from ``date_from`` to ``date_to`` (inclusive), for
    administrators (all centres, or one) and centre managers (their own centre only)."""
    require(actor, Action.VIEW_TURNAROUND)
    if date_from > date_to:
        raise InvalidInput("The date range ends before it starts.")
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise InvalidInput(f"Choose a range of at most {MAX_RANGE_DAYS} days.")
    query = select(
        Study.centre_id,
        Study.assigned_radiologist_id,
        Study.priority,
        Study.received_at,
        *[c.label(name) for name, c in _COLUMNS.items()],
    ).where(
        Study.received_at >= datetime.combine(date_from, time.min, tzinfo=UTC),
        Study.received_at <= datetime.combine(date_to, time.max, tzinfo=UTC),
        Study.status != StudyStatus.CANCELLED,
    )
    allowed = visible_centre_ids(actor)
    if allowed is not None:
        query = query.where(col(Study.centre_id).in_(allowed))
    if centre_id is not None:
        query = query.where(Study.centre_id == centre_id)
    rows = session.exec(query).all()
    targets = tat_targets(session)

    centres = {c.id: c for c in session.exec(select(Centre))}
    by_centre: dict[int, list] = defaultdict(list)
    by_radiologist: dict[int, list] = defaultdict(list)
    for r in rows:
        by_centre[r.centre_id].append(r)
        if r.assigned_radiologist_id:
            by_radiologist[r.assigned_radiologist_id].append(r)
    names = (
        {
            u.id: u.full_name or u.username
            for u in session.exec(select(User).where(col(User.id).in_(list(by_radiologist))))
        }
        if by_radiologist
        else {}
    )
    return TatSummary(
        date_from=date_from,
        date_to=date_to,
        targets_minutes={p.value: targets[p] for p in Priority},
        overall=_row("all", "All studies", rows, targets),
        by_centre=sorted(
            (
                _row(centres[c].code, centres[c].name, rs, targets)
                for c, rs in by_centre.items()
                if c in centres
            ),
            key=lambda t: t.label,
        ),
        by_radiologist=sorted(
            (_row(str(u), names.get(u, "?"), rs, targets) for u, rs in by_radiologist.items()),
            key=lambda t: t.label,
        ),
    )
