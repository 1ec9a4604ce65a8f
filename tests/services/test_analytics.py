"""Analytics figures (volume, turnaround, revenue, workload) on SQLite and PostgreSQL.

Studies and billing records are written directly with explicit times and amounts: this is a
reporting query, so the rows are the input.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pacs_app.billing.money import format_money
from pacs_app.core.errors import InvalidInput, NotFound, PermissionDenied
from pacs_app.models import (
    BillingRecord,
    BillingStatus,
    Currency,
    Priority,
    Role,
    Study,
    StudyStatus,
)
from pacs_app.services import analytics
from pacs_app.services.workflow import target_minutes
from tests.factories import actor_of, make_centre, make_user

_seq = itertools.count(1)
NOV_1 = date(2026, 11, 1)
NOV_5 = date(2026, 11, 5)


def at(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def world(session):
    north = make_centre(session, "NORTH", currency=Currency.INR)
    south = make_centre(session, "SOUTH", currency=Currency.USD)
    w = {
        "north": north,
        "south": south,
        "admin": make_user(session, Role.ADMIN),
        "n_centre": make_user(session, Role.CENTRE, centre=north),
        "s_centre": make_user(session, Role.CENTRE, centre=south),
        "n_tech": make_user(session, Role.TECHNICIAN, centre=north),
        "n_rad": make_user(session, Role.RADIOLOGIST, centre=north, username="amara"),
        "tele": make_user(session, Role.RADIOLOGIST, username="zed"),
    }
    return {k: (actor_of(v) if hasattr(v, "role") else v) for k, v in w.items()}


@pytest.fixture
def add_study(session):
    def _add(
        centre,
        modality: str = "CT",
        received: datetime | None = None,
        *,
        priority: Priority = Priority.ROUTINE,
        status: StudyStatus = StudyStatus.UNASSIGNED,
        radiologist=None,
        opened: datetime | None = None,
        verified: datetime | None = None,
        delivered: datetime | None = None,
    ) -> Study:
        n = next(_seq)
        study = Study(
            study_id=f"T{n:07d}",
            study_instance_uid=f"1.2.826.0.1.3680043.8.498.{n}",
            centre_id=centre.id,
            modality=modality,
            priority=priority,
            priority_rank=priority.rank,
            status=status,
            assigned_radiologist_id=radiologist.user_id if radiologist else None,
            received_at=received or at(1),
            first_opened_at=opened,
            verified_at=verified,
            delivered_at=delivered,
        )
        session.add(study)
        session.commit()
        return study

    return _add


@pytest.fixture
def add_billing(session):
    def _add(
        centre,
        currency: Currency,
        amount_minor: int,
        month: str,
        *,
        status: BillingStatus = BillingStatus.BILLED,
    ) -> BillingRecord:
        n = next(_seq)
        record = BillingRecord(
            study_id=f"B{n:07d}",
            centre_id=centre.id,
            modality="CT",
            priority="routine",
            currency=currency,
            base_minor=amount_minor,
            amount_minor=amount_minor,
            month=month,
            status=status,
        )
        session.add(record)
        session.commit()
        return record

    return _add


def _summary(session, actor, date_from=NOV_1, date_to=NOV_5, centre_id=None):
    return analytics.summary(
        session=session, actor=actor, date_from=date_from, date_to=date_to, centre_id=centre_id
    )


def test_studies_per_day_by_modality_and_centre_with_every_day_present(session, world, add_study):
    north, south = world["north"], world["south"]
    add_study(north, "CT", at(1, 0, 0))  # the first instant of the range
    add_study(north, "CT", at(1, 9))
    add_study(south, "MR", at(1, 10))
    add_study(north, "ct", at(3, 23, 59))  # modality normalised
    # 01:00 in India on 4 November is 19:30 UTC on 3 November: days are UTC days
    add_study(north, "DX", datetime(2026, 11, 4, 1, 0, tzinfo=timezone(timedelta(hours=5.5))))
    add_study(south, "", at(5, 23, 59))
    add_study(north, "CT", at(2), status=StudyStatus.CANCELLED)  # cancelled: not counted
    add_study(north, "CT", at(31, 23, 59, month=10))  # before the range
    add_study(north, "CT", at(6, 0, 0))  # after the range

    result = _summary(session, world["admin"])

    assert result.studies_total == 6
    assert result.modalities == ["CT", "DX", "MR", analytics.UNKNOWN_MODALITY]
    assert result.studies_by_modality == [
        {"day": "2026-11-01", "CT": 2, "DX": 0, "MR": 1, "Unknown": 0},
        {"day": "2026-11-02", "CT": 0, "DX": 0, "MR": 0, "Unknown": 0},
        {"day": "2026-11-03", "CT": 1, "DX": 1, "MR": 0, "Unknown": 0},
        {"day": "2026-11-04", "CT": 0, "DX": 0, "MR": 0, "Unknown": 0},
        {"day": "2026-11-05", "CT": 0, "DX": 0, "MR": 0, "Unknown": 1},
    ]
    assert result.centre_codes == ["NORTH", "SOUTH"]
    assert result.studies_by_centre == [
        {"day": "2026-11-01", "NORTH": 2, "SOUTH": 1},
        {"day": "2026-11-02", "NORTH": 0, "SOUTH": 0},
        {"day": "2026-11-03", "NORTH": 2, "SOUTH": 0},
        {"day": "2026-11-04", "NORTH": 0, "SOUTH": 0},
        {"day": "2026-11-05", "NORTH": 0, "SOUTH": 1},
    ]


def test_an_empty_range_still_lists_every_day(session, world):
    result = _summary(session, world["admin"], date(2026, 2, 27), date(2026, 3, 2))

    assert result.studies_total == 0
    assert result.modalities == [] and result.centre_codes == []
    assert [r["day"] for r in result.studies_by_modality] == [
        "2026-02-27",
        "2026-02-28",
        "2026-03-01",
        "2026-03-02",
    ]
    assert result.studies_by_centre == [{"day": r["day"]} for r in result.studies_by_modality]
    assert result.currencies == [] and result.revenue_totals == []
    assert [r["month"] for r in result.revenue_by_month] == ["2026-02", "2026-03"]
    assert result.workload == []
    assert all(t.delivered == 0 and t.p50_minutes is None for t in result.turnaround)


def test_revenue_per_month_per_currency_excludes_credits_and_never_adds_currencies(
    session, world, add_billing
):
    north, south = world["north"], world["south"]
    add_billing(north, Currency.INR, 100_000, "2026-11")
    add_billing(north, Currency.INR, 50_050, "2026-11")
    add_billing(north, Currency.INR, 99_999, "2026-11", status=BillingStatus.CREDITED)
    add_billing(south, Currency.USD, 2_500, "2026-11")
    add_billing(south, Currency.USD, 1_250, "2026-10")
    add_billing(north, Currency.INR, 12_345_600, "2026-09")  # before the range's months
    add_billing(south, Currency.USD, 7_000, "2026-12")  # after

    result = _summary(session, world["admin"], date(2026, 10, 15), date(2026, 11, 20))

    assert result.currencies == ["INR", "USD"]
    assert result.revenue_by_month == [
        {"month": "2026-10", "INR": 0.0, "USD": 12.5},
        {"month": "2026-11", "INR": 1500.5, "USD": 25.0},
    ]
    assert [
        (t.currency, t.records, t.amount_minor, t.formatted) for t in result.revenue_totals
    ] == [
        ("INR", 2, 150_050, format_money(150_050, "INR")),
        ("USD", 2, 3_750, format_money(3_750, "USD")),
    ]
    assert result.revenue_totals[0].formatted == "₹1,500.50"
    assert result.revenue_totals[1].formatted == "$37.50"
    assert [(m.month, m.currency, m.records, m.amount_minor) for m in result.revenue_months] == [
        ("2026-10", "USD", 1, 1_250),
        ("2026-11", "INR", 2, 150_050),
        ("2026-11", "USD", 1, 2_500),
    ]
    # no combined figure anywhere: each chart row holds the month and one value per currency
    assert all(set(row) == {"month", "INR", "USD"} for row in result.revenue_by_month)
    assert all(isinstance(t.amount_minor, int) for t in result.revenue_totals)


def test_turnaround_percentiles_per_priority_against_targets(session, world, add_study):
    north = world["north"]

    def delivered_after(minutes: float, priority: Priority):
        received = at(2, 8)
        add_study(
            north,
            received=received,
            priority=priority,
            status=StudyStatus.DELIVERED,
            delivered=received + timedelta(minutes=minutes),
        )

    delivered_after(30, Priority.STAT)
    delivered_after(90, Priority.STAT)
    add_study(north, received=at(2), priority=Priority.STAT)  # not delivered yet
    for minutes in (100, 200, 300):
        delivered_after(minutes, Priority.URGENT)
    add_study(north, received=at(3))  # routine, waiting

    result = _summary(session, world["admin"])

    assert result.targets_minutes == {p.value: target_minutes(p) for p in Priority}
    stat, urgent, routine = result.turnaround
    assert (stat.priority, urgent.priority, routine.priority) == ("stat", "urgent", "routine")
    assert stat.target_minutes == target_minutes(Priority.STAT) == 60
    assert (stat.studies, stat.delivered, stat.within_target) == (3, 2, 1)
    assert (stat.p50_minutes, stat.p90_minutes, stat.within_target_pct) == (60.0, 84.0, 50.0)
    assert urgent.target_minutes == target_minutes(Priority.URGENT) == 240
    assert (urgent.studies, urgent.delivered, urgent.within_target) == (3, 3, 2)
    assert (urgent.p50_minutes, urgent.p90_minutes) == (200.0, 280.0)
    assert urgent.within_target_pct == pytest.approx(66.7)
    assert (routine.studies, routine.delivered) == (1, 0)
    assert routine.p50_minutes is None and routine.within_target_pct is None


def test_workload_per_radiologist_counts_reads_verified_in_the_range(session, world, add_study):
    north, south = world["north"], world["south"]
    rad, tele = world["n_rad"], world["tele"]

    def read(centre, modality, radiologist, verified, minutes_reading=None, received=None):
        add_study(
            centre,
            modality,
            received or verified - timedelta(hours=2),
            status=StudyStatus.VERIFIED,
            radiologist=radiologist,
            opened=None
            if minutes_reading is None
            else verified - timedelta(minutes=minutes_reading),
            verified=verified,
        )

    read(north, "CT", rad, at(2), 10)
    read(north, "CT", rad, at(3), 30)
    read(north, "MR", rad, at(4), 20)
    # received before the range, verified inside it: a read of this range
    read(south, "CT", tele, at(1, 1), 45, received=at(28, month=10))
    read(south, "CT", tele, at(1, 2))  # no opening recorded: counted, no reading time
    read(south, "CT", tele, at(6, 0, 0), 5)  # verified after the range
    add_study(north, "CT", at(2), radiologist=rad, opened=at(2, 13))  # opened, not verified

    result = _summary(session, world["admin"])

    assert [(w.name, w.reads, w.by_modality, w.median_read_minutes) for w in result.workload] == [
        ("amara", 3, {"CT": 2, "MR": 1}, 20.0),
        ("zed", 2, {"CT": 2}, 45.0),
    ]
    assert result.workload[0].radiologist_id == rad.user_id


def test_a_centre_manager_sees_only_their_own_centre(session, world, add_study, add_billing):
    north, south = world["north"], world["south"]
    add_study(north, "CT", at(1))
    add_study(south, "MR", at(1))
    add_study(
        south,
        "MR",
        at(2),
        status=StudyStatus.VERIFIED,
        radiologist=world["tele"],
        verified=at(2, 14),
    )
    add_billing(north, Currency.INR, 10_000, "2026-11")
    add_billing(south, Currency.USD, 2_000, "2026-11")

    mine = _summary(session, world["n_centre"])
    assert mine.centre_id == north.id
    assert mine.studies_total == 1
    assert mine.modalities == ["CT"] and mine.centre_codes == ["NORTH"]
    assert mine.currencies == ["INR"]
    assert [t.currency for t in mine.revenue_totals] == ["INR"]
    assert mine.workload == []
    # asking for one's own centre is the same; another centre is refused
    assert _summary(session, world["n_centre"], centre_id=north.id) == mine
    with pytest.raises(PermissionDenied):
        _summary(session, world["n_centre"], centre_id=south.id)

    theirs = _summary(session, world["admin"], centre_id=south.id)
    assert theirs.centre_codes == ["SOUTH"] and theirs.currencies == ["USD"]
    assert [w.name for w in theirs.workload] == ["zed"]
    everything = _summary(session, world["admin"])
    assert everything.centre_id is None and everything.studies_total == 3
    with pytest.raises(NotFound):
        _summary(session, world["admin"], centre_id=999_999)


@pytest.mark.parametrize("who", ["n_tech", "n_rad", "tele"])
def test_technicians_and_radiologists_are_refused(session, world, who):
    with pytest.raises(PermissionDenied, match="administrators and centre managers"):
        _summary(session, world[who])


@pytest.mark.parametrize(
    ("date_from", "date_to", "message"),
    [
        (date(2026, 11, 5), date(2026, 11, 1), "ends .* before it starts"),
        (date(2025, 1, 1), date(2026, 1, 3), "at most 366 days"),
    ],
)
def test_bad_ranges_are_refused(session, world, date_from, date_to, message):
    with pytest.raises(InvalidInput, match=message):
        _summary(session, world["admin"], date_from, date_to)


def test_a_range_of_366_days_is_accepted(session, world):
    result = _summary(session, world["admin"], date(2025, 1, 1), date(2026, 1, 2))
    assert len(result.studies_by_modality) == 367
    assert len(result.revenue_by_month) == 13
