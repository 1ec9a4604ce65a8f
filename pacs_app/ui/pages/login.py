"""The sign-in page."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError
from pacs_app.services import auth
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain


class LoginState(AuthState):
    error: str = ""
    busy: bool = False

    @rx.event
    async def check_already_signed_in(self):
        self.error = ""
        actor = await self.actor()
        if actor is not None:
            return rx.redirect(routes.dashboard_for(actor.role))

    @rx.event
    async def submit(self, form: dict):
        self.error = ""
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        self.busy = True
        yield
        try:
            issued = await call_domain(
                auth.authenticate,
                username=username,
                password=password,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.error = exc.message
            self.busy = False
            return
        self.busy = False
        self.token = issued.access_token
        self._show_user(issued.user)
        yield rx.redirect(routes.dashboard_for(issued.user.role))


@rx.page(route=routes.LOGIN, title="Sign in · PACS", on_load=LoginState.check_already_signed_in)
def login_page() -> rx.Component:
    return rx.center(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.hstack(
                        rx.icon("scan-line", size=28), rx.heading("Teleradiology PACS", size="6")
                    ),
                    rx.text("Sign in to continue", color_scheme="gray", size="2"),
                    rx.cond(
                        LoginState.error != "",
                        rx.callout(
                            LoginState.error,
                            icon="triangle-alert",
                            color_scheme="red",
                            id="login-error",
                            width="100%",
                        ),
                    ),
                    rx.text("Username", size="2", weight="medium"),
                    rx.input(
                        name="username",
                        id="username",
                        placeholder="username",
                        auto_complete="username",
                        required=True,
                        width="100%",
                        auto_focus=True,
                    ),
                    rx.text("Password", size="2", weight="medium"),
                    rx.input(
                        name="password",
                        id="password",
                        type="password",
                        auto_complete="current-password",
                        required=True,
                        width="100%",
                    ),
                    rx.button(
                        "Sign in",
                        type="submit",
                        id="sign-in",
                        width="100%",
                        loading=LoginState.busy,
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=LoginState.submit,
                reset_on_submit=False,
            ),
            width="360px",
            size="3",
        ),
        height="100vh",
        background=rx.color("gray", 2),
    )


@rx.page(route=routes.INDEX, title="PACS", on_load=AuthState.go_home)
def index_page() -> rx.Component:
    return rx.center(rx.spinner(size="3"), height="100vh")
