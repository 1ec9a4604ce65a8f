"""AI on the study page: the analysis state, its findings with method and limitations, overlay
images, and a re-run button for radiologists and administrators. Centre users see the state
only (AI output is for the people who read the images)."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import NotFound
from pacs_app.services import ai
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain

POLL_MS = 3000
STATUS_WORDS = {
    "queued": "waiting for a worker",
    "running": "running",
    "done": "done",
    "done_with_warnings": "done, with warnings",
    "failed": "failed",
}


def finding_row(f: ai.AIFindingPublic) -> dict[str, str]:
    value = ""
    if f.value is not None:
        value = f"{f.value:.4g} {f.unit}".strip()
    elif f.value_text:
        value = f.value_text
    return {
        "id": str(f.id),
        "title": f.title,
        "severity": f.severity,
        "value": value,
        "plugin": f"{f.plugin} {f.plugin_version}",
        "method": f.method,
        "limitations": f.limitations,
        "report_text": f.report_text or f.title,
        "decision": f.decision.value,
        "decision_text": f.decision_text,
        # the API's address: with `reflex run` in development the pages come from another port
        "overlay": (
            f"{routes.api_base()}/ai/findings/{f.id}/overlay" if f.evidence.get("overlay") else ""
        ),
    }


class AIPanelState(AuthState):
    loaded: bool = False
    status: str = ""  # "" when never analysed
    status_words: str = ""
    error: str = ""
    warnings: list[str] = []
    findings: list[dict[str, str]] = []
    plugins: str = ""
    timing: str = ""
    device: str = ""
    can_run: bool = False
    sees_findings: bool = False
    _study_id: str = ""

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            report = await call_domain(ai.ai_report, actor=actor, study_id=self._study_id)
        except NotFound:
            self.loaded = False
            return None
        job = report.job
        self.status = job.status.value if job else ""
        self.status_words = STATUS_WORDS.get(self.status, "not analysed yet")
        self.error = job.error if job else ""
        self.warnings = job.warnings if job else []
        self.device = job.device if job else ""
        self.timing = f"{job.timings.get('total', 0):.1f} s" if job and job.timings else ""
        self.findings = [finding_row(f) for f in report.findings]
        self.plugins = ", ".join(report.plugins)
        self.sees_findings = actor.is_admin or actor.role.value == "radiologist"
        self.can_run = self.sees_findings
        self.loaded = True
        return None

    @rx.event
    async def open(self):
        self.loaded = False
        self._study_id = self._path_study_id()
        return await self._load()

    @rx.event
    async def poll(self, _value: str = ""):
        if self.loaded and self.status in ("queued", "running"):
            return await self._load()
        return None

    @rx.event
    async def rerun(self):
        _, answer = await self.as_actor(
            ai.request_analysis, study_id=self._study_id, address=self._client_address()
        )
        if answer is not None:
            return answer
        await self._load()
        return rx.toast.success("AI analysis queued.")


def severity_badge(severity) -> rx.Component:
    return rx.match(
        severity,
        ("abnormal", rx.badge("review", color_scheme="red")),
        ("warning", rx.badge("warning", color_scheme="amber")),
        rx.badge("info", color_scheme="gray"),
    )


def ai_status_badge(status) -> rx.Component:
    return rx.match(
        status,
        ("queued", rx.badge("AI queued", color_scheme="gray")),
        ("running", rx.badge("AI running", color_scheme="blue")),
        ("done", rx.badge("AI done", color_scheme="green")),
        ("done_with_warnings", rx.badge("AI done (warnings)", color_scheme="amber")),
        ("failed", rx.badge("AI failed", color_scheme="red")),
        rx.fragment(),
    )


def finding_details(f) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            severity_badge(f["severity"]),
            rx.text(f["title"], weight="medium", size="2"),
            rx.cond(f["value"] != "", rx.code(f["value"])),
            align="center",
            wrap="wrap",
        ),
        rx.text("Method: ", f["method"], size="1", color_scheme="gray"),
        rx.text("Limitations: ", f["limitations"], size="1", color_scheme="gray"),
        rx.text("By ", f["plugin"], size="1", color_scheme="gray"),
        rx.cond(
            f["overlay"] != "",
            rx.el.img(
                custom_attrs={"data-auth-src": f["overlay"]},
                alt="overlay",
                style={"maxWidth": "320px", "border": "1px solid #ccc"},
                class_name="ai-overlay",
            ),
        ),
        spacing="1",
        width="100%",
        class_name="ai-finding",
    )


def ai_card() -> rx.Component:
    s = AIPanelState
    return rx.cond(
        s.loaded,
        rx.card(
            rx.script(src="/authimg.js"),
            rx.moment(interval=POLL_MS, on_change=s.poll, display="none"),
            rx.vstack(
                rx.hstack(
                    rx.heading("AI analysis", size="4"),
                    rx.badge(s.status_words, id="ai-status"),
                    rx.cond(s.timing != "", rx.text(s.timing, " on ", s.device, size="1")),
                    rx.spacer(),
                    rx.cond(
                        s.can_run,
                        rx.button(
                            rx.icon("refresh-cw", size=14),
                            rx.cond(s.status == "", "Run analysis", "Re-run"),
                            size="1",
                            variant="soft",
                            on_click=s.rerun,
                            id="ai-rerun",
                            disabled=(s.status == "queued") | (s.status == "running"),
                        ),
                    ),
                    align="center",
                    width="100%",
                ),
                rx.cond(s.error != "", rx.callout(s.error, color_scheme="red", id="ai-error")),
                rx.cond(
                    s.warnings.length() > 0,
                    rx.vstack(
                        rx.foreach(s.warnings, lambda w: rx.text("⚠ ", w, size="1")),
                        spacing="0",
                        id="ai-warnings",
                    ),
                ),
                rx.cond(
                    s.sees_findings,
                    rx.cond(
                        s.findings.length() > 0,
                        rx.vstack(
                            rx.text(
                                "Preliminary, automated and not a diagnosis. Made by ",
                                s.plugins,
                                ".",
                                size="1",
                                color_scheme="violet",
                            ),
                            rx.foreach(s.findings, finding_details),
                            spacing="3",
                            width="100%",
                            id="ai-findings",
                        ),
                    ),
                    rx.text(
                        "Findings are shown to the reading radiologist.",
                        size="1",
                        color_scheme="gray",
                    ),
                ),
                spacing="2",
                width="100%",
            ),
            width="100%",
            id="ai-card",
        ),
    )
