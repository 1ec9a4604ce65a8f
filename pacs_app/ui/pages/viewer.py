"""The diagnostic viewer page.

The page's state resolves the actor, checks through the domain that the study may be seen and
hands the viewer what it needs (UIDs, series, patient line for the overlay). The image work
runs in the browser (``assets/viewer.js``): it fetches each frame's pixel data once over
WADO-RS and does window/level, zoom, pan, scrolling, cine and measurement (length, an
elliptical ROI's statistics, angle) locally. The view
(series, image, window, zoom, pan, invert) is reported back to this state, which keeps it per
study; viewer.js also keeps the latest in the tab's sessionStorage, so that a reload returns to
the same view even when its last report had not reached the server. The user's measurements
come with the study (``pacs_app.services.drawn``) and viewer.js saves them as they change.
"""

from __future__ import annotations

import json

import reflex as rx

from pacs_app.core.errors import NotFound
from pacs_app.services import dicomweb, drawn, reports, studies, workflow
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import shell

MAX_VIEW_CHARS = 2000


class ViewerState(AuthState):
    ready: bool = False
    message: str = ""
    study_json: str = ""
    title: str = ""
    # The view (series, image, window, zoom, pan, invert) of the open study, as viewer.js
    # reports it; kept per study so that a reload, or coming back, shows the same view.
    view_json: str = ""
    # ?for={study id}: this study is another of the patient's, shown beside that one as it is
    # read (its reading radiologist may see its priors)
    comparing: str = ""
    _views: dict[str, str] = {}
    _study_id: str = ""

    @rx.event
    async def open(self):
        # the last study's data must not stay on the stage while this one loads
        self.ready, self.message, self.study_json = False, "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        sid = self._path_study_id()
        self._study_id = sid
        comparing = studies.named_study_id(self.router.url.query_parameters.get("for"))
        self.comparing = comparing or ""
        self.view_json = self._views.get(sid, "")
        address = self._client_address()
        try:
            left = json.loads(self.view_json) if self.view_json else {}
        except json.JSONDecodeError:
            left = {}
        left = left if isinstance(left, dict) else {}

        def load(session):
            detail = studies.get_study(
                session=session, actor=actor, study_id=sid, address=address, comparing=comparing
            )
            if not comparing:
                # the reading radiologist's first look starts the reading (turnaround)
                workflow.mark_opened(session=session, actor=actor, study_id=sid, address=address)
            # the first image to show (where the user left the study, else the middle of the
            # first series), so that viewer.js fetches its pixels at once
            series = [s.series_instance_uid for s in detail.series]
            uid = left.get("series") if left.get("series") in series else None
            first = (
                dicomweb.opening_image(
                    session=session,
                    actor=actor,
                    study_uid=detail.study_instance_uid,
                    series_uid=uid or series[0],
                    sop_uid=str(left.get("sop") or "") if uid else None,
                    frame=left.get("frame") if isinstance(left.get("frame"), int) else 0,
                    comparing=comparing,
                    study_id=detail.study_id,
                )
                if series
                else None
            )
            # the report's key images, which the reading radiologist marks here (not on
            # another study of the patient shown for comparison)
            keys, can_mark = (
                ([], False)
                if comparing
                else reports.key_images_to_mark(session=session, actor=actor, study_id=sid)
            )
            # the user's own measurements, kept on the server (another study shown for
            # comparison keeps them in the tab only)
            measured = (
                drawn.Drawn({}, 0)
                if comparing
                else drawn.drawn(session=session, actor=actor, study_id=sid)
            )
            return detail, first, keys, can_mark, measured

        try:  # one trip to the worker thread for all
            detail, first, keys, can_mark, measured = await call_domain(load)
        except NotFound:
            self.message = f"No study {sid} that you may see."
            self.ready = True
            return
        self.title = f"{detail.patient_name.replace('^', ' ')} · {detail.study_id}"
        self.study_json = json.dumps(
            {
                "study_id": detail.study_id,
                "study_uid": detail.study_instance_uid,
                "patient": detail.patient_name.replace("^", " "),
                "patient_id": detail.patient_id,
                "age_sex": " ".join(v for v in (detail.patient_age, detail.patient_sex) if v),
                "modality": detail.modality,
                "description": detail.description,
                "study_date": detail.study_date.isoformat() if detail.study_date else "",
                "series": [
                    {
                        "uid": s.series_instance_uid,
                        "number": s.series_number,
                        "modality": s.modality,
                        "description": s.description,
                        "count": s.num_instances,
                    }
                    for s in detail.series
                ],
                "first": first,
                "comparing": comparing,
                "key_images": [{"sop": k.sop_instance_uid, "frame": k.frame} for k in keys],
                "can_mark_key": can_mark,
                "measurements": measured.images,
                "measurements_revision": measured.revision,
                # whose they are: a tab's unsaved ones of another user (signed out here) are
                # not theirs
                "reader": actor.user_id,
            }
        )
        self.ready = True

    @rx.event
    def set_view(self, value: str):
        """Keep the viewer's current view (a small JSON object) for this study."""
        if not self._study_id or len(value) > MAX_VIEW_CHARS:
            return
        try:
            view = json.loads(value)
        except json.JSONDecodeError:
            return
        if isinstance(view, dict) and view.get("study") == self._study_id:
            self._views = {**self._views, self._study_id: value}
            # also on the page now: a reload starts from the state as it was left
            self.view_json = value


def _overlay(corner: str) -> rx.Component:
    """One corner of the text overlay (filled by viewer.js): tl, tr, bl or br."""
    vertical = "top" if corner[0] == "t" else "bottom"
    horizontal = "left" if corner[1] == "l" else "right"
    return rx.el.div(
        id=f"vw-overlay-{corner}",
        class_name="vw-overlay",
        style={
            "position": "absolute",
            vertical: "6px",
            horizontal: "8px",
            "text_align": horizontal,
        },
    )


def _orientation_marker(side: str) -> rx.Component:
    """The patient's direction at the middle of one edge of the image (filled by viewer.js):
    top, right, bottom or left."""
    across = "left" if side in ("top", "bottom") else "top"
    return rx.el.div(
        id=f"vw-orient-{side}",
        class_name="vw-orient",
        style={
            "position": "absolute",
            side: "6px" if side in ("top", "bottom") else "8px",
            across: "50%",
            "transform": "translateX(-50%)" if across == "left" else "translateY(-50%)",
            "font_size": "14px",
            "font_weight": "bold",
            "pointer_events": "none",
        },
    )


def _tool(
    label: str, id_: str, icon: str, *, hidden: bool = False, icon_only: bool = False
) -> rx.Component:
    """A toolbar button. Below about 1536 px (a 1280 or 1440 px laptop) it shows only its icon,
    so that the toolbar stays one line and the stage keeps its height; its name is then its
    tooltip and what a screen reader says. ``icon_only``: at any width (a tool whose icon
    says it, where the labels would not fit on one line)."""
    return rx.el.button(
        rx.icon(icon, size=15),
        rx.el.span(
            label,
            class_name="vw-tool-label",
            style={"display": "none" if icon_only else rx.breakpoints(initial="none", xl="inline")},
        ),
        id=id_,
        title=label,
        aria_label=label,
        class_name="vw-tool",
        style={
            "display": "none" if hidden else "inline-flex",
            "align_items": "center",
            "gap": "4px",
            "padding": "4px 8px",
            "border": "1px solid var(--gray-6)",
            "border_radius": "6px",
            "background": "var(--gray-2)",
            "font_size": "13px",
            "cursor": "pointer",
        },
    )


def _toolbar() -> rx.Component:
    return rx.hstack(
        _tool("W/L", "vw-mode-wl", "sun-medium"),
        _tool("Zoom", "vw-mode-zoom", "zoom-in"),
        _tool("Pan", "vw-mode-pan", "move"),
        _tool("Measure", "vw-mode-measure", "ruler"),
        _tool("ROI", "vw-mode-roi", "circle-dashed"),
        _tool("Angle", "vw-mode-angle", "drafting-compass"),
        _tool("Fit", "vw-fit", "maximize"),
        _tool("1:1", "vw-actual", "square"),
        _tool("Invert", "vw-invert", "contrast"),
        _tool("Rotate a quarter clockwise (T)", "vw-rotate", "rotate-cw-square", icon_only=True),
        _tool("Flip left to right (H)", "vw-flip", "flip-horizontal-2", icon_only=True),
        _tool("Overlays", "vw-overlays", "layers"),
        _tool("Reset", "vw-reset", "rotate-ccw"),
        _tool("Cine", "vw-cine", "play"),
        rx.el.select(
            *[rx.el.option(f"{n} fps", value=str(n)) for n in (5, 10, 15, 20, 30)],
            id="vw-fps",
            default_value="10",
            style={"padding": "3px"},
        ),
        rx.el.select(
            rx.el.option("Window presets", value=""),
            id="vw-presets",
            # its options name the header's windows, which can be long: the toolbar stays one line
            style={"padding": "3px", "max_width": "190px"},
        ),
        _tool("Tags", "vw-tags-toggle", "list"),
        # shown by viewer.js to the radiologist who reads the study, while the report is open
        _tool("Key image", "vw-key", "star", hidden=True),
        # shown by viewer.js where the viewer sits beside the report editor
        _tool("To report", "vw-to-report", "file-input", hidden=True),
        id="vw-toolbar",
        wrap="wrap",
        spacing="2",
        align="center",
    )


@rx.page(route=routes.VIEWER, title="Viewer · PACS", on_load=ViewerState.open)
def viewer_page() -> rx.Component:
    body = rx.vstack(
        rx.hstack(
            rx.heading(ViewerState.title, size="4"),
            rx.cond(
                ViewerState.comparing != "",
                rx.badge(
                    "Other study of the patient, beside " + ViewerState.comparing,
                    color_scheme="amber",
                    id="vw-comparing",
                ),
            ),
            rx.spacer(),
            rx.cond(
                ViewerState.comparing != "",
                rx.link(
                    "Report of " + ViewerState.comparing,
                    href="/report/" + ViewerState.comparing,
                    target="_top",  # out of the report page's frame, where it shows there
                ),
                rx.link(
                    "Study details", href="/study/" + ViewerState.router.url.path.split("/")[-1]
                ),
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        _toolbar(),
        rx.hstack(
            rx.el.div(
                id="vw-series",
                style={
                    "width": "150px",
                    "min_width": "150px",
                    "max_height": "72vh",
                    "overflow_y": "auto",
                },
            ),
            rx.el.div(
                rx.el.canvas(
                    id="vw-canvas", style={"width": "100%", "height": "100%", "display": "block"}
                ),
                *[_overlay(corner) for corner in ("tl", "tr", "bl", "br")],
                *[_orientation_marker(side) for side in ("top", "right", "bottom", "left")],
                rx.el.div(
                    id="vw-message",
                    style={
                        "position": "absolute",
                        "top": "45%",
                        "width": "100%",
                        "text_align": "center",
                        "color": "#f5a524",
                    },
                ),
                # what changed here from another window's save: below the image, for a while
                rx.el.div(
                    id="vw-notice",
                    role="status",
                    style={
                        "position": "absolute",
                        "bottom": "28px",
                        "width": "100%",
                        "text_align": "center",
                        "color": "#f5a524",
                        "font_size": "13px",
                        "pointer_events": "none",
                    },
                ),
                id="vw-stage",
                tab_index=0,
                data_api=routes.api_base(),
                data_study=ViewerState.study_json,
                data_view=ViewerState.view_json,
                style={
                    "position": "relative",
                    "flex": "1",
                    # the canvas's pixel width must not hold the stage wider when the tag
                    # panel opens beside it: the panel would be pushed off the screen
                    "min_width": "0",
                    "height": "72vh",
                    "background": "#000",
                    "color": "#e5e5e5",
                    "font_size": "12px",
                    "font_family": "monospace",
                    "outline": "none",
                    "overflow": "hidden",
                    "user_select": "none",
                },
            ),
            # viewer.js keeps the tag browser's panel in here (shown and hidden by its own
            # inline style, which a re-render of this element cannot reset); this element
            # itself makes no box, so a closed panel leaves no gap beside the stage
            rx.el.div(id="vw-tags", style={"display": "contents"}),
            width="100%",
            align="start",
            spacing="3",
        ),
        rx.text(
            "Wheel or ↑/↓: images · drag: the selected tool (right button: W/L) · "
            "Shift+wheel: zoom · Esc: drop a drawing · R: reset · I: invert · O: overlays · "
            "K: key image · Space: cine",
            size="1",
            color_scheme="gray",
        ),
        # viewer.js reports the view here; the state keeps it (see ViewerState.set_view)
        rx.el.input(id="vw-view-sink", on_change=ViewerState.set_view, style={"display": "none"}),
        width="100%",
        spacing="3",
        id="viewer-page",
    )
    return shell(
        "Viewer",
        rx.fragment(
            # loaded with the page, not with the study: it waits for the stage to appear
            rx.script(src="/viewer.js"),
            rx.cond(
                ViewerState.ready,
                rx.cond(
                    ViewerState.message != "",
                    rx.callout(
                        ViewerState.message,
                        icon="search-x",
                        color_scheme="gray",
                        id="viewer-not-found",
                    ),
                    body,
                ),
                rx.center(rx.spinner(), padding="3em"),
            ),
        ),
    )
