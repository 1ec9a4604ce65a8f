"""Billing: prices, one billing record per delivered study, monthly invoices, payouts, rates.

Rules of money here:

- amounts are integer minor units with their currency; nothing is summed across currencies;
  a figure in one currency from several is made only with admin-entered exchange rates,
  shown with their dates;
- a price change never rewrites history: a rule applies from its ``effective_from`` date until
  the next rule of the same centre and modality starts (or it is retired); a rule that has
  priced a study cannot be edited, only followed by a new one;
- a study is billed once, when its report is first delivered (an addendum or a second
  delivery bills nothing), at the rule in force that day, and the record keeps the rule's text.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel
from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from pacs_app.billing.money import currency_of, format_money, parse_amount
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import (
    BillingRecord,
    BillingStatus,
    Centre,
    Currency,
    ExchangeRate,
    Invoice,
    InvoiceStatus,
    PayoutRate,
    PricingRule,
    Priority,
    Role,
    Study,
    User,
)
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.authz import Action, Actor, require

MODALITIES = ("CR", "DX", "CT", "MR", "US", "MG", "NM", "PT", "XA", "RF", "OT")
# A price for XRAY (the seed's and some centres' word for plain radiographs) applies to CR and
# DX studies that have no price of their own, and an XRAY study is priced as CR, then DX.
ALIASES = {"XRAY": ("CR", "DX")}
PRICEABLE = (*MODALITIES, *ALIASES)


class BillingAction:
    """Audit actions of billing (kept as strings in the audit trail)."""

    RULE_SAVED = "billing.rule_saved"
    RULE_RETIRED = "billing.rule_retired"
    RECORD_CREDITED = "billing.record_credited"
    RECORD_PRICED = "billing.record_priced"
    INVOICE_ISSUED = "billing.invoice_issued"
    INVOICE_PAID = "billing.invoice_paid"
    INVOICE_DOWNLOADED = "billing.invoice_downloaded"
    PAYOUT_RATE_SAVED = "billing.payout_rate_saved"
    EXCHANGE_RATE_SAVED = "billing.exchange_rate_saved"


def _admin(actor: Actor | None) -> None:
    require(actor, Action.MANAGE_BILLING)


def normalise_modality(modality: str, *, for_rule: bool = False) -> str:
    value = (modality or "").strip().upper()
    allowed = PRICEABLE if for_rule else (*PRICEABLE, "")
    if value not in allowed:
        if for_rule:
            raise InvalidInput(f"Unknown modality {modality!r}: use one of {', '.join(PRICEABLE)}.")
        return "OT"
    return value or "OT"


def lookup_order(modality: str) -> list[str]:
    """The rule modalities tried for a study of ``modality``, most specific first."""
    m = normalise_modality(modality)
    if m in ALIASES:
        return [m, *ALIASES[m]]
    aliases = [alias for alias, members in ALIASES.items() if m in members]
    return [m, *aliases]


# --- pricing rules -------------------------------------------------------------------------


class PricingRulePublic(BaseModel):
    id: int
    centre_id: int | None
    centre: str  # centre code, or "all centres"
    modality: str
    currency: str
    price_minor: int
    urgent_surcharge_minor: int
    stat_surcharge_minor: int
    price: str  # formatted
    urgent_surcharge: str
    stat_surcharge: str
    effective_from: date
    retired_on: date | None
    in_force: bool  # today
    used: bool  # has priced a study: frozen
    note: str


def _rule_text(rule: PricingRule, centre_code: str) -> str:
    return (
        f"rule {rule.id}: {rule.modality} for {centre_code or 'all centres'} from "
        f"{rule.effective_from}: {format_money(rule.price_minor, rule.currency)}, urgent "
        f"+{format_money(rule.urgent_surcharge_minor, rule.currency)}, STAT "
        f"+{format_money(rule.stat_surcharge_minor, rule.currency)}"
    )


def _used_rule_ids(session: Session, rule_ids: list[int]) -> set[int]:
    """Which of these rules have priced a study (one query for the lot)."""
    if not rule_ids:
        return set()
    return set(
        session.exec(
            select(BillingRecord.rule_id)
            .where(col(BillingRecord.rule_id).in_(rule_ids))
            .group_by(BillingRecord.rule_id)
        )
    )


def _rule_public(
    session: Session,
    rule: PricingRule,
    centres: dict[int, Centre],
    used_ids: set[int] | None = None,
) -> PricingRulePublic:
    today = utcnow().date()
    if used_ids is None:
        used_ids = _used_rule_ids(session, [rule.id])
    used = rule.id in used_ids
    return PricingRulePublic(
        id=rule.id,
        centre_id=rule.centre_id,
        centre=centres[rule.centre_id].code if rule.centre_id in centres else "all centres",
        modality=rule.modality,
        currency=rule.currency.value,
        price_minor=rule.price_minor,
        urgent_surcharge_minor=rule.urgent_surcharge_minor,
        stat_surcharge_minor=rule.stat_surcharge_minor,
        price=format_money(rule.price_minor, rule.currency),
        urgent_surcharge=format_money(rule.urgent_surcharge_minor, rule.currency),
        stat_surcharge=format_money(rule.stat_surcharge_minor, rule.currency),
        effective_from=rule.effective_from,
        retired_on=rule.retired_on,
        in_force=rule_in_force(session, rule, today),
        used=used,
        note=rule.note,
    )


def list_rules(
    *, session: Session, actor: Actor, centre_id: int | None = None, include_defaults: bool = True
) -> list[PricingRulePublic]:
    _admin(actor)
    query = select(PricingRule)
    if centre_id is not None:
        query = query.where(
            or_(PricingRule.centre_id == centre_id, col(PricingRule.centre_id).is_(None))
            if include_defaults
            else PricingRule.centre_id == centre_id
        )
    rows = session.exec(
        query.order_by(
            col(PricingRule.centre_key),
            col(PricingRule.modality),
            col(PricingRule.currency),
            col(PricingRule.effective_from),
        )
    ).all()
    centres = {c.id: c for c in session.exec(select(Centre))}
    used_ids = _used_rule_ids(session, [r.id for r in rows])
    return [_rule_public(session, r, centres, used_ids) for r in rows]


def rule_in_force(session: Session, rule: PricingRule, on: date) -> bool:
    """Whether ``rule`` is the one that applies on ``on`` for its centre and modality."""
    if rule.effective_from > on or (rule.retired_on is not None and rule.retired_on <= on):
        return False
    later = session.exec(
        select(func.count())
        .select_from(PricingRule)
        .where(
            PricingRule.centre_key == rule.centre_key,
            PricingRule.modality == rule.modality,
            PricingRule.currency == rule.currency,
            PricingRule.effective_from > rule.effective_from,
            PricingRule.effective_from <= on,
        )
    ).one()
    return later == 0


def _parse_date(value: date | str | None, what: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(f"The {what} {value!r} is not a date (YYYY-MM-DD).") from exc


def save_rule(
    *,
    session: Session,
    actor: Actor,
    rule_id: int | None = None,
    centre_id: int | None,
    modality: str,
    currency: str,
    price: str | int | Decimal,
    urgent_surcharge: str | int | Decimal = "0",
    stat_surcharge: str | int | Decimal = "0",
    effective_from: date | str,
    note: str = "",
    address: str | None = None,
) -> PricingRulePublic:
    """Add a rule, or change one that has not priced any study yet (history stays)."""
    _admin(actor)
    modality = normalise_modality(modality, for_rule=True)
    cur = currency_of(currency)
    start = _parse_date(effective_from, "effective date")
    if start is None:
        raise InvalidInput("Give the date the price applies from.")
    centre = None
    if centre_id is not None:
        centre = session.get(Centre, centre_id)
        if centre is None:
            raise NotFound(f"No centre {centre_id}.")
        if cur is not centre.default_currency:
            raise InvalidInput(
                f"Centre {centre.code} is billed in {centre.default_currency.value}; its prices "
                f"must be in {centre.default_currency.value}, not {cur.value}."
            )
    price_minor = parse_amount(price, cur, what="price")
    urgent_minor = parse_amount(urgent_surcharge or "0", cur, what="urgent surcharge")
    stat_minor = parse_amount(stat_surcharge or "0", cur, what="STAT surcharge")
    centre_key = centre_id or 0
    clash = session.exec(
        select(PricingRule).where(
            PricingRule.centre_key == centre_key,
            PricingRule.modality == modality,
            PricingRule.currency == cur,
            PricingRule.effective_from == start,
        )
    ).first()
    if clash is not None and clash.id != rule_id:
        raise Conflict(
            f"A {modality} price for {centre.code if centre else 'all centres'} in {cur.value} "
            f"already starts on {start} (rule {clash.id}); change that rule or pick another date."
        )
    if rule_id is None:
        rule = PricingRule(created_by_id=actor.user_id)
    else:
        rule = session.get(PricingRule, rule_id)
        if rule is None:
            raise NotFound(f"No pricing rule {rule_id}.")
        used = session.exec(
            select(func.count()).select_from(BillingRecord).where(BillingRecord.rule_id == rule.id)
        ).one()
        if used:
            raise Conflict(
                f"Rule {rule.id} has already priced {used} stud{'y' if used == 1 else 'ies'}; "
                "a price change does not rewrite history: add a new rule from the date the new "
                "price applies."
            )
    rule.centre_id, rule.centre_key = centre_id, centre_key
    rule.modality, rule.currency = modality, cur
    rule.price_minor, rule.urgent_surcharge_minor, rule.stat_surcharge_minor = (
        price_minor,
        urgent_minor,
        stat_minor,
    )
    rule.effective_from, rule.note = start, (note or "").strip()[:300]
    session.add(rule)
    session.flush()
    audit.record(
        session,
        action=BillingAction.RULE_SAVED,
        actor=actor,
        resource_type="pricing_rule",
        resource_id=rule.id,
        centre_id=centre_id,
        address=address,
        detail={"rule": _rule_text(rule, centre.code if centre else ""), "new": rule_id is None},
    )
    session.commit()
    return _rule_public(session, rule, {centre.id: centre} if centre else {})


def retire_rule(
    *,
    session: Session,
    actor: Actor,
    rule_id: int,
    on: date | str,
    address: str | None = None,
) -> PricingRulePublic:
    """Stop a rule from ``on`` (studies delivered from that day on fall to the next rule or
    the default). Past billing keeps its amounts."""
    _admin(actor)
    rule = session.get(PricingRule, rule_id)
    if rule is None:
        raise NotFound(f"No pricing rule {rule_id}.")
    day = _parse_date(on, "retirement date")
    if day is None or day <= rule.effective_from:
        raise InvalidInput(
            f"Retire rule {rule.id} on a day after it starts ({rule.effective_from})."
        )
    rule.retired_on = day
    session.add(rule)
    audit.record(
        session,
        action=BillingAction.RULE_RETIRED,
        actor=actor,
        resource_type="pricing_rule",
        resource_id=rule.id,
        centre_id=rule.centre_id,
        address=address,
        detail={"retired_on": day.isoformat()},
    )
    session.commit()
    centres = {c.id: c for c in session.exec(select(Centre))}
    return _rule_public(session, rule, centres)


@dataclass(frozen=True)
class Price:
    rule: PricingRule
    base_minor: int
    surcharge_minor: int

    @property
    def amount_minor(self) -> int:
        return self.base_minor + self.surcharge_minor


def price_for(
    session: Session, centre: Centre, modality: str, priority: Priority | str, on: date
) -> Price | None:
    """The price of a read for ``centre`` on ``on``: the centre's own rule for the modality
    (or its alias), else the default for all centres in the centre's currency."""
    priority = Priority(priority)
    for centre_key in (centre.id, 0):
        for mod in lookup_order(modality):
            candidates = session.exec(
                select(PricingRule)
                .where(
                    PricingRule.centre_key == centre_key,
                    PricingRule.modality == mod,
                    PricingRule.currency == centre.default_currency,
                    PricingRule.effective_from <= on,
                )
                .order_by(col(PricingRule.effective_from).desc())
                .limit(1)
            ).all()
            if not candidates:
                continue
            rule = candidates[0]
            if rule.retired_on is not None and rule.retired_on <= on:
                continue
            surcharge = {
                Priority.ROUTINE: 0,
                Priority.URGENT: rule.urgent_surcharge_minor,
                Priority.STAT: rule.stat_surcharge_minor,
            }[priority]
            return Price(rule=rule, base_minor=rule.price_minor, surcharge_minor=surcharge)
    return None


# --- billing records -------------------------------------------------------------------------


def bill_delivered(session: Session, study: Study) -> BillingRecord:
    """Bill a study whose report was just delivered: once (idempotent), at the rule in force.

    Called inside the delivery's transaction. With no rule in force the record is kept as
    "unpriced" for an administrator to price, so a delivery is never blocked by billing.
    """
    existing = session.exec(select(BillingRecord).where(BillingRecord.study_pk == study.id)).first()
    if existing is not None:
        return existing
    centre = session.get(Centre, study.centre_id)
    now = utcnow()
    price = price_for(session, centre, study.modality, study.priority, now.date())
    record = BillingRecord(
        study_pk=study.id,
        study_id=study.study_id,
        centre_id=study.centre_id,
        radiologist_id=study.assigned_radiologist_id,
        modality=normalise_modality(study.modality),
        priority=study.priority.value,
        currency=centre.default_currency,
        base_minor=price.base_minor if price else 0,
        surcharge_minor=price.surcharge_minor if price else 0,
        amount_minor=price.amount_minor if price else 0,
        rule_id=price.rule.id if price else None,
        rule_text=_rule_text(price.rule, centre.code if price.rule.centre_id else "")
        if price
        else "no price rule in force on delivery",
        month=now.strftime("%Y-%m"),
        billed_at=now,
        status=BillingStatus.BILLED if price else BillingStatus.UNPRICED,
    )
    session.add(record)
    session.flush()
    return record


class BillingRecordPublic(BaseModel):
    id: int
    study_id: str
    centre_id: int
    centre: str
    radiologist: str
    modality: str
    priority: str
    currency: str
    base_minor: int
    surcharge_minor: int
    amount_minor: int
    amount: str
    rule_text: str
    month: str
    billed_at: datetime
    status: str
    credit_reason: str
    invoice: str


class RecordPage(BaseModel):
    items: list[BillingRecordPublic]
    total: int
    page: int
    page_size: int
    totals: dict[str, str]  # per currency, formatted: billed records of the filter


def _scope_centre(actor: Actor, centre_id: int | None) -> int | None:
    """Admins choose any centre (or all); centre managers see their own only."""
    if actor.is_admin:
        return centre_id
    require(actor, Action.VIEW_BILLING)
    if centre_id is not None and centre_id != actor.centre_id:
        raise PermissionDenied("You may only see your own centre's billing.")
    return actor.centre_id


def _month(value: str | None) -> str | None:
    if not value:
        return None
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError as exc:
        raise InvalidInput(f"The month {value!r} is not YYYY-MM.") from exc
    return value


def list_records(
    *,
    session: Session,
    actor: Actor,
    centre_id: int | None = None,
    month: str | None = None,
    currency: str | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> RecordPage:
    centre_id = _scope_centre(actor, centre_id)
    month = _month(month)
    clauses = []
    if centre_id is not None:
        clauses.append(BillingRecord.centre_id == centre_id)
    if month:
        clauses.append(BillingRecord.month == month)
    if currency:
        clauses.append(BillingRecord.currency == currency_of(currency))
    if status:
        try:
            clauses.append(BillingRecord.status == BillingStatus(status))
        except ValueError as exc:
            raise InvalidInput("Status is billed, unpriced or credited.") from exc
    page, page_size = max(1, page), min(max(1, page_size), 200)
    total = session.exec(select(func.count()).select_from(BillingRecord).where(*clauses)).one()
    rows = session.exec(
        select(BillingRecord)
        .where(*clauses)
        .order_by(col(BillingRecord.billed_at).desc(), col(BillingRecord.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    sums = session.exec(
        select(BillingRecord.currency, func.sum(BillingRecord.amount_minor))
        .where(*clauses, BillingRecord.status == BillingStatus.BILLED)
        .group_by(BillingRecord.currency)
    ).all()
    return RecordPage(
        items=_records_public(session, rows),
        total=total,
        page=page,
        page_size=page_size,
        totals={cur.value: format_money(int(amount or 0), cur) for cur, amount in sums},
    )


def _records_public(session: Session, rows: list[BillingRecord]) -> list[BillingRecordPublic]:
    centres = {c.id: c.code for c in session.exec(select(Centre))}
    names = {
        u.id: u.full_name or u.username
        for u in session.exec(
            select(User).where(
                col(User.id).in_({r.radiologist_id for r in rows if r.radiologist_id})
            )
        )
    }
    invoices = {
        i.id: i.number
        for i in session.exec(
            select(Invoice).where(col(Invoice.id).in_({r.invoice_id for r in rows if r.invoice_id}))
        )
    }
    return [
        BillingRecordPublic(
            id=r.id,
            study_id=r.study_id,
            centre_id=r.centre_id,
            centre=centres.get(r.centre_id, ""),
            radiologist=names.get(r.radiologist_id, ""),
            modality=r.modality,
            priority=r.priority,
            currency=r.currency.value,
            base_minor=r.base_minor,
            surcharge_minor=r.surcharge_minor,
            amount_minor=r.amount_minor,
            amount=format_money(r.amount_minor, r.currency),
            rule_text=r.rule_text,
            month=r.month,
            billed_at=r.billed_at,
            status=r.status.value,
            credit_reason=r.credit_reason,
            invoice=invoices.get(r.invoice_id, ""),
        )
        for r in rows
    ]


def _record_editable(session: Session, record: BillingRecord) -> None:
    if record.invoice_id is not None:
        invoice = session.get(Invoice, record.invoice_id)
        if invoice is not None and invoice.status is not InvoiceStatus.DRAFT:
            raise Conflict(
                f"The record is on invoice {invoice.number}, which is {invoice.status.value}; "
                "issued invoices do not change."
            )


def credit_record(
    *, session: Session, actor: Actor, record_id: int, reason: str, address: str | None = None
) -> BillingRecordPublic:
    """Credit (cancel) a billed study, with a reason (administrators)."""
    _admin(actor)
    record = session.get(BillingRecord, record_id)
    if record is None:
        raise NotFound(f"No billing record {record_id}.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give the reason for the credit.")
    if record.status is BillingStatus.CREDITED:
        raise Conflict(f"The record of study {record.study_id} is already credited.")
    _record_editable(session, record)
    record.status, record.credit_reason = BillingStatus.CREDITED, reason[:500]
    record.credited_at, record.credited_by_id = utcnow(), actor.user_id
    session.add(record)
    audit.record(
        session,
        action=BillingAction.RECORD_CREDITED,
        actor=actor,
        resource_type="study",
        resource_id=record.study_id,
        centre_id=record.centre_id,
        address=address,
        detail={"amount": format_money(record.amount_minor, record.currency), "reason": reason},
    )
    _refresh_invoice_total(session, record.invoice_id)
    session.commit()
    return _records_public(session, [record])[0]


def price_unpriced(
    *, session: Session, actor: Actor, record_id: int, address: str | None = None
) -> BillingRecordPublic:
    """Price a record delivered while no rule was in force, at the rule in force on its
    delivery day (add that rule first)."""
    _admin(actor)
    record = session.get(BillingRecord, record_id)
    if record is None:
        raise NotFound(f"No billing record {record_id}.")
    if record.status is not BillingStatus.UNPRICED:
        raise Conflict("Only an unpriced record can be priced.")
    _record_editable(session, record)
    centre = session.get(Centre, record.centre_id)
    price = price_for(session, centre, record.modality, record.priority, record.billed_at.date())
    if price is None:
        raise InvalidInput(
            f"No {record.modality} price for {centre.code} in {centre.default_currency.value} "
            f"was in force on {record.billed_at.date()}: add one from that date first."
        )
    record.base_minor, record.surcharge_minor = price.base_minor, price.surcharge_minor
    record.amount_minor, record.rule_id = price.amount_minor, price.rule.id
    record.rule_text = _rule_text(price.rule, centre.code if price.rule.centre_id else "")
    record.status = BillingStatus.BILLED
    session.add(record)
    audit.record(
        session,
        action=BillingAction.RECORD_PRICED,
        actor=actor,
        resource_type="study",
        resource_id=record.study_id,
        centre_id=record.centre_id,
        address=address,
        detail={"amount": format_money(record.amount_minor, record.currency)},
    )
    _refresh_invoice_total(session, record.invoice_id)
    session.commit()
    return _records_public(session, [record])[0]


# --- invoices --------------------------------------------------------------------------------


class InvoicePublic(BaseModel):
    id: int
    number: str
    centre_id: int
    centre: str
    centre_name: str
    month: str
    currency: str
    total_minor: int
    total: str
    lines: int
    status: str
    issued_at: datetime | None
    paid_at: datetime | None
    can_issue: bool = False


def _month_over(month: str, today: date) -> bool:
    year, mon = (int(p) for p in month.split("-"))
    last = date(year, mon, calendar.monthrange(year, mon)[1])
    return today > last


def _refresh_invoice_total(session: Session, invoice_id: int | None) -> None:
    if invoice_id is None:
        return
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.status is not InvoiceStatus.DRAFT:
        return
    total, count = session.exec(
        select(func.coalesce(func.sum(BillingRecord.amount_minor), 0), func.count()).where(
            BillingRecord.invoice_id == invoice.id, BillingRecord.status == BillingStatus.BILLED
        )
    ).one()
    invoice.total_minor, invoice.lines = int(total), int(count)
    session.add(invoice)


def _sync_drafts(session: Session, centre_id: int | None, month: str | None) -> None:
    """Make sure every centre-month-currency with billing has an invoice, and put records not
    yet on one onto their draft (issued invoices never change)."""
    query = select(BillingRecord).where(col(BillingRecord.invoice_id).is_(None))
    if centre_id is not None:
        query = query.where(BillingRecord.centre_id == centre_id)
    if month:
        query = query.where(BillingRecord.month == month)
    loose = session.exec(query).all()
    if not loose:
        return
    centres = {c.id: c for c in session.exec(select(Centre))}
    touched: set[int] = set()
    for record in loose:
        invoice = session.exec(
            select(Invoice).where(
                Invoice.centre_id == record.centre_id,
                Invoice.month == record.month,
                Invoice.currency == record.currency,
            )
        ).first()
        if invoice is None:
            code = centres[record.centre_id].code
            invoice = Invoice(
                number=f"INV-{record.month}-{code}-{record.currency.value}"[:32],
                centre_id=record.centre_id,
                month=record.month,
                currency=record.currency,
            )
            session.add(invoice)
            session.flush()
        if invoice.status is not InvoiceStatus.DRAFT:
            continue  # billed after the invoice was issued: stays loose, shown to the admin
        record.invoice_id = invoice.id
        session.add(record)
        touched.add(invoice.id)
    session.flush()
    for invoice_id in touched:
        _refresh_invoice_total(session, invoice_id)
    session.commit()


def list_invoices(
    *, session: Session, actor: Actor, centre_id: int | None = None, month: str | None = None
) -> list[InvoicePublic]:
    centre_id = _scope_centre(actor, centre_id)
    month = _month(month)
    _sync_drafts(session, centre_id, month)
    query = select(Invoice)
    if centre_id is not None:
        query = query.where(Invoice.centre_id == centre_id)
    if month:
        query = query.where(Invoice.month == month)
    rows = session.exec(
        query.order_by(col(Invoice.month).desc(), col(Invoice.centre_id), col(Invoice.currency))
    ).all()
    centres = {c.id: c for c in session.exec(select(Centre))}
    today = utcnow().date()
    return [
        InvoicePublic(
            id=i.id,
            number=i.number,
            centre_id=i.centre_id,
            centre=centres[i.centre_id].code,
            centre_name=centres[i.centre_id].name,
            month=i.month,
            currency=i.currency.value,
            total_minor=i.total_minor,
            total=format_money(i.total_minor, i.currency),
            lines=i.lines,
            status=i.status.value,
            issued_at=i.issued_at,
            paid_at=i.paid_at,
            can_issue=actor.is_admin
            and i.status is InvoiceStatus.DRAFT
            and _month_over(i.month, today),
        )
        for i in rows
    ]


def _invoice_visible(session: Session, actor: Actor, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.")
    if not actor.is_admin:
        require(actor, Action.VIEW_BILLING)
        if invoice.centre_id != actor.centre_id:
            raise NotFound(f"No invoice {invoice_id}.")
    return invoice


def set_invoice_status(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    status: str,
    address: str | None = None,
    today: date | None = None,
) -> InvoicePublic:
    """draft -> issued (once its month is over) -> paid, by administrators, with who and when."""
    _admin(actor)
    invoice = _invoice_visible(session, actor, invoice_id)
    target = InvoiceStatus(status)
    now = utcnow()
    if target is InvoiceStatus.ISSUED:
        if invoice.status is not InvoiceStatus.DRAFT:
            raise Conflict(f"Invoice {invoice.number} is already {invoice.status.value}.")
        if not _month_over(invoice.month, today or now.date()):
            raise Conflict(
                f"Invoice {invoice.number} covers {invoice.month}, which is not over yet: "
                "issue it after the month ends."
            )
        _refresh_invoice_total(session, invoice.id)
        invoice.status, invoice.issued_at, invoice.issued_by_id = target, now, actor.user_id
        action = BillingAction.INVOICE_ISSUED
    elif target is InvoiceStatus.PAID:
        if invoice.status is not InvoiceStatus.ISSUED:
            raise Conflict(
                f"Only an issued invoice can be paid ({invoice.number} is {invoice.status.value})."
            )
        invoice.status, invoice.paid_at, invoice.paid_by_id = target, now, actor.user_id
        action = BillingAction.INVOICE_PAID
    else:
        raise InvalidInput("An invoice is issued, then paid.")
    session.add(invoice)
    audit.record(
        session,
        action=action,
        actor=actor,
        resource_type="invoice",
        resource_id=invoice.number,
        centre_id=invoice.centre_id,
        address=address,
        detail={"total": format_money(invoice.total_minor, invoice.currency)},
    )
    session.commit()
    return next(
        i
        for i in list_invoices(
            session=session, actor=actor, centre_id=invoice.centre_id, month=invoice.month
        )
        if i.id == invoice.id
    )


@dataclass(frozen=True)
class InvoiceFile:
    filename: str
    media_type: str
    content: bytes


def invoice_file(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    kind: str = "pdf",
    address: str | None = None,
) -> InvoiceFile:
    """The invoice as PDF or CSV, for its centre and administrators."""
    from pacs_app.documents.invoice import (
        InvoiceDocument,
        InvoiceLine,
        invoice_csv,
        render_invoice_pdf,
    )

    invoice = _invoice_visible(session, actor, invoice_id)
    _refresh_invoice_total(session, invoice.id)
    centre = session.get(Centre, invoice.centre_id)
    records = session.exec(
        select(BillingRecord)
        .where(BillingRecord.invoice_id == invoice.id)
        .order_by(col(BillingRecord.billed_at), col(BillingRecord.id))
    ).all()
    lines = tuple(
        InvoiceLine(
            study_id=r.study_id,
            delivered_on=r.billed_at.date(),
            modality=r.modality,
            priority=r.priority,
            description=f"{r.modality} read"
            + (f", {r.priority}" if r.priority != "routine" else ""),
            base_minor=r.base_minor,
            surcharge_minor=r.surcharge_minor,
            amount_minor=r.amount_minor,
            credited=r.status is not BillingStatus.BILLED,
            credit_reason=r.credit_reason
            or ("not priced yet" if r.status is BillingStatus.UNPRICED else ""),
        )
        for r in records
    )
    document = InvoiceDocument(
        number=invoice.number,
        centre_name=centre.name,
        centre_code=centre.code,
        month=invoice.month,
        currency=invoice.currency.value,
        status=invoice.status.value,
        issued_at=invoice.issued_at,
        paid_at=invoice.paid_at,
        lines=lines,
        total_minor=invoice.total_minor,
    )
    if kind == "csv":
        content = invoice_csv(document).encode("utf-8")
        media, ext = "text/csv; charset=utf-8", "csv"
    elif kind == "pdf":
        content, media, ext = render_invoice_pdf(document), "application/pdf", "pdf"
    else:
        raise InvalidInput("Download an invoice as pdf or csv.")
    audit.record(
        session,
        action=BillingAction.INVOICE_DOWNLOADED,
        actor=actor,
        resource_type="invoice",
        resource_id=invoice.number,
        centre_id=invoice.centre_id,
        address=address,
        detail={"format": ext},
    )
    session.commit()
    return InvoiceFile(filename=f"{invoice.number}.{ext}", media_type=media, content=content)


# --- radiologist payouts ---------------------------------------------------------------------


class PayoutRatePublic(BaseModel):
    id: int
    radiologist_id: int | None
    radiologist: str
    modality: str
    currency: str
    rate_minor: int
    rate: str
    effective_from: date


def list_payout_rates(*, session: Session, actor: Actor) -> list[PayoutRatePublic]:
    _admin(actor)
    rows = session.exec(
        select(PayoutRate).order_by(
            col(PayoutRate.radiologist_key),
            col(PayoutRate.modality),
            col(PayoutRate.effective_from),
        )
    ).all()
    names = {u.id: u.full_name or u.username for u in session.exec(select(User))}
    return [
        PayoutRatePublic(
            id=r.id,
            radiologist_id=r.radiologist_id,
            radiologist=names.get(r.radiologist_id, "every radiologist"),
            modality=r.modality,
            currency=r.currency.value,
            rate_minor=r.rate_minor,
            rate=format_money(r.rate_minor, r.currency),
            effective_from=r.effective_from,
        )
        for r in rows
    ]


def save_payout_rate(
    *,
    session: Session,
    actor: Actor,
    radiologist_id: int | None,
    modality: str,
    currency: str,
    rate: str | int | Decimal,
    effective_from: date | str,
    address: str | None = None,
) -> PayoutRatePublic:
    _admin(actor)
    modality = normalise_modality(modality, for_rule=True)
    cur = currency_of(currency)
    start = _parse_date(effective_from, "effective date")
    if start is None:
        raise InvalidInput("Give the date the rate applies from.")
    if radiologist_id is not None:
        user = session.get(User, radiologist_id)
        if user is None or user.role is not Role.RADIOLOGIST:
            raise InvalidInput(f"User {radiologist_id} is not a radiologist.")
    key = radiologist_id or 0
    if session.exec(
        select(PayoutRate).where(
            PayoutRate.radiologist_key == key,
            PayoutRate.modality == modality,
            PayoutRate.currency == cur,
            PayoutRate.effective_from == start,
        )
    ).first():
        raise Conflict(f"A {modality} rate in {cur.value} already starts on {start}.")
    row = PayoutRate(
        radiologist_id=radiologist_id,
        radiologist_key=key,
        modality=modality,
        currency=cur,
        rate_minor=parse_amount(rate, cur, what="rate"),
        effective_from=start,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        action=BillingAction.PAYOUT_RATE_SAVED,
        actor=actor,
        resource_type="payout_rate",
        resource_id=row.id,
        address=address,
        detail={"modality": modality, "rate": format_money(row.rate_minor, cur)},
    )
    session.commit()
    return next(r for r in list_payout_rates(session=session, actor=actor) if r.id == row.id)


class PayoutLinePublic(BaseModel):
    study_id: str
    read_on: date
    modality: str
    centre: str
    currency: str
    amount_minor: int
    amount: str


class PayoutStatementPublic(BaseModel):
    radiologist_id: int
    radiologist: str
    month: str
    lines: list[PayoutLinePublic]
    totals: dict[str, str]  # per currency
    unrated: int  # reads with no rate in force (listed at zero)


def _rate_for(session: Session, radiologist_id: int, modality: str, on: date) -> PayoutRate | None:
    for key in (radiologist_id, 0):
        for mod in lookup_order(modality):
            row = session.exec(
                select(PayoutRate)
                .where(
                    PayoutRate.radiologist_key == key,
                    PayoutRate.modality == mod,
                    PayoutRate.effective_from <= on,
                )
                .order_by(col(PayoutRate.effective_from).desc())
                .limit(1)
            ).first()
            if row is not None:
                return row
    return None


def payout_statement(
    *, session: Session, actor: Actor, radiologist_id: int, month: str
) -> PayoutStatementPublic:
    """A radiologist's reads in a month (delivered reports), each at the rate in force."""
    _admin(actor)
    month = _month(month)
    if month is None:
        raise InvalidInput("Choose a month.")
    user = session.get(User, radiologist_id)
    if user is None or user.role is not Role.RADIOLOGIST:
        raise NotFound(f"No radiologist {radiologist_id}.")
    records = session.exec(
        select(BillingRecord)
        .where(
            BillingRecord.radiologist_id == radiologist_id,
            BillingRecord.month == month,
            BillingRecord.status != BillingStatus.CREDITED,
        )
        .order_by(col(BillingRecord.billed_at))
    ).all()
    centres = {c.id: c.code for c in session.exec(select(Centre))}
    lines, totals, unrated = [], {}, 0
    for r in records:
        rate = _rate_for(session, radiologist_id, r.modality, r.billed_at.date())
        if rate is None:
            unrated += 1
        currency = rate.currency if rate else Currency.USD
        amount = rate.rate_minor if rate else 0
        totals[currency] = totals.get(currency, 0) + amount
        lines.append(
            PayoutLinePublic(
                study_id=r.study_id,
                read_on=r.billed_at.date(),
                modality=r.modality,
                centre=centres.get(r.centre_id, ""),
                currency=currency.value,
                amount_minor=amount,
                amount=format_money(amount, currency) if rate else "no rate",
            )
        )
    return PayoutStatementPublic(
        radiologist_id=radiologist_id,
        radiologist=user.full_name or user.username,
        month=month,
        lines=lines,
        totals={c.value: format_money(v, c) for c, v in totals.items()},
        unrated=unrated,
    )


def payout_file(
    *, session: Session, actor: Actor, radiologist_id: int, month: str, kind: str = "pdf"
) -> InvoiceFile:
    from pacs_app.documents.invoice import (
        PayoutLine,
        PayoutStatement,
        payout_csv,
        render_payout_pdf,
    )

    statement = payout_statement(
        session=session, actor=actor, radiologist_id=radiologist_id, month=month
    )
    currencies = {line.currency for line in statement.lines if line.amount != "no rate"}
    if len(currencies) > 1:
        raise InvalidInput(
            "This statement has rates in several currencies; download it per currency from "
            "the rates table (amounts are never converted silently)."
        )
    currency = currencies.pop() if currencies else "USD"
    doc = PayoutStatement(
        radiologist_name=statement.radiologist,
        month=statement.month,
        currency=currency,
        lines=tuple(
            PayoutLine(
                study_id=line.study_id,
                read_on=line.read_on,
                modality=line.modality,
                centre_code=line.centre,
                amount_minor=line.amount_minor,
            )
            for line in statement.lines
        ),
        total_minor=sum(line.amount_minor for line in statement.lines),
    )
    safe = "".join(c if c.isalnum() else "_" for c in statement.radiologist)[:40]
    if kind == "csv":
        return InvoiceFile(
            f"payout_{safe}_{month}.csv", "text/csv; charset=utf-8", payout_csv(doc).encode()
        )
    return InvoiceFile(f"payout_{safe}_{month}.pdf", "application/pdf", render_payout_pdf(doc))


# --- exchange rates and the one-figure view -------------------------------------------------


class ExchangeRatePublic(BaseModel):
    id: int
    base: str
    quote: str
    rate: str
    as_of: date


def save_exchange_rate(
    *,
    session: Session,
    actor: Actor,
    base: str,
    quote: str,
    rate: str,
    as_of: date | str,
    address: str | None = None,
) -> ExchangeRatePublic:
    _admin(actor)
    b, q = currency_of(base), currency_of(quote)
    if b is q:
        raise InvalidInput("An exchange rate needs two different currencies.")
    try:
        value = Decimal(str(rate).strip())
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"The rate {rate!r} is not a number.") from exc
    if not value.is_finite() or value <= 0:
        raise InvalidInput("The rate must be a positive number.")
    day = _parse_date(as_of, "rate date")
    if day is None:
        raise InvalidInput("Give the date of the rate.")
    if session.exec(
        select(ExchangeRate).where(
            ExchangeRate.base == b, ExchangeRate.quote == q, ExchangeRate.as_of == day
        )
    ).first():
        raise Conflict(f"A {b.value}->{q.value} rate for {day} already exists.")
    row = ExchangeRate(base=b, quote=q, rate=value, as_of=day, created_by_id=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(
        session,
        action=BillingAction.EXCHANGE_RATE_SAVED,
        actor=actor,
        resource_type="exchange_rate",
        resource_id=row.id,
        address=address,
        detail={"pair": f"{b.value}/{q.value}", "rate": str(value), "as_of": day.isoformat()},
    )
    session.commit()
    return ExchangeRatePublic(id=row.id, base=b.value, quote=q.value, rate=str(value), as_of=day)


def list_exchange_rates(*, session: Session, actor: Actor) -> list[ExchangeRatePublic]:
    _admin(actor)
    return [
        ExchangeRatePublic(
            id=r.id, base=r.base.value, quote=r.quote.value, rate=str(r.rate), as_of=r.as_of
        )
        for r in session.exec(
            select(ExchangeRate).order_by(col(ExchangeRate.as_of).desc(), col(ExchangeRate.id))
        )
    ]


class RevenueSummary(BaseModel):
    month: str | None
    per_currency: dict[str, str]  # exact, formatted
    per_currency_minor: dict[str, int]
    # Only when asked for: one figure in ``in_currency`` at the latest admin-entered rates,
    # each rate with its date.
    in_currency: str | None = None
    converted_total: str | None = None
    rates_used: list[str] = []
    missing_rates: list[str] = []


def revenue_summary(
    *, session: Session, actor: Actor, month: str | None = None, in_currency: str | None = None
) -> RevenueSummary:
    """Billed revenue per currency; with ``in_currency``, also one converted figure."""
    _admin(actor)
    month = _month(month)
    clauses = [BillingRecord.status == BillingStatus.BILLED]
    if month:
        clauses.append(BillingRecord.month == month)
    sums = {
        cur: int(amount or 0)
        for cur, amount in session.exec(
            select(BillingRecord.currency, func.sum(BillingRecord.amount_minor))
            .where(*clauses)
            .group_by(BillingRecord.currency)
        )
    }
    result = RevenueSummary(
        month=month,
        per_currency={c.value: format_money(v, c) for c, v in sums.items()},
        per_currency_minor={c.value: v for c, v in sums.items()},
    )
    if not in_currency:
        return result
    from pacs_app.billing.money import convert

    target = currency_of(in_currency)
    total = 0
    for cur, amount in sums.items():
        if cur is target:
            total += amount
            continue
        rate = session.exec(
            select(ExchangeRate)
            .where(ExchangeRate.base == cur, ExchangeRate.quote == target)
            .order_by(col(ExchangeRate.as_of).desc())
            .limit(1)
        ).first()
        if rate is None:
            result.missing_rates.append(f"{cur.value}->{target.value}")
            continue
        total += convert(amount, Decimal(rate.rate), cur, target)
        result.rates_used.append(f"1 {cur.value} = {rate.rate} {target.value} (as of {rate.as_of})")
    result.in_currency = target.value
    result.converted_total = None if result.missing_rates else format_money(total, target)
    return result


def month_of(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m")
