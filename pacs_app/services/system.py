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
    if budget := connection_budget_exceeded(url):
        log.warning(budget)
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


def connection_budget_exceeded(url: str | None = None) -> str | None:
    """On PostgreSQL, why the backend workers could open more connections than the server
    allows (each worker's pool and overflow, ``settings.database_pool``, against
    ``max_connections`` less the superusers' reserve); None where they cannot, or on SQLite.
    Past the server's limit, requests would fail under load rather than wait."""
    engine = db.get_engine(url)
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
    allowed = limit - reserved
    size, overflow = settings.database_pool
    workers = settings.backend_worker_count
    if workers * (size + overflow) <= allowed:
        return None
    return (
        f"{workers} backend worker(s) may open up to {workers * (size + overflow)} PostgreSQL "
        f"connections ({size} pooled and {overflow} more each), besides the AI worker's, the "
        f"DICOM listener's and the ingest processes', but the server allows {allowed} "
        f"(max_connections {limit}, less {reserved} reserved): under load, requests would "
        "fail. Lower DATABASE_POOL_SIZE and DATABASE_MAX_OVERFLOW (unset, they share 80 "
        "connections among the workers), or raise the server's max_connections."
    )
