"""Route constants and URL builders, in one place."""

from __future__ import annotations

import reflex as rx

from pacs_app.config import settings
from pacs_app.models import Role


def api_base() -> str:
    """Where the pages' own requests (the viewer's, the uploader's, the AI overlay's) reach
    the backend. Where one port serves pages and backend (``--single-port``, as production
    and the Docker image run) and ``API_URL`` is unset: nothing, so each request goes to the
    page's own origin, whatever address the browser used (``http://localhost:8000`` would
    send a radiologist's browser on another machine to its own computer). Otherwise
    Reflex's ``api_url``: ``API_URL``, or ``http://localhost:`` and the backend port
    ``reflex run`` was given (development: the pages come from another port)."""
    config = rx.config.get_config()
    if (
        not settings.api_url
        and config.frontend_port
        and config.frontend_port == config.backend_port
    ):
        return ""
    return config.api_url.rstrip("/")


INDEX = "/"
LOGIN = "/login"
ADMIN = "/admin"
CENTRE = "/centre"
TECHNICIAN = "/technician"
RADIOLOGIST = "/radiologist"
ADMIN_USERS = "/admin/users"
ADMIN_AUDIT = "/admin/audit"
ADMIN_CENTRES = "/admin/centres"
CENTRE_USERS = "/centre/users"
DEVICES = "/devices"
# The REST API owns /studies and /studies/{id} on the same port, so the pages use other paths.
STUDIES = "/study-list"
STUDY = "/study/[sid]"
UPLOAD = "/upload"
VIEWER = "/viewer/[sid]"
WORKLIST = "/worklist"
REPORT = "/report/[sid]"
ADMIN_TEMPLATES = "/admin/templates"
ADMIN_AI = "/admin/ai"
# The API owns /billing/...: the billing pages use other paths.
ADMIN_PRICING = "/admin/pricing"
ADMIN_PAYOUTS = "/admin/payouts"
INVOICES = "/invoices"
ANALYTICS = "/analytics"


def study_url(study_id: str) -> str:
    return f"/study/{study_id}"


def report_url(study_id: str) -> str:
    return f"/report/{study_id}"


DASHBOARD_BY_ROLE: dict[Role, str] = {
    Role.ADMIN: ADMIN,
    Role.CENTRE: CENTRE,
    Role.TECHNICIAN: TECHNICIAN,
    Role.RADIOLOGIST: RADIOLOGIST,
}


def dashboard_for(role: Role | str) -> str:
    return DASHBOARD_BY_ROLE[Role(role)]
