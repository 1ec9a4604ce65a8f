"""What a page shows, and the log keeps, when an event handler fails unexpectedly."""

from __future__ import annotations

import logging

import reflex as rx
from reflex.event import EventSpec

log = logging.getLogger("pacs_app.ui")


def on_backend_error(exception: Exception) -> EventSpec:
    """Reflex's ``backend_exception_handler``: the error is logged as its type and frames
    (:mod:`pacs_app.core.logs`; Reflex's own handler would print its message, which can
    quote patient data), and the user is told, without its details."""
    log.error("a page event failed", exc_info=exception)
    return rx.toast.error(
        "The server could not complete this action. Try again; if it happens again, tell "
        "your administrator (the error was logged).",
        id="backend_error",
    )
