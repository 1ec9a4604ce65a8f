"""AI administration: the plugins, the learned models with their state, the job queue."""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import PermissionDenied
from pacs_app.services import ai
from pacs_app.ui import routes
from pacs_app.ui.components import record_table
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell


class AIAdminState(AuthState):
    ready: bool = False
    denied: str = ""
    plugins: list[dict[str, str]] = []
    models: list[dict[str, str]] = []
    jobs: list[dict[str, str]] = []
    queued: int = 0
    running: int = 0

    @rx.event
    async def open(self):
        self.ready = False
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            data = await call_domain(ai.catalogue, actor=actor)
        except PermissionDenied as exc:
            self.denied, self.ready = exc.message, True
            return None
        self.denied = ""
        self.plugins = [
            {"name": p.name, "version": p.version, "kind": p.kind, "description": p.description}
            for p in data.plugins
        ]
        self.models = [
            {
                "name": m.name,
                "version": m.version,
                "task": m.task,
                "modalities": ", ".join(m.modalities),
                "state": m.state,
                "validated": "yes" if m.validated else "no (research use only)",
                "enabled": "yes" if m.enabled else "no",
                "licence": m.licence,
            }
            for m in data.models
        ]
        self.jobs = [
            {
                "study": j.study_id,
                "status": j.status.value,
                "trigger": j.trigger,
                "device": j.device or "—",
                "time": f"{j.timings.get('total', 0):.1f} s" if j.timings else "—",
                "created": j.created_at.strftime("%Y-%m-%d %H:%M"),
                "note": (j.error or "; ".join(j.warnings))[:160],
            }
            for j in data.jobs
        ]
        self.queued, self.running = data.queued, data.running
        self.ready = True
        return None


@rx.page(route=routes.ADMIN_AI, title="AI · PACS", on_load=AIAdminState.open)
def ai_admin_page() -> rx.Component:
    s = AIAdminState
    body = rx.vstack(
        rx.hstack(
            rx.badge(s.queued.to_string() + " queued"),
            rx.badge(s.running.to_string() + " running", color_scheme="blue"),
            rx.text(
                "Jobs run in the app's own worker process or in `pacs worker` processes.",
                size="2",
                color_scheme="gray",
            ),
            align="center",
        ),
        rx.heading("Default plugins (no downloaded weights)", size="4"),
        record_table(
            s.plugins,
            [("Plugin", "name"), ("Version", "version"), ("Kind", "kind"), ("What", "description")],
            id="ai-plugins",
        ),
        rx.heading("Learned models", size="4"),
        rx.cond(
            s.models.length() > 0,
            record_table(
                s.models,
                [
                    ("Model", "name"),
                    ("Version", "version"),
                    ("Task", "task"),
                    ("Modalities", "modalities"),
                    ("State", "state"),
                    ("Validated", "validated"),
                    ("Enabled", "enabled"),
                    ("Licence", "licence"),
                ],
                id="ai-models",
            ),
            rx.text(
                "No learned model is registered. Register a local MONAI bundle with "
                "`pacs register-model` (weights are checked against their sha256; nothing is "
                "downloaded).",
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.heading("Latest jobs", size="4"),
        record_table(
            s.jobs,
            [
                ("Study", "study"),
                ("Status", "status"),
                ("Trigger", "trigger"),
                ("Device", "device"),
                ("Time", "time"),
                ("Queued", "created"),
                ("Error or warnings", "note"),
            ],
            id="ai-jobs",
            size="1",
        ),
        width="100%",
        spacing="3",
    )
    return shell(
        "AI analysis",
        rx.cond(
            s.ready,
            rx.cond(s.denied != "", access_denied(s.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
