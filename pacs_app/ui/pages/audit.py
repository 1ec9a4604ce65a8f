"""The audit trail, for administrators."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import PermissionDenied
from pacs_app.services import audit, dashboards
from pacs_app.ui import routes
from pacs_app.ui.components import record_table
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell

PAGE_SIZE = 50
ALL = "all"


class AuditState(AuthState):
    denied: str = ""
    ready: bool = False
    rows: list[dict[str, str]] = []
    total: int = 0
    page: int = 1
    pages: int = 1
    action: str = ALL

    @rx.var
    def action_options(self) -> list[str]:
        return [ALL, *[a.value for a in audit.AuditAction]]

    async def _load(self) -> bool:
        """Reload the rows for the actor, checked again; ``False`` when signed out."""
        actor = await self.actor()
        if actor is None:
            return False
        page = await call_domain(
            audit.list_events,
            actor=actor,
            action=None if self.action == ALL else self.action,
            page=self.page,
            page_size=PAGE_SIZE,
        )
        self.rows = [
            {
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "user": e.username or "—",
                "action": e.action,
                "outcome": e.outcome,
                "resource": f"{e.resource_type}:{e.resource_id}" if e.resource_type else "—",
                "address": e.address or "—",
                "detail": ", ".join(f"{k}={v}" for k, v in (e.detail or {}).items()),
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

    @rx.event
    async def set_action(self, value: str):
        self.action = value if value in self.action_options else ALL
        self.page = 1
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def next_page(self):
        if self.page < self.pages:
            self.page += 1
            if not await self._load():
                return rx.redirect(routes.LOGIN)

    @rx.event
    async def prev_page(self):
        if self.page > 1:
            self.page -= 1
            if not await self._load():
                return rx.redirect(routes.LOGIN)


@rx.page(route=routes.ADMIN_AUDIT, title="Audit trail · PACS", on_load=AuditState.open)
def audit_page() -> rx.Component:
    columns = ("When (UTC)", "User", "Action", "Outcome", "Resource", "Address", "Detail")
    keys = ("at", "user", "action", "outcome", "resource", "address", "detail")
    body = rx.vstack(
        rx.hstack(
            rx.text("Action", size="2"),
            rx.select(
                AuditState.action_options,
                value=AuditState.action,
                on_change=AuditState.set_action,
                id="audit-action",
            ),
            align="center",
        ),
        rx.cond(
            AuditState.total > 0,
            record_table(
                AuditState.rows, list(zip(columns, keys, strict=True)), id="audit-table", size="1"
            ),
            rx.text("No audit events match.", color_scheme="gray"),
        ),
        rx.hstack(
            rx.button(
                "Newer",
                on_click=AuditState.prev_page,
                variant="soft",
                disabled=AuditState.page <= 1,
            ),
            rx.text(
                "Page ",
                AuditState.page,
                " of ",
                AuditState.pages,
                " · ",
                AuditState.total,
                " events",
                size="2",
            ),
            rx.button(
                "Older",
                on_click=AuditState.next_page,
                variant="soft",
                disabled=AuditState.page >= AuditState.pages,
            ),
            align="center",
        ),
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
