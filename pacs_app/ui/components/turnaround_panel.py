"""Turnaround-time tables for the admin and centre dashboards, over a chosen date range."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import reflex as rx

from pacs_app.core.errors import DomainError
from pacs_app.services import turnaround, workflow
from pacs_app.ui.state import AuthState, call_domain

DEFAULT_DAYS = 30


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 90:
        return f"{value:.0f} min"
    return f"{value / 60:.1f} h"


def _cells(row: turnaround.TatRow) -> dict[str, str]:
    cells = {
        "label": row.label,
        "studies": str(row.studies),
        "delivered": str(row.delivered),
        "within": "—" if row.within_target_pct is None else f"{row.within_target_pct:.0f} %",
    }
    for step in turnaround.STEPS:
        figures = row.steps[step]
        cells[step] = f"{_minutes(figures.p50_minutes)} / {_minutes(figures.p90_minutes)}"
        cells[f"{step}_mean"] = _minutes(figures.mean_minutes)
    return cells


class TatState(AuthState):
    date_from: str = ""
    date_to: str = ""
    overall: dict[str, str] = {}
    by_centre: list[dict[str, str]] = []
    by_radiologist: list[dict[str, str]] = []
    targets: str = ""
    error: str = ""
    loaded: bool = False
    is_admin: bool = False
    target_inputs: dict[str, str] = {}

    async def _load(self):
        actor = await self.actor()
        if actor is None:
            return
        try:
            result = await call_domain(
                turnaround.summary,
                actor=actor,
                date_from=date.fromisoformat(self.date_from),
                date_to=date.fromisoformat(self.date_to),
            )
        except (DomainError, ValueError) as exc:
            self.error = getattr(exc, "message", "Enter dates as YYYY-MM-DD.")
            return
        self.error = ""
        self.overall = _cells(result.overall)
        self.by_centre = [_cells(r) for r in result.by_centre]
        self.by_radiologist = [_cells(r) for r in result.by_radiologist]
        self.targets = " · ".join(
            f"{p.upper()} {_minutes(m)}" for p, m in reversed(result.targets_minutes.items())
        )
        self.is_admin = actor.is_admin
        self.target_inputs = {p: str(m) for p, m in result.targets_minutes.items()}
        self.loaded = True

    @rx.event
    async def open(self):
        today = datetime.now(UTC).date()
        self.date_to = today.isoformat()
        self.date_from = (today - timedelta(days=DEFAULT_DAYS)).isoformat()
        self.loaded = False
        await self._load()

    @rx.event
    async def set_from(self, value: str):
        self.date_from = value
        await self._load()

    @rx.event
    def set_target_input(self, priority: str, value: str):
        self.target_inputs[priority] = value

    @rx.event
    async def save_targets(self):
        """Administrators: save the turnaround target of each priority (audited)."""
        actor = await self.actor()
        if actor is None:
            return None
        try:
            for priority, minutes in self.target_inputs.items():
                await call_domain(
                    workflow.set_tat_target,
                    actor=actor,
                    priority=priority,
                    minutes=minutes,
                    address=self._client_address(),
                )
        except DomainError as exc:
            return rx.toast.error(exc.message)
        await self._load()
        return rx.toast.success("Turnaround targets saved.")

    @rx.event
    async def set_to(self, value: str):
        self.date_to = value
        await self._load()


COLUMNS = [
    ("", "label"),
    ("Studies", "studies"),
    ("Delivered", "delivered"),
    ("Within target", "within"),
    ("To assignment p50 / p90", "assigned"),
    ("To first opening", "opened"),
    ("To verification", "verified"),
    ("To delivery", "delivered"),
]


def _table(rows, id_: str) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h, _ in COLUMNS])),
        rx.table.body(
            rx.foreach(rows, lambda r: rx.table.row(*[rx.table.cell(r[k]) for _, k in COLUMNS]))
        ),
        width="100%",
        size="1",
        id=id_,
    )


def turnaround_panel(show_centres: bool) -> rx.Component:
    s = TatState
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Turnaround time", size="4"),
                rx.spacer(),
                rx.text("Received from", size="2"),
                rx.input(type="date", value=s.date_from, on_change=s.set_from, id="tat-from"),
                rx.text("to", size="2"),
                rx.input(type="date", value=s.date_to, on_change=s.set_to, id="tat-to"),
                align="center",
                width="100%",
                wrap="wrap",
            ),
            rx.text(
                "Median / 90th percentile from receipt. Targets to delivery: ",
                s.targets,
                size="1",
                color_scheme="gray",
            ),
            rx.cond(s.error != "", rx.callout(s.error, color_scheme="red")),
            rx.cond(
                s.is_admin,
                rx.hstack(
                    rx.text("Targets (minutes):", size="2"),
                    *[
                        rx.hstack(
                            rx.text(label, size="2"),
                            rx.input(
                                value=s.target_inputs[key],
                                on_change=lambda v, key=key: s.set_target_input(key, v),
                                width="80px",
                                id=f"tat-target-{key}",
                            ),
                            align="center",
                            spacing="1",
                        )
                        for key, label in (
                            ("stat", "STAT"),
                            ("urgent", "urgent"),
                            ("routine", "routine"),
                        )
                    ],
                    rx.button(
                        "Save targets",
                        size="1",
                        variant="soft",
                        on_click=s.save_targets,
                        id="tat-save",
                    ),
                    align="center",
                    wrap="wrap",
                ),
            ),
            rx.cond(
                s.loaded,
                rx.vstack(
                    _table(s.by_centre, "tat-centres") if show_centres else rx.fragment(),
                    rx.heading("By radiologist", size="3"),
                    rx.cond(
                        s.by_radiologist.length() > 0,
                        _table(s.by_radiologist, "tat-radiologists"),
                        rx.text("No study read in this range.", size="2", color_scheme="gray"),
                    ),
                    rx.text(
                        "All: ",
                        s.overall["studies"],
                        " studies, ",
                        s.overall["delivered"],
                        " delivered, ",
                        s.overall["within"],
                        " within target; to delivery ",
                        s.overall["delivered_mean"],
                        " on average.",
                        size="2",
                        id="tat-overall",
                    ),
                    width="100%",
                    spacing="2",
                ),
            ),
            width="100%",
            spacing="2",
        ),
        width="100%",
        id="turnaround",
    )
