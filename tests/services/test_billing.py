"""Billing through the domain layer, on SQLite and PostgreSQL: money, pricing rules with
effective dates, billing at delivery (once), credits, invoices, payouts, exchange rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader
from sqlmodel import func, select

from pacs_app.billing.money import convert, format_money, parse_amount
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import BillingRecord, BillingStatus, Currency, Invoice, Role, Study
from pacs_app.services import billing, reports, workflow
from pacs_app.services.ingest import StagedFile, StudyForm, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import make_series
from tests.factories import actor_of, make_centre, make_user

TODAY = datetime.now(UTC).date()


def test_money_is_formatted_as_each_currency_expects():
    assert format_money(12345600, "INR") == "₹1,23,456.00"
    assert format_money(123456789012, "INR") == "₹1,23,45,67,890.12"
    assert format_money(123456, "USD") == "$1,234.56"
    assert format_money(123456, Currency.AED) == "AED 1,234.56"
    assert format_money(-5, "USD") == "-$0.05"
    assert parse_amount("1,499.50", "INR") == 149950
    assert parse_amount("₹ 10", "INR") == 1000
    for bad, message in (("-1", "negative"), ("abc", "not a number"), ("1.234", "decimals")):
        with pytest.raises(InvalidInput, match=message):
            parse_amount(bad, "USD")
    with pytest.raises(InvalidInput, match="Unknown currency"):
        parse_amount("1", "EUR")
    assert convert(10000, Decimal("83.25"), Currency.USD, Currency.INR) == 832500


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def world(session):
    inr = make_centre(session, "MUMBAI", currency=Currency.INR)
    usd = make_centre(session, "TEXAS", currency=Currency.USD)
    return {
        "inr": inr,
        "usd": usd,
        "admin": actor_of(make_user(session, Role.ADMIN)),
        "tele": actor_of(make_user(session, Role.RADIOLOGIST, username="tele-bill")),
        "mgr": actor_of(make_user(session, Role.CENTRE, centre=inr)),
        "mgr_usd": actor_of(make_user(session, Role.CENTRE, centre=usd)),
        "tech": actor_of(make_user(session, Role.TECHNICIAN, centre=inr)),
        "tech_usd": actor_of(make_user(session, Role.TECHNICIAN, centre=usd)),
    }


@pytest.fixture
def deliver(session, storage, tmp_path, world):
    """Upload, read, verify and deliver a study; returns its Study ID."""
    n = iter(range(1000))

    def _deliver(modality="CT", priority="routine", tech="tech") -> str:
        paths = make_series(tmp_path / f"d{next(n)}", 1, size=16)
        result = ingest(
            session=session,
            actor=world[tech],
            files=[StagedFile(p.name, p) for p in paths],
            form=StudyForm(modality=modality, priority=priority),
            storage=storage,
        )
        sid = result.studies[0].study_id
        workflow.claim(session=session, actor=world["tele"], study_id=sid)
        reports.save_draft(
            session=session, actor=world["tele"], study_id=sid, findings="f", impression="i"
        )
        reports.verify(session=session, actor=world["tele"], study_id=sid, storage=storage)
        reports.deliver(session=session, actor=world["tele"], study_id=sid)
        return sid

    return _deliver


def _rule(session, world, **kw):
    args = {
        "centre_id": None,
        "modality": "CT",
        "currency": "INR",
        "price": "1500",
        "urgent_surcharge": "300",
        "stat_surcharge": "750",
        "effective_from": TODAY - timedelta(days=30),
    }
    args.update(kw)
    return billing.save_rule(session=session, actor=world["admin"], **args)


def _record(session, sid) -> BillingRecord:
    session.expire_all()
    return session.exec(select(BillingRecord).where(BillingRecord.study_id == sid)).one()


def test_a_delivered_study_is_billed_once_at_the_rule_in_force(session, world, deliver):
    _rule(session, world)  # default INR CT price
    centre_rule = _rule(
        session, world, centre_id=world["inr"].id, price="1200", effective_from=TODAY
    )
    sid = deliver(priority="urgent")
    record = _record(session, sid)
    assert (record.base_minor, record.surcharge_minor, record.amount_minor) == (
        120000,
        30000,
        150000,
    )
    assert record.currency is Currency.INR and record.rule_id == centre_rule.id
    assert "1,200.00" in record.rule_text and record.month == TODAY.strftime("%Y-%m")
    # an addendum after delivery bills nothing more
    reports.add_addendum(session=session, actor=world["tele"], study_id=sid, text="More.")
    assert session.exec(select(func.count()).select_from(BillingRecord)).one() == 1
    study = session.exec(select(Study).where(Study.study_id == sid)).one()
    assert billing.bill_delivered(session, study).id == record.id  # a second call: the same


def test_a_price_change_does_not_rewrite_history(session, world, deliver):
    old = _rule(session, world, centre_id=world["inr"].id, price="1000")
    first = deliver()
    assert _record(session, first).amount_minor == 100000
    with pytest.raises(Conflict, match="does not rewrite history"):
        billing.save_rule(
            session=session,
            actor=world["admin"],
            rule_id=old.id,
            centre_id=world["inr"].id,
            modality="CT",
            currency="INR",
            price="2000",
            effective_from=old.effective_from,
        )
    _rule(session, world, centre_id=world["inr"].id, price="2000", effective_from=TODAY)
    second = deliver()
    assert _record(session, first).amount_minor == 100000
    assert _record(session, second).amount_minor == 200000


def test_bad_pricing_input_is_refused_and_changes_nothing(session, world):
    base = {"centre_id": world["inr"].id, "effective_from": TODAY}
    cases = [
        ({"price": "-5"}, InvalidInput, "negative"),
        ({"price": "ten"}, InvalidInput, "not a number"),
        ({"currency": "EUR"}, InvalidInput, "Unknown currency"),
        ({"modality": "XYZ"}, InvalidInput, "Unknown modality"),
        ({"currency": "USD"}, InvalidInput, "billed in INR"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            _rule(session, world, **{**base, **change})
    _rule(session, world, **base)
    with pytest.raises(Conflict, match="already starts on"):
        _rule(session, world, **{**base, "price": "999"})
    with pytest.raises(PermissionDenied):
        billing.save_rule(
            session=session,
            actor=world["mgr"],
            centre_id=world["inr"].id,
            modality="CT",
            currency="INR",
            price="1",
            effective_from=TODAY,
        )
    with pytest.raises(PermissionDenied):
        billing.list_rules(session=session, actor=world["mgr"])
    assert len(billing.list_rules(session=session, actor=world["admin"])) == 1


def test_xray_prices_radiographs_and_unpriced_deliveries_wait_for_a_price(session, world, deliver):
    _rule(session, world, modality="XRAY", price="300", urgent_surcharge="0", stat_surcharge="0")
    dx = deliver(modality="DX")
    assert _record(session, dx).amount_minor == 30000
    mr = deliver(modality="MR")
    record = _record(session, mr)
    assert record.status is BillingStatus.UNPRICED and record.amount_minor == 0
    with pytest.raises(InvalidInput, match="No MR price"):
        billing.price_unpriced(session=session, actor=world["admin"], record_id=record.id)
    _rule(session, world, modality="MR", price="2500")
    priced = billing.price_unpriced(session=session, actor=world["admin"], record_id=record.id)
    assert (priced.status, priced.amount) == ("billed", "₹2,500.00")


def test_credits_need_a_reason_and_invoices_total_per_currency(session, world, deliver):
    _rule(session, world)
    _rule(session, world, currency="USD", price="40", urgent_surcharge="10", stat_surcharge="20")
    a, b = deliver(), deliver(priority="stat")
    usd = deliver(tech="tech_usd")
    record = _record(session, a)
    with pytest.raises(InvalidInput, match="reason"):
        billing.credit_record(session=session, actor=world["admin"], record_id=record.id, reason="")
    with pytest.raises(PermissionDenied):
        billing.credit_record(session=session, actor=world["mgr"], record_id=record.id, reason="x")
    billing.credit_record(
        session=session, actor=world["admin"], record_id=record.id, reason="duplicate upload"
    )
    invoices = billing.list_invoices(session=session, actor=world["admin"])
    by_centre = {i.centre: i for i in invoices}
    assert by_centre["MUMBAI"].total == "₹2,250.00"  # the STAT study only: 1500 + 750
    assert by_centre["MUMBAI"].lines == 1 and by_centre["TEXAS"].total == "$40.00"
    # a centre sees its own invoices only, and cannot issue them
    mine = billing.list_invoices(session=session, actor=world["mgr"])
    assert [i.centre for i in mine] == ["MUMBAI"]
    with pytest.raises(PermissionDenied):
        billing.list_invoices(session=session, actor=world["mgr"], centre_id=world["usd"].id)
    with pytest.raises(NotFound):
        billing.invoice_file(
            session=session, actor=world["mgr_usd"], invoice_id=by_centre["MUMBAI"].id
        )
    pdf = billing.invoice_file(
        session=session, actor=world["mgr"], invoice_id=by_centre["MUMBAI"].id
    )
    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(pdf.content)).pages)
    assert b in text and "duplicate upload" in text, (b, text)
    csv = billing.invoice_file(
        session=session, actor=world["mgr"], invoice_id=by_centre["MUMBAI"].id, kind="csv"
    )
    assert b"2250.00" in csv.content and usd not in csv.content.decode()
    # the current month is not over: no issuing yet; a past month's invoice is issued, paid
    with pytest.raises(Conflict, match="not over"):
        billing.set_invoice_status(
            session=session,
            actor=world["admin"],
            invoice_id=by_centre["MUMBAI"].id,
            status="issued",
        )
    next_month = (TODAY.replace(day=1) + timedelta(days=40)).replace(day=1)
    issued = billing.set_invoice_status(
        session=session,
        actor=world["admin"],
        invoice_id=by_centre["MUMBAI"].id,
        status="issued",
        today=next_month,
    )
    assert issued.status == "issued" and issued.issued_at is not None
    with pytest.raises(Conflict, match="issued invoices do not change"):
        billing.credit_record(
            session=session, actor=world["admin"], record_id=_record(session, b).id, reason="x"
        )
    paid = billing.set_invoice_status(
        session=session, actor=world["admin"], invoice_id=issued.id, status="paid"
    )
    assert paid.status == "paid"
    assert session.exec(select(func.count()).select_from(Invoice)).one() == 2


def test_payouts_and_exchange_rates(session, world, deliver):
    _rule(session, world)
    _rule(session, world, currency="USD", price="40")
    deliver(), deliver(modality="CT"), deliver(tech="tech_usd")
    billing.save_payout_rate(
        session=session,
        actor=world["admin"],
        radiologist_id=None,
        modality="CT",
        currency="USD",
        rate="12.50",
        effective_from=TODAY - timedelta(days=1),
    )
    statement = billing.payout_statement(
        session=session,
        actor=world["admin"],
        radiologist_id=world["tele"].user_id,
        month=TODAY.strftime("%Y-%m"),
    )
    assert len(statement.lines) == 3 and statement.totals == {"USD": "$37.50"}
    pdf = billing.payout_file(
        session=session,
        actor=world["admin"],
        radiologist_id=world["tele"].user_id,
        month=TODAY.strftime("%Y-%m"),
    )
    assert pdf.content.startswith(b"%PDF")

    summary = billing.revenue_summary(session=session, actor=world["admin"])
    assert summary.per_currency == {"INR": "₹3,000.00", "USD": "$40.00"}
    assert summary.converted_total is None
    one = billing.revenue_summary(session=session, actor=world["admin"], in_currency="USD")
    assert one.missing_rates == ["INR->USD"] and one.converted_total is None
    with pytest.raises(InvalidInput, match="positive"):
        billing.save_exchange_rate(
            session=session, actor=world["admin"], base="INR", quote="USD", rate="-1", as_of=TODAY
        )
    billing.save_exchange_rate(
        session=session, actor=world["admin"], base="INR", quote="USD", rate="0.012", as_of=TODAY
    )
    one = billing.revenue_summary(session=session, actor=world["admin"], in_currency="USD")
    assert one.converted_total == "$76.00"  # 40 + 3000 x 0.012
    assert len(one.rates_used) == 1 and one.rates_used[0].startswith("1 INR = 0.012")
    assert f"(as of {TODAY})" in one.rates_used[0]
    with pytest.raises(PermissionDenied):
        billing.revenue_summary(session=session, actor=world["mgr"])
