"""Worklists and the report editor.

The worklist polls a cheap change stamp every few seconds and reloads its rows only when a
study the user may see has changed, so a claim, an assignment or a new upload shows up without
a manual reload. The report page autosaves the draft as the radiologist types (debounced),
names the revision it started from so that two tabs never overwrite each other silently, and
puts the study's viewer beside the editor.
"""

from __future__ import annotations

import json

import reflex as rx

from pacs_app.core.errors import Conflict, DomainError, NotFound
from pacs_app.models import StudyStatus
from pacs_app.services import ai, reports, workflow
from pacs_app.services.dto import ReportView, WorklistItem
from pacs_app.storage import get_storage
from pacs_app.ui import routes
from pacs_app.ui.components import count_of
from pacs_app.ui.components.ai_panel import ai_status_badge, finding_row, severity_badge
from pacs_app.ui.components.comparisons import comparison_row
from pacs_app.ui.pages.studies import priority_badge, study_row
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import shell

#: Lines of each structured report's measurements shown before they are inserted.
MEASUREMENTS_PREVIEW = 6
#: What the viewer beside the editor may send at once: lines, and characters a line.
VIEWER_LINES, VIEWER_LINE_CHARS = 40, 300

POLL_MS = 4000
AUTOSAVE_MS = 600  # a draft is saved this long after the radiologist stops typing
ANY = "all open"


def waited(seconds: int) -> str:
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def worklist_row(item: WorklistItem) -> dict[str, str]:
    return {
        **study_row(item),
        "assigned_to": item.assigned_to or "—",
        "waiting": waited(item.waiting_seconds),
        "target": waited(item.target_minutes * 60),
        "overdue": "1" if item.overdue else "",
        "ai_status": item.ai_status,
    }


class WorklistState(AuthState):
    kind: str = "all"  # mine | available | all
    status: str = ANY
    rows: list[dict[str, str]] = []
    total: int = 0
    page: int = 1
    message: str = ""
    loaded: bool = False
    _stamp: str = ""

    @rx.var
    def total_label(self) -> str:
        return count_of(self.total, "study", "studies")

    @rx.var
    def status_options(self) -> list[str]:
        return [ANY, *[s.value for s in StudyStatus]]

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            page = await call_domain(
                workflow.worklist,
                actor=actor,
                kind=self.kind,
                status=None if self.status == ANY or self.kind != "all" else self.status,
                page=self.page,
                page_size=50,
            )
        except DomainError as exc:
            self.message, self.rows, self.total = exc.message, [], 0
            self.loaded = True
            return None
        self.rows = [worklist_row(i) for i in page.items]
        self.total = page.total
        self._stamp = page.stamp
        self.message = ""
        self.loaded = True
        return None

    @rx.event
    async def open(self):
        self.loaded, self.page, self.status = False, 1, ANY
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        self.kind = "mine" if actor.role.value == "radiologist" else "all"
        return await self._load()

    @rx.event
    async def show(self, kind: str | list[str]):
        self.kind, self.page = (kind[0] if isinstance(kind, list) else kind), 1
        return await self._load()

    @rx.event
    async def set_status_filter(self, value: str):
        self.status, self.page = value, 1
        return await self._load()

    @rx.event
    async def poll(self, _value: str = ""):
        """Reload only when something the user may see has changed."""
        if not self.loaded:
            return None
        actor = await self.actor()
        if actor is None:
            return None
        stamp = await call_domain(workflow.worklist_stamp, actor=actor)
        if stamp != self._stamp:
            return await self._load()
        return None

    @rx.event
    async def claim(self, study_id: str):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                workflow.claim, actor=actor, study_id=study_id, address=self._client_address()
            )
        except DomainError as exc:
            await self._load()
            return rx.toast.error(exc.message, id="claim-error")
        self.kind = "mine"
        await self._load()
        return rx.toast.success(f"Study {study_id} is yours.")


def _worklist_row(row, radiologist_view: bool) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row["study_id"], href="/study/" + row["study_id"], weight="bold")),
        rx.table.cell(priority_badge(row["priority"])),
        rx.table.cell(
            rx.text(row["patient"]), rx.text(row["patient_id"], size="1", color_scheme="gray")
        ),
        rx.table.cell(row["modality"], " ", row["body_part"]),
        rx.table.cell(row["centre"]),
        rx.table.cell(row["status"]),
        rx.table.cell(row["assigned_to"]),
        rx.table.cell(ai_status_badge(row["ai_status"])),
        rx.table.cell(
            rx.cond(
                row["overdue"] != "",
                rx.tooltip(
                    rx.badge(
                        rx.icon("clock-alert", size=12),
                        row["waiting"],
                        color_scheme="red",
                        variant="solid",
                    ),
                    content="Past the turnaround target of " + row["target"],
                ),
                rx.text(row["waiting"], size="2"),
            ),
            class_name="waiting",
        ),
        rx.table.cell(
            rx.cond(
                radiologist_view,
                rx.cond(
                    WorklistState.kind == "available",
                    rx.button(
                        "Claim",
                        size="1",
                        on_click=WorklistState.claim(row["study_id"]),
                        id="claim-" + row["study_id"],
                    ),
                    rx.link(
                        rx.button("Report", size="1", variant="soft"),
                        href="/report/" + row["study_id"],
                        id="report-" + row["study_id"],
                    ),
                ),
                rx.link(
                    rx.button("Open", size="1", variant="soft"),
                    href="/study/" + row["study_id"],
                ),
            )
        ),
        background=rx.cond(
            row["overdue"] != "",
            rx.color("red", 2),
            rx.match(
                row["priority"],
                ("stat", rx.color("red", 3)),
                ("urgent", rx.color("orange", 3)),
                "transparent",
            ),
        ),
        id="worklist-row-" + row["study_id"],
        class_name="worklist-row",
    )


def _worklist_table(radiologist_view: bool) -> rx.Component:
    headers = [
        "Study",
        "Priority",
        "Patient",
        "Exam",
        "Centre",
        "Status",
        "Radiologist",
        "AI",
        "Waiting",
        "",
    ]
    return rx.cond(
        WorklistState.rows.length() > 0,
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(
                rx.foreach(WorklistState.rows, lambda r: _worklist_row(r, radiologist_view))
            ),
            width="100%",
            size="1",
            id="worklist-table",
        ),
        rx.callout(
            rx.match(
                WorklistState.kind,
                ("mine", "Nothing assigned to you. Claim a study from 'Available to claim'."),
                ("available", "No study is waiting to be claimed right now."),
                "No open studies.",
            ),
            icon="inbox",
            color_scheme="gray",
            id="worklist-empty",
        ),
    )


@rx.page(route=routes.WORKLIST, title="Worklist · PACS", on_load=WorklistState.open)
def worklist_page() -> rx.Component:
    radiologist = AuthState.role == "radiologist"
    return shell(
        "Worklist",
        rx.vstack(
            rx.moment(interval=POLL_MS, on_change=WorklistState.poll, display="none"),
            rx.hstack(
                rx.cond(
                    radiologist,
                    rx.segmented_control.root(
                        rx.segmented_control.item("My studies", value="mine"),
                        rx.segmented_control.item("Available to claim", value="available"),
                        value=WorklistState.kind,
                        on_change=WorklistState.show,
                        id="worklist-kind",
                    ),
                    rx.select(
                        WorklistState.status_options,
                        value=WorklistState.status,
                        on_change=WorklistState.set_status_filter,
                        id="worklist-status",
                    ),
                ),
                rx.badge(WorklistState.total_label, id="worklist-total"),
                rx.spacer(),
                rx.text(
                    "Most urgent first, then longest waiting · refreshes by itself",
                    size="1",
                    color_scheme="gray",
                ),
                align="center",
                width="100%",
            ),
            rx.cond(
                WorklistState.message != "",
                rx.callout(WorklistState.message, color_scheme="red"),
            ),
            rx.cond(
                WorklistState.loaded,
                _worklist_table(radiologist),
                rx.center(rx.spinner(), padding="3em"),
            ),
            width="100%",
            spacing="3",
        ),
    )


# --- the report editor ----------------------------------------------------------------------


class ReportState(AuthState):
    ready: bool = False
    message: str = ""
    study: dict[str, str] = {}
    status: str = ""
    assigned_to: str = ""
    findings: str = ""
    impression: str = ""
    revision: int = 0
    saved_note: str = ""
    source_note: str = ""
    save_error: str = ""
    versions: list[dict[str, str]] = []
    templates: list[dict[str, str]] = []
    template_choice: str = ""
    ai_draft: dict[str, str] = {}
    ai_findings: list[dict[str, str]] = []
    ai_wording: dict[str, str] = {}
    ai_replace_open: bool = False
    can_edit: bool = False
    can_verify: bool = False
    can_deliver: bool = False
    can_add_addendum: bool = False
    can_download_pdf: bool = False
    has_draft: bool = False
    addendum: str = ""
    verify_open: bool = False
    replace_open: bool = False
    # the measurements in the study's structured reports, for the findings (see
    # reports.study_measurements): what the page shows, and each one's block of text
    measurements: list[dict[str, str]] = []
    _measurement_texts: list[str] = []
    # the patient's other studies (reports.comparison_studies), and the one the viewer beside
    # the editor shows instead of this study ("" for this one)
    comparisons: list[dict[str, str]] = []
    compared: str = ""
    # the images marked as key to the report (in the viewer beside the editor)
    key_images: list[dict[str, str]] = []
    # where the viewer beside the editor is asked to go, and how the image is to be seen:
    # "#show=series|sop|frame|n|rotation|flipped|window"
    viewer_at: str = ""
    _asked: int = 0
    _study_uid: str = ""
    _study_id: str = ""

    def _show(self, view: ReportView) -> None:
        self.study = study_row(view.study)
        self._study_uid = view.study.study_instance_uid
        self.status = view.status.value
        self.assigned_to = view.assigned_to or "nobody"
        draft = view.draft
        self.has_draft = draft is not None
        if draft is not None:
            self.findings, self.impression, self.revision = (
                draft.findings,
                draft.impression,
                draft.revision,
            )
            self.saved_note = (
                f"Draft v{draft.revision} saved {draft.saved_at:%H:%M:%S} UTC"
                if draft.saved_at
                else "Not saved yet"
            )
            self.source_note = {
                "template": f"Started from the template “{draft.source_detail}”.",
                "ai": f"Started from the AI draft ({draft.source_detail}); review every line.",
            }.get(draft.source, "")
        self.versions = [
            {
                "number": str(v.number),
                "kind": v.kind,
                "title": "Signed report" if v.kind == "signed" else f"Addendum {v.number - 1}",
                "findings": v.findings,
                "impression": v.impression,
                "text": v.text,
                "signed": f"{v.signed_by_name}, {v.signed_at:%Y-%m-%d %H:%M} UTC",
            }
            for v in view.versions
        ]
        self.templates = [
            {"id": str(t.id), "name": t.name, "label": t.name} for t in view.templates
        ]
        self.ai_draft = (
            {
                "model": f"{view.ai_draft.model} {view.ai_draft.version}",
                "findings": view.ai_draft.findings,
                "impression": view.ai_draft.impression,
            }
            if view.ai_draft
            else {}
        )
        self.can_edit, self.can_verify = view.can_edit, view.can_verify
        self.can_deliver, self.can_add_addendum = view.can_deliver, view.can_add_addendum
        self.can_download_pdf = view.can_download_pdf

    async def _reload(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            view = await call_domain(
                reports.get_report,
                actor=actor,
                study_id=self._study_id,
                address=self._client_address(),
            )
        except NotFound:
            self.message = f"No study {self._study_id} that you may see."
            self.ready = True
            return None
        self._show(view)
        self.ai_findings = []
        if view.can_edit and view.ai_draft is not None:
            report = await call_domain(ai.ai_report, actor=actor, study_id=self._study_id)
            self.ai_findings = [finding_row(f) for f in report.findings]
        self.ready = True
        return None

    @rx.event
    async def open(self):
        self.ready, self.message, self.save_error, self.addendum = False, "", "", ""
        self.findings = self.impression = ""
        self.measurements, self._measurement_texts = [], []
        self.comparisons, self.compared, self.key_images, self.viewer_at = [], "", [], ""
        self._study_id = self._path_study_id()
        redirect = await self._reload()
        if redirect is None and not self.message:
            await self._load_comparisons()
            await self._load_key_images()
        if redirect is None and self.can_edit:
            await self._load_measurements()
        return redirect

    async def _load_comparisons(self) -> None:
        actor = await self.actor()
        if actor is None:
            return
        found = await call_domain(
            reports.comparison_studies,
            actor=actor,
            study_id=self._study_id,
            address=self._client_address(),
        )
        self.comparisons = [comparison_row(c) for c in found]

    async def _load_key_images(self) -> None:
        actor = await self.actor()
        if actor is None:
            return
        found = await call_domain(reports.key_images, actor=actor, study_id=self._study_id)
        base = f"{routes.api_base()}/dicomweb/studies/{self._study_uid}"
        self.key_images = [
            {
                "id": f"key-image-{i}",
                "index": str(i),
                "show": f"{k.series_instance_uid}|{k.sop_instance_uid}|{k.frame}",
                # how it was marked: shown so (the viewer's askedByHash)
                "seen": f"{k.rotation}|{int(k.flipped)}|{k.window_param or ''}",
                "caption": k.caption,
                "src": f"{base}/series/{k.series_instance_uid}/instances/{k.sop_instance_uid}"
                f"/frames/{k.frame}/rendered?quality=80"
                + (f"&window={k.window_param}" if k.window_param else ""),
                # as the reader turned it (CSS applies the mirror first, then the turn)
                "transform": f"rotate({k.rotation}deg)" + (" scaleX(-1)" if k.flipped else ""),
            }
            for i, k in enumerate(found)
        ]

    @rx.event
    def show_key_image(self, index: str):
        """Show a key image in the viewer beside the editor (this study's, if another of
        the patient's was shown)."""
        try:
            target, seen = self.key_images[int(index)]["show"], self.key_images[int(index)]["seen"]
        except (ValueError, IndexError):
            return
        self.compared, self._asked = "", self._asked + 1
        self.viewer_at = f"#show={target}|{self._asked}|{seen}"

    @rx.event
    async def from_viewer(self, payload: str):
        """What the viewer beside the editor sends (assets/report.js): its measurements, or
        word that the key images changed."""
        try:
            sent = json.loads(payload)
        except json.JSONDecodeError:
            return None
        if not isinstance(sent, dict):
            return None
        if sent.get("type") == "pacs-key-images":
            if sent.get("study") == self._study_id:  # a viewer of another study says nothing here
                await self._load_key_images()
            return None
        return await self._take_measurements(sent)

    async def _take_measurements(self, sent: dict):
        """Append the measurements drawn in the viewer (``{"study": id, "lines": [...]}``)
        to the findings, and save. Those of another study of the patient say which study
        they were taken on."""
        if not isinstance(sent.get("lines"), list):
            return None
        if not self.can_edit:
            return rx.toast.error(
                "The findings cannot be edited now (status: " + self.status + ")."
            )
        lines = [
            " ".join(line.split())[:VIEWER_LINE_CHARS]
            for line in sent["lines"][:VIEWER_LINES]
            if isinstance(line, str) and line.strip()
        ]
        study = str(sent.get("study") or "")
        if study == self._study_id:
            heading = "Measurements:"
        else:
            other = next((c for c in self.comparisons if c["study_id"] == study), None)
            if other is None:
                return rx.toast.error("Those measurements are of a study not listed here.")
            heading = f"Measurements on the study of {other['when']} ({study}):"
        if not lines:
            return None
        block = "\n".join([heading, *(f"- {line}" for line in lines)])
        return await self._add_to_findings(block, "Measurements added to the findings.")

    async def _add_to_findings(self, text: str, done: str, *, first: bool = False):
        """Put ``text`` after the findings (or, ``first``, before them), save as any edit,
        and say so."""
        if not self.findings.strip():
            self.findings = text
        elif first:
            self.findings = f"{text}\n\n{self.findings.lstrip()}"
        else:
            self.findings = f"{self.findings.rstrip()}\n\n{text}"
        self.saved_note = "Saving…"
        result = await self._save()
        if result is not None:
            return result
        if self.save_error:
            return rx.toast.error(self.save_error)
        return rx.toast.success(done)

    @rx.event
    def compare(self, study_id: str):
        """Show another of the patient's studies in the viewer beside the editor."""
        if any(c["study_id"] == study_id for c in self.comparisons):
            self.compared = study_id

    @rx.event
    def show_this_study(self):
        self.compared = ""

    @rx.event
    async def cite_comparison(self, study_id: str):
        """Name another of the patient's studies as the comparison, at the top of the
        findings, and save."""
        line = next((c["cite"] for c in self.comparisons if c["study_id"] == study_id), None)
        if line is None:
            return rx.toast.error("That study is no longer listed: reload the page.")
        if line in self.findings:
            return rx.toast.info("This comparison is already in the findings.")
        return await self._add_to_findings(
            line, "Comparison named at the top of the findings.", first=True
        )

    async def _load_measurements(self) -> None:
        """The study's SR measurements, read once when the page opens (the study's files do
        not change while it is read; a template or the AI draft does not change them)."""
        actor = await self.actor()
        if actor is None:
            return
        found = await call_domain(
            reports.study_measurements,
            actor=actor,
            study_id=self._study_id,
            storage=get_storage(),
        )
        self._measurement_texts = [m.text for m in found]
        self.measurements = [
            {
                "index": str(i),
                "button_id": f"insert-measurements-{i}",
                "title": m.title + (f" · {m.observed}" if m.observed else ""),
                "preview": "\n".join(m.lines[:MEASUREMENTS_PREVIEW])
                + (
                    f"\n… {len(m.lines) - MEASUREMENTS_PREVIEW} more"
                    if len(m.lines) > MEASUREMENTS_PREVIEW
                    else ""
                ),
            }
            for i, m in enumerate(found)
        ]

    async def _save(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            draft = await call_domain(
                reports.save_draft,
                actor=actor,
                study_id=self._study_id,
                findings=self.findings,
                impression=self.impression,
                base_revision=self.revision,
                address=self._client_address(),
            )
        except DomainError as exc:
            self.save_error = exc.message
            self.saved_note = "Not saved"
            return None
        self.revision, self.save_error = draft.revision, ""
        self.saved_note = f"Draft v{draft.revision} saved {draft.saved_at:%H:%M:%S} UTC"
        self.can_download_pdf = True  # the reader's draft, as a preliminary PDF
        self.status = (
            StudyStatus.REPORTED.value
            if (self.findings or self.impression)
            else StudyStatus.IN_PROGRESS.value
        )
        return None

    @rx.event
    async def edit_findings(self, value: str):
        self.findings = value
        self.saved_note = "Saving…"
        return await self._save()

    @rx.event
    async def edit_impression(self, value: str):
        self.impression = value
        self.saved_note = "Saving…"
        return await self._save()

    @rx.event
    def set_template_choice(self, value: str):
        self.template_choice = value

    @rx.event
    def set_replace_open(self, value: bool):
        self.replace_open = value

    @rx.event
    async def apply_template(self, replace: bool = False):
        if not self.template_choice:
            return rx.toast.error("Choose a template first.")
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        template_id = next(
            (int(t["id"]) for t in self.templates if t["name"] == self.template_choice), None
        )
        if template_id is None:
            return rx.toast.error("That template is no longer available.")
        try:
            await call_domain(
                reports.apply_template,
                actor=actor,
                study_id=self._study_id,
                template_id=template_id,
                replace=replace,
                address=self._client_address(),
            )
        except Conflict as exc:
            if "confirm" in exc.message:
                self.replace_open = True
                return None
            return rx.toast.error(exc.message)
        except DomainError as exc:
            return rx.toast.error(exc.message)
        self.replace_open = False
        await self._reload()
        return rx.toast.success(f"Template “{self.template_choice}” applied.")

    @rx.event
    async def insert_measurements(self, index: str):
        """Append one structured report's measurements to the findings, and save."""
        try:
            text = self._measurement_texts[int(index)]
        except (ValueError, IndexError):
            return rx.toast.error("Those measurements are no longer there: reload the page.")
        if text in self.findings:
            return rx.toast.info("These measurements are already in the findings.")
        return await self._add_to_findings(
            text, "Measurements added to the findings; check them before signing."
        )

    @rx.event
    def set_ai_replace_open(self, value: bool):
        self.ai_replace_open = value

    @rx.event
    async def accept_ai_draft(self, replace: bool = False):
        """Start the report from the AI draft: the domain marks it AI-generated, leaves out
        rejected findings, uses edited wording, and audits the acceptance."""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                ai.accept_draft,
                actor=actor,
                study_id=self._study_id,
                replace=replace,
                address=self._client_address(),
            )
        except Conflict as exc:
            if "confirm" in exc.message:
                self.ai_replace_open = True
                return None
            return rx.toast.error(exc.message)
        except DomainError as exc:
            return rx.toast.error(exc.message)
        self.ai_replace_open = False
        await self._reload()
        return rx.toast.success("AI draft placed in the report; review every line.")

    @rx.event
    def set_ai_wording(self, finding_id: str, text: str):
        self.ai_wording[finding_id] = text

    @rx.event
    async def decide(self, finding_id: str, decision: str):
        _, answer = await self.as_actor(
            ai.decide,
            finding_id=int(finding_id),
            decision=decision,
            text=self.ai_wording.get(finding_id, ""),
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        return await self._reload()

    @rx.event
    def set_verify_open(self, value: bool):
        self.verify_open = value

    async def _act(self, fn, success: str, **kwargs):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            view = await call_domain(
                fn,
                actor=actor,
                study_id=self._study_id,
                address=self._client_address(),
                **kwargs,
            )
        except DomainError as exc:
            self.verify_open = False
            return rx.toast.error(exc.message, id="report-error")
        self.verify_open = False
        self._show(view)
        return rx.toast.success(success)

    @rx.event
    async def verify(self):
        saved = await self._save()
        if self.save_error:
            self.verify_open = False
            return rx.toast.error(self.save_error)
        if saved is not None:
            return saved
        return await self._act(reports.verify, "Report verified and signed.", storage=get_storage())

    @rx.event
    async def deliver(self):
        return await self._act(reports.deliver, "Report delivered to the centre.")

    @rx.event
    def set_addendum(self, value: str):
        self.addendum = value

    @rx.event
    async def add_addendum(self):
        before = len(self.versions)
        result = await self._act(reports.add_addendum, "Addendum signed.", text=self.addendum)
        if len(self.versions) > before:
            self.addendum = ""
        return result

    @rx.event
    async def download_pdf(self):
        found, answer = await self.as_actor(
            reports.report_pdf,
            study_id=self._study_id,
            storage=get_storage(),
            address=self._client_address(),
        )
        if answer is not None:
            return answer
        return rx.download(data=found.content, filename=found.filename, mime_type="application/pdf")


def _version_card(v) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(v["title"], size="3"),
                rx.spacer(),
                rx.text(v["signed"], size="1", color_scheme="gray"),
                width="100%",
            ),
            rx.cond(
                v["kind"] == "signed",
                rx.vstack(
                    rx.text("Findings", weight="bold", size="2"),
                    rx.text(v["findings"], white_space="pre-wrap", size="2"),
                    rx.text("Impression", weight="bold", size="2"),
                    rx.text(v["impression"], white_space="pre-wrap", size="2"),
                    spacing="1",
                ),
                rx.text(v["text"], white_space="pre-wrap", size="2"),
            ),
            spacing="2",
            align="stretch",
        ),
        width="100%",
        class_name="report-version",
    )


def _verify_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.icon("pen-line", size=16),
                "Verify and sign",
                id="verify-report",
                disabled=~ReportState.can_verify,
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Sign this report?"),
            rx.alert_dialog.description(
                "Once signed the report cannot be edited; later changes are added as "
                "addenda. You sign as " + AuthState.display_name + "."
            ),
            rx.cond(
                ReportState.key_images.length() > 0,
                rx.text(
                    "Its key images (",
                    ReportState.key_images.length(),
                    ") are filed with the study as a DICOM key object selection, a series "
                    "that goes wherever the study goes.",
                    id="verify-key-images",
                    size="2",
                    margin_top="0.5em",
                ),
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Not yet", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Sign", on_click=ReportState.verify, id="confirm-verify")
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=ReportState.verify_open,
        on_open_change=ReportState.set_verify_open,
    )


def _replace_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Replace your text?"),
            rx.alert_dialog.description(
                "The draft already has text. Applying the template replaces the findings and "
                "impression you wrote."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep my text", variant="soft")),
                rx.alert_dialog.action(
                    rx.button(
                        "Replace",
                        color_scheme="red",
                        on_click=ReportState.apply_template(True),
                        id="confirm-replace",
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=ReportState.replace_open,
        on_open_change=ReportState.set_replace_open,
    )


def _ai_finding(f) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            severity_badge(f["severity"]),
            rx.text(f["title"], size="2", weight="medium"),
            rx.cond(f["value"] != "", rx.code(f["value"])),
            rx.spacer(),
            rx.match(
                f["decision"],
                ("accepted", rx.badge("accepted", color_scheme="green")),
                ("edited", rx.badge("accepted, edited", color_scheme="green")),
                ("rejected", rx.badge("rejected", color_scheme="red")),
                rx.badge("to review", color_scheme="gray"),
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.text(f["method"], size="1", color_scheme="gray"),
        rx.cond(
            f["overlay"] != "",
            rx.el.img(
                custom_attrs={"data-auth-src": f["overlay"]},
                alt="AI overlay",
                style={"maxWidth": "100%", "border": "1px solid #ccc"},
                class_name="ai-overlay",
            ),
        ),
        rx.hstack(
            rx.input(
                default_value=rx.cond(
                    f["decision_text"] != "", f["decision_text"], f["report_text"]
                ),
                on_change=lambda v: ReportState.set_ai_wording(f["id"], v),
                size="1",
                width="100%",
            ),
            rx.button("Accept", size="1", on_click=ReportState.decide(f["id"], "accepted")),
            rx.button(
                "Accept my wording",
                size="1",
                variant="soft",
                on_click=ReportState.decide(f["id"], "edited"),
            ),
            rx.button(
                "Reject",
                size="1",
                variant="soft",
                color_scheme="red",
                on_click=ReportState.decide(f["id"], "rejected"),
            ),
            width="100%",
        ),
        spacing="1",
        width="100%",
        class_name="ai-review-finding",
    )


def _measurement_row(m) -> rx.Component:
    return rx.hstack(
        rx.vstack(
            rx.text(m["title"], weight="bold", size="2"),
            rx.text(m["preview"], size="1", white_space="pre-wrap", color_scheme="gray"),
            spacing="1",
            width="100%",
        ),
        rx.button(
            "Insert into findings",
            size="1",
            variant="soft",
            on_click=ReportState.insert_measurements(m["index"]),
            id=m["button_id"],
        ),
        width="100%",
        align="start",
        class_name="sr-measurements-row",
    )


def _comparison_row(c) -> rx.Component:
    showing = ReportState.compared == c["study_id"]
    return rx.vstack(
        rx.hstack(
            rx.text(c["title"], weight="bold", size="2"),
            rx.badge(c["status"], color_scheme="gray", size="1"),
            rx.spacer(),
            rx.cond(
                showing,
                rx.button(
                    "Show this study",
                    size="1",
                    variant="soft",
                    color_scheme="amber",
                    on_click=ReportState.show_this_study,
                    id="show-this-study",
                ),
                rx.button(
                    "Show in the viewer",
                    size="1",
                    variant="soft",
                    on_click=ReportState.compare(c["study_id"]),
                    id="compare-" + c["study_id"],
                ),
            ),
            rx.cond(
                ReportState.can_edit,
                rx.button(
                    "Cite",
                    size="1",
                    variant="soft",
                    title="Name it as the comparison at the top of the findings",
                    on_click=ReportState.cite_comparison(c["study_id"]),
                    id="cite-" + c["study_id"],
                ),
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.text(c["study_id"], " · ", c["images"], size="1", color_scheme="gray"),
        rx.cond(
            c["signed"] != "",
            rx.vstack(
                rx.text(c["impression"], size="2", white_space="pre-wrap"),
                rx.el.details(
                    rx.el.summary("Findings and addenda"),
                    rx.text(c["findings"], size="1", white_space="pre-wrap"),
                    rx.cond(
                        c["addenda"] != "",
                        rx.text("Addenda: ", c["addenda"], size="1", white_space="pre-wrap"),
                    ),
                    style={"font_size": "12px"},
                ),
                rx.text(c["signed"], size="1", color_scheme="gray"),
                spacing="1",
                width="100%",
            ),
            rx.text("No signed report to read.", size="1", color_scheme="gray"),
        ),
        spacing="1",
        width="100%",
        padding="6px 0",
        border_top=f"1px solid {rx.color('gray', 5)}",
        class_name="comparison-study",
    )


def _key_images_panel() -> rx.Component:
    return rx.vstack(
        rx.script(src="/authimg.js"),  # the images come from the API, with the user's token
        rx.text("Key images (", ReportState.key_images.length(), ")", weight="bold", size="2"),
        rx.cond(
            ReportState.key_images.length() > 0,
            rx.hstack(
                rx.foreach(
                    ReportState.key_images,
                    lambda k: rx.vstack(
                        rx.el.img(
                            alt=k["caption"],
                            title="Show it in the viewer",
                            custom_attrs={"data-auth-src": k["src"]},
                            style={
                                "width": "96px",
                                "height": "96px",
                                "object_fit": "contain",
                                "cursor": "pointer",
                                "transform": k["transform"],
                            },
                            background="black",
                            on_click=ReportState.show_key_image(k["index"]),
                        ),
                        rx.text(k["caption"], size="1", color_scheme="gray"),
                        spacing="1",
                        id=k["id"],
                        class_name="key-image",
                    ),
                ),
                wrap="wrap",
                spacing="3",
            ),
            rx.text(
                "None yet: mark the images the report is about with Key image (K) in the "
                "viewer; they are printed with the report.",
                size="1",
                color_scheme="gray",
            ),
        ),
        spacing="2",
        width="100%",
        id="key-images",
    )


def _comparisons_panel() -> rx.Component:
    return rx.callout.root(
        rx.callout.icon(rx.icon("history")),
        rx.vstack(
            rx.text(
                "Other studies of this patient (",
                ReportState.comparisons.length(),
                ")",
                weight="bold",
                size="2",
            ),
            rx.box(
                rx.foreach(ReportState.comparisons, _comparison_row),
                max_height="40vh",
                overflow_y="auto",
                width="100%",
            ),
            spacing="2",
            width="100%",
        ),
        color_scheme="gray",
        id="comparison-studies",
        width="100%",
    )


def _measurements_panel() -> rx.Component:
    return rx.callout.root(
        rx.callout.icon(rx.icon("ruler")),
        rx.vstack(
            rx.text("Measurements in this study's structured reports", weight="bold", size="2"),
            rx.foreach(ReportState.measurements, _measurement_row),
            spacing="2",
            width="100%",
        ),
        color_scheme="cyan",
        id="sr-measurements",
        width="100%",
    )


def _ai_panel() -> rx.Component:
    return rx.callout.root(
        rx.callout.icon(rx.icon("bot")),
        rx.script(src="/authimg.js"),  # overlays are API images that need the user's token
        rx.vstack(
            rx.text(
                "AI-generated preliminary draft (" + ReportState.ai_draft["model"] + "). "
                "Nothing of it is in your report unless you accept it.",
                weight="bold",
                size="2",
            ),
            rx.foreach(ReportState.ai_findings, _ai_finding),
            rx.text("Suggested impression:", size="1", weight="bold"),
            rx.text(ReportState.ai_draft["impression"], size="2", white_space="pre-wrap"),
            rx.button(
                "Start the report from the AI draft",
                size="1",
                on_click=ReportState.accept_ai_draft(False),
                id="accept-ai-draft",
            ),
            rx.alert_dialog.root(
                rx.alert_dialog.content(
                    rx.alert_dialog.title("Replace your text with the AI draft?"),
                    rx.alert_dialog.description(
                        "The draft already has text. The AI draft replaces the findings and "
                        "impression you wrote."
                    ),
                    rx.hstack(
                        rx.alert_dialog.cancel(rx.button("Keep my text", variant="soft")),
                        rx.alert_dialog.action(
                            rx.button(
                                "Replace",
                                color_scheme="red",
                                on_click=ReportState.accept_ai_draft(True),
                            )
                        ),
                        justify="end",
                        spacing="3",
                        margin_top="1em",
                    ),
                ),
                open=ReportState.ai_replace_open,
                on_open_change=ReportState.set_ai_replace_open,
            ),
            spacing="2",
            width="100%",
        ),
        color_scheme="violet",
        id="ai-draft",
        width="100%",
    )


def _editor() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(placeholder="Start from a template…", id="template-choice"),
                rx.select.content(
                    rx.foreach(
                        ReportState.templates,
                        lambda t: rx.select.item(t["name"], value=t["name"]),
                    )
                ),
                value=ReportState.template_choice,
                on_change=ReportState.set_template_choice,
            ),
            rx.button(
                "Apply",
                variant="soft",
                on_click=ReportState.apply_template(False),
                id="apply-template",
            ),
            rx.spacer(),
            rx.text(ReportState.saved_note, size="1", color_scheme="gray", id="saved-note"),
            width="100%",
            align="center",
        ),
        rx.cond(
            ReportState.ai_draft.length() > 0,
            _ai_panel(),
            rx.text("No AI draft for this study.", size="1", color_scheme="gray", id="no-ai-draft"),
        ),
        rx.cond(ReportState.measurements.length() > 0, _measurements_panel()),
        rx.cond(
            ReportState.source_note != "",
            rx.text(ReportState.source_note, size="1", color_scheme="violet"),
        ),
        rx.text("Findings", weight="bold", size="2"),
        rx.debounce_input(
            rx.text_area(
                value=ReportState.findings,
                on_change=ReportState.edit_findings,
                rows="12",
                width="100%",
                id="findings",
            ),
            debounce_timeout=AUTOSAVE_MS,
        ),
        rx.text("Impression", weight="bold", size="2"),
        rx.debounce_input(
            rx.text_area(
                value=ReportState.impression,
                on_change=ReportState.edit_impression,
                rows="5",
                width="100%",
                id="impression",
            ),
            debounce_timeout=AUTOSAVE_MS,
        ),
        rx.cond(
            ReportState.save_error != "",
            rx.callout(ReportState.save_error, color_scheme="red", id="save-error"),
        ),
        rx.hstack(_verify_dialog(), spacing="3"),
        _replace_dialog(),
        width="100%",
        spacing="2",
        id="report-editor",
    )


def _signed_part() -> rx.Component:
    return rx.vstack(
        rx.foreach(ReportState.versions, _version_card),
        rx.cond(
            ReportState.can_deliver,
            rx.button(
                rx.icon("send", size=16),
                "Deliver to the centre",
                on_click=ReportState.deliver,
                color_scheme="green",
                id="deliver-report",
            ),
        ),
        rx.cond(
            ReportState.can_add_addendum,
            rx.vstack(
                rx.text("Addendum", weight="bold", size="2"),
                rx.text_area(
                    value=ReportState.addendum,
                    on_change=ReportState.set_addendum,
                    rows="3",
                    width="100%",
                    id="addendum-text",
                ),
                rx.button(
                    "Sign addendum",
                    variant="soft",
                    on_click=ReportState.add_addendum,
                    id="add-addendum",
                ),
                width="100%",
                spacing="2",
            ),
        ),
        width="100%",
        spacing="3",
    )


@rx.page(route=routes.REPORT, title="Report · PACS", on_load=ReportState.open)
def report_page() -> rx.Component:
    s = ReportState.study
    left = rx.vstack(
        rx.hstack(
            rx.heading(s["patient"], size="5", id="report-patient"),
            priority_badge(s["priority"]),
            rx.badge(ReportState.status, color_scheme="indigo", id="report-status"),
            align="center",
            wrap="wrap",
        ),
        rx.text(
            s["study_id"],
            " · ",
            s["modality"],
            " ",
            s["body_part"],
            " · ",
            s["age_sex"],
            " · centre ",
            s["centre"],
            " · read by ",
            ReportState.assigned_to,
            size="2",
            color_scheme="gray",
        ),
        rx.hstack(
            rx.link(
                rx.button(rx.icon("scan-eye", size=16), "Viewer in a new tab", variant="soft"),
                href="/viewer/" + s["study_id"],
                is_external=True,
            ),
            rx.link(
                rx.button(rx.icon("info", size=16), "Study details", variant="soft"),
                href="/study/" + s["study_id"],
            ),
            rx.cond(
                ReportState.can_download_pdf,
                rx.button(
                    rx.icon("file-down", size=16),
                    "Download PDF",
                    variant="soft",
                    on_click=ReportState.download_pdf,
                    id="download-pdf",
                ),
            ),
            wrap="wrap",
        ),
        rx.cond(ReportState.comparisons.length() > 0, _comparisons_panel()),
        rx.cond(
            (ReportState.key_images.length() > 0) | ReportState.can_edit,
            _key_images_panel(),
        ),
        rx.cond(ReportState.can_edit, _editor()),
        rx.cond(
            ReportState.versions.length() > 0,
            _signed_part(),
            rx.cond(
                ~ReportState.can_edit,
                rx.callout(
                    rx.cond(
                        ReportState.has_draft,
                        "The report is not being edited now (status: " + ReportState.status + ").",
                        "The report is not delivered yet. It appears here once the radiologist "
                        "has verified and delivered it.",
                    ),
                    icon="file-clock",
                    color_scheme="gray",
                    id="report-pending",
                ),
            ),
        ),
        width="46%",
        min_width="380px",
        spacing="3",
    )
    right = rx.fragment(
        rx.script(src="/report.js"),
        # assets/report.js puts what the viewer sends here (measurements, key image changes)
        rx.el.input(
            id="rp-viewer-sink",
            on_change=ReportState.from_viewer,
            style={"display": "none"},
        ),
        _viewer_frame(),
    )
    return shell(
        "Report",
        rx.cond(
            ReportState.ready,
            rx.cond(
                ReportState.message != "",
                rx.callout(ReportState.message, icon="search-x", color_scheme="gray"),
                rx.hstack(left, rx.box(right, flex="1"), align="start", spacing="4", width="100%"),
            ),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )


def _viewer_frame() -> rx.Component:
    s = ReportState.study
    return rx.el.iframe(
        src=rx.cond(
            ReportState.compared != "",
            "/viewer/" + ReportState.compared + "?for=" + s["study_id"],
            "/viewer/" + s["study_id"] + ReportState.viewer_at,
        ),
        title="Viewer",
        style={
            "width": "100%",
            "height": "82vh",
            "border": f"1px solid {rx.color('gray', 5)}",
            "borderRadius": "6px",
        },
        id="report-viewer",
        # whether the findings take the viewer's measurements now (its To report button)
        custom_attrs={"data-can-report": rx.cond(ReportState.can_edit, "1", "0")},
    )
