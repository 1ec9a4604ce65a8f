"""The upload page: metadata form, drag-and-drop of many files, per-file progress and result.

The transfer itself runs in the browser (``assets/uploader.js``) against the ``/uploads`` API,
one streamed request per file, so hundreds of files neither freeze the page nor pass through
a Reflex event handler or the backend's memory; this state only checks who may upload.
"""

from __future__ import annotations

import reflex as rx

from pacs_app.config import settings
from pacs_app.core.errors import PermissionDenied
from pacs_app.models import Priority
from pacs_app.services import uploads
from pacs_app.ui import routes
from pacs_app.ui.state import AuthState, call_domain
from pacs_app.ui.template import access_denied, shell


class UploadState(AuthState):
    ready: bool = False
    denied: str = ""
    upload_centre: str = ""

    @rx.event
    async def open(self):
        self.ready, self.denied = False, ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            self.upload_centre = await call_domain(uploads.upload_centre, actor=actor)
        except PermissionDenied as exc:
            self.denied = exc.message
        self.ready = True


def _field(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1")


def _form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(
                "Patient and order (leave empty to take the values from the DICOM header)",
                size="2",
                color_scheme="gray",
            ),
            rx.hstack(
                _field("Patient name", rx.input(id="up-patient-name", width="220px")),
                _field("Patient ID", rx.input(id="up-patient-id", width="140px")),
                _field("Age (years)", rx.input(id="up-patient-age", width="90px")),
                _field(
                    "Sex",
                    rx.el.select(
                        rx.el.option("—", value=""),
                        rx.el.option("F", value="F"),
                        rx.el.option("M", value="M"),
                        rx.el.option("O", value="O"),
                        id="up-patient-sex",
                        style={"padding": "6px"},
                    ),
                ),
                _field("Modality", rx.input(id="up-modality", width="90px", placeholder="CT")),
                _field(
                    "Body part", rx.input(id="up-body-part", width="120px", placeholder="CHEST")
                ),
                _field(
                    "Priority",
                    rx.el.select(
                        *[
                            rx.el.option(
                                p.value.upper() if p is Priority.STAT else p.value, value=p.value
                            )
                            for p in Priority
                        ],
                        id="up-priority",
                        style={"padding": "6px"},
                    ),
                ),
                wrap="wrap",
                spacing="4",
            ),
            _field("Clinical notes", rx.text_area(id="up-notes", width="100%", rows="2")),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _dropzone() -> rx.Component:
    return rx.vstack(
        rx.el.input(
            type="file",
            multiple=True,
            id="file-input",
            style={"display": "none"},
            accept=".dcm,.DCM,.zip,application/dicom,application/zip,*/*",
        ),
        rx.el.div(
            rx.vstack(
                rx.icon("upload", size=32, color=rx.color("accent", 9)),
                rx.text("Drop DICOM files or zip archives here", weight="medium"),
                rx.text(
                    f"or click to choose · up to {settings.max_upload_file_mb} MB a file",
                    size="2",
                    color_scheme="gray",
                ),
                align="center",
                spacing="2",
            ),
            id="dropzone",
            data_api=routes.api_base(),
            style={
                "border": "2px dashed var(--gray-7)",
                "border_radius": "10px",
                "padding": "2em",
                "cursor": "pointer",
                "width": "100%",
                "text_align": "center",
            },
        ),
        rx.hstack(
            rx.button(rx.icon("upload", size=16), "Upload", id="start-upload", size="3"),
            rx.button(
                "Remove refused files",
                id="remove-refused",
                variant="soft",
                color_scheme="orange",
                # uploader.js shows it when a file was refused
                style={"display": "none"},
            ),
            rx.button("Clear", id="clear-files", variant="soft", color_scheme="gray"),
            rx.text("", id="upload-summary", size="2", weight="medium"),
            align="center",
            spacing="3",
            wrap="wrap",
        ),
        rx.el.div(id="upload-studies"),
        rx.el.div(
            id="file-list", style={"width": "100%", "max_height": "50vh", "overflow_y": "auto"}
        ),
        width="100%",
        spacing="3",
    )


@rx.page(route=routes.UPLOAD, title="Upload · PACS", on_load=UploadState.open)
def upload_page() -> rx.Component:
    body = rx.vstack(
        rx.text("Uploading for ", rx.text.strong(UploadState.upload_centre), size="3"),
        _form(),
        _dropzone(),
        rx.script(src="/uploader.js"),
        width="100%",
        spacing="4",
        id="upload-page",
    )
    return shell(
        "Upload studies",
        rx.cond(
            UploadState.ready,
            rx.cond(UploadState.denied != "", access_denied(UploadState.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
