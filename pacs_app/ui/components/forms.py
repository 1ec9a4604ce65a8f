"""Pieces of the administration pages' forms and tables: a labelled field, an on/off
setting, a form's error, a notice of what was done, dialog buttons, a row's active badge and
(de)activate button, a confirmation dialog and a list's pager."""

from __future__ import annotations

import reflex as rx


def field(label: str, control: rx.Component, hint: str = "") -> rx.Component:
    """A form control under its label, with a grey hint below where given."""
    parts = [rx.text(label, size="2", weight="medium"), control]
    if hint:
        parts.append(rx.text(hint, size="1", color_scheme="gray"))
    return rx.vstack(*parts, spacing="1", width="100%")


def error_callout(message: rx.Var, id: str) -> rx.Component:
    """A red callout with ``message``, shown while it is not empty."""
    return rx.cond(
        message != "",
        rx.callout(message, color_scheme="red", icon="triangle-alert", id=id, width="100%"),
    )


def notice_callout(message: rx.Var) -> rx.Component:
    """A green callout with what was just done (id ``notice``), shown while it is not empty."""
    return rx.cond(
        message != "",
        rx.callout(message, icon="check", color_scheme="green", id="notice"),
    )


def switch_field(label: str, checked: rx.Var, on_change, id: str, hint: str) -> rx.Component:
    """An on/off setting of a form, its label and a grey hint beside the switch; the state
    holds the value (the name only keeps the form from collecting it by its id)."""
    return rx.hstack(
        rx.switch(checked=checked, on_change=on_change, id=id, name=id),
        rx.vstack(
            rx.text(label, size="2", weight="medium"),
            rx.text(hint, size="1", color_scheme="gray"),
            spacing="0",
        ),
        align="start",
        spacing="3",
        width="100%",
    )


def dialog_buttons(label: str, id: str, **button_props) -> rx.Component:
    """A dialog form's Cancel (closes it) and submit buttons."""
    return rx.hstack(
        rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", type="button")),
        rx.button(label, type="submit", id=id, **button_props),
        justify="end",
        width="100%",
    )


def active_badge(active: rx.Var) -> rx.Component:
    """ "active" in green or "inactive" in red, for a row whose ``active`` is "yes" or not."""
    return rx.cond(
        active == "yes",
        rx.badge("active", color_scheme="green"),
        rx.badge("inactive", color_scheme="red"),
    )


def toggle_button(active: rx.Var, on_click, id) -> rx.Component:
    """A row's "Deactivate" (red) or "Activate" (green) button, by its ``active`` ("yes")."""
    return rx.button(
        rx.cond(active == "yes", "Deactivate", "Activate"),
        size="1",
        variant="soft",
        color_scheme=rx.cond(active == "yes", "red", "green"),
        on_click=on_click,
        id=id,
    )


def confirm_dialog(
    *, open, title, description, label, on_confirm, on_cancel, id: str, color
) -> rx.Component:
    """A confirmation asked before a change: ``title`` and ``description`` (components or
    vars), Cancel, and the ``label`` button in ``color`` that confirms (id ``id``)."""
    title = title if isinstance(title, tuple | list) else (title,)
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(*title),
            rx.alert_dialog.description(description),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button("Cancel", variant="soft", color_scheme="gray", on_click=on_cancel)
                ),
                rx.alert_dialog.action(
                    rx.button(label, on_click=on_confirm, id=id, color_scheme=color)
                ),
                justify="end",
                spacing="3",
                margin_top="1em",
            ),
        ),
        open=open,
    )


def pager(
    state, noun: str, previous: str = "Previous", next: str = "Next", id: str = "pager"
) -> rx.Component:
    """Buttons to the previous and next page of ``state``'s list (a ``PagedMixin``), and
    where it stands: "Page 2 of 5 · 113 devices"."""
    return rx.hstack(
        rx.button(
            previous,
            on_click=state.prev_page,
            variant="soft",
            disabled=state.page <= 1,
            id=f"{id}-prev",
        ),
        rx.text(
            "Page ",
            state.page,
            " of ",
            state.pages,
            " · ",
            state.total,
            f" {noun}",
            size="2",
            id=id,
        ),
        rx.button(
            next,
            on_click=state.next_page,
            variant="soft",
            disabled=state.page >= state.pages,
            id=f"{id}-next",
        ),
        align="center",
    )
