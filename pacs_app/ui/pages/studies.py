"""Study list (every role, scoped by the domain) and study detail."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, NotFound
from pacs_app.models import Priority, StudyStatus
from pacs_app.services import reports, studies, users
from pacs_app.services.dto import StudyPublic
from pacs_app.storage import get_storage
from pacs_app.ui import routes
from pacs_app.ui.components import (
    audit_detail,
    count_of,
    file_size,
    optional_day,
    record_table,
)
from pacs_app.ui.components.ai_panel import AIPanelState, ai_card
from pacs_app.ui.components.comparisons import comparison_row
from pacs_app.ui.components.reading_panel import ReadingPanelState, reading_card
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import shell

PAGE_SIZE = 25
TRANSFER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2": "Implicit VR LE",
    "1.2.840.10008.1.2.1": "Explicit VR LE",
    "1.2.840.10008.1.2.2": "Explicit VR BE",
    "1.2.840.10008.1.2.1.99": "Deflated",
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.51": "JPEG extended",
    "1.2.840.10008.1.2.4.57": "JPEG lossless",
    "1.2.840.10008.1.2.4.70": "JPEG lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE",
}
ANY = "any"
SORTS = {
    "Newest first": ("received_at", True),
    "Oldest first": ("received_at", False),
    "Most urgent first": ("priority", True),
    "Patient name A-Z": ("patient_name", False),
    "Modality": ("modality", False),
}


def study_row(s: StudyPublic) -> dict[str, str]:
    return {
        "study_id": s.study_id,
        "patient": s.patient_name.replace("^", " ") or "(no name)",
        "patient_id": s.patient_id,
        "age_sex": " / ".join(v for v in (s.patient_age, s.patient_sex) if v),
        "modality": s.modality,
        "body_part": s.body_part,
        "priority": s.priority.value,
        "status": s.status.value.replace("_", " "),
        "centre": s.centre_code,
        "instances": str(s.num_instances),
        "received": s.received_at.strftime("%Y-%m-%d %H:%M"),
    }


class StudiesState(AuthState):
    rows: list[dict[str, str]] = []
    total: int = 0
    ready: bool = False
    error: str = ""
    q: str = ""
    status: str = ANY
    priority: str = ANY
    modality: str = ""
    date_from: str = ""  # ISO dates, as the browser's date inputs give them
    date_to: str = ""
    centre: str = ANY  # a label of centre_options
    centre_options: list[str] = [ANY]  # shown where the user sees more than one centre
    _centre_ids: dict[str, int] = {}
    sort: str = "Newest first"
    page: int = 1
    _cursor: str | None = None
    _next: str | None = None
    _prev: str | None = None
    has_next: bool = False
    has_prev: bool = False

    @rx.var
    def status_options(self) -> list[str]:
        return [ANY, *[s.value for s in StudyStatus]]

    @rx.var
    def priority_options(self) -> list[str]:
        return [ANY, *[p.value for p in Priority]]

    @rx.var
    def sort_options(self) -> list[str]:
        return list(SORTS)

    @rx.var
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @rx.var
    def filtered(self) -> bool:
        return bool(
            self.q
            or self.modality
            or self.date_from
            or self.date_to
            or any(v != ANY for v in (self.status, self.priority, self.centre))
        )

    @rx.var
    def count_label(self) -> str:
        return count_of(self.total, "study", "studies")

    async def _load(self) -> bool:
        actor = await self.actor()
        if actor is None:
            return False
        sort, descending = SORTS.get(self.sort, SORTS["Newest first"])
        try:
            received_from = optional_day(self.date_from, "start")
            received_to = optional_day(self.date_to, "end")
        except ValueError as exc:
            self.error, self.rows, self.total = str(exc), [], 0
            return True
        filters = studies.StudyFilters(
            status=None if self.status == ANY else StudyStatus(self.status),
            priority=None if self.priority == ANY else Priority(self.priority),
            modality=self.modality or None,
            centre_id=self._centre_ids.get(self.centre),
            received_from=received_from,
            received_to=received_to,
            q=self.q or None,
        )
        try:
            page = await call_domain(
                studies.list_studies,
                actor=actor,
                filters=filters,
                sort=sort,
                descending=descending,
                cursor=self._cursor,
                limit=PAGE_SIZE,
            )
        except DomainError as exc:
            self.error, self.rows, self.total = exc.message, [], 0
            return True
        self.error = ""
        self.rows = [study_row(s) for s in page.items]
        self.total = page.total
        self._next, self._prev = page.next_cursor, page.prev_cursor
        self.has_next, self.has_prev = bool(page.next_cursor), bool(page.prev_cursor)
        self.ready = True
        return True

    async def _reload_from_start(self):
        self._cursor, self.page = None, 1
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def open(self):
        self.ready = False
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        centres = await call_domain(users.list_centres, actor=actor)
        self._centre_ids = {f"{c.code} · {c.name}": c.id for c in centres}
        self.centre_options = [ANY, *self._centre_ids] if len(centres) > 1 else [ANY]
        if self.centre not in self._centre_ids:
            self.centre = ANY
        return await self._reload_from_start()

    @rx.event
    async def refresh(self):
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def set_q(self, value: str):
        self.q = value[:100]
        return await self._reload_from_start()

    @rx.event
    async def set_status(self, value: str):
        self.status = value if value in self.status_options else ANY
        return await self._reload_from_start()

    @rx.event
    async def set_priority(self, value: str):
        self.priority = value if value in self.priority_options else ANY
        return await self._reload_from_start()

    @rx.event
    async def set_modality(self, value: str):
        self.modality = value.strip().upper()[:16]
        return await self._reload_from_start()

    @rx.event
    async def set_date_from(self, value: str):
        self.date_from = value.strip()[:10]
        return await self._reload_from_start()

    @rx.event
    async def set_date_to(self, value: str):
        self.date_to = value.strip()[:10]
        return await self._reload_from_start()

    @rx.event
    async def set_centre(self, value: str):
        self.centre = value if value in self._centre_ids else ANY
        return await self._reload_from_start()

    @rx.event
    async def clear_filters(self):
        self.q = self.modality = self.date_from = self.date_to = ""
        self.status = self.priority = self.centre = ANY
        return await self._reload_from_start()

    @rx.event
    async def set_sort(self, value: str):
        self.sort = value if value in SORTS else "Newest first"
        return await self._reload_from_start()

    @rx.event
    async def next_page(self):
        if self._next:
            self._cursor = self._next
            self.page += 1
            if not await self._load():
                return rx.redirect(routes.LOGIN)

    @rx.event
    async def prev_page(self):
        if self._prev:
            self._cursor = self._prev
            self.page = max(1, self.page - 1)
            if not await self._load():
                return rx.redirect(routes.LOGIN)


def priority_badge(priority) -> rx.Component:
    return rx.match(
        priority,
        ("stat", rx.badge("STAT", color_scheme="red", variant="solid")),
        ("urgent", rx.badge("urgent", color_scheme="orange", variant="solid")),
        rx.badge("routine", color_scheme="gray"),
    )


def _study_row(row) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row["study_id"], href="/study/" + row["study_id"], weight="bold")),
        rx.table.cell(priority_badge(row["priority"])),
        rx.table.cell(
            rx.text(row["patient"]), rx.text(row["patient_id"], size="1", color_scheme="gray")
        ),
        rx.table.cell(row["age_sex"]),
        rx.table.cell(row["modality"], " ", row["body_part"]),
        rx.table.cell(row["status"]),
        rx.table.cell(row["centre"]),
        rx.table.cell(row["instances"]),
        rx.table.cell(row["received"]),
        background=rx.match(
            row["priority"],
            ("stat", rx.color("red", 3)),
            ("urgent", rx.color("orange", 3)),
            "transparent",
        ),
        id="study-row-" + row["study_id"],
        class_name="study-row",
    )


@rx.page(route=routes.STUDIES, title="Studies · PACS", on_load=StudiesState.open)
def studies_page() -> rx.Component:
    headers = (
        "Study ID",
        "Priority",
        "Patient",
        "Age/Sex",
        "Exam",
        "Status",
        "Centre",
        "Images",
        "Received (UTC)",
    )
    return shell(
        "Studies",
        rx.vstack(
            rx.hstack(
                rx.input(
                    placeholder="Patient name, patient ID or Study ID",
                    value=StudiesState.q,
                    on_change=StudiesState.set_q.debounce(300),
                    width="300px",
                    id="study-search",
                ),
                rx.text("Status", size="2"),
                rx.select(
                    StudiesState.status_options,
                    value=StudiesState.status,
                    on_change=StudiesState.set_status,
                    id="filter-status",
                ),
                rx.text("Priority", size="2"),
                rx.select(
                    StudiesState.priority_options,
                    value=StudiesState.priority,
                    on_change=StudiesState.set_priority,
                    id="filter-priority",
                ),
                rx.input(
                    placeholder="Modality",
                    value=StudiesState.modality,
                    on_change=StudiesState.set_modality.debounce(300),
                    width="100px",
                    id="filter-modality",
                ),
                rx.cond(
                    StudiesState.centre_options.length() > 1,
                    rx.hstack(
                        rx.text("Centre", size="2"),
                        rx.select(
                            StudiesState.centre_options,
                            value=StudiesState.centre,
                            on_change=StudiesState.set_centre,
                            id="filter-centre",
                        ),
                        align="center",
                    ),
                ),
                rx.text("Received", size="2"),
                rx.input(
                    type="date",
                    value=StudiesState.date_from,
                    on_change=StudiesState.set_date_from,
                    aria_label="Received from",
                    id="filter-from",
                ),
                rx.text("to", size="2"),
                rx.input(
                    type="date",
                    value=StudiesState.date_to,
                    on_change=StudiesState.set_date_to,
                    aria_label="Received to",
                    id="filter-to",
                ),
                rx.select(
                    StudiesState.sort_options,
                    value=StudiesState.sort,
                    on_change=StudiesState.set_sort,
                    id="sort",
                ),
                rx.cond(
                    StudiesState.filtered,
                    rx.button(
                        "Clear filters",
                        variant="ghost",
                        on_click=StudiesState.clear_filters,
                        id="clear-filters",
                    ),
                ),
                rx.spacer(),
                rx.button(
                    rx.icon("refresh-cw", size=14),
                    "Refresh",
                    variant="soft",
                    on_click=StudiesState.refresh,
                ),
                wrap="wrap",
                width="100%",
                align="center",
            ),
            rx.cond(
                StudiesState.error != "",
                rx.callout(StudiesState.error, color_scheme="red", icon="triangle-alert"),
            ),
            rx.cond(
                StudiesState.total > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(*[rx.table.column_header_cell(h) for h in headers])
                    ),
                    rx.table.body(rx.foreach(StudiesState.rows, _study_row)),
                    width="100%",
                    id="studies-table",
                ),
                rx.cond(
                    StudiesState.ready,
                    rx.card(
                        rx.vstack(
                            rx.icon("inbox", size=32, color=rx.color("gray", 8)),
                            rx.text("No studies match.", weight="medium"),
                            rx.text(
                                "Uploaded studies you may see appear here.",
                                size="2",
                                color_scheme="gray",
                            ),
                            align="center",
                            padding="2em",
                        ),
                        width="100%",
                        id="studies-empty",
                    ),
                    rx.center(rx.spinner(), padding="2em"),
                ),
            ),
            rx.hstack(
                rx.button(
                    "Previous",
                    on_click=StudiesState.prev_page,
                    variant="soft",
                    disabled=~StudiesState.has_prev,
                ),
                rx.text(
                    "Page ",
                    StudiesState.page,
                    " of ",
                    StudiesState.pages,
                    " · ",
                    StudiesState.count_label,
                    size="2",
                    id="studies-count",
                ),
                rx.button(
                    "Next",
                    on_click=StudiesState.next_page,
                    variant="soft",
                    disabled=~StudiesState.has_next,
                ),
                align="center",
            ),
            width="100%",
            spacing="3",
        ),
    )


class StudyState(AuthState):
    found: bool = False
    ready: bool = False
    message: str = ""
    study: dict[str, str] = {}
    series: list[dict[str, str]] = []
    history: list[dict[str, str]] = []
    instances: list[dict[str, str]] = []
    instances_note: str = ""
    differences: list[dict[str, str]] = []
    # the patient's other studies (reports.comparison_studies)
    others: list[dict[str, str]] = []
    is_admin: bool = False
    delete_open: bool = False
    delete_error: str = ""
    _study_id: str = ""

    @rx.event
    async def open(self):
        self.ready, self.found, self.message, self.others = False, False, "", []
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        self.is_admin = actor.is_admin
        self._study_id = self._path_study_id()
        try:
            detail = await call_domain(
                studies.get_study,
                actor=actor,
                study_id=self._study_id,
                address=self._client_address(),
            )
        except NotFound:
            self.message = f"No study {self._study_id} that you may see."
            self.ready = True
            return
        self.study = {
            **study_row(detail),
            "description": detail.description or "—",
            "accession": detail.accession_number or "—",
            "study_date": detail.study_date.isoformat() if detail.study_date else "—",
            "notes": detail.clinical_notes or "—",
            "uid": detail.study_instance_uid,
            "uploaded_by": detail.uploaded_by or "—",
            "size": file_size(detail.size_bytes),
        }
        self.series = [
            {
                "number": str(s.series_number or ""),
                "modality": s.modality,
                "description": s.description or "—",
                "body_part": s.body_part or "—",
                "instances": str(s.num_instances),
            }
            for s in detail.series
        ]
        self.history = [
            {
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "user": e.username or "—",
                "action": e.action,
                "detail": audit_detail(e.detail),
            }
            for e in detail.history
        ]
        self.instances = [
            {
                "file": f"instance_{i.number:03d}",
                "instance_number": str(i.instance_number or ""),
                "size": file_size(i.size_bytes),
                "matrix": f"{i.columns} x {i.rows}" if i.rows and i.columns else "—",
                "frames": str(i.number_of_frames),
                "transfer_syntax": TRANSFER_SYNTAX_NAMES.get(
                    i.transfer_syntax_uid, i.transfer_syntax_uid or "—"
                ),
            }
            for i in detail.instances
        ]
        self.instances_note = (
            f"Showing the first {len(detail.instances)} of {detail.num_instances} images."
            if len(detail.instances) < detail.num_instances
            else ""
        )
        self.differences = [
            {"field": d.field.replace("_", " "), "shown": d.shown, "header": d.header}
            for d in detail.differences
        ]
        others = await call_domain(
            reports.comparison_studies,
            actor=actor,
            study_id=self._study_id,
            address=self._client_address(),
        )
        self.others = [comparison_row(c) for c in others]
        self.found = self.ready = True

    @rx.event
    def set_delete_open(self, value: bool):
        self.delete_open, self.delete_error = value, ""

    @rx.event
    async def delete(self, form: dict):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                studies.delete_study,
                actor=actor,
                study_id=self._study_id,
                confirm=str(form.get("confirm", "")),
                storage=get_storage(),
                address=self._client_address(),
            )
        except DomainError as exc:
            self.delete_error = exc.message
            return
        self.delete_open = False
        return [rx.toast.success(f"Study {self._study_id} deleted."), rx.redirect(routes.STUDIES)]


def _fact(label: str, value) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.text(value, size="3"),
        spacing="0",
        min_width="140px",
    )


def _delete_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(
            rx.button(
                rx.icon("trash-2", size=14),
                "Delete study",
                color_scheme="red",
                variant="soft",
                id="delete-study",
            )
        ),
        rx.dialog.content(
            rx.dialog.title("Delete study ", StudyState.study["study_id"], "?"),
            rx.dialog.description(
                "This removes the study's images and records for good. Type the Study ID to "
                "confirm."
            ),
            rx.form(
                rx.vstack(
                    rx.cond(
                        StudyState.delete_error != "",
                        rx.callout(StudyState.delete_error, color_scheme="red"),
                    ),
                    rx.input(
                        name="confirm", placeholder="Study ID", id="delete-confirm", width="100%"
                    ),
                    rx.hstack(
                        rx.dialog.close(
                            rx.button("Cancel", variant="soft", color_scheme="gray", type="button")
                        ),
                        rx.button("Delete", color_scheme="red", type="submit", id="confirm-delete"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=StudyState.delete,
                reset_on_submit=False,
            ),
        ),
        open=StudyState.delete_open,
        on_open_change=StudyState.set_delete_open,
    )


def _other_study_row(o) -> rx.Component:
    return rx.table.row(
        rx.table.cell(o["title"]),
        rx.table.cell(o["status"]),
        rx.table.cell(
            rx.cond(
                o["own_page"] != "",
                rx.link(o["study_id"], href="/study/" + o["study_id"]),
                rx.text(o["study_id"]),
            )
        ),
        rx.table.cell(
            rx.cond(o["signed"] != "", o["impression"], "—"),
            white_space="pre-wrap",
            max_width="420px",
        ),
        rx.table.cell(
            rx.link(
                "View images",
                href="/viewer/" + o["study_id"] + "?for=" + StudyState.study["study_id"],
                id="view-other-" + o["study_id"],
            )
        ),
    )


def _other_studies() -> rx.Component:
    return rx.vstack(
        rx.heading("Other studies of this patient", size="4"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Study", "Status", "Study ID", "Impression", "")
                    ]
                )
            ),
            rx.table.body(rx.foreach(StudyState.others, _other_study_row)),
            size="1",
            width="100%",
        ),
        width="100%",
        spacing="2",
        id="other-studies",
    )


@rx.page(
    route=routes.STUDY,
    title="Study · PACS",
    on_load=[StudyState.open, ReadingPanelState.open, AIPanelState.open],
)
def study_page() -> rx.Component:
    s = StudyState.study
    body = rx.vstack(
        rx.hstack(
            rx.heading(s["patient"], size="6", id="study-patient"),
            priority_badge(s["priority"]),
            rx.badge(s["status"], color_scheme="indigo"),
            rx.spacer(),
            rx.link(
                rx.button(rx.icon("scan-eye", size=16), "Open in viewer", id="open-viewer"),
                href="/viewer/" + s["study_id"],
            ),
            rx.cond(StudyState.is_admin, _delete_dialog()),
            align="center",
            width="100%",
        ),
        reading_card(),
        ai_card(),
        rx.card(
            rx.hstack(
                _fact("Study ID", s["study_id"]),
                _fact("Patient ID", s["patient_id"]),
                _fact("Age / sex", s["age_sex"]),
                _fact("Exam", s["modality"] + " " + s["body_part"]),
                _fact("Study date", s["study_date"]),
                _fact("Accession", s["accession"]),
                _fact("Centre", s["centre"]),
                _fact("Received (UTC)", s["received"]),
                _fact("Uploaded by", s["uploaded_by"]),
                _fact("Size", s["size"]),
                wrap="wrap",
                spacing="5",
            ),
            width="100%",
        ),
        rx.cond(
            StudyState.differences.length() > 0,
            rx.callout.root(
                rx.callout.icon(rx.icon("info")),
                rx.vstack(
                    rx.text(
                        "The upload form and the DICOM header disagree; the form's value is shown:",
                        weight="medium",
                        size="2",
                    ),
                    rx.foreach(
                        StudyState.differences,
                        lambda d: rx.text(
                            d["field"],
                            ": form “",
                            d["shown"],
                            "”, header “",
                            d["header"],
                            "”",
                            size="2",
                        ),
                    ),
                    spacing="1",
                ),
                color_scheme="amber",
                id="study-differences",
                width="100%",
            ),
        ),
        rx.text("Description: ", s["description"], size="2"),
        rx.text("Clinical notes: ", s["notes"], size="2", id="study-notes"),
        rx.heading("Series", size="4"),
        record_table(
            StudyState.series,
            [
                ("#", "number"),
                ("Modality", "modality"),
                ("Body part", "body_part"),
                ("Description", "description"),
                ("Images", "instances"),
            ],
            id="series-table",
        ),
        rx.cond(StudyState.others.length() > 0, _other_studies()),
        rx.heading("Images", size="4"),
        rx.cond(StudyState.instances_note != "", rx.text(StudyState.instances_note, size="2")),
        rx.box(
            record_table(
                StudyState.instances,
                [
                    ("File", "file"),
                    ("Instance #", "instance_number"),
                    ("Matrix", "matrix"),
                    ("Frames", "frames"),
                    ("Encoding", "transfer_syntax"),
                    ("Size", "size"),
                ],
                id="instances-table",
                size="1",
            ),
            max_height="320px",
            overflow_y="auto",
            width="100%",
        ),
        rx.heading("History", size="4"),
        record_table(
            StudyState.history,
            [("", "at"), ("", "user"), ("", "action"), ("", "detail")],
            id="history-table",
            size="1",
        ),
        rx.text("Study Instance UID ", s["uid"], size="1", color_scheme="gray"),
        width="100%",
        spacing="3",
        id="study-detail",
    )
    return shell(
        "Study",
        rx.cond(
            StudyState.ready,
            rx.cond(
                StudyState.found,
                body,
                rx.callout(
                    StudyState.message, icon="search-x", color_scheme="gray", id="study-not-found"
                ),
            ),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
