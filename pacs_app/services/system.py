"""Start-up: migrate, seed demo data in development, refuse unsafe production state."""

from __future__ import annotations

import logging

from pacs_app.config import settings
from pacs_app.core import db
from pacs_app.services import seed

log = logging.getLogger("pacs.startup")


class UnsafeToStart(RuntimeError):
    """Production mode found a state it refuses to run with."""


def bootstrap(*, url: str | None = None, migrate: bool | None = None) -> None:
    """Bring the database to the current schema and check it is safe to serve.

    - applies pending migrations (unless ``MIGRATE_ON_START=false``);
    - in development, creates the demo centre and users on an empty database;
    - in production, refuses to start while a documented demo account keeps its demo password.
    """
    # Backends starting together (several workers of one app, or scale-out) take turns: each
    # would otherwise migrate and seed an empty database at once, and fail on the others'
    # tables and rows. The next one finds nothing left to do.
    with db.get_engine(url).connect() as turn, db.one_at_a_time(turn, "start"):
        if settings.migrate_on_start if migrate is None else migrate:
            db.migrate(url)
        with db.session_scope(url) as session:
            if settings.demo_data_allowed and seed.seed_demo_data(session):
                log.warning(
                    "Created the demo centre and users (admin/admin123, radiologist/radio123, "
                    "centre/centre123, technician/tech123). Development mode only."
                )
    if settings.is_production:
        with db.session_scope(url) as session:
            demo = seed.accounts_with_demo_passwords(session)
        if demo:
            raise UnsafeToStart(
                "PACS_ENV=production refuses to start: the account(s) "
                f"{', '.join(demo)} still use their documented demo password. Set new "
                "passwords with `pacs set-password USERNAME` or deactivate them with "
                "`pacs deactivate-user USERNAME`."
            )
