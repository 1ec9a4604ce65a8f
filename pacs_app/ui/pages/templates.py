"""Report templates (administrators): per modality and body part, edited in the app."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError
from pacs_app.services import reports
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell


class TemplatesState(AuthState):
    rows: list[dict[str, str]] = []
    denied: str = ""
    ready: bool = False
    editing: bool = False
    form_error: str = ""
    # the form
    template_id: int = 0  # 0: a new template
    name: str = ""
    modality: str = ""
    body_part: str = ""
    findings: str = ""
    impression: str = ""
    is_active: bool = True

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if not actor.is_admin:
            self.denied, self.ready = "Only administrators may edit report templates.", True
            return None
        rows = await call_domain(reports.list_templates, actor=actor)
        self.rows = [
            {
                "id": str(t.id),
                "name": t.name,
                "modality": t.modality or "any",
                "body_part": t.body_part or "any",
                "findings": t.findings,
                "impression": t.impression,
                "active": "yes" if t.is_active else "retired",
            }
            for t in rows
        ]
        self.denied, self.ready = "", True
        return None

    @rx.event
    async def open(self):
        self.ready, self.editing = False, False
        return await self._load()

    @rx.event
    def new(self):
        self.template_id, self.name, self.modality, self.body_part = 0, "", "", ""
        self.findings, self.impression, self.is_active = "", "", True
        self.form_error, self.editing = "", True

    @rx.event
    def edit(self, row: dict):
        self.template_id = int(row["id"])
        self.name = row["name"]
        self.modality = "" if row["modality"] == "any" else row["modality"]
        self.body_part = "" if row["body_part"] == "any" else row["body_part"]
        self.findings, self.impression = row["findings"], row["impression"]
        self.is_active = row["active"] == "yes"
        self.form_error, self.editing = "", True

    @rx.event
    def set_editing(self, value: bool):
        self.editing = value

    @rx.event
    def set_field(self, field: str, value):
        if field in {"name", "modality", "body_part", "findings", "impression", "is_active"}:
            setattr(self, field, value)

    @rx.event
    async def save(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            saved = await call_domain(
                reports.save_template,
                actor=actor,
                template_id=self.template_id or None,
                name=self.name,
                modality=self.modality,
                body_part=self.body_part,
                findings=self.findings,
                impression=self.impression,
                is_active=self.is_active,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.form_error = exc.message
            return None
        self.editing = False
        await self._load()
        return rx.toast.success(f"Template “{saved.name}” saved.")


def _field(label: str, field: str, component) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"), component, spacing="1", width="100%"
    )


def _form() -> rx.Component:
    s = TemplatesState
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(s.template_id == 0, "New template", "Edit template")),
            rx.vstack(
                _field(
                    "Name",
                    "name",
                    rx.input(
                        value=s.name,
                        on_change=lambda v: s.set_field("name", v),
                        id="template-name",
                        width="100%",
                    ),
                ),
                rx.hstack(
                    _field(
                        "Modality (empty: any)",
                        "modality",
                        rx.input(
                            value=s.modality,
                            on_change=lambda v: s.set_field("modality", v),
                            id="template-modality",
                        ),
                    ),
                    _field(
                        "Body part (empty: any)",
                        "body_part",
                        rx.input(
                            value=s.body_part,
                            on_change=lambda v: s.set_field("body_part", v),
                            id="template-body-part",
                        ),
                    ),
                    width="100%",
                ),
                _field(
                    "Findings",
                    "findings",
                    rx.text_area(
                        value=s.findings,
                        on_change=lambda v: s.set_field("findings", v),
                        rows="8",
                        width="100%",
                        id="template-findings",
                    ),
                ),
                _field(
                    "Impression",
                    "impression",
                    rx.text_area(
                        value=s.impression,
                        on_change=lambda v: s.set_field("impression", v),
                        rows="3",
                        width="100%",
                        id="template-impression",
                    ),
                ),
                rx.checkbox(
                    "Active (offered to radiologists)",
                    checked=s.is_active,
                    on_change=lambda v: s.set_field("is_active", v),
                    id="template-active",
                ),
                rx.cond(s.form_error != "", rx.callout(s.form_error, color_scheme="red")),
                rx.hstack(
                    rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                    rx.button("Save", on_click=s.save, id="save-template"),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="720px",
        ),
        open=s.editing,
        on_open_change=s.set_editing,
    )


@rx.page(route=routes.ADMIN_TEMPLATES, title="Report templates · PACS", on_load=TemplatesState.open)
def templates_page() -> rx.Component:
    s = TemplatesState
    table = rx.table.root(
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h)
                    for h in ("Name", "Modality", "Body part", "State", "")
                ]
            )
        ),
        rx.table.body(
            rx.foreach(
                s.rows,
                lambda r: rx.table.row(
                    rx.table.cell(r["name"]),
                    rx.table.cell(r["modality"]),
                    rx.table.cell(r["body_part"]),
                    rx.table.cell(r["active"]),
                    rx.table.cell(rx.button("Edit", size="1", variant="soft", on_click=s.edit(r))),
                    class_name="template-row",
                ),
            )
        ),
        width="100%",
        id="templates-table",
    )
    return shell(
        "Report templates",
        rx.cond(
            s.ready,
            rx.cond(
                s.denied != "",
                access_denied(s.denied),
                rx.vstack(
                    rx.hstack(
                        rx.text(
                            "Radiologists start a report from the templates matching the "
                            "study's modality and body part. Retire a template instead of "
                            "deleting it.",
                            size="2",
                            color_scheme="gray",
                        ),
                        rx.spacer(),
                        rx.button(
                            rx.icon("plus", size=16),
                            "New template",
                            on_click=s.new,
                            id="new-template",
                        ),
                        width="100%",
                    ),
                    rx.cond(
                        s.rows.length() > 0,
                        table,
                        rx.callout("No templates yet.", icon="inbox", color_scheme="gray"),
                    ),
                    _form(),
                    width="100%",
                    spacing="3",
                ),
            ),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
