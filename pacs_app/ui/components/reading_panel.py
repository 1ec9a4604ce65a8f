"""The study page's "Reading" card: where the study is in the workflow, its turnaround times,
and the actions the signed-in user may take now (offered by the domain, checked again there)."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, NotFound
from pacs_app.services import workflow
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain

POOL = "pool"
TIME_LABELS = {
    "received": "Received",
    "assigned": "Assigned",
    "opened": "First opened",
    "verified": "Verified",
    "delivered": "Delivered",
}


class ReadingPanelState(AuthState):
    loaded: bool = False
    status: str = ""
    status_words: str = ""
    priority: str = ""
    assigned_to: str = ""
    steps: list[str] = []
    radiologists: list[dict[str, str]] = []
    times: list[dict[str, str]] = []
    assignee: str = ""
    new_priority: str = ""
    reason: str = ""
    reason_for: str = ""  # UNASSIGN | CANCEL | ASSIGN (a reassignment) while the dialog is open
    error: str = ""
    study_id: str = ""
    _study_id: str = ""

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            panel = await call_domain(workflow.reading_panel, actor=actor, study_id=self._study_id)
        except NotFound:
            self.loaded = False
            return None
        self.status = panel.status.value
        self.status_words = panel.status_words
        self.priority = panel.priority.value
        self.assigned_to = panel.assigned_to
        self.steps = panel.steps
        self.radiologists = [
            {
                "id": str(r.id),
                "label": f"{r.name} ({'tele-radiologist' if r.tele else 'this centre'})",
            }
            for r in panel.radiologists
            if r.id != panel.assigned_radiologist_id
        ]
        self.times = [
            {"label": TIME_LABELS[k], "at": v.strftime("%Y-%m-%d %H:%M") if v else "—"}
            for k, v in panel.times.items()
        ]
        self.loaded = True
        return None

    @rx.event
    async def open(self):
        self.loaded, self.error, self.assignee, self.reason_for = False, "", "", ""
        self._study_id = self.study_id = self._path_study_id()
        return await self._load()

    @rx.event
    def set_assignee(self, value: str):
        self.assignee = value

    @rx.event
    def set_new_priority(self, value: str):
        self.new_priority = value

    @rx.event
    def set_reason(self, value: str):
        self.reason = value

    @rx.event
    def ask_reason(self, step: str):
        self.reason_for, self.reason, self.error = step, "", ""

    @rx.event
    def close_reason(self, open_: bool):
        if not open_:
            self.reason_for = ""

    async def _do(self, fn, success: str, **kwargs):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await call_domain(
                fn, actor=actor, study_id=self._study_id, address=self._client_address(), **kwargs
            )
        except DomainError as exc:
            self.error = exc.message
            await self._load()
            return rx.toast.error(exc.message, id="workflow-error")
        self.error, self.reason_for, self.reason = "", "", ""
        await self._load()
        from pacs_app.ui.pages.studies import StudyState  # the page that holds this card

        return [rx.toast.success(success), StudyState.open]

    @rx.event
    async def assign(self):
        if not self.assignee:
            return rx.toast.error("Choose a radiologist or the pool.")
        if self.assignee == POOL:
            return await self._do(
                workflow.assign, "Released to the tele-radiology pool.", radiologist_id=None
            )
        if self.assigned_to and self.reason_for != "ASSIGN":
            self.reason_for, self.reason = "ASSIGN", ""  # taking it from someone: ask why
            return None
        return await self._do(
            workflow.assign,
            "Study assigned.",
            radiologist_id=int(self.assignee),
            reason=self.reason or None,
        )

    @rx.event
    async def confirm_reason(self):
        if self.reason_for == "ASSIGN":
            return await self.assign()
        if self.reason_for == "UNASSIGN":
            return await self._do(workflow.unassign, "Study taken back.", reason=self.reason)
        if self.reason_for == "CANCEL":
            return await self._do(workflow.cancel, "Study cancelled.", reason=self.reason)
        return None

    @rx.event
    async def claim(self):
        return await self._do(workflow.claim, "The study is yours.")

    @rx.event
    async def release(self):
        return await self._do(workflow.release, "Study given back.")

    @rx.event
    async def change_priority(self):
        if not self.new_priority:
            return rx.toast.error("Choose a priority.")
        return await self._do(
            workflow.set_priority, "Priority changed.", priority=self.new_priority
        )


def _has(step: str):
    return ReadingPanelState.steps.contains(step)


def _reason_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(
                rx.match(
                    ReadingPanelState.reason_for,
                    ("CANCEL", "Cancel this study?"),
                    ("UNASSIGN", "Take the study back from its radiologist?"),
                    "Reassign the study?",
                )
            ),
            rx.alert_dialog.description("Give a reason; it is kept in the study's history."),
            rx.vstack(
                rx.input(
                    value=ReadingPanelState.reason,
                    on_change=ReadingPanelState.set_reason,
                    placeholder="Reason",
                    width="100%",
                    id="workflow-reason",
                ),
                rx.cond(
                    ReadingPanelState.error != "",
                    rx.text(ReadingPanelState.error, color_scheme="red", size="2"),
                ),
                rx.hstack(
                    rx.alert_dialog.cancel(rx.button("Back", variant="soft", color_scheme="gray")),
                    rx.button(
                        "Confirm",
                        color_scheme="red",
                        on_click=ReadingPanelState.confirm_reason,
                        id="confirm-reason",
                    ),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=ReadingPanelState.reason_for != "",
        on_open_change=ReadingPanelState.close_reason,
    )


def reading_card() -> rx.Component:
    return rx.cond(
        ReadingPanelState.loaded,
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading("Reading", size="4"),
                    rx.badge(ReadingPanelState.status, color_scheme="indigo", id="workflow-status"),
                    rx.text(
                        "Study is ",
                        ReadingPanelState.status_words,
                        rx.cond(
                            ReadingPanelState.assigned_to != "",
                            " · radiologist: " + ReadingPanelState.assigned_to,
                            "",
                        ),
                        size="2",
                        color_scheme="gray",
                        id="workflow-assigned",
                    ),
                    align="center",
                    wrap="wrap",
                ),
                rx.hstack(
                    rx.foreach(
                        ReadingPanelState.times,
                        lambda t: rx.vstack(
                            rx.text(t["label"], size="1", color_scheme="gray"),
                            rx.text(t["at"], size="2"),
                            spacing="0",
                        ),
                    ),
                    spacing="5",
                    wrap="wrap",
                    id="workflow-times",
                ),
                rx.hstack(
                    rx.cond(
                        _has("ASSIGN"),
                        rx.hstack(
                            rx.select.root(
                                rx.select.trigger(
                                    placeholder="Assign to…", id="assign-choice", width="280px"
                                ),
                                rx.select.content(
                                    rx.cond(
                                        _has("RELEASE_TO_POOL"),
                                        rx.select.item(
                                            "Tele-radiology pool (any tele-radiologist)",
                                            value=POOL,
                                        ),
                                    ),
                                    rx.foreach(
                                        ReadingPanelState.radiologists,
                                        lambda r: rx.select.item(r["label"], value=r["id"]),
                                    ),
                                ),
                                value=ReadingPanelState.assignee,
                                on_change=ReadingPanelState.set_assignee,
                            ),
                            rx.button(
                                "Assign", on_click=ReadingPanelState.assign, id="assign-study"
                            ),
                        ),
                    ),
                    rx.cond(
                        _has("UNASSIGN"),
                        rx.button(
                            "Take back",
                            variant="soft",
                            on_click=ReadingPanelState.ask_reason("UNASSIGN"),
                            id="unassign-study",
                        ),
                    ),
                    rx.cond(
                        _has("CLAIM"),
                        rx.button("Claim", on_click=ReadingPanelState.claim, id="claim-study"),
                    ),
                    rx.cond(
                        _has("SAVE_DRAFT") | _has("ADDENDUM") | _has("DELIVER"),
                        rx.link(
                            rx.button(rx.icon("file-pen", size=16), "Write the report"),
                            href="/report/" + ReadingPanelState.study_id,
                            id="write-report",
                        ),
                        rx.cond(
                            (ReadingPanelState.status == "delivered")
                            | (ReadingPanelState.status == "verified"),
                            rx.link(
                                rx.button(rx.icon("file-text", size=16), "Report"),
                                href="/report/" + ReadingPanelState.study_id,
                                id="read-report",
                            ),
                        ),
                    ),
                    rx.cond(
                        _has("RELEASE"),
                        rx.button(
                            "Give back",
                            variant="soft",
                            color_scheme="gray",
                            on_click=ReadingPanelState.release,
                            id="release-study",
                        ),
                    ),
                    rx.cond(
                        _has("SET_PRIORITY"),
                        rx.hstack(
                            rx.select(
                                ["routine", "urgent", "stat"],
                                placeholder="Priority",
                                value=ReadingPanelState.new_priority,
                                on_change=ReadingPanelState.set_new_priority,
                                id="priority-choice",
                            ),
                            rx.button(
                                "Set priority",
                                variant="soft",
                                on_click=ReadingPanelState.change_priority,
                                id="set-priority",
                            ),
                        ),
                    ),
                    rx.cond(
                        _has("CANCEL"),
                        rx.button(
                            "Cancel study",
                            variant="soft",
                            color_scheme="red",
                            on_click=ReadingPanelState.ask_reason("CANCEL"),
                            id="cancel-study",
                        ),
                    ),
                    wrap="wrap",
                    spacing="3",
                    align="center",
                ),
                _reason_dialog(),
                spacing="3",
                width="100%",
            ),
            width="100%",
            id="reading-card",
        ),
    )
