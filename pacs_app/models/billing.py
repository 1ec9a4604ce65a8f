"""Billing: prices per modality (per centre or for all), one record per delivered study,
monthly invoices, radiologist payout rates, and admin-entered exchange rates.

Money is an integer number of minor units (cents, paise, fils) with its ISO currency code;
never a float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from pacs_app.models.base import enum_column, timestamp_field
from pacs_app.models.users import Currency


class PricingRule(SQLModel, table=True):
    """The price of reading one study of a modality, from ``effective_from`` until the next
    rule for the same centre and modality starts (or ``retired_on``)."""

    __tablename__ = "pricing_rule"
    __table_args__ = (
        UniqueConstraint(
            "centre_key", "modality", "currency", "effective_from", name="uq_pricing_rule_start"
        ),
        Index("ix_pricing_rule_lookup", "centre_key", "modality", "effective_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # None: the default for every centre without a rule of its own
    centre_id: int | None = Field(default=None, foreign_key="centre.id", ondelete="RESTRICT")
    # centre_id or 0, so the uniqueness above also holds for the defaults (NULLs never clash)
    centre_key: int = 0
    modality: str = Field(max_length=16)
    currency: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    price_minor: int = Field(sa_type=BigInteger)
    urgent_surcharge_minor: int = Field(default=0, sa_type=BigInteger)
    stat_surcharge_minor: int = Field(default=0, sa_type=BigInteger)
    effective_from: date
    retired_on: date | None = None  # no longer applies from this day on
    note: str = Field(default="", max_length=300)
    created_at: datetime = timestamp_field()
    created_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )


class BillingStatus(StrEnum):
    BILLED = "billed"
    UNPRICED = "unpriced"  # delivered while no price rule was in force: an admin prices it
    CREDITED = "credited"  # cancelled by an admin, with a reason


class BillingRecord(SQLModel, table=True):
    __tablename__ = "billing_record"
    __table_args__ = (Index("ix_billing_record_centre_month", "centre_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int | None = Field(
        default=None, foreign_key="study.id", unique=True, ondelete="SET NULL"
    )
    study_id: str = Field(max_length=8)  # kept when the study is gone
    centre_id: int = Field(foreign_key="centre.id", ondelete="RESTRICT")
    radiologist_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    modality: str = Field(max_length=16)  # as priced (after aliasing)
    priority: str = Field(max_length=8)
    currency: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    base_minor: int = Field(sa_type=BigInteger)
    surcharge_minor: int = Field(default=0, sa_type=BigInteger)
    amount_minor: int = Field(sa_type=BigInteger)
    rule_id: int | None = Field(default=None, foreign_key="pricing_rule.id", ondelete="SET NULL")
    rule_text: str = Field(default="", max_length=300)  # the rule as it read when applied
    month: str = Field(max_length=7, index=True)  # YYYY-MM of delivery (UTC)
    billed_at: datetime = timestamp_field()
    status: BillingStatus = Field(
        default=BillingStatus.BILLED,
        sa_column=enum_column(BillingStatus, "billing_status", 16),
    )
    credit_reason: str = Field(default="", max_length=500)
    credited_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    credited_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    invoice_id: int | None = Field(default=None, foreign_key="invoice.id", ondelete="SET NULL")


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"


class Invoice(SQLModel, table=True):
    """A centre's invoice for one month, in one currency (a centre billed in two currencies
    that month gets two invoices: amounts are never converted silently)."""

    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("centre_id", "month", "currency", name="uq_invoice_centre_month"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)  # e.g. INV-2026-11-DEMO-INR
    centre_id: int = Field(foreign_key="centre.id", ondelete="RESTRICT")
    month: str = Field(max_length=7)
    currency: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    total_minor: int = Field(default=0, sa_type=BigInteger)
    lines: int = 0
    status: InvoiceStatus = Field(
        default=InvoiceStatus.DRAFT,
        sa_column=enum_column(InvoiceStatus, "invoice_status", 16),
    )
    created_at: datetime = timestamp_field()
    issued_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    issued_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    paid_at: datetime | None = timestamp_field(nullable=True, default_now=False)
    paid_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")


class PayoutRate(SQLModel, table=True):
    """What a radiologist earns per read of a modality (per radiologist, or the default)."""

    __tablename__ = "payout_rate"
    __table_args__ = (
        UniqueConstraint(
            "radiologist_key", "modality", "currency", "effective_from", name="uq_payout_rate"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    radiologist_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="RESTRICT"
    )
    radiologist_key: int = 0  # radiologist_id or 0
    modality: str = Field(max_length=16)
    currency: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    rate_minor: int = Field(sa_type=BigInteger)
    effective_from: date
    created_at: datetime = timestamp_field()


class ExchangeRate(SQLModel, table=True):
    """An admin-entered rate, used only where an admin asks for one figure across currencies
    (and shown with its date)."""

    __tablename__ = "exchange_rate"
    __table_args__ = (UniqueConstraint("base", "quote", "as_of", name="uq_exchange_rate"),)

    id: int | None = Field(default=None, primary_key=True)
    base: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    quote: Currency = Field(sa_column=enum_column(Currency, "currency", 3))
    # 1 unit of ``base`` = ``rate`` units of ``quote``
    rate: Decimal = Field(sa_column=Column(Numeric(18, 8), nullable=False))
    as_of: date
    created_at: datetime = timestamp_field()
    created_by_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
