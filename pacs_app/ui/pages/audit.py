"""The audit trail, for administrators."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.services import audit, dashboards
from pacs_app.ui import routes
from pacs_app.ui.components import audit_detail, optional_day, record_table
from pacs_app.ui.components.forms import pager
from pacs_app.ui.state import AuthState, PagedMixin, call_domain
from pacs_app.ui.template import access_denied, shell

PAGE_SIZE = 50
ALL = "all"


class AuditState(PagedMixin, AuthState):
    denied: str = ""
    ready: bool = False
    rows: list[dict[str, str]] = []
    action: str = ALL
    username: str = ""
    date_from: str = ""
    date_to: str = ""
    resource_id: str = ""
    error: str = ""

    @rx.var
    def action_options(self) -> list[str]:
        return [ALL, *sorted(a.value for a in audit.AuditAction)]

    @rx.var
    def filtered(self) -> bool:
        return bool(
            self.action != ALL
            or self.username
            or self.date_from
            or self.date_to
            or self.resource_id
        )

    async def _load(self) -> bool:
        """Reload the rows for the actor, checked again; ``False`` when signed out.

        A refused filter (a bad date, a range that ends before it starts) empties the table
        and shows the reason."""
        actor = await self.actor()
        if actor is None:
            return False
        self.error = ""
        try:
            page = await call_domain(
                audit.list_events,
                actor=actor,
                action=None if self.action == ALL else self.action,
                username=self.username or None,
                date_from=optional_day(self.date_from, "start"),
                date_to=optional_day(self.date_to, "end"),
                resource_id=self.resource_id or None,
                page=self.page,
                page_size=PAGE_SIZE,
            )
        except PermissionDenied:
            raise
        except (DomainError, ValueError) as exc:
            self.error = exc.message if isinstance(exc, DomainError) else str(exc)
            self.rows, self.total, self.pages = [], 0, 1
            return True
        self.rows = [
            {
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "user": e.username or "—",
                "action": e.action,
                "outcome": e.outcome,
                "resource": f"{e.resource_type}:{e.resource_id}" if e.resource_type else "—",
                "address": e.address or "—",
                "detail": audit_detail(e.detail),
            }
            for e in page.items
        ]
        self.total, self.pages = page.total, page.pages
        return True

    @rx.event
    async def open(self):
        self.ready, self.denied, self.page = False, "", 1
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                dashboards.enter_area,
                actor=actor,
                role="admin",
                address=self._client_address(),
                area="audit",
            )
            await self._load()
        except PermissionDenied as exc:
            self.denied, self.rows = exc.message, []
        self.ready = True

    async def _reload_first_page(self):
        self.page = 1
        return await self._reload()

    @rx.event
    async def set_action(self, value: str):
        self.action = value if value in self.action_options else ALL
        return await self._reload_first_page()

    @rx.event
    async def set_username(self, value: str):
        self.username = value.strip()[:64]
        return await self._reload_first_page()

    @rx.event
    async def set_date_from(self, value: str):
        self.date_from = value[:10]
        return await self._reload_first_page()

    @rx.event
    async def set_date_to(self, value: str):
        self.date_to = value[:10]
        return await self._reload_first_page()

    @rx.event
    async def set_resource_id(self, value: str):
        self.resource_id = value.strip()[:64]
        return await self._reload_first_page()

    @rx.event
    async def clear_filters(self):
        self.action, self.username, self.date_from, self.date_to = ALL, "", "", ""
        self.resource_id = ""
        return await self._reload_first_page()


def _filter(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), control, spacing="1")


def _filters() -> rx.Component:
    return rx.hstack(
        _filter(
            "Action",
            rx.select(
                AuditState.action_options,
                value=AuditState.action,
                on_change=AuditState.set_action,
                id="audit-action",
            ),
        ),
        _filter(
            "Username",
            rx.input(
                placeholder="exact username",
                value=AuditState.username,
                on_change=AuditState.set_username.debounce(400),
                id="audit-username",
                width="160px",
            ),
        ),
        _filter(
            "From (UTC)",
            rx.input(
                type="date",
                value=AuditState.date_from,
                on_change=AuditState.set_date_from,
                id="audit-from",
            ),
        ),
        _filter(
            "To (UTC)",
            rx.input(
                type="date",
                value=AuditState.date_to,
                on_change=AuditState.set_date_to,
                id="audit-to",
            ),
        ),
        _filter(
            "Study ID or resource id",
            rx.input(
                placeholder="e.g. K3Q9ZP2A",
                value=AuditState.resource_id,
                on_change=AuditState.set_resource_id.debounce(400),
                id="audit-resource",
                width="160px",
            ),
        ),
        rx.button(
            "Clear filters",
            variant="soft",
            color_scheme="gray",
            on_click=AuditState.clear_filters,
            disabled=~AuditState.filtered,
            id="audit-clear",
        ),
        align="end",
        spacing="3",
        wrap="wrap",
    )


@rx.page(route=routes.ADMIN_AUDIT, title="Audit trail · PACS", on_load=AuditState.open)
def audit_page() -> rx.Component:
    columns = ("When (UTC)", "User", "Action", "Outcome", "Resource", "Address", "Detail")
    keys = ("at", "user", "action", "outcome", "resource", "address", "detail")
    body = rx.vstack(
        _filters(),
        rx.cond(
            AuditState.error != "",
            rx.callout(
                AuditState.error, icon="triangle-alert", color_scheme="red", id="audit-error"
            ),
        ),
        rx.cond(
            AuditState.total > 0,
            record_table(
                AuditState.rows, list(zip(columns, keys, strict=True)), id="audit-table", size="1"
            ),
            rx.text("No audit events match.", color_scheme="gray"),
        ),
        pager(AuditState, "events", previous="Newer", next="Older"),
        width="100%",
        spacing="3",
    )
    return shell(
        "Audit trail",
        rx.cond(
            AuditState.ready,
            rx.cond(AuditState.denied != "", access_denied(AuditState.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
