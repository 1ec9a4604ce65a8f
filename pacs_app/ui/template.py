"""The common layout: a header with the signed-in user and a navigation sidebar per role."""

from __future__ import annotations

import reflex as rx

from pacs_app.ui import routes
from pacs_app.ui.components.notifications import notification_bell, notification_poller
from pacs_app.ui.state import AuthState

# (label, route, icon) per role; later capabilities add their pages here.
NAV: dict[str, list[tuple[str, str, str]]] = {
    "admin": [
        ("Dashboard", routes.ADMIN, "layout-dashboard"),
        ("Worklist", routes.WORKLIST, "list-todo"),
        ("Studies", routes.STUDIES, "list"),
        ("Users", routes.ADMIN_USERS, "users"),
        ("Centres", routes.ADMIN_CENTRES, "building"),
        ("DICOM devices", routes.DEVICES, "radio-tower"),
        ("Report templates", routes.ADMIN_TEMPLATES, "file-text"),
        ("Analytics", routes.ANALYTICS, "chart-column"),
        ("AI analysis", routes.ADMIN_AI, "bot"),
        ("Pricing", routes.ADMIN_PRICING, "tag"),
        ("Invoices", routes.INVOICES, "receipt"),
        ("Payouts", routes.ADMIN_PAYOUTS, "wallet"),
        ("Audit trail", routes.ADMIN_AUDIT, "scroll-text"),
    ],
    "centre": [
        ("Dashboard", routes.CENTRE, "layout-dashboard"),
        ("Worklist", routes.WORKLIST, "list-todo"),
        ("Studies", routes.STUDIES, "list"),
        ("Upload", routes.UPLOAD, "upload"),
        ("Centre users", routes.CENTRE_USERS, "users"),
        ("DICOM devices", routes.DEVICES, "radio-tower"),
        ("Invoices", routes.INVOICES, "receipt"),
        ("Analytics", routes.ANALYTICS, "chart-column"),
    ],
    "technician": [
        ("Dashboard", routes.TECHNICIAN, "layout-dashboard"),
        ("Worklist", routes.WORKLIST, "list-todo"),
        ("Studies", routes.STUDIES, "list"),
        ("Upload", routes.UPLOAD, "upload"),
    ],
    "radiologist": [
        ("Dashboard", routes.RADIOLOGIST, "layout-dashboard"),
        ("Worklist", routes.WORKLIST, "list-todo"),
        ("Studies", routes.STUDIES, "list"),
    ],
}


def _nav_link(label: str, href: str, icon: str) -> rx.Component:
    active = AuthState.router.url.path == href
    return rx.link(
        rx.hstack(rx.icon(icon, size=16), rx.text(label, size="2"), align="center", spacing="2"),
        href=href,
        underline="none",
        padding_x="0.75em",
        padding_y="0.5em",
        border_radius="6px",
        width="100%",
        background=rx.cond(active, rx.color("accent", 4), "transparent"),
        color=rx.color("gray", 12),
        _hover={"background": rx.color("accent", 3)},
    )


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.icon("scan-line", size=22), rx.heading("PACS", size="5"), align="center"),
        rx.divider(),
        *[
            rx.cond(
                AuthState.role == role,
                rx.vstack(*[_nav_link(*item) for item in items], width="100%", spacing="1"),
            )
            for role, items in NAV.items()
        ],
        width="220px",
        min_width="220px",
        padding="1em",
        height="100vh",
        position="sticky",
        top="0",
        border_right=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 2),
        id="sidebar",
    )


def header(title: str) -> rx.Component:
    return rx.hstack(
        rx.heading(title, size="6", id="page-title"),
        rx.spacer(),
        rx.vstack(
            rx.text(AuthState.display_name, weight="medium", size="2", id="signed-in-user"),
            rx.hstack(
                rx.badge(AuthState.role_label, id="signed-in-role"),
                rx.cond(
                    AuthState.centre_name != "",
                    rx.text(AuthState.centre_name, size="1", color_scheme="gray"),
                ),
                spacing="2",
            ),
            align="end",
            spacing="1",
        ),
        notification_bell(),
        notification_poller(),
        rx.button(
            rx.icon("log-out", size=16),
            "Sign out",
            variant="soft",
            on_click=AuthState.sign_out,
            id="sign-out",
        ),
        align="center",
        width="100%",
        padding_bottom="1em",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        spacing="4",
        id="page-header",
    )


def checking() -> rx.Component:
    return rx.center(
        rx.spinner(size="3"), rx.text("Checking your session…"), padding="4em", spacing="3"
    )


def access_denied(message: rx.Var) -> rx.Component:
    return rx.center(
        rx.callout(
            message,
            title="Access denied",
            icon="shield-alert",
            color_scheme="red",
            id="access-denied",
        ),
        rx.link("Go to your dashboard", href=AuthState.home_route),
        direction="column",
        spacing="3",
        padding="4em",
    )


def shell(title: str, content: rx.Component) -> rx.Component:
    """A signed-in page: sidebar + header + content (content decides what it shows)."""
    return rx.cond(
        AuthState.signed_in,
        rx.hstack(
            sidebar(),
            rx.vstack(
                header(title), content, width="100%", padding="1.5em", spacing="4", align="stretch"
            ),
            spacing="0",
            align="start",
            width="100%",
        ),
        checking(),
    )
