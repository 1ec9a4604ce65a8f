"""DICOM devices: the modalities and gateways that may send images to the DICOM listener, and
the workstations that may also query and retrieve (and receive what a C-MOVE sends).

Administrators manage every centre's devices, a centre user its own centre's; the rules are
the domain's (:mod:`pacs_app.services.devices`), asked again by every event handler.
"""

from __future__ import annotations

import reflex as rx

from pacs_app.core.errors import DomainError, PermissionDenied
from pacs_app.services import devices, users
from pacs_app.ui import routes
from pacs_app.ui.components.forms import (
    active_badge,
    confirm_dialog,
    dialog_buttons,
    error_callout,
    field,
    notice_callout,
    pager,
    switch_field,
    toggle_button,
)
from pacs_app.ui.state import AuthState, PagedMixin, call_domain
from pacs_app.ui.template import access_denied, shell

NO_CHOICE = ""
PAGE_SIZE = 25


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _move_target(port: int | None, address: str) -> str:
    """Where a C-MOVE to the device sends, for its row ("" where it is no destination)."""
    if port is None:
        return ""
    return f"C-MOVE to {address or 'its address'}:{port}"


class DevicesState(PagedMixin, AuthState):
    denied: str = ""
    ready: bool = False
    rows: list[dict[str, str]] = []
    notice: str = ""
    error: str = ""
    listener: str = ""
    listener_ok: bool = False
    is_admin_view: bool = False

    # the device form (new or edit): controlled selects, the rest are form fields
    form_open: bool = False
    form_error: str = ""
    form_title: str = ""
    form_ae_title: str = ""
    form_networks: str = ""
    form_description: str = ""
    form_centre: str = NO_CHOICE  # a centre id, as text
    form_uploader: str = NO_CHOICE  # a user id, as text
    form_may_retrieve: bool = False
    form_move_port: str = ""
    form_move_address: str = ""
    centre_options: list[dict[str, str]] = []
    uploader_options: list[dict[str, str]] = []
    edit_id: int = 0  # the device the form edits; 0: a new one

    # confirmation of (de)activation and deletion
    confirm_open: bool = False
    confirm_title: str = ""
    confirm_message: str = ""
    confirm_label: str = ""
    _confirm_what: str = ""
    _confirm_id: int = 0

    async def _load(self, actor=None) -> bool:
        """Reload the rows for the actor (checked again unless given); ``False`` when
        signed out."""
        actor = actor or await self.actor()
        if actor is None:
            return False
        found = await call_domain(
            devices.list_devices,
            actor=actor,
            search=self.search,
            page=self.page,
            page_size=PAGE_SIZE,
        )
        if found.page > found.pages:  # the last page's last device went: show the one before
            self.page = found.pages
            return await self._load(actor)
        self.rows = [
            {
                "id": str(d.id),
                "ae_title": d.ae_title,
                "centre": d.centre.code,
                "uploads_as": d.uploads_as,
                "networks": d.networks,
                "open": "yes" if d.open_to_any_address else "no",
                "description": d.description,
                "last_seen": _when(d.last_seen_at),
                "active": "yes" if d.is_active else "no",
                "retrieves": "yes" if d.may_retrieve else "no",
                "move": _move_target(d.move_port, d.move_address),
            }
            for d in found.items
        ]
        self.total, self.pages = found.total, found.pages
        self.is_admin_view = actor.is_admin
        return True

    async def _listener_status(self, actor) -> None:
        status = await call_domain(devices.listener_status, actor=actor)
        if status.port is None:
            self.listener = (
                "The DICOM listener is off: set DICOM_PORT (e.g. 11112) and restart the app, "
                "or run `pacs dicom-listener --port 11112`."
            )
        else:
            state = "answering" if status.answering else "not answering on this machine"
            self.listener = (
                f"Devices send to AE title {status.ae_title}, port {status.port} of this "
                f"server ({state})."
            )
        self.listener_ok = status.port is not None and status.answering

    @rx.event
    async def open(self):
        self.ready, self.denied, self.notice, self.error = False, "", "", ""
        self.page = 1
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            await self._load(actor)
            await self._listener_status(actor)
        except PermissionDenied as exc:
            self.denied, self.rows = exc.message, []
        self.ready = True

    # --- the form -------------------------------------------------------------------------

    async def _uploaders(self, actor, centre_id: str) -> None:
        self.uploader_options = []
        if not centre_id:
            return
        choices = await call_domain(devices.uploader_choices, actor=actor, centre_id=int(centre_id))
        self.uploader_options = [
            {"id": str(c.id), "label": f"{c.username} ({c.role})"} for c in choices
        ]

    @rx.event
    async def open_new(self):
        self.form_error, self.notice, self.error = "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            centres = await call_domain(users.list_centres, actor=actor)
            self.centre_options = [
                {"id": str(c.id), "label": f"{c.code} · {c.name}"} for c in centres if c.is_active
            ]
            own = str(actor.centre_id) if actor.centre_id is not None else NO_CHOICE
            self.form_centre = own if not actor.is_admin else NO_CHOICE
            await self._uploaders(actor, self.form_centre)
        except DomainError as exc:
            self.error = exc.message
            return
        self.edit_id = 0
        self.form_title = "New DICOM device"
        self.form_ae_title, self.form_networks, self.form_description = "", "", ""
        self.form_uploader, self.form_may_retrieve = NO_CHOICE, False
        self.form_move_port, self.form_move_address = "", ""
        self.form_open = True

    @rx.event
    async def open_edit(self, device_id: str):
        self.form_error, self.notice, self.error = "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        try:
            device = await call_domain(devices.get_device, actor=actor, device_id=int(device_id))
            self.centre_options = [{"id": str(device.centre.id), "label": f"{device.centre.code}"}]
            await self._uploaders(actor, str(device.centre.id))
        except DomainError as exc:
            self.error = exc.message
            return
        self.edit_id = device.id
        self.form_title = f"Edit device {device.ae_title}"
        self.form_ae_title, self.form_networks = device.ae_title, device.networks
        self.form_description = device.description
        self.form_centre, self.form_uploader = str(device.centre.id), str(device.uploads_as_id)
        self.form_may_retrieve = device.may_retrieve
        self.form_move_port = str(device.move_port) if device.move_port is not None else ""
        self.form_move_address = device.move_address
        self.form_open = True

    @rx.event
    def set_form_open(self, value: bool):
        self.form_open = value
        self.form_error = ""

    @rx.event
    async def set_form_centre(self, value: str):
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        if self.edit_id or value not in {o["id"] for o in self.centre_options}:
            return
        self.form_centre, self.form_uploader = value, NO_CHOICE
        try:
            await self._uploaders(actor, value)
        except DomainError as exc:
            self.form_error = exc.message

    @rx.event
    def set_form_may_retrieve(self, value: bool):
        self.form_may_retrieve = bool(value)

    @rx.event
    def set_form_uploader(self, value: str):
        self.form_uploader = value if value in {o["id"] for o in self.uploader_options} else ""

    @rx.event
    async def save(self, form: dict):
        self.form_error, self.notice, self.error = "", "", ""
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        fields = {
            "ae_title": str(form.get("ae_title", "")),
            "uploads_as_id": int(self.form_uploader) if self.form_uploader else None,
            "networks": str(form.get("networks", "")),
            "description": str(form.get("description", "")),
            "may_retrieve": self.form_may_retrieve,
            "move_port": str(form.get("move_port", "")),
            "move_address": str(form.get("move_address", "")),
            "address": self._client_address(),
        }
        try:
            if self.edit_id:
                device = await call_domain(
                    devices.update_device, actor=actor, device_id=self.edit_id, **fields
                )
                self.notice = f"Saved device {device.ae_title}."
            else:
                if not self.form_centre:
                    self.form_error = "Choose the centre the device belongs to."
                    return
                device = await call_domain(
                    devices.create_device,
                    actor=actor,
                    centre_id=int(self.form_centre),
                    **fields,
                )
                self.notice = (
                    f"Registered {device.ae_title} for {device.centre.code}: it may send now, "
                    f"uploading as {device.uploads_as}."
                )
        except DomainError as exc:
            self.form_error = exc.message
            return
        self.form_open = False
        await self._load(actor)

    # --- deactivate, activate, delete -------------------------------------------------------

    @rx.event
    def ask(self, what: str, row: dict):
        self.notice, self.error = "", ""
        name = row["ae_title"]
        if what == "delete":
            self.confirm_title = f"Delete device {name}?"
            self.confirm_message = (
                f"{name} can no longer send images: its associations are rejected. What it "
                "sent is kept. To let it send again, register it anew."
            )
            self.confirm_label = "Delete"
        elif row["active"] == "yes":
            what = "deactivate"
            self.confirm_title = f"Deactivate device {name}?"
            self.confirm_message = (
                f"{name}'s associations are rejected until you activate it again, and an "
                "association open now stores nothing more. What it sent is kept."
            )
            self.confirm_label = "Deactivate"
        else:
            what = "activate"
            self.confirm_title = f"Activate device {name}?"
            self.confirm_message = f"{name} may send images again, from {row['networks']}."
            self.confirm_label = "Activate"
        self._confirm_what, self._confirm_id = what, int(row["id"])
        self.confirm_open = True

    @rx.event
    def cancel_confirm(self):
        self.confirm_open = False

    @rx.event
    async def confirm(self):
        self.confirm_open = False
        actor = await self.actor()
        if actor is None:
            return rx.redirect(routes.LOGIN)
        what, device_id = self._confirm_what, self._confirm_id
        address = self._client_address()
        try:
            if what == "delete":
                name = await call_domain(
                    devices.delete_device, actor=actor, device_id=device_id, address=address
                )
                self.notice = f"Deleted device {name}."
            else:
                device = await call_domain(
                    devices.set_device_active,
                    actor=actor,
                    device_id=device_id,
                    active=what == "activate",
                    address=address,
                )
                state = "active" if device.is_active else "deactivated"
                self.notice = f"{device.ae_title} is now {state}."
        except DomainError as exc:
            self.error = exc.message
            return
        await self._load(actor)


def _select(options: rx.Var, value: rx.Var, on_change, id: str, placeholder: str, **kw):
    return rx.select.root(
        rx.select.trigger(placeholder=placeholder, id=id, width="100%"),
        rx.select.content(rx.foreach(options, lambda o: rx.select.item(o["label"], value=o["id"]))),
        value=value,
        on_change=on_change,
        **kw,
    )


def _form_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(DevicesState.form_title),
            rx.form(
                rx.vstack(
                    error_callout(DevicesState.form_error, "device-form-error"),
                    field(
                        "AE title",
                        rx.input(
                            name="ae_title",
                            default_value=DevicesState.form_ae_title,
                            id="device-ae-title",
                            required=True,
                            max_length=16,
                            width="100%",
                        ),
                        "The device's own (calling) AE title, as set on the modality: up to 16 "
                        "characters, case-sensitive.",
                    ),
                    field(
                        "Centre",
                        _select(
                            DevicesState.centre_options,
                            DevicesState.form_centre,
                            DevicesState.set_form_centre,
                            "device-centre",
                            "Choose a centre",
                            disabled=(DevicesState.edit_id != 0) | ~DevicesState.is_admin_view,
                        ),
                    ),
                    field(
                        "Uploads as",
                        _select(
                            DevicesState.uploader_options,
                            DevicesState.form_uploader,
                            DevicesState.set_form_uploader,
                            "device-uploader",
                            "Choose an account",
                        ),
                        "Its studies are the centre's, uploaded by this account (a technician "
                        "or centre user), as if uploaded on the web.",
                    ),
                    field(
                        "Addresses it calls from",
                        rx.input(
                            name="networks",
                            default_value=DevicesState.form_networks,
                            id="device-networks",
                            required=True,
                            width="100%",
                        ),
                        "IP addresses or networks, separated by spaces (10.1.2.3 "
                        "10.1.4.0/24). 0.0.0.0/0 lets any IPv4 address use this AE title.",
                    ),
                    field(
                        "Description",
                        rx.input(
                            name="description",
                            default_value=DevicesState.form_description,
                            id="device-description",
                            width="100%",
                        ),
                    ),
                    switch_field(
                        "May also query and retrieve (C-FIND, C-GET, C-MOVE)",
                        DevicesState.form_may_retrieve,
                        DevicesState.set_form_may_retrieve,
                        "device-may-retrieve",
                        "For a reading workstation: it may find and fetch every study its "
                        "account may see. A modality that only sends needs nothing of this.",
                    ),
                    rx.hstack(
                        field(
                            "C-MOVE port",
                            rx.input(
                                name="move_port",
                                default_value=DevicesState.form_move_port,
                                id="device-move-port",
                                input_mode="numeric",
                                max_length=5,
                                width="100%",
                            ),
                        ),
                        field(
                            "C-MOVE address",
                            rx.input(
                                name="move_address",
                                default_value=DevicesState.form_move_address,
                                id="device-move-address",
                                max_length=45,
                                width="100%",
                            ),
                        ),
                        spacing="3",
                        width="100%",
                    ),
                    rx.text(
                        "Where the device's own storage SCP takes studies a C-MOVE sends it "
                        "(asked for by itself or another device of the centre). Empty port: "
                        "it is no C-MOVE destination. Empty address: the address it calls "
                        "from, when it asks for itself.",
                        size="1",
                        color_scheme="gray",
                    ),
                    dialog_buttons("Save", "device-save"),
                    spacing="3",
                ),
                on_submit=DevicesState.save,
                reset_on_submit=False,
            ),
        ),
        open=DevicesState.form_open,
        on_open_change=DevicesState.set_form_open,
    )


def _confirm_dialog() -> rx.Component:
    return confirm_dialog(
        open=DevicesState.confirm_open,
        title=DevicesState.confirm_title,
        description=DevicesState.confirm_message,
        label=DevicesState.confirm_label,
        on_confirm=DevicesState.confirm,
        on_cancel=DevicesState.cancel_confirm,
        id="device-confirm",
        color=rx.cond(DevicesState.confirm_label == "Activate", "green", "red"),
    )


def _row(row: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["ae_title"], weight="medium")),
        rx.table.cell(row["centre"]),
        rx.table.cell(
            rx.hstack(
                rx.text(row["uploads_as"]),
                rx.cond(
                    row["retrieves"] == "yes",
                    rx.badge("query/retrieve", color_scheme="blue"),
                ),
                rx.cond(row["move"] != "", rx.badge(row["move"], color_scheme="gray")),
                spacing="2",
                wrap="wrap",
            )
        ),
        rx.table.cell(
            rx.hstack(
                rx.text(row["networks"], size="2"),
                rx.cond(row["open"] == "yes", rx.badge("any address", color_scheme="orange")),
                spacing="2",
                wrap="wrap",
            )
        ),
        rx.table.cell(row["description"]),
        rx.table.cell(row["last_seen"]),
        rx.table.cell(active_badge(row["active"])),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    "Edit",
                    size="1",
                    variant="soft",
                    on_click=DevicesState.open_edit(row["id"]),
                    id="edit-device-" + row["ae_title"],
                ),
                toggle_button(
                    row["active"],
                    DevicesState.ask("toggle", row),
                    "toggle-device-" + row["ae_title"],
                ),
                rx.button(
                    "Delete",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=DevicesState.ask("delete", row),
                    id="delete-device-" + row["ae_title"],
                ),
                spacing="2",
            )
        ),
        id="device-row-" + row["ae_title"],
    )


@rx.page(route=routes.DEVICES, title="DICOM devices · PACS", on_load=DevicesState.open)
def devices_page() -> rx.Component:
    headers = (
        "AE title",
        "Centre",
        "Uploads as",
        "Addresses",
        "Description",
        "Last association",
        "Status",
        "",
    )
    body = rx.vstack(
        rx.callout(
            DevicesState.listener,
            icon=rx.cond(DevicesState.listener_ok, "radio-tower", "info"),
            color_scheme=rx.cond(DevicesState.listener_ok, "blue", "orange"),
            id="listener-status",
            width="100%",
        ),
        rx.hstack(
            rx.input(
                placeholder="Search AE title, description or centre",
                value=DevicesState.search,
                on_change=DevicesState.set_search.debounce(300),
                width="320px",
                id="device-search",
            ),
            rx.spacer(),
            rx.button(
                rx.icon("plus", size=16),
                "New device",
                on_click=DevicesState.open_new,
                id="new-device-open",
            ),
            width="100%",
        ),
        notice_callout(DevicesState.notice),
        error_callout(DevicesState.error, "error"),
        rx.cond(
            DevicesState.rows.length() > 0,
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
                rx.table.body(rx.foreach(DevicesState.rows, _row)),
                width="100%",
                id="devices-table",
            ),
            rx.text(
                rx.cond(
                    DevicesState.search != "",
                    "No devices match this search.",
                    "No DICOM devices yet: register a modality's AE title and addresses so "
                    "that it can send images here.",
                ),
                color_scheme="gray",
                id="devices-empty",
            ),
        ),
        pager(DevicesState, "devices", id="devices-pager"),
        _form_dialog(),
        _confirm_dialog(),
        width="100%",
        spacing="3",
    )
    return shell(
        "DICOM devices",
        rx.cond(
            DevicesState.ready,
            rx.cond(DevicesState.denied != "", access_denied(DevicesState.denied), body),
            rx.center(rx.spinner(), padding="3em"),
        ),
    )
