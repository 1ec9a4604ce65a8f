"""Analytics for the admin and centre dashboards: study volume per day, turnaround per
priority against its target, revenue per month per currency, radiologist workload.

Each query fetches only the columns it needs, bounded by the date range, and the figures are
aggregated in Python, so the same code runs on SQLite and PostgreSQL (a dashboard's range is
at most :data:`MAX_RANGE_DAYS` days). Days are UTC calendar days.

Money stays in integer minor units per currency; amounts of different currencies are never
added together. The chart rows carry a float copy of each amount (``to_decimal`` then
``float``) for drawing only; tables use ``amount_minor`` and ``formatted``.

Example::

    figures = summary(session=s, actor=admin, date_from=date(2026, 11, 1),
                      date_to=date(2026, 11, 30))
    figures.studies_by_modality[0]   # {"day": "2026-11-01", "CT": 4, "MR": 0}
    figures.revenue_totals[0].formatted   # "₹1,23,456.00"
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel
from sqlmodel import Session, col, select

from pacs_app.billing.money import format_money, to_decimal
from pacs_app.core.errors import InvalidInput, NotFound, PermissionDenied
from pacs_app.models import BillingRecord, BillingStatus, Centre, Priority, Study, StudyStatus, User
from pacs_app.services.authz import Action, Actor, require, visible_centre_ids
from pacs_app.services.turnaround import MAX_RANGE_DAYS, percentile
from pacs_app.services.workflow import target_minutes, tat_targets

UNKNOWN_MODALITY = "Unknown"
# Most urgent first, as the tables show them.
PRIORITY_ORDER = (Priority.STAT, Priority.URGENT, Priority.ROUTINE)


class PriorityTat(BaseModel):
    """Receipt to delivery for the studies of one priority received in the range."""

    priority: str
    target_minutes: int
    studies: int  # received (not cancelled)
    delivered: int
    p50_minutes: float | None  # None when nothing was delivered
    p90_minutes: float | None
    within_target: int
    within_target_pct: float | None


class RevenueMonth(BaseModel):
    month: str  # YYYY-MM
    currency: str
    records: int
    amount_minor: int
    formatted: str


class RevenueTotal(BaseModel):
    currency: str
    records: int
    amount_minor: int
    formatted: str


class RadiologistWorkload(BaseModel):
    radiologist_id: int
    name: str
    reads: int  # studies verified in the range
    by_modality: dict[str, int]
    median_read_minutes: float | None  # first opening to verification


class Analytics(BaseModel):
    date_from: date
    date_to: date
    centre_id: int | None  # the one centre shown, or None for all the actor may see
    studies_total: int
    modalities: list[str]
    # one row per day of the range: {"day": "2026-11-27", "CT": 3, "MR": 0, ...}
    studies_by_modality: list[dict[str, str | int]]
    centre_codes: list[str]
    # one row per day of the range: {"day": "2026-11-27", "NORTH": 2, "SOUTH": 0, ...}
    studies_by_centre: list[dict[str, str | int]]
    targets_minutes: dict[str, int]
    turnaround: list[PriorityTat]  # STAT, urgent, routine
    currencies: list[str]
    # one row per month of the range: {"month": "2026-11", "INR": 1234.5, "USD": 0.0}
    revenue_by_month: list[dict[str, str | float]]
    revenue_months: list[RevenueMonth]  # exact amounts, per month and currency
    revenue_totals: list[RevenueTotal]  # exact amounts, per currency (never summed across)
    workload: list[RadiologistWorkload]  # most reads first


def _check_range(date_from: date, date_to: date) -> None:
    if date_from > date_to:
        raise InvalidInput(
            f"The date range ends ({date_to.isoformat()}) before it starts "
            f"({date_from.isoformat()})."
        )
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"Choose a range of at most {MAX_RANGE_DAYS} days "
            f"({(date_to - date_from).days} days asked)."
        )


def _scope(session: Session, actor: Actor, centre_id: int | None) -> frozenset[int] | None:
    """The centre ids to report on (``None``: every centre). A centre manager is held to
    their own centre; asking for another is refused."""
    allowed = visible_centre_ids(actor)
    if allowed is not None:
        if centre_id is not None and centre_id not in allowed:
            raise PermissionDenied("You may only see your own centre.")
        return allowed
    if centre_id is None:
        return None
    if session.get(Centre, centre_id) is None:
        raise NotFound("No such centre.")
    return frozenset({centre_id})


def _days(date_from: date, date_to: date) -> list[str]:
    return [
        (date_from + timedelta(days=n)).isoformat() for n in range((date_to - date_from).days + 1)
    ]


def _months(date_from: date, date_to: date) -> list[str]:
    months, year, month = [], date_from.year, date_from.month
    while (year, month) <= (date_to.year, date_to.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _per_day(days: list[str], counts: dict[tuple[str, str], int], keys: list[str]) -> list[dict]:
    return [{"day": day, **{k: counts.get((day, k), 0) for k in keys}} for day in days]


def _modality(value: str | None) -> str:
    return (value or "").strip().upper() or UNKNOWN_MODALITY


def _minutes(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _turnaround(rows: list, targets: dict) -> list[PriorityTat]:
    by_priority: dict[Priority, list] = defaultdict(list)
    for r in rows:
        by_priority[Priority(r.priority)].append(r)
    result = []
    for priority in PRIORITY_ORDER:
        target = target_minutes(priority, targets)
        group = by_priority.get(priority, [])
        minutes = [
            _minutes(r.received_at, r.delivered_at) for r in group if r.delivered_at is not None
        ]
        within = sum(1 for m in minutes if m <= target)
        result.append(
            PriorityTat(
                priority=priority.value,
                target_minutes=target,
                studies=len(group),
                delivered=len(minutes),
                p50_minutes=_round(percentile(minutes, 50)),
                p90_minutes=_round(percentile(minutes, 90)),
                within_target=within,
                within_target_pct=round(100 * within / len(minutes), 1) if minutes else None,
            )
        )
    return result


def _revenue(
    session: Session, scope: frozenset[int] | None, months: list[str]
) -> tuple[list[str], list[dict], list[RevenueMonth], list[RevenueTotal]]:
    query = select(BillingRecord.currency, BillingRecord.month, BillingRecord.amount_minor).where(
        BillingRecord.status == BillingStatus.BILLED,
        BillingRecord.month >= months[0],
        BillingRecord.month <= months[-1],
    )
    if scope is not None:
        query = query.where(col(BillingRecord.centre_id).in_(scope))
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    records: Counter[tuple[str, str]] = Counter()
    for currency, month, amount in session.exec(query):
        key = (month, getattr(currency, "value", currency))
        amounts[key] += int(amount)
        records[key] += 1
    currencies = sorted({c for _, c in amounts})
    chart = [
        {
            "month": month,
            **{c: float(to_decimal(amounts.get((month, c), 0), c)) for c in currencies},
        }
        for month in months
    ]
    lines = [
        RevenueMonth(
            month=month,
            currency=c,
            records=records[(month, c)],
            amount_minor=amounts[(month, c)],
            formatted=format_money(amounts[(month, c)], c),
        )
        for month in months
        for c in currencies
        if (month, c) in amounts
    ]
    totals = []
    for c in currencies:
        total = sum(a for (_, cur), a in amounts.items() if cur == c)
        totals.append(
            RevenueTotal(
                currency=c,
                records=sum(n for (_, cur), n in records.items() if cur == c),
                amount_minor=total,
                formatted=format_money(total, c),
            )
        )
    return currencies, chart, lines, totals


def _workload(
    session: Session, scope: frozenset[int] | None, start: datetime, end: datetime
) -> list[RadiologistWorkload]:
    query = select(
        Study.assigned_radiologist_id, Study.modality, Study.first_opened_at, Study.verified_at
    ).where(
        col(Study.verified_at).is_not(None),
        Study.verified_at >= start,
        Study.verified_at < end,
        col(Study.assigned_radiologist_id).is_not(None),
        Study.status != StudyStatus.CANCELLED,
    )
    if scope is not None:
        query = query.where(col(Study.centre_id).in_(scope))
    modalities: dict[int, Counter[str]] = defaultdict(Counter)
    read_minutes: dict[int, list[float]] = defaultdict(list)
    for radiologist_id, modality, opened_at, verified_at in session.exec(query):
        modalities[radiologist_id][_modality(modality)] += 1
        if opened_at is not None and opened_at <= verified_at:
            read_minutes[radiologist_id].append(_minutes(opened_at, verified_at))
    if not modalities:
        return []
    names = {
        u.id: u.full_name or u.username
        for u in session.exec(select(User).where(col(User.id).in_(list(modalities))))
    }
    rows = [
        RadiologistWorkload(
            radiologist_id=rid,
            name=names.get(rid, f"#{rid}"),
            reads=sum(counts.values()),
            by_modality=dict(sorted(counts.items())),
            median_read_minutes=_round(percentile(read_minutes[rid], 50)),
        )
        for rid, counts in modalities.items()
    ]
    return sorted(rows, key=lambda r: (-r.reads, r.name.lower()))


def summary(
    *,
    session: Session,
    actor: Actor,
    date_from: date,
    date_to: date,
    centre_id: int | None = None,
) -> Analytics:
    """Dashboard figures from ``date_from`` to ``date_to`` (inclusive, UTC days).

    Administrators see every centre, or the one ``centre_id``; centre managers see their own
    centre only (another ``centre_id`` raises :class:`PermissionDenied`); other roles are
    refused with :class:`PermissionDenied`. A range that ends before it starts or spans more
    than :data:`MAX_RANGE_DAYS` days raises :class:`InvalidInput`; an unknown ``centre_id``
    raises :class:`NotFound`.

    - study volume and turnaround: studies *received* in the range, cancelled ones excluded;
    - workload: studies *verified* in the range, per assigned radiologist;
    - revenue: billing records whose month (of delivery) falls in the range's months, status
      ``billed`` only (credited records are left out).
    """
    require(actor, Action.VIEW_TURNAROUND)
    _check_range(date_from, date_to)
    scope = _scope(session, actor, centre_id)
    start = datetime.combine(date_from, time.min, tzinfo=UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC)

    query = select(
        Study.centre_id, Study.modality, Study.priority, Study.received_at, Study.delivered_at
    ).where(
        Study.received_at >= start,
        Study.received_at < end,
        Study.status != StudyStatus.CANCELLED,
    )
    if scope is not None:
        query = query.where(col(Study.centre_id).in_(scope))
    rows = list(session.exec(query))

    codes = dict(session.exec(select(Centre.id, Centre.code)).all())
    by_modality: Counter[tuple[str, str]] = Counter()
    by_centre: Counter[tuple[str, str]] = Counter()
    for r in rows:
        day = r.received_at.astimezone(UTC).date().isoformat()
        by_modality[(day, _modality(r.modality))] += 1
        by_centre[(day, codes.get(r.centre_id, f"#{r.centre_id}"))] += 1
    modalities = sorted({m for _, m in by_modality})
    centre_codes = sorted({c for _, c in by_centre})
    days = _days(date_from, date_to)

    currencies, revenue_chart, revenue_lines, revenue_totals = _revenue(
        session, scope, _months(date_from, date_to)
    )
    targets = tat_targets(session)
    return Analytics(
        date_from=date_from,
        date_to=date_to,
        centre_id=next(iter(scope)) if scope is not None and len(scope) == 1 else None,
        studies_total=len(rows),
        modalities=modalities,
        studies_by_modality=_per_day(days, by_modality, modalities),
        centre_codes=centre_codes,
        studies_by_centre=_per_day(days, by_centre, centre_codes),
        targets_minutes={p.value: targets[p] for p in PRIORITY_ORDER},
        turnaround=_turnaround(rows, targets),
        currencies=currencies,
        revenue_by_month=revenue_chart,
        revenue_months=revenue_lines,
        revenue_totals=revenue_totals,
        workload=_workload(session, scope, start, end),
    )
