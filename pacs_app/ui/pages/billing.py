"""Billing pages: pricing (administrators), invoices and billing records (administrators and
centre managers, each centre its own), payouts and exchange rates (administrators).

The API owns ``/billing/...`` on the same port, so the pages live at ``/admin/pricing``,
``/invoices`` and ``/admin/payouts``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import reflex as rx

from pacs_app.billing.money import parse_amount
from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.models import Role
from pacs_app.services import billing, users
from pacs_app.ui import routes
from pacs_app.ui.components import record_table
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell

ALL_CENTRES = "All centres (default)"
CURRENCIES = ["INR", "USD", "AED"]


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


# --- pricing ------------------------------------------------------------------------------


class PricingState(AuthState):
    ready: bool = False
    denied: str = ""
    rows: list[dict[str, str]] = []
    centre_options: list[str] = []
    _centre_ids: dict[str, int] = {}
    _centre_currency: dict[str, str] = {}
    # the rule form
    form_open: bool = False
    confirm_open: bool = False
    rule_id: int = 0
    centre: str = ALL_CENTRES
    modality: str = "CT"
    currency: str = "INR"
    price: str = ""
    urgent: str = "0"
    stat: str = "0"
    effective_from: str = ""
    note: str = ""
    form_error: str = ""
    summary: str = ""
    # retiring
    retire_id: int = 0
    retire_on: str = ""
    retire_label: str = ""

    @rx.var
    def modality_options(self) -> list[str]:
        return list(billing.PRICEABLE)

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            rules = await call_domain(billing.list_rules, actor=actor)
        except PermissionDenied as exc:
            self.denied, self.ready = exc.message, True
            return None
        centres = await call_domain(users.list_centres, actor=actor)
        self._centre_ids = {f"{c.code} · {c.name}": c.id for c in centres}
        self._centre_currency = {f"{c.code} · {c.name}": c.default_currency.value for c in centres}
        self.centre_options = [ALL_CENTRES, *self._centre_ids]
        self.rows = [
            {
                "id": str(r.id),
                "centre": r.centre,
                "centre_id": str(r.centre_id or ""),
                "modality": r.modality,
                "currency": r.currency,
                "price": r.price,
                "price_raw": str(r.price_minor / 100),
                "urgent": r.urgent_surcharge,
                "urgent_raw": str(r.urgent_surcharge_minor / 100),
                "stat": r.stat_surcharge,
                "stat_raw": str(r.stat_surcharge_minor / 100),
                "from": r.effective_from.isoformat(),
                "retired": r.retired_on.isoformat() if r.retired_on else "",
                "state": "in force"
                if r.in_force
                else ("retired" if r.retired_on else "not in force today"),
                "used": "yes" if r.used else "",
                "note": r.note,
            }
            for r in rules
        ]
        self.denied, self.ready = "", True
        return None

    @rx.event
    async def open(self):
        self.ready = False
        return await self._load()

    @rx.event
    def new_rule(self):
        self.rule_id, self.centre, self.modality, self.currency = 0, ALL_CENTRES, "CT", "INR"
        self.price, self.urgent, self.stat, self.note = "", "0", "0", ""
        self.effective_from, self.form_error, self.form_open = _today(), "", True

    @rx.event
    def edit_rule(self, row: dict):
        self.rule_id = int(row["id"])
        self.centre = next(
            (k for k, v in self._centre_ids.items() if str(v) == row["centre_id"]), ALL_CENTRES
        )
        self.modality, self.currency = row["modality"], row["currency"]
        self.price, self.urgent, self.stat = row["price_raw"], row["urgent_raw"], row["stat_raw"]
        self.effective_from, self.note = row["from"], row["note"]
        self.form_error, self.form_open = "", True

    @rx.event
    def set_form_open(self, value: bool):
        self.form_open = value

    @rx.event
    def set_field(self, field: str, value: str):
        if field in {"modality", "currency", "price", "urgent", "stat", "effective_from", "note"}:
            setattr(self, field, value)
        elif field == "centre":
            self.centre = value
            if value in self._centre_currency:  # a centre's prices are in its currency
                self.currency = self._centre_currency[value]

    @rx.event
    def review(self):
        """Check the form and ask for confirmation, showing the rule in words."""
        try:
            price = parse_amount(self.price, self.currency, what="price")
            urgent = parse_amount(self.urgent or "0", self.currency, what="urgent surcharge")
            stat = parse_amount(self.stat or "0", self.currency, what="STAT surcharge")
        except DomainError as exc:
            self.form_error = exc.message
            return
        from pacs_app.billing.money import format_money

        self.summary = (
            f"{self.modality} for {self.centre}: {format_money(price, self.currency)} per read "
            f"(urgent +{format_money(urgent, self.currency)}, STAT "
            f"+{format_money(stat, self.currency)}) from {self.effective_from}."
        )
        self.form_error, self.confirm_open = "", True

    @rx.event
    def set_confirm_open(self, value: bool):
        self.confirm_open = value

    @rx.event
    async def save(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                billing.save_rule,
                actor=actor,
                rule_id=self.rule_id or None,
                centre_id=self._centre_ids.get(self.centre),
                modality=self.modality,
                currency=self.currency,
                price=self.price,
                urgent_surcharge=self.urgent,
                stat_surcharge=self.stat,
                effective_from=self.effective_from,
                note=self.note,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.form_error, self.confirm_open = exc.message, False
            return None
        self.form_open = self.confirm_open = False
        await self._load()
        return rx.toast.success("Price saved.")

    @rx.event
    def ask_retire(self, row: dict):
        self.retire_id, self.retire_on = int(row["id"]), _today()
        self.retire_label = f"{row['modality']} for {row['centre']} ({row['price']})"
        self.form_error = ""

    @rx.event
    def set_retire_on(self, value: str):
        self.retire_on = value

    @rx.event
    def close_retire(self, value: bool):
        if not value:
            self.retire_id = 0

    @rx.event
    async def retire(self):
        _, answer = await self.as_actor(
            billing.retire_rule,
            rule_id=self.retire_id,
            on=self.retire_on,
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        self.retire_id = 0
        await self._load()
        return rx.toast.success("Price retired.")


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%")


def _rule_dialog() -> rx.Component:
    s = PricingState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(s.rule_id == 0, "New price", "Change price")),
            rx.vstack(
                _labelled(
                    "Centre",
                    rx.select(
                        s.centre_options,
                        value=s.centre,
                        on_change=lambda v: s.set_field("centre", v),
                        id="rule-centre",
                    ),
                ),
                rx.hstack(
                    _labelled(
                        "Modality",
                        rx.select(
                            s.modality_options,
                            value=s.modality,
                            on_change=lambda v: s.set_field("modality", v),
                            id="rule-modality",
                        ),
                    ),
                    _labelled(
                        "Currency",
                        rx.select(
                            CURRENCIES,
                            value=s.currency,
                            on_change=lambda v: s.set_field("currency", v),
                            id="rule-currency",
                        ),
                    ),
                    width="100%",
                ),
                rx.hstack(
                    _labelled(
                        "Price per read",
                        rx.input(
                            value=s.price,
                            on_change=lambda v: s.set_field("price", v),
                            placeholder="e.g. 1500",
                            id="rule-price",
                        ),
                    ),
                    _labelled(
                        "Urgent surcharge",
                        rx.input(
                            value=s.urgent,
                            on_change=lambda v: s.set_field("urgent", v),
                            id="rule-urgent",
                        ),
                    ),
                    _labelled(
                        "STAT surcharge",
                        rx.input(
                            value=s.stat,
                            on_change=lambda v: s.set_field("stat", v),
                            id="rule-stat",
                        ),
                    ),
                    width="100%",
                ),
                _labelled(
                    "Applies from",
                    rx.input(
                        type="date",
                        value=s.effective_from,
                        on_change=lambda v: s.set_field("effective_from", v),
                        id="rule-from",
                    ),
                ),
                _labelled(
                    "Note",
                    rx.input(
                        value=s.note,
                        on_change=lambda v: s.set_field("note", v),
                        id="rule-note",
                    ),
                ),
                rx.text(
                    "A price that has billed studies is never changed: add a new one from the "
                    "day it applies.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.cond(
                    s.form_error != "",
                    rx.callout(s.form_error, color_scheme="red", id="rule-error"),
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                    rx.button("Review", on_click=s.review, id="rule-review"),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="640px",
        ),
        open=s.form_open,
        on_open_change=s.set_form_open,
    )


def _confirm_dialog() -> rx.Component:
    s = PricingState
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Save this price?"),
            rx.alert_dialog.description(s.summary, id="rule-summary"),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Back", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button("Save", on_click=s.save, id="rule-confirm")),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=s.confirm_open,
        on_open_change=s.set_confirm_open,
    )


def _retire_dialog() -> rx.Component:
    s = PricingState
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Retire ", s.retire_label, "?"),
            rx.alert_dialog.description(
                "From this day on, studies are priced by the next rule or the default. "
                "Studies already billed keep their amounts."
            ),
            rx.input(
                type="date",
                value=s.retire_on,
                on_change=s.set_retire_on,
                id="retire-on",
                margin_top="1em",
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Back", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Retire", color_scheme="red", on_click=s.retire, id="retire-confirm")
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=s.retire_id != 0,
        on_open_change=s.close_retire,
    )


@rx.page(route=routes.ADMIN_PRICING, title="Pricing · PACS", on_load=PricingState.open)
def pricing_page() -> rx.Component:
    s = PricingState
    headers = ["Centre", "Modality", "Price", "Urgent +", "STAT +", "From", "State", "Used", ""]
    table = rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
        rx.table.body(
            rx.foreach(
                s.rows,
                lambda r: rx.table.row(
                    rx.table.cell(r["centre"]),
                    rx.table.cell(r["modality"]),
                    rx.table.cell(r["price"]),
                    rx.table.cell(r["urgent"]),
                    rx.table.cell(r["stat"]),
                    rx.table.cell(r["from"]),
                    rx.table.cell(r["state"]),
                    rx.table.cell(r["used"]),
                    rx.table.cell(
                        rx.hstack(
                            rx.cond(
                                r["used"] == "",
                                rx.button(
                                    "Change", size="1", variant="soft", on_click=s.edit_rule(r)
                                ),
                            ),
                            rx.cond(
                                r["retired"] == "",
                                rx.button(
                                    "Retire",
                                    size="1",
                                    variant="soft",
                                    color_scheme="red",
                                    on_click=s.ask_retire(r),
                                ),
                            ),
                        )
                    ),
                    id="rule-" + r["centre"] + "-" + r["modality"] + "-" + r["from"],
                    class_name="pricing-row",
                ),
            )
        ),
        width="100%",
        size="1",
        id="pricing-table",
    )
    return shell(
        "Pricing",
        rx.cond(
            s.ready,
            rx.cond(
                s.denied != "",
                access_denied(s.denied),
                rx.vstack(
                    rx.hstack(
                        rx.text(
                            "Price per read, per modality; a centre's own price wins over the "
                            "default in its currency. XRAY prices CR and DX studies without "
                            "their own price.",
                            size="2",
                            color_scheme="gray",
                        ),
                        rx.spacer(),
                        rx.button(
                            rx.icon("plus", size=16),
                            "New price",
                            on_click=s.new_rule,
                            id="new-rule",
                        ),
                        width="100%",
                    ),
                    rx.cond(
                        s.rows.length() > 0,
                        table,
                        rx.callout("No prices yet.", icon="inbox", color_scheme="gray"),
                    ),
                    _rule_dialog(),
                    _confirm_dialog(),
                    _retire_dialog(),
                    width="100%",
                    spacing="3",
                ),
            ),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )


# --- invoices and billing records ---------------------------------------------------------


class InvoicesState(AuthState):
    ready: bool = False
    denied: str = ""
    is_admin: bool = False
    month: str = ""
    invoices: list[dict[str, str]] = []
    records: list[dict[str, str]] = []
    record_totals: str = ""
    credit_id: int = 0
    credit_label: str = ""
    credit_reason: str = ""
    status_id: int = 0
    status_to: str = ""
    status_label: str = ""

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if actor.role not in (Role.ADMIN, Role.CENTRE):
            self.denied = "Only administrators and centre managers see billing."
            self.ready = True
            return None
        self.is_admin = actor.is_admin
        try:
            invoices = await call_domain(
                billing.list_invoices, actor=actor, month=self.month or None
            )
            records = await call_domain(
                billing.list_records, actor=actor, month=self.month or None, page_size=200
            )
        except DomainError as exc:
            self.denied, self.ready = exc.message, True
            return None
        self.invoices = [
            {
                "id": str(i.id),
                "number": i.number,
                "centre": i.centre,
                "month": i.month,
                "currency": i.currency,
                "total": i.total,
                "lines": str(i.lines),
                "status": i.status,
                "can_issue": "1" if i.can_issue else "",
                "can_pay": "1" if self.is_admin and i.status == "issued" else "",
            }
            for i in invoices
        ]
        self.records = [
            {
                "id": str(r.id),
                "study_id": r.study_id,
                "centre": r.centre,
                "modality": r.modality,
                "priority": r.priority,
                "amount": r.amount,
                "status": r.status,
                "month": r.month,
                "rule": r.rule_text,
                "note": r.credit_reason,
                "invoice": r.invoice or "—",
            }
            for r in records.items
        ]
        self.record_totals = " · ".join(f"{k} {v}" for k, v in records.totals.items())
        self.denied, self.ready = "", True
        return None

    @rx.event
    async def open(self):
        self.ready = False
        self.month = self.month or ""
        return await self._load()

    @rx.event
    async def set_month(self, value: str):
        self.month = value
        return await self._load()

    @rx.event
    async def download(self, invoice_id: str, kind: str):
        found, answer = await self.as_actor(
            billing.invoice_file,
            invoice_id=int(invoice_id),
            kind=kind,
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        return rx.download(
            data=found.content, filename=found.filename, mime_type=found.media_type.split(";")[0]
        )

    @rx.event
    def ask_status(self, row: dict, to: str):
        self.status_id, self.status_to = int(row["id"]), to
        self.status_label = f"{row['number']} ({row['total']})"

    @rx.event
    def close_status(self, value: bool):
        if not value:
            self.status_id = 0

    @rx.event
    async def change_status(self):
        _, answer = await self.as_actor(
            billing.set_invoice_status,
            invoice_id=self.status_id,
            status=self.status_to,
            address=self._client_address(),
        )
        self.status_id = 0  # the dialog closes either way
        if answer is not None:
            return answer
        await self._load()
        return rx.toast.success("Invoice updated.")

    @rx.event
    def ask_credit(self, row: dict):
        self.credit_id, self.credit_reason = int(row["id"]), ""
        self.credit_label = f"study {row['study_id']} ({row['amount']})"

    @rx.event
    def set_credit_reason(self, value: str):
        self.credit_reason = value

    @rx.event
    def close_credit(self, value: bool):
        if not value:
            self.credit_id = 0

    @rx.event
    async def credit(self):
        _, answer = await self.as_actor(
            billing.credit_record,
            record_id=self.credit_id,
            reason=self.credit_reason,
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        self.credit_id = 0
        await self._load()
        return rx.toast.success("Credited.")


def _invoice_row(r) -> rx.Component:
    s = InvoicesState
    return rx.table.row(
        rx.table.cell(r["number"]),
        rx.table.cell(r["centre"]),
        rx.table.cell(r["month"]),
        rx.table.cell(r["lines"]),
        rx.table.cell(rx.text(r["total"], weight="bold"), class_name="invoice-total"),
        rx.table.cell(rx.badge(r["status"])),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    "PDF",
                    size="1",
                    variant="soft",
                    on_click=s.download(r["id"], "pdf"),
                    class_name="invoice-pdf",
                ),
                rx.button("CSV", size="1", variant="soft", on_click=s.download(r["id"], "csv")),
                rx.cond(
                    r["can_issue"] != "",
                    rx.button("Issue", size="1", on_click=s.ask_status(r, "issued")),
                ),
                rx.cond(
                    r["can_pay"] != "",
                    rx.button("Mark paid", size="1", on_click=s.ask_status(r, "paid")),
                ),
            )
        ),
        id="invoice-" + r["number"],
        class_name="invoice-row",
    )


def _status_dialog() -> rx.Component:
    s = InvoicesState
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(
                rx.cond(s.status_to == "paid", "Mark as paid: ", "Issue invoice "),
                s.status_label,
                "?",
            ),
            rx.alert_dialog.description(
                rx.cond(
                    s.status_to == "paid",
                    "Record that the centre has paid this invoice.",
                    "An issued invoice no longer changes; it is sent to the centre.",
                )
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Back", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Confirm", on_click=s.change_status, id="invoice-confirm")
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=s.status_id != 0,
        on_open_change=s.close_status,
    )


def _credit_dialog() -> rx.Component:
    s = InvoicesState
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Credit ", s.credit_label, "?"),
            rx.alert_dialog.description("The centre is not charged for it. Give the reason."),
            rx.input(
                value=s.credit_reason,
                on_change=s.set_credit_reason,
                placeholder="Reason",
                id="credit-reason",
                margin_top="1em",
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Back", variant="soft", color_scheme="gray")),
                rx.button("Credit", color_scheme="red", on_click=s.credit, id="credit-confirm"),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=s.credit_id != 0,
        on_open_change=s.close_credit,
    )


@rx.page(route=routes.INVOICES, title="Invoices · PACS", on_load=InvoicesState.open)
def invoices_page() -> rx.Component:
    s = InvoicesState
    records = rx.table.root(
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h)
                    for h in (
                        "Study",
                        "Centre",
                        "Exam",
                        "Priority",
                        "Amount",
                        "State",
                        "Invoice",
                        "Priced by",
                        "",
                    )
                ]
            )
        ),
        rx.table.body(
            rx.foreach(
                s.records,
                lambda r: rx.table.row(
                    rx.table.cell(r["study_id"]),
                    rx.table.cell(r["centre"]),
                    rx.table.cell(r["modality"]),
                    rx.table.cell(r["priority"]),
                    rx.table.cell(r["amount"]),
                    rx.table.cell(r["status"], " ", r["note"]),
                    rx.table.cell(r["invoice"]),
                    rx.table.cell(rx.text(r["rule"], size="1", color_scheme="gray")),
                    rx.table.cell(
                        rx.cond(
                            s.is_admin & (r["status"] != "credited"),
                            rx.button(
                                "Credit",
                                size="1",
                                variant="soft",
                                color_scheme="red",
                                on_click=s.ask_credit(r),
                            ),
                        )
                    ),
                    class_name="billing-row",
                ),
            )
        ),
        width="100%",
        size="1",
        id="records-table",
    )
    body = rx.vstack(
        rx.hstack(
            rx.text("Month", size="2"),
            rx.input(type="month", value=s.month, on_change=s.set_month, id="billing-month"),
            rx.text("(empty: all months)", size="1", color_scheme="gray"),
            rx.spacer(),
            rx.text("Amounts are per currency and never converted.", size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
        rx.heading("Invoices", size="4"),
        rx.cond(
            s.invoices.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Invoice", "Centre", "Month", "Studies", "Total", "State", "")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(s.invoices, _invoice_row)),
                width="100%",
                id="invoices-table",
            ),
            rx.callout(
                "No invoices yet: invoices appear once reports are delivered.",
                icon="inbox",
                color_scheme="gray",
                id="invoices-empty",
            ),
        ),
        rx.heading("Billed studies", size="4"),
        rx.text("Billed total: ", s.record_totals, size="2", id="records-totals"),
        rx.cond(s.records.length() > 0, records),
        _status_dialog(),
        _credit_dialog(),
        width="100%",
        spacing="3",
        id="billing-page",
    )
    return shell(
        "Invoices",
        rx.cond(
            s.ready,
            rx.cond(s.denied != "", access_denied(s.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )


# --- payouts and exchange rates ------------------------------------------------------------


class PayoutsState(AuthState):
    ready: bool = False
    denied: str = ""
    rates: list[dict[str, str]] = []
    radiologists: list[str] = []
    _radiologist_ids: dict[str, int] = {}
    radiologist: str = ""
    month: str = ""
    lines: list[dict[str, str]] = []
    totals: str = ""
    unrated: int = 0
    # rate form
    rate_for: str = "Every radiologist"
    rate_modality: str = "CT"
    rate_currency: str = "USD"
    rate_value: str = ""
    rate_from: str = ""
    # exchange rates and one-figure revenue
    fx: list[dict[str, str]] = []
    fx_base: str = "INR"
    fx_quote: str = "USD"
    fx_rate: str = ""
    revenue: str = ""
    converted: str = ""
    error: str = ""

    @rx.var
    def modality_options(self) -> list[str]:
        return list(billing.PRICEABLE)

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            rates = await call_domain(billing.list_payout_rates, actor=actor)
            fx = await call_domain(billing.list_exchange_rates, actor=actor)
            revenue = await call_domain(billing.revenue_summary, actor=actor, in_currency="USD")
        except PermissionDenied as exc:
            self.denied, self.ready = exc.message, True
            return None
        people = await call_domain(
            users.list_users, actor=actor, role=Role.RADIOLOGIST, page_size=100
        )
        self._radiologist_ids = {u.display_name: u.id for u in people.items}
        self.radiologists = list(self._radiologist_ids)
        self.rates = [
            {
                "who": r.radiologist,
                "modality": r.modality,
                "rate": r.rate,
                "from": r.effective_from.isoformat(),
            }
            for r in rates
        ]
        self.fx = [
            {"pair": f"1 {r.base} = {r.rate} {r.quote}", "as_of": r.as_of.isoformat()} for r in fx
        ]
        self.revenue = " · ".join(f"{k} {v}" for k, v in revenue.per_currency.items()) or "none"
        self.converted = (
            f"{revenue.converted_total} at " + "; ".join(revenue.rates_used)
            if revenue.converted_total
            else "needs rates for: " + ", ".join(revenue.missing_rates)
            if revenue.missing_rates
            else ""
        )
        self.denied, self.ready = "", True
        return None

    @rx.event
    async def open(self):
        self.ready = False
        self.month = self.month or _this_month()
        self.rate_from = self.rate_from or _today()
        return await self._load()

    @rx.event
    def set_field(self, field: str, value: str):
        if field in {
            "radiologist",
            "month",
            "rate_for",
            "rate_modality",
            "rate_currency",
            "rate_value",
            "rate_from",
            "fx_base",
            "fx_quote",
            "fx_rate",
        }:
            setattr(self, field, value)

    @rx.event
    async def show_statement(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if self.radiologist not in self._radiologist_ids:
            return rx.toast.error("Choose a radiologist.")
        try:
            st = await call_domain(
                billing.payout_statement,
                actor=actor,
                radiologist_id=self._radiologist_ids[self.radiologist],
                month=self.month,
            )
        except DomainError as exc:
            return rx.toast.error(exc.message)
        self.lines = [
            {
                "study": ln.study_id,
                "date": ln.read_on.isoformat(),
                "modality": ln.modality,
                "centre": ln.centre,
                "amount": ln.amount,
            }
            for ln in st.lines
        ]
        self.totals = " · ".join(f"{k} {v}" for k, v in st.totals.items()) or "nothing"
        self.unrated = st.unrated
        return None

    @rx.event
    async def download_statement(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if self.radiologist not in self._radiologist_ids:
            return rx.toast.error("Choose a radiologist.")
        try:
            found = await call_domain(
                billing.payout_file,
                actor=actor,
                radiologist_id=self._radiologist_ids[self.radiologist],
                month=self.month,
            )
        except DomainError as exc:
            return rx.toast.error(exc.message)
        return rx.download(data=found.content, filename=found.filename, mime_type="application/pdf")

    @rx.event
    async def save_rate(self):
        _, answer = await self.as_actor(
            billing.save_payout_rate,
            radiologist_id=self._radiologist_ids.get(self.rate_for),
            modality=self.rate_modality,
            currency=self.rate_currency,
            rate=self.rate_value,
            effective_from=self.rate_from,
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        await self._load()
        return rx.toast.success("Rate saved.")

    @rx.event
    async def save_fx(self):
        _, answer = await self.as_actor(
            billing.save_exchange_rate,
            base=self.fx_base,
            quote=self.fx_quote,
            rate=self.fx_rate,
            as_of=_today(),
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        await self._load()
        return rx.toast.success("Exchange rate saved.")


@rx.page(route=routes.ADMIN_PAYOUTS, title="Payouts · PACS", on_load=PayoutsState.open)
def payouts_page() -> rx.Component:
    s = PayoutsState
    body = rx.vstack(
        rx.heading("Radiologist payout rates (per read)", size="4"),
        record_table(
            s.rates,
            [("Radiologist", "who"), ("Modality", "modality"), ("Rate", "rate"), ("From", "from")],
            id="payout-rates",
        ),
        rx.hstack(
            rx.select.root(
                rx.select.trigger(placeholder="Radiologist"),
                rx.select.content(
                    rx.select.item("Every radiologist", value="Every radiologist"),
                    rx.foreach(s.radiologists, lambda n: rx.select.item(n, value=n)),
                ),
                value=s.rate_for,
                on_change=lambda v: s.set_field("rate_for", v),
            ),
            rx.select(
                s.modality_options,
                value=s.rate_modality,
                on_change=lambda v: s.set_field("rate_modality", v),
            ),
            rx.select(
                CURRENCIES,
                value=s.rate_currency,
                on_change=lambda v: s.set_field("rate_currency", v),
            ),
            rx.input(
                value=s.rate_value,
                placeholder="Rate",
                width="100px",
                on_change=lambda v: s.set_field("rate_value", v),
            ),
            rx.input(
                type="date", value=s.rate_from, on_change=lambda v: s.set_field("rate_from", v)
            ),
            rx.button("Add rate", on_click=s.save_rate),
            wrap="wrap",
        ),
        rx.heading("Monthly statement", size="4"),
        rx.hstack(
            rx.select(
                s.radiologists,
                value=s.radiologist,
                placeholder="Radiologist",
                on_change=lambda v: s.set_field("radiologist", v),
            ),
            rx.input(type="month", value=s.month, on_change=lambda v: s.set_field("month", v)),
            rx.button("Show", on_click=s.show_statement),
            rx.button("PDF", variant="soft", on_click=s.download_statement),
        ),
        rx.cond(
            s.totals != "",
            rx.text(
                "Total: ",
                s.totals,
                rx.cond(
                    s.unrated > 0, " (reads without a rate: " + s.unrated.to_string() + ")", ""
                ),
            ),
        ),
        record_table(
            s.lines,
            [
                ("Study", "study"),
                ("Date", "date"),
                ("Modality", "modality"),
                ("Centre", "centre"),
                ("Amount", "amount"),
            ],
            id="payout-lines",
            size="1",
        ),
        rx.heading("Revenue and exchange rates", size="4"),
        rx.text("Billed revenue, per currency: ", s.revenue, size="2"),
        rx.cond(s.converted != "", rx.text("In USD: ", s.converted, size="2", color_scheme="gray")),
        record_table(s.fx, [("Rate", "pair"), ("As of", "as_of")], id="fx-rates", size="1"),
        rx.hstack(
            rx.select(CURRENCIES, value=s.fx_base, on_change=lambda v: s.set_field("fx_base", v)),
            rx.text("→"),
            rx.select(CURRENCIES, value=s.fx_quote, on_change=lambda v: s.set_field("fx_quote", v)),
            rx.input(
                value=s.fx_rate,
                placeholder="1 base = ? quote",
                width="140px",
                on_change=lambda v: s.set_field("fx_rate", v),
            ),
            rx.button("Add rate (today)", variant="soft", on_click=s.save_fx),
        ),
        width="100%",
        spacing="3",
    )
    return shell(
        "Payouts",
        rx.cond(
            s.ready,
            rx.cond(s.denied != "", access_denied(s.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
