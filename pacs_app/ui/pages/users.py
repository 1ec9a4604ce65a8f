"""User administration: admins see every account, centre managers their centre's."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.models import Role
from pacs_app.services import dashboards, users
from pacs_app.ui import routes
from pacs_app.ui.components.forms import (
    active_badge,
    confirm_dialog,
    dialog_buttons,
    error_callout,
    field,
    notice_callout,
    pager,
    toggle_button,
)
from pacs_app.ui.state import AuthState, PagedMixin, call_domain
from pacs_app.ui.template import access_denied, shell

PAGE_SIZE = 20


class UsersState(PagedMixin, AuthState):
    area: str = ""
    denied: str = ""
    ready: bool = False
    rows: list[dict[str, str]] = []
    notice: str = ""
    error: str = ""

    # confirmation of activate/deactivate
    confirm_open: bool = False
    confirm_username: str = ""
    confirm_activate: bool = False
    _confirm_user_id: int = 0

    # new user form
    create_open: bool = False
    create_error: str = ""
    centre_options: list[dict[str, str]] = []

    # edit form (full name, e-mail)
    edit_open: bool = False
    edit_error: str = ""
    edit_username: str = ""
    edit_full_name: str = ""
    edit_email: str = ""
    _edit_user_id: int = 0

    # password reset form
    reset_open: bool = False
    reset_error: str = ""
    reset_username: str = ""
    _reset_user_id: int = 0

    @rx.var
    def role_options(self) -> list[str]:
        if self.area == Role.ADMIN.value:
            return [r.value for r in Role]
        return [Role.TECHNICIAN.value, Role.RADIOLOGIST.value]

    async def _load(self) -> bool:
        """Reload the rows for the actor, checked again; ``False`` when signed out."""
        actor = await self.actor()
        if actor is None:
            return False
        page = await call_domain(
            users.list_users, actor=actor, search=self.search, page=self.page, page_size=PAGE_SIZE
        )
        self.rows = [
            {
                "id": str(u.id),
                "username": u.username,
                "name": u.full_name or "",
                "email": u.email or "",
                "role": u.role.value + (" (tele)" if u.is_tele_radiologist else ""),
                "centre": u.centre.code if u.centre else "—",
                "active": "yes" if u.is_active else "no",
                "last_login": u.last_login_at.strftime("%Y-%m-%d %H:%M UTC")
                if u.last_login_at
                else "never",
                "manage": "yes" if users.can_manage(actor, u) else "no",
            }
            for u in page.items
        ]
        self.total, self.pages = page.total, page.pages
        if actor.is_admin:
            centres = await call_domain(users.list_centres, actor=actor)
            self.centre_options = [
                {"id": str(c.id), "label": f"{c.code} · {c.name}"} for c in centres
            ]
        return True

    @rx.event
    async def open(self, area: str):
        self.area, self.ready, self.denied = area, False, ""
        self.notice, self.error, self.page = "", "", 1
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                dashboards.enter_area,
                actor=actor,
                role=area,
                address=self._client_address(),
                area="users",
            )
            await self._load()
        except PermissionDenied as exc:
            self.denied, self.rows, self.total = exc.message, [], 0
        self.ready = True

    @rx.event
    def ask_toggle(self, user_id: str, username: str, active: str):
        self._confirm_user_id = int(user_id)
        self.confirm_username = username
        self.confirm_activate = active != "yes"
        self.confirm_open = True

    @rx.event
    def cancel_toggle(self):
        self.confirm_open = False

    @rx.event
    async def confirm_toggle(self):
        self.confirm_open = False
        self.notice, self.error = "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            user = await call_domain(
                users.set_active,
                actor=actor,
                user_id=self._confirm_user_id,
                active=self.confirm_activate,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.error = exc.message
            return
        self.notice = f"{user.username} is now {'active' if user.is_active else 'deactivated'}."
        await self._load()

    def _row_of(self, user_id: str) -> dict[str, str] | None:
        return next((r for r in self.rows if r["id"] == user_id), None)

    @rx.event
    def open_edit(self, user_id: str):
        row = self._row_of(user_id)
        if row is None:
            return
        self._edit_user_id = int(user_id)
        self.edit_username, self.edit_full_name, self.edit_email = (
            row["username"],
            row["name"],
            row["email"],
        )
        self.edit_error, self.notice, self.error = "", "", ""
        self.edit_open = True

    @rx.event
    def set_edit_open(self, value: bool):
        self.edit_open = value
        self.edit_error = ""

    @rx.event
    async def save_user(self, form: dict):
        self.edit_error = ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            user = await call_domain(
                users.update_user,
                actor=actor,
                user_id=self._edit_user_id,
                full_name=str(form.get("full_name", "")),
                email=str(form.get("email", "")),
                address=self._client_address(),
            )
        except DomainError as exc:
            self.edit_error = exc.message
            return
        self.edit_open = False
        self.notice = f"Saved {user.username}."
        await self._load()

    @rx.event
    def open_reset(self, user_id: str):
        row = self._row_of(user_id)
        if row is None:
            return
        self._reset_user_id = int(user_id)
        self.reset_username = row["username"]
        self.reset_error, self.notice, self.error = "", "", ""
        self.reset_open = True

    @rx.event
    def set_reset_open(self, value: bool):
        self.reset_open = value
        self.reset_error = ""

    @rx.event
    async def reset_password(self, form: dict):
        self.reset_error = ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        password = str(form.get("password", ""))
        if password != str(form.get("password2", "")):
            self.reset_error = "The two passwords differ."
            return
        try:
            user = await call_domain(
                users.reset_password,
                actor=actor,
                user_id=self._reset_user_id,
                new_password=password,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.reset_error = exc.message
            return
        self.reset_open = False
        self.notice = f"The password of {user.username} was reset."

    @rx.event
    def set_create_open(self, value: bool):
        self.create_open = value
        self.create_error = ""

    @rx.event
    async def create_user(self, form: dict):
        self.create_error = ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if form.get("password", "") != form.get("password2", ""):
            self.create_error = "The two passwords differ."
            return
        centre_id: int | None
        if actor.is_admin:
            raw = str(form.get("centre_id", "") or "")
            centre_id = int(raw) if raw.isdigit() else None
        else:
            centre_id = actor.centre_id  # a centre manager creates users of its own centre
        try:
            user = await call_domain(
                users.create_user,
                actor=actor,
                username=str(form.get("username", "")),
                password=str(form.get("password", "")),
                role=str(form.get("role", "")),
                centre_id=centre_id,
                email=str(form.get("email", "")) or None,
                full_name=str(form.get("full_name", "")) or None,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.create_error = exc.message
            return
        self.create_open = False
        self.notice = f"Created {user.role.value} user {user.username}."
        await self._load()


def _row(row: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row["username"]),
        rx.table.cell(row["name"]),
        rx.table.cell(row["role"]),
        rx.table.cell(row["centre"]),
        rx.table.cell(active_badge(row["active"])),
        rx.table.cell(row["last_login"]),
        rx.table.cell(
            rx.cond(
                row["manage"] == "yes",
                rx.hstack(
                    rx.button(
                        "Edit",
                        size="1",
                        variant="soft",
                        on_click=UsersState.open_edit(row["id"]),
                        id="edit-" + row["username"],
                    ),
                    rx.button(
                        "Reset password",
                        size="1",
                        variant="soft",
                        color_scheme="orange",
                        on_click=UsersState.open_reset(row["id"]),
                        id="reset-" + row["username"],
                    ),
                    rx.cond(
                        row["username"] != AuthState.username,
                        toggle_button(
                            row["active"],
                            UsersState.ask_toggle(row["id"], row["username"], row["active"]),
                            "toggle-" + row["username"],
                        ),
                    ),
                    spacing="2",
                ),
            )
        ),
        id="user-row-" + row["username"],
    )


def _confirm_dialog() -> rx.Component:
    verb = rx.cond(UsersState.confirm_activate, "Activate", "Deactivate")
    return confirm_dialog(
        open=UsersState.confirm_open,
        title=(verb, " ", UsersState.confirm_username, "?"),
        description=rx.cond(
            UsersState.confirm_activate,
            "The user will be able to sign in again.",
            "The user is signed out everywhere at once and cannot sign in until reactivated.",
        ),
        label=verb,
        on_confirm=UsersState.confirm_toggle,
        on_cancel=UsersState.cancel_toggle,
        id="confirm-toggle",
        color=rx.cond(UsersState.confirm_activate, "green", "red"),
    )


def _create_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("user-plus", size=16), "New user", id="new-user")),
        rx.dialog.content(
            rx.dialog.title("New user"),
            rx.form(
                rx.vstack(
                    rx.cond(
                        UsersState.create_error != "",
                        rx.callout(
                            UsersState.create_error,
                            color_scheme="red",
                            icon="triangle-alert",
                            id="create-error",
                            width="100%",
                        ),
                    ),
                    field(
                        "Username",
                        rx.input(name="username", id="new-username", required=True, width="100%"),
                    ),
                    field("Full name", rx.input(name="full_name", width="100%")),
                    field("E-mail", rx.input(name="email", type="email", width="100%")),
                    field(
                        "Role",
                        rx.select(
                            UsersState.role_options,
                            name="role",
                            default_value="technician",
                            id="new-role",
                        ),
                    ),
                    rx.cond(
                        UsersState.area == "admin",
                        field(
                            "Centre (none for administrators and tele-radiologists)",
                            rx.el.select(
                                rx.el.option("— none —", value=""),
                                rx.foreach(
                                    UsersState.centre_options,
                                    lambda c: rx.el.option(c["label"], value=c["id"]),
                                ),
                                name="centre_id",
                                id="new-centre",
                                style={"padding": "6px", "width": "100%"},
                            ),
                        ),
                    ),
                    field(
                        "Password (8+ characters)",
                        rx.input(
                            name="password",
                            type="password",
                            required=True,
                            id="new-password",
                            width="100%",
                        ),
                    ),
                    field(
                        "Repeat password",
                        rx.input(
                            name="password2",
                            type="password",
                            required=True,
                            id="new-password2",
                            width="100%",
                        ),
                    ),
                    rx.hstack(
                        rx.dialog.close(
                            rx.button("Cancel", variant="soft", color_scheme="gray", type="button")
                        ),
                        rx.button("Create", type="submit", id="create-user"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                ),
                on_submit=UsersState.create_user,
                reset_on_submit=False,
            ),
        ),
        open=UsersState.create_open,
        on_open_change=UsersState.set_create_open,
    )


def _edit_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Edit ", UsersState.edit_username),
            rx.dialog.description(
                "The username cannot change.", size="2", color_scheme="gray", margin_bottom="1em"
            ),
            rx.form(
                rx.vstack(
                    error_callout(UsersState.edit_error, "edit-error"),
                    field(
                        "Full name",
                        rx.input(
                            name="full_name",
                            default_value=UsersState.edit_full_name,
                            id="edit-full-name",
                            width="100%",
                        ),
                    ),
                    field(
                        "E-mail",
                        rx.input(
                            name="email",
                            type="email",
                            default_value=UsersState.edit_email,
                            id="edit-email",
                            width="100%",
                        ),
                    ),
                    dialog_buttons("Save", "save-user"),
                    spacing="3",
                ),
                on_submit=UsersState.save_user,
                reset_on_submit=False,
            ),
        ),
        open=UsersState.edit_open,
        on_open_change=UsersState.set_edit_open,
    )


def _reset_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Reset the password of ", UsersState.reset_username, "?"),
            rx.dialog.description(
                "Their old password stops working now. Tell them the new one in person or by "
                "another safe channel.",
                size="2",
                color_scheme="gray",
                margin_bottom="1em",
            ),
            rx.form(
                rx.vstack(
                    error_callout(UsersState.reset_error, "reset-error"),
                    field(
                        "New password (8+ characters, not the username)",
                        rx.input(
                            name="password",
                            type="password",
                            required=True,
                            id="reset-password",
                            width="100%",
                        ),
                    ),
                    field(
                        "Repeat the new password",
                        rx.input(
                            name="password2",
                            type="password",
                            required=True,
                            id="reset-password2",
                            width="100%",
                        ),
                    ),
                    dialog_buttons("Reset password", "confirm-reset", color_scheme="orange"),
                    spacing="3",
                ),
                on_submit=UsersState.reset_password,
                reset_on_submit=True,
            ),
        ),
        open=UsersState.reset_open,
        on_open_change=UsersState.set_reset_open,
    )


def _users_page(title: str) -> rx.Component:
    body = rx.vstack(
        rx.hstack(
            rx.input(
                placeholder="Search username, name or e-mail",
                value=UsersState.search,
                on_change=UsersState.set_search.debounce(300),
                width="320px",
                id="user-search",
            ),
            rx.spacer(),
            _create_dialog(),
            width="100%",
        ),
        notice_callout(UsersState.notice),
        rx.cond(
            UsersState.error != "",
            rx.callout(UsersState.error, icon="triangle-alert", color_scheme="red", id="error"),
        ),
        rx.cond(
            UsersState.total > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in (
                                "Username",
                                "Name",
                                "Role",
                                "Centre",
                                "Status",
                                "Last sign-in",
                                "",
                            )
                        ]
                    )
                ),
                rx.table.body(rx.foreach(UsersState.rows, _row)),
                width="100%",
                id="users-table",
            ),
            rx.text("No users match this search.", color_scheme="gray"),
        ),
        pager(UsersState, "users"),
        _confirm_dialog(),
        _edit_dialog(),
        _reset_dialog(),
        width="100%",
        spacing="3",
    )
    return shell(
        title,
        rx.cond(
            UsersState.ready,
            rx.cond(UsersState.denied != "", access_denied(UsersState.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )


@rx.page(route=routes.ADMIN_USERS, title="Users · PACS", on_load=UsersState.open("admin"))
def admin_users_page() -> rx.Component:
    return _users_page("Users")


@rx.page(route=routes.CENTRE_USERS, title="Centre users · PACS", on_load=UsersState.open("centre"))
def centre_users_page() -> rx.Component:
    return _users_page("Centre users")
