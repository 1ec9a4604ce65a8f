"""Route constants and URL builders, in one place."""

from __future__ import annotations

from pacs_app.models import Role

INDEX = "/"
LOGIN = "/login"
ADMIN = "/admin"
CENTRE = "/centre"
TECHNICIAN = "/technician"
RADIOLOGIST = "/radiologist"
ADMIN_USERS = "/admin/users"
ADMIN_AUDIT = "/admin/audit"
CENTRE_USERS = "/centre/users"

DASHBOARD_BY_ROLE: dict[Role, str] = {
    Role.ADMIN: ADMIN,
    Role.CENTRE: CENTRE,
    Role.TECHNICIAN: TECHNICIAN,
    Role.RADIOLOGIST: RADIOLOGIST,
}


def dashboard_for(role: Role | str) -> str:
    return DASHBOARD_BY_ROLE[Role(role)]
