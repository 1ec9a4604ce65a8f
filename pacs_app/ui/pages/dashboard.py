"""One dashboard per role, each at its own route and refused to the other roles."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import PermissionDenied
from pacs_app.models import Role
from pacs_app.services import dashboards
from pacs_app.ui import routes
from pacs_app.ui.components.turnaround_panel import TatState, turnaround_panel
from pacs_app.ui.pages.studies import priority_badge, study_row
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell


class DashboardState(AuthState):
    denied: str = ""
    ready: bool = False
    area: str = ""
    users_by_role: dict[str, int] = {}
    centres: int = 0
    failed_sign_ins_24h: int = 0
    centre_currency: str = ""
    studies_total: int = 0
    recent: list[dict[str, str]] = []

    @rx.event
    async def open(self, role: str):
        self.ready, self.denied, self.area = False, "", role
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            data = await call_domain(
                dashboards.summary, actor=actor, role=role, address=self._client_address()
            )
        except PermissionDenied as exc:
            self.denied = exc.message
            self.users_by_role, self.centres, self.failed_sign_ins_24h = {}, 0, 0
            self.ready = True
            return
        self.users_by_role = data.active_users_by_role
        self.centres = data.centres
        self.failed_sign_ins_24h = data.failed_sign_ins_24h
        self.centre_currency = data.centre.default_currency.value if data.centre else ""
        self.studies_total = data.studies_total
        self.recent = [study_row(st) for st in data.recent_studies]
        self.ready = True


def stat(label: str, value, icon: str, id_: str) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.icon(icon, size=28, color=rx.color("accent", 9)),
            rx.vstack(
                rx.text(label, size="2", color_scheme="gray"),
                rx.heading(value, size="7", id=id_),
                spacing="0",
            ),
            align="center",
            spacing="4",
        ),
        min_width="200px",
    )


def empty_state(title: str, text: str, icon: str = "inbox") -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.icon(icon, size=36, color=rx.color("gray", 8)),
            rx.heading(title, size="4"),
            rx.text(text, color_scheme="gray", size="2"),
            align="center",
            spacing="2",
            padding="2em",
        ),
        width="100%",
    )


def recent_studies(title: str, empty_title: str, empty_text: str, icon: str) -> rx.Component:
    """The newest studies the user may see, or an empty state."""
    return rx.cond(
        DashboardState.studies_total > 0,
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading(title, size="4"),
                    rx.badge(DashboardState.studies_total.to_string() + " visible"),
                    rx.spacer(),
                    rx.link("All studies →", href=routes.STUDIES),
                    width="100%",
                    align="center",
                ),
                rx.table.root(
                    rx.table.body(
                        rx.foreach(
                            DashboardState.recent,
                            lambda r: rx.table.row(
                                rx.table.cell(
                                    rx.link(r["study_id"], href="/study/" + r["study_id"])
                                ),
                                rx.table.cell(priority_badge(r["priority"])),
                                rx.table.cell(r["patient"]),
                                rx.table.cell(r["modality"], " ", r["body_part"]),
                                rx.table.cell(r["status"]),
                                rx.table.cell(r["received"]),
                            ),
                        )
                    ),
                    width="100%",
                    size="1",
                    id="recent-studies",
                ),
                width="100%",
            ),
            width="100%",
        ),
        empty_state(empty_title, empty_text, icon),
    )


def _guarded(role: Role, title: str, body: rx.Component) -> rx.Component:
    return shell(
        title,
        rx.cond(
            DashboardState.ready,
            rx.cond(
                DashboardState.denied != "",
                access_denied(DashboardState.denied),
                rx.vstack(body, spacing="4", width="100%", id=f"dashboard-{role.value}"),
            ),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )


def _users_stats() -> rx.Component:
    return rx.hstack(
        stat(
            "Technicians",
            DashboardState.users_by_role["technician"],
            "user-cog",
            "stat-technicians",
        ),
        stat(
            "Radiologists",
            DashboardState.users_by_role["radiologist"],
            "stethoscope",
            "stat-radiologists",
        ),
        stat(
            "Centre managers",
            DashboardState.users_by_role["centre"],
            "building-2",
            "stat-centre-users",
        ),
        wrap="wrap",
        spacing="4",
    )


@rx.page(
    route=routes.ADMIN,
    title="Administration · PACS",
    on_load=[DashboardState.open(Role.ADMIN.value), TatState.open],
)
def admin_dashboard() -> rx.Component:
    return _guarded(
        Role.ADMIN,
        "Administration",
        rx.fragment(
            rx.hstack(
                stat("Active centres", DashboardState.centres, "building", "stat-centres"),
                stat(
                    "Administrators", DashboardState.users_by_role["admin"], "shield", "stat-admins"
                ),
                stat(
                    "Failed sign-ins (24 h)",
                    DashboardState.failed_sign_ins_24h,
                    "shield-alert",
                    "stat-failed-sign-ins",
                ),
                wrap="wrap",
                spacing="4",
            ),
            _users_stats(),
            rx.hstack(
                rx.link(
                    rx.button(rx.icon("users", size=16), "Manage users", variant="soft"),
                    href=routes.ADMIN_USERS,
                ),
                rx.link(
                    rx.button(rx.icon("scroll-text", size=16), "Audit trail", variant="soft"),
                    href=routes.ADMIN_AUDIT,
                ),
                rx.link(
                    rx.button(rx.icon("list-todo", size=16), "Worklist", variant="soft"),
                    href=routes.WORKLIST,
                ),
            ),
            turnaround_panel(show_centres=True),
        ),
    )


@rx.page(
    route=routes.CENTRE,
    title="Centre · PACS",
    on_load=[DashboardState.open(Role.CENTRE.value), TatState.open],
)
def centre_dashboard() -> rx.Component:
    return _guarded(
        Role.CENTRE,
        "Centre dashboard",
        rx.fragment(
            rx.card(
                rx.hstack(
                    rx.icon("building-2", size=28),
                    rx.vstack(
                        rx.heading(AuthState.centre_name, size="5", id="centre-name"),
                        rx.text(
                            "Code ",
                            AuthState.centre_code,
                            " · billing in ",
                            DashboardState.centre_currency,
                            size="2",
                            color_scheme="gray",
                        ),
                        spacing="1",
                    ),
                    align="center",
                    spacing="4",
                ),
            ),
            _users_stats(),
            rx.link(
                rx.button(rx.icon("users", size=16), "Manage centre users", variant="soft"),
                href=routes.CENTRE_USERS,
            ),
            recent_studies(
                "Recent studies",
                "No studies yet",
                "Studies uploaded by your technicians will be listed here.",
                "inbox",
            ),
            turnaround_panel(show_centres=False),
        ),
    )


@rx.page(
    route=routes.TECHNICIAN,
    title="Technician · PACS",
    on_load=DashboardState.open(Role.TECHNICIAN.value),
)
def technician_dashboard() -> rx.Component:
    return _guarded(
        Role.TECHNICIAN,
        "Technician dashboard",
        rx.fragment(
            rx.text(
                "Uploading for ", rx.text.strong(AuthState.centre_name, id="centre-name"), size="3"
            ),
            rx.link(
                rx.button(rx.icon("upload", size=16), "Upload studies", size="3"),
                href=routes.UPLOAD,
            ),
            recent_studies(
                "Recent studies of your centre",
                "No uploads yet",
                "Studies you upload and their processing status will be listed here.",
                "upload",
            ),
        ),
    )


@rx.page(
    route=routes.RADIOLOGIST,
    title="Worklist · PACS",
    on_load=DashboardState.open(Role.RADIOLOGIST.value),
)
def radiologist_dashboard() -> rx.Component:
    return _guarded(
        Role.RADIOLOGIST,
        "Radiologist worklist",
        rx.fragment(
            rx.text(
                rx.cond(
                    AuthState.is_tele_radiologist,
                    "Tele-radiologist: you read for every centre's pool.",
                    "Internal radiologist of " + AuthState.centre_name + ".",
                ),
                size="3",
                id="radiologist-kind",
            ),
            rx.link(
                rx.button(rx.icon("list-todo", size=16), "Open my worklist", size="3"),
                href=routes.WORKLIST,
                id="open-worklist",
            ),
            recent_studies(
                "Studies waiting to be read",
                "Your worklist is empty",
                "Studies assigned to you and studies available to claim will appear here.",
                "stethoscope",
            ),
        ),
    )
