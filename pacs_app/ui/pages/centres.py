"""Centre administration, for administrators: list and search, create, edit, (de)activate."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.models import Currency
from pacs_app.services import dashboards, users
from pacs_app.ui import routes
from pacs_app.ui.components.forms import (
    active_badge,
    confirm_dialog,
    dialog_buttons,
    error_callout,
    field,
    notice_callout,
    switch_field,
    toggle_button,
)
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell

CURRENCIES = [c.value for c in Currency]


class CentresState(AuthState):
    denied: str = ""
    ready: bool = False
    rows: list[dict[str, str]] = []
    search: str = ""
    notice: str = ""
    error: str = ""

    # new centre form
    create_open: bool = False
    create_error: str = ""

    # edit form (the name is a form field; the rest are controlled)
    edit_open: bool = False
    edit_error: str = ""
    edit_code: str = ""
    edit_name: str = ""
    edit_currency: str = Currency.USD.value
    edit_auto_release: bool = True
    edit_ai: bool = True
    _edit_id: int = 0

    # confirmation of activate/deactivate
    confirm_open: bool = False
    confirm_code: str = ""
    confirm_activate: bool = False
    confirm_message: str = ""
    _confirm_id: int = 0

    async def _load(self) -> bool:
        """Reload the rows for the actor, checked again; ``False`` when signed out."""
        actor = await self.actor()
        if actor is None:
            return False
        centres = await call_domain(users.list_centre_details, actor=actor, search=self.search)
        self.rows = [
            {
                "id": str(c.id),
                "code": c.code,
                "name": c.name,
                "currency": c.default_currency.value,
                "pool": "automatic" if c.auto_release_to_pool else "centre queue",
                "ai": "on" if c.ai_auto_process else "off",
                "users": f"{c.active_users} of {c.users}",
                "active_users": str(c.active_users),
                "active": "yes" if c.is_active else "no",
            }
            for c in centres
        ]
        return True

    @rx.event
    async def open(self):
        self.ready, self.denied, self.notice, self.error = False, "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                dashboards.enter_area,
                actor=actor,
                role="admin",
                address=self._client_address(),
                area="centres",
            )
            await self._load()
        except PermissionDenied as exc:
            self.denied, self.rows = exc.message, []
        self.ready = True

    @rx.event
    async def set_search(self, value: str):
        self.search = value[:100]
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    # --- create ---------------------------------------------------------------------------

    @rx.event
    def set_create_open(self, value: bool):
        self.create_open = value
        self.create_error = ""

    @rx.event
    async def create_centre(self, form: dict):
        self.create_error, self.notice, self.error = "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            centre = await call_domain(
                users.create_centre,
                actor=actor,
                name=str(form.get("name", "")),
                code=str(form.get("code", "")),
                currency=str(form.get("currency", "") or Currency.USD.value),
                address=self._client_address(),
            )
        except DomainError as exc:
            self.create_error = exc.message
            return
        self.create_open = False
        self.notice = f"Created centre {centre.code} · {centre.name}."
        await self._load()

    # --- edit -----------------------------------------------------------------------------

    @rx.event
    async def open_edit(self, centre_id: str):
        self.edit_error, self.notice, self.error = "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            centre = await call_domain(users.get_centre, actor=actor, centre_id=int(centre_id))
        except DomainError as exc:
            self.error = exc.message
            return
        self._edit_id = centre.id
        self.edit_code, self.edit_name = centre.code, centre.name
        self.edit_currency = centre.default_currency.value
        self.edit_auto_release, self.edit_ai = centre.auto_release_to_pool, centre.ai_auto_process
        self.edit_open = True

    @rx.event
    def set_edit_open(self, value: bool):
        self.edit_open = value
        self.edit_error = ""

    @rx.event
    def set_edit_currency(self, value: str):
        self.edit_currency = value if value in CURRENCIES else self.edit_currency

    @rx.event
    def set_edit_auto_release(self, value: bool):
        self.edit_auto_release = bool(value)

    @rx.event
    def set_edit_ai(self, value: bool):
        self.edit_ai = bool(value)

    @rx.event
    async def save_centre(self, form: dict):
        self.edit_error = ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            centre = await call_domain(
                users.update_centre,
                actor=actor,
                centre_id=self._edit_id,
                name=str(form.get("name", "")),
                currency=self.edit_currency,
                auto_release_to_pool=self.edit_auto_release,
                ai_auto_process=self.edit_ai,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.edit_error = exc.message
            return
        self.edit_open = False
        self.notice = f"Saved centre {centre.code}."
        await self._load()

    # --- deactivate / activate ------------------------------------------------------------

    @rx.event
    def ask_toggle(self, row: dict):
        self._confirm_id = int(row["id"])
        self.confirm_code = row["code"]
        self.confirm_activate = row["active"] != "yes"
        self.confirm_message = (
            _activation_message()
            if self.confirm_activate
            else _deactivation_message(int(row["active_users"]))
        )
        self.notice, self.error = "", ""
        self.confirm_open = True

    @rx.event
    def cancel_toggle(self):
        self.confirm_open = False

    @rx.event
    async def confirm_toggle(self):
        self.confirm_open = False
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            centre = await call_domain(
                users.set_centre_active,
                actor=actor,
                centre_id=self._confirm_id,
                active=self.confirm_activate,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.error = exc.message
            return
        state = "active again" if centre.is_active else "deactivated"
        accounts = _accounts(centre.active_users, "active account")
        self.notice = f"{centre.code} is now {state} ({accounts})."
        await self._load()


def _accounts(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _deactivation_message(active_users: int) -> str:
    if active_users == 0:
        who = "It has no active accounts."
    else:
        verb = "is" if active_users == 1 else "are"
        who = (
            f"Its {_accounts(active_users, 'active account')} {verb} signed out at once and "
            "cannot sign in."
        )
    return (
        f"{who} No study can be uploaded for it and no account created in it until you "
        "reactivate it. Its studies and reports are kept."
    )


def _activation_message() -> str:
    return (
        "The centre can upload again, and the accounts its deactivation switched off can "
        "sign in again (accounts deactivated on their own stay off)."
    )


def _create_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(
            rx.button(rx.icon("building", size=16), "New centre", id="new-centre-open")
        ),
        rx.dialog.content(
            rx.dialog.title("New centre"),
            rx.form(
                rx.vstack(
                    error_callout(CentresState.create_error, "create-centre-error"),
                    field(
                        "Name",
                        rx.input(name="name", id="new-centre-name", required=True, width="100%"),
                    ),
                    field(
                        "Code",
                        rx.input(name="code", id="new-centre-code", required=True, width="100%"),
                        "2 to 16 letters or digits; it cannot change later (it names the "
                        "centre's stored files).",
                    ),
                    field(
                        "Billing currency",
                        rx.select(
                            CURRENCIES,
                            name="currency",
                            default_value=Currency.USD.value,
                            id="new-centre-currency",
                        ),
                    ),
                    dialog_buttons("Create", "create-centre"),
                    spacing="3",
                ),
                on_submit=CentresState.create_centre,
                reset_on_submit=False,
            ),
        ),
        open=CentresState.create_open,
        on_open_change=CentresState.set_create_open,
    )


def _edit_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Edit centre ", CentresState.edit_code),
            rx.form(
                rx.vstack(
                    error_callout(CentresState.edit_error, "edit-centre-error"),
                    field(
                        "Name",
                        rx.input(
                            name="name",
                            default_value=CentresState.edit_name,
                            id="edit-centre-name",
                            required=True,
                            width="100%",
                        ),
                    ),
                    field(
                        "Billing currency",
                        rx.select(
                            CURRENCIES,
                            value=CentresState.edit_currency,
                            on_change=CentresState.set_edit_currency,
                            id="edit-centre-currency",
                        ),
                        "Used for this centre's new bills.",
                    ),
                    switch_field(
                        "Release new studies to the tele-radiology pool",
                        CentresState.edit_auto_release,
                        CentresState.set_edit_auto_release,
                        "edit-centre-auto-release",
                        "On: every upload goes straight to the pool, where tele-radiologists "
                        "claim it. Off: uploads wait in the centre's queue until a centre user "
                        "assigns them or releases them to the pool.",
                    ),
                    switch_field(
                        "Analyse every upload with AI",
                        CentresState.edit_ai,
                        CentresState.set_edit_ai,
                        "edit-centre-ai",
                        "On: an AI analysis is queued for each uploaded study. Off: none is "
                        "queued; a radiologist or an administrator can still run one per study.",
                    ),
                    dialog_buttons("Save", "save-centre"),
                    spacing="3",
                ),
                on_submit=CentresState.save_centre,
                reset_on_submit=False,
            ),
        ),
        open=CentresState.edit_open,
        on_open_change=CentresState.set_edit_open,
    )


def _confirm_dialog() -> rx.Component:
    verb = rx.cond(CentresState.confirm_activate, "Activate", "Deactivate")
    return confirm_dialog(
        open=CentresState.confirm_open,
        title=(verb, " centre ", CentresState.confirm_code, "?"),
        description=CentresState.confirm_message,
        label=verb,
        on_confirm=CentresState.confirm_toggle,
        on_cancel=CentresState.cancel_toggle,
        id="confirm-centre-toggle",
        color=rx.cond(CentresState.confirm_activate, "green", "red"),
    )


def _row(row: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["code"], weight="medium")),
        rx.table.cell(row["name"]),
        rx.table.cell(row["currency"]),
        rx.table.cell(row["pool"]),
        rx.table.cell(row["ai"]),
        rx.table.cell(row["users"]),
        rx.table.cell(active_badge(row["active"])),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    "Edit",
                    size="1",
                    variant="soft",
                    on_click=CentresState.open_edit(row["id"]),
                    id="edit-centre-" + row["code"],
                ),
                toggle_button(
                    row["active"], CentresState.ask_toggle(row), "toggle-centre-" + row["code"]
                ),
                spacing="2",
            )
        ),
        id="centre-row-" + row["code"],
    )


@rx.page(route=routes.ADMIN_CENTRES, title="Centres · PACS", on_load=CentresState.open)
def centres_page() -> rx.Component:
    headers = ("Code", "Name", "Currency", "New studies", "AI", "Active accounts", "Status", "")
    body = rx.vstack(
        rx.hstack(
            rx.input(
                placeholder="Search name or code",
                value=CentresState.search,
                on_change=CentresState.set_search.debounce(300),
                width="320px",
                id="centre-search",
            ),
            rx.spacer(),
            _create_dialog(),
            width="100%",
        ),
        notice_callout(CentresState.notice),
        error_callout(CentresState.error, "error"),
        rx.cond(
            CentresState.rows.length() > 0,
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
                rx.table.body(rx.foreach(CentresState.rows, _row)),
                width="100%",
                id="centres-table",
            ),
            rx.text("No centres match this search.", color_scheme="gray"),
        ),
        _edit_dialog(),
        _confirm_dialog(),
        width="100%",
        spacing="3",
    )
    return shell(
        "Centres",
        rx.cond(
            CentresState.ready,
            rx.cond(CentresState.denied != "", access_denied(CentresState.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
