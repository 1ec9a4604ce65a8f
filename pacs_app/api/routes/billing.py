"""Billing: pricing rules, billing records, invoices (PDF/CSV), payouts, exchange rates."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.services import billing

router = APIRouter(prefix="/billing", tags=["billing"])


class RuleRequest(BaseModel):
    """A price per read. Amounts are decimal strings in the currency ("1500", "1499.50")."""

    id: int | None = Field(default=None, description="change this rule (only if unused)")
    centre_id: int | None = Field(default=None, description="omit for the default")
    modality: str
    currency: str
    price: str
    urgent_surcharge: str = "0"
    stat_surcharge: str = "0"
    effective_from: date
    note: str = ""


class RetireRequest(BaseModel):
    on: date


class ReasonRequest(BaseModel):
    reason: str


class StatusRequest(BaseModel):
    status: str = Field(description="issued or paid")


class PayoutRateRequest(BaseModel):
    radiologist_id: int | None = None
    modality: str
    currency: str
    rate: str
    effective_from: date


class ExchangeRateRequest(BaseModel):
    base: str
    quote: str
    rate: str
    as_of: date


def _file(found: billing.InvoiceFile) -> Response:
    return Response(
        found.content,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/pricing", response_model=list[billing.PricingRulePublic])
def get_pricing(actor: CurrentActor, session: SessionDep, centre_id: int | None = None) -> list:
    return billing.list_rules(session=session, actor=actor, centre_id=centre_id)


@router.put("/pricing", response_model=billing.PricingRulePublic, summary="Add or change a rule")
def put_pricing(
    body: RuleRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> billing.PricingRulePublic:
    return billing.save_rule(
        session=session,
        actor=actor,
        rule_id=body.id,
        centre_id=body.centre_id,
        modality=body.modality,
        currency=body.currency,
        price=body.price,
        urgent_surcharge=body.urgent_surcharge,
        stat_surcharge=body.stat_surcharge,
        effective_from=body.effective_from,
        note=body.note,
        address=address,
    )


@router.post("/pricing/{rule_id}/retire", response_model=billing.PricingRulePublic)
def retire(
    rule_id: int, body: RetireRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> billing.PricingRulePublic:
    return billing.retire_rule(
        session=session, actor=actor, rule_id=rule_id, on=body.on, address=address
    )


@router.get("/records", response_model=billing.RecordPage)
def records(
    actor: CurrentActor,
    session: SessionDep,
    centre_id: int | None = None,
    month: Annotated[str | None, Query(description="YYYY-MM")] = None,
    currency: str | None = None,
    status: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> billing.RecordPage:
    return billing.list_records(
        session=session,
        actor=actor,
        centre_id=centre_id,
        month=month,
        currency=currency,
        status=status,
        page=page,
        page_size=page_size,
    )


@router.post("/records/{record_id}/credit", response_model=billing.BillingRecordPublic)
def credit(
    record_id: int,
    body: ReasonRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> billing.BillingRecordPublic:
    return billing.credit_record(
        session=session, actor=actor, record_id=record_id, reason=body.reason, address=address
    )


@router.post("/records/{record_id}/price", response_model=billing.BillingRecordPublic)
def price(
    record_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> billing.BillingRecordPublic:
    return billing.price_unpriced(
        session=session, actor=actor, record_id=record_id, address=address
    )


@router.get("/invoices", response_model=list[billing.InvoicePublic])
def invoices(
    actor: CurrentActor,
    session: SessionDep,
    centre_id: int | None = None,
    month: str | None = None,
) -> list:
    return billing.list_invoices(session=session, actor=actor, centre_id=centre_id, month=month)


@router.post("/invoices/{invoice_id}/status", response_model=billing.InvoicePublic)
def invoice_status(
    invoice_id: int,
    body: StatusRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> billing.InvoicePublic:
    return billing.set_invoice_status(
        session=session, actor=actor, invoice_id=invoice_id, status=body.status, address=address
    )


@router.get("/invoices/{invoice_id}.pdf", response_class=Response)
def invoice_pdf(
    invoice_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    return _file(
        billing.invoice_file(
            session=session, actor=actor, invoice_id=invoice_id, kind="pdf", address=address
        )
    )


@router.get("/invoices/{invoice_id}.csv", response_class=Response)
def invoice_csv(
    invoice_id: int, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    return _file(
        billing.invoice_file(
            session=session, actor=actor, invoice_id=invoice_id, kind="csv", address=address
        )
    )


@router.get("/payout-rates", response_model=list[billing.PayoutRatePublic])
def payout_rates(actor: CurrentActor, session: SessionDep) -> list:
    return billing.list_payout_rates(session=session, actor=actor)


@router.put("/payout-rates", response_model=billing.PayoutRatePublic)
def put_payout_rate(
    body: PayoutRateRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> billing.PayoutRatePublic:
    return billing.save_payout_rate(
        session=session, actor=actor, address=address, **body.model_dump()
    )


@router.get("/payouts", response_model=billing.PayoutStatementPublic)
def payouts(
    radiologist_id: int, month: str, actor: CurrentActor, session: SessionDep
) -> billing.PayoutStatementPublic:
    return billing.payout_statement(
        session=session, actor=actor, radiologist_id=radiologist_id, month=month
    )


@router.get("/payouts.pdf", response_class=Response)
def payouts_pdf(
    radiologist_id: int, month: str, actor: CurrentActor, session: SessionDep
) -> Response:
    return _file(
        billing.payout_file(
            session=session, actor=actor, radiologist_id=radiologist_id, month=month
        )
    )


@router.get("/exchange-rates", response_model=list[billing.ExchangeRatePublic])
def exchange_rates(actor: CurrentActor, session: SessionDep) -> list:
    return billing.list_exchange_rates(session=session, actor=actor)


@router.put("/exchange-rates", response_model=billing.ExchangeRatePublic)
def put_exchange_rate(
    body: ExchangeRateRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> billing.ExchangeRatePublic:
    return billing.save_exchange_rate(
        session=session, actor=actor, address=address, **body.model_dump()
    )


@router.get("/revenue", response_model=billing.RevenueSummary)
def revenue(
    actor: CurrentActor,
    session: SessionDep,
    month: str | None = None,
    in_currency: Annotated[
        str | None, Query(description="one converted figure, at admin-entered rates")
    ] = None,
) -> billing.RevenueSummary:
    return billing.revenue_summary(
        session=session, actor=actor, month=month, in_currency=in_currency
    )
