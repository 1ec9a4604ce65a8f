"""Analytics: charts of study volume, turnaround, revenue and workload over a date range,
for administrators (every centre or one) and centre managers (their own centre)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import reflex as rx

from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.models import Role
from pacs_app.services import analytics, users
from pacs_app.ui import routes
from pacs_app.ui.components import record_table
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell

ANALYTICS = getattr(routes, "ANALYTICS", "/analytics")
DEFAULT_DAYS = 30
ALL = "all"
CHART_HEIGHT = 280
MAX_BAR = 64  # px: a lone bar stays a bar, not a slab
# Distinct series colours (hex: SVG fill attributes do not resolve CSS variables everywhere).
PALETTE = (
    "#3e63dd",
    "#e5484d",
    "#30a46c",
    "#f76b15",
    "#8e4ec6",
    "#12a594",
    "#d6409f",
    "#ffc53d",
    "#0090ff",
    "#978365",
)
TAT_COLORS = {"p50": "#3e63dd", "p90": "#8e4ec6", "target": "#8b8d98"}


def _series(keys: list[str]) -> list[dict[str, str]]:
    return [{"key": k, "color": PALETTE[i % len(PALETTE)]} for i, k in enumerate(keys)]


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


class AnalyticsState(AuthState):
    denied: str = ""
    ready: bool = False
    loaded: bool = False
    error: str = ""
    is_admin: bool = False
    date_from: str = ""
    date_to: str = ""
    centre: str = ALL  # "all" or a centre id, for administrators
    centre_options: list[dict[str, str]] = []

    studies_total: int = 0
    modality_series: list[dict[str, str]] = []
    studies_by_modality: list[dict[str, str | int]] = []
    centre_series: list[dict[str, str]] = []
    studies_by_centre: list[dict[str, str | int]] = []
    tat_chart: list[dict[str, str | float]] = []
    tat_rows: list[dict[str, str]] = []
    tat_delivered: int = 0
    revenue_series: list[dict[str, str]] = []
    revenue_by_month: list[dict[str, str | float]] = []
    revenue_rows: list[dict[str, str]] = []
    workload_rows: list[dict[str, str]] = []
    workload_chart: list[dict[str, str | int]] = []

    @rx.var
    def show_centres(self) -> bool:
        return self.is_admin or len(self.centre_series) > 1

    def _clear(self) -> None:
        self.loaded = False
        self.studies_total, self.tat_delivered = 0, 0
        self.modality_series, self.studies_by_modality = [], []
        self.centre_series, self.studies_by_centre = [], []
        self.tat_chart, self.tat_rows = [], []
        self.revenue_series, self.revenue_by_month, self.revenue_rows = [], [], []
        self.workload_rows, self.workload_chart = [], []

    def _show(self, result: analytics.Analytics) -> None:
        self.studies_total = result.studies_total
        self.modality_series = _series(result.modalities)
        self.studies_by_modality = result.studies_by_modality
        self.centre_series = _series(result.centre_codes)
        self.studies_by_centre = result.studies_by_centre

        self.tat_delivered = sum(t.delivered for t in result.turnaround)
        self.tat_chart = []
        for t in result.turnaround:
            row: dict[str, str | float] = {
                "priority": t.priority.upper(),
                "target": round(t.target_minutes / 60, 2),
            }
            for key, minutes in (("p50", t.p50_minutes), ("p90", t.p90_minutes)):
                if minutes is not None:  # no bar where nothing was delivered
                    row[key] = round(minutes / 60, 2)
            self.tat_chart.append(row)
        self.tat_rows = [
            {
                "priority": t.priority.upper(),
                "target": _duration(t.target_minutes),
                "studies": str(t.studies),
                "delivered": str(t.delivered),
                "p50": _duration(t.p50_minutes),
                "p90": _duration(t.p90_minutes),
                "within": f"{t.within_target} ({_pct(t.within_target_pct)})",
            }
            for t in result.turnaround
        ]

        self.revenue_series = _series(result.currencies)
        self.revenue_by_month = result.revenue_by_month
        self.revenue_rows = [
            {
                "month": m.month,
                "currency": m.currency,
                "records": str(m.records),
                "amount": m.formatted,
            }
            for m in result.revenue_months
        ] + [
            {
                "month": "Total",
                "currency": t.currency,
                "records": str(t.records),
                "amount": t.formatted,
            }
            for t in result.revenue_totals
        ]

        self.workload_rows = [
            {
                "name": w.name,
                "reads": str(w.reads),
                "modalities": " · ".join(f"{m} {n}" for m, n in w.by_modality.items()),
                "median": _duration(w.median_read_minutes),
            }
            for w in result.workload
        ]
        self.workload_chart = [{"name": w.name, "reads": w.reads} for w in result.workload]
        self.loaded = True

    async def _load(self) -> bool:
        """Reload for the actor, checked again; ``False`` when signed out."""
        actor = await self.actor()
        if actor is None:
            return False
        self.is_admin = actor.role is Role.ADMIN
        try:
            date_from = date.fromisoformat(self.date_from)
            date_to = date.fromisoformat(self.date_to)
        except ValueError:
            self.error = "Enter dates as YYYY-MM-DD."
            self._clear()
            return True
        try:
            result = await call_domain(
                analytics.summary,
                actor=actor,
                date_from=date_from,
                date_to=date_to,
                centre_id=int(self.centre) if self.is_admin and self.centre != ALL else None,
            )
        except PermissionDenied as exc:
            self.denied = exc.message
            self._clear()
            return True
        except DomainError as exc:
            self.error = exc.message
            self._clear()
            return True
        self.denied, self.error = "", ""
        self._show(result)
        return True

    @rx.event
    async def open(self):
        self.ready, self.denied, self.error, self.centre = False, "", "", ALL
        today = datetime.now(UTC).date()
        self.date_to = today.isoformat()
        self.date_from = (today - timedelta(days=DEFAULT_DAYS)).isoformat()
        self._clear()
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        self.centre_options = []
        if actor.role is Role.ADMIN:
            centres = await call_domain(users.list_centres, actor=actor)
            self.centre_options = [{"value": ALL, "label": "All centres"}] + [
                {"value": str(c.id), "label": f"{c.name} ({c.code})"} for c in centres
            ]
        if not await self._load():
            return rx.redirect(routes.LOGIN)
        self.ready = True

    @rx.event
    async def set_from(self, value: str):
        self.date_from = value
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def set_to(self, value: str):
        self.date_to = value
        if not await self._load():
            return rx.redirect(routes.LOGIN)

    @rx.event
    async def set_centre(self, value: str):
        known = {o["value"] for o in self.centre_options}
        self.centre = value if value in known else ALL
        if not await self._load():
            return rx.redirect(routes.LOGIN)


def _empty(text: str, id_: str) -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("chart-no-axes-column", size=32, color=rx.color("gray", 8)),
            rx.text(text, size="2", color_scheme="gray"),
            align="center",
            spacing="2",
        ),
        padding="2em",
        width="100%",
        id=id_,
    )


def _card(title: str, *children: rx.Component) -> rx.Component:
    return rx.card(
        rx.vstack(rx.heading(title, size="4"), *children, width="100%", spacing="3"),
        width="100%",
    )


def _axes(x_key: str, *, counts: bool = True, unit: str = "") -> list[rx.Component]:
    return [
        rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
        rx.recharts.x_axis(data_key=x_key),
        rx.recharts.y_axis(allow_decimals=not counts, unit=unit),
        rx.recharts.graphing_tooltip(),
        rx.recharts.legend(),
    ]


def _stacked_per_day(data: rx.Var, series: rx.Var, id_: str) -> rx.Component:
    return rx.box(
        rx.recharts.bar_chart(
            *_axes("day"),
            rx.foreach(
                series,
                lambda s: rx.recharts.bar(
                    data_key=s["key"], name=s["key"], stack_id="day", fill=s["color"]
                ),
            ),
            data=data,
            height=CHART_HEIGHT,
        ),
        width="100%",
        id=id_,
    )


def _studies() -> rx.Component:
    s = AnalyticsState
    return rx.fragment(
        _card(
            "Studies received per day, by modality",
            rx.cond(
                s.studies_total > 0,
                _stacked_per_day(
                    s.studies_by_modality, s.modality_series, "chart-studies-modality"
                ),
                _empty("No study received in this range.", "analytics-empty-studies"),
            ),
        ),
        rx.cond(
            s.show_centres,
            _card(
                "Studies received per day, by centre",
                rx.cond(
                    s.studies_total > 0,
                    _stacked_per_day(s.studies_by_centre, s.centre_series, "chart-studies-centre"),
                    _empty("No study received in this range.", "analytics-empty-centres"),
                ),
            ),
        ),
    )


TAT_COLUMNS = [
    ("Priority", "priority"),
    ("Target", "target"),
    ("Received", "studies"),
    ("Delivered", "delivered"),
    ("Median", "p50"),
    ("90th percentile", "p90"),
    ("Within target", "within"),
]


def _turnaround() -> rx.Component:
    s = AnalyticsState
    return _card(
        "Turnaround, receipt to delivery, per priority",
        rx.cond(
            s.tat_delivered > 0,
            rx.box(
                rx.recharts.bar_chart(
                    *_axes("priority", counts=False, unit=" h"),
                    rx.recharts.bar(
                        data_key="p50", name="Median", fill=TAT_COLORS["p50"], max_bar_size=MAX_BAR
                    ),
                    rx.recharts.bar(
                        data_key="p90",
                        name="90th percentile",
                        fill=TAT_COLORS["p90"],
                        max_bar_size=MAX_BAR,
                    ),
                    rx.recharts.bar(
                        data_key="target",
                        name="Target",
                        fill=TAT_COLORS["target"],
                        max_bar_size=MAX_BAR,
                    ),
                    data=s.tat_chart,
                    height=CHART_HEIGHT,
                ),
                width="100%",
                id="chart-tat",
            ),
            _empty("No study received in this range has been delivered.", "analytics-empty-tat"),
        ),
        record_table(s.tat_rows, TAT_COLUMNS, id="tat-table", size="1"),
    )


REVENUE_COLUMNS = [
    ("Month", "month"),
    ("Currency", "currency"),
    ("Studies billed", "records"),
    ("Amount", "amount"),
]


def _revenue() -> rx.Component:
    s = AnalyticsState
    # One chart per currency: amounts in different currencies are never drawn as one sum.
    per_currency = rx.foreach(
        s.revenue_series,
        lambda c: rx.box(
            rx.text(c["key"], weight="medium", size="2"),
            rx.recharts.bar_chart(
                *_axes("month", counts=False),
                rx.recharts.bar(
                    data_key=c["key"], name=c["key"], fill=c["color"], max_bar_size=MAX_BAR
                ),
                data=s.revenue_by_month,
                height=220,
            ),
            width="100%",
            min_width="280px",
            flex="1",
        ),
    )
    return _card(
        "Revenue per month (billed, credits excluded)",
        rx.cond(
            s.revenue_series.length() > 0,
            rx.vstack(
                rx.flex(per_currency, wrap="wrap", gap="4", width="100%", id="chart-revenue"),
                rx.text(
                    "Each currency is shown on its own; amounts are not converted or added up.",
                    size="1",
                    color_scheme="gray",
                ),
                record_table(s.revenue_rows, REVENUE_COLUMNS, id="revenue-table", size="1"),
                width="100%",
                spacing="3",
            ),
            _empty("Nothing billed in these months.", "analytics-empty-revenue"),
        ),
    )


WORKLOAD_COLUMNS = [
    ("Radiologist", "name"),
    ("Reads", "reads"),
    ("By modality", "modalities"),
    ("Median opening → verification", "median"),
]


def _workload() -> rx.Component:
    s = AnalyticsState
    return _card(
        "Radiologist workload (studies verified in the range)",
        rx.cond(
            s.workload_rows.length() > 0,
            rx.vstack(
                rx.box(
                    rx.recharts.bar_chart(
                        *_axes("name"),
                        rx.recharts.bar(
                            data_key="reads", name="Reads", fill=PALETTE[0], max_bar_size=MAX_BAR
                        ),
                        data=s.workload_chart,
                        height=CHART_HEIGHT,
                    ),
                    width="100%",
                    id="chart-workload",
                ),
                record_table(s.workload_rows, WORKLOAD_COLUMNS, id="workload-table", size="1"),
                width="100%",
                spacing="3",
            ),
            _empty("No study verified in this range.", "analytics-empty-workload"),
        ),
    )


def _filters() -> rx.Component:
    s = AnalyticsState
    return rx.hstack(
        rx.text("From", size="2"),
        rx.input(type="date", value=s.date_from, on_change=s.set_from, id="analytics-from"),
        rx.text("to", size="2"),
        rx.input(type="date", value=s.date_to, on_change=s.set_to, id="analytics-to"),
        rx.cond(
            s.is_admin,
            rx.select.root(
                rx.select.trigger(placeholder="All centres", id="analytics-centre"),
                rx.select.content(
                    rx.foreach(
                        s.centre_options, lambda o: rx.select.item(o["label"], value=o["value"])
                    )
                ),
                value=s.centre,
                on_change=s.set_centre,
            ),
        ),
        rx.text("Days in UTC", size="1", color_scheme="gray"),
        align="center",
        wrap="wrap",
        spacing="3",
    )


@rx.page(route=ANALYTICS, title="Analytics · PACS", on_load=AnalyticsState.open)
def analytics_page() -> rx.Component:
    s = AnalyticsState
    body = rx.vstack(
        _filters(),
        rx.cond(s.error != "", rx.callout(s.error, color_scheme="red", id="analytics-error")),
        rx.cond(
            s.loaded,
            rx.vstack(
                _studies(), _turnaround(), _revenue(), _workload(), width="100%", spacing="4"
            ),
        ),
        width="100%",
        spacing="4",
        id="analytics-page",
    )
    return shell(
        "Analytics",
        rx.cond(
            s.ready,
            rx.cond(s.denied != "", access_denied(s.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
