"""The Reflex app: every page, plus the REST API mounted on the same backend.

``reflex run`` serves the UI, the API (``/auth/...``, ``/docs``, ``/openapi.json``) and, at
start, applies pending migrations (and, in development, creates the demo accounts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import reflex as rx

from pacs_app.api import build_api
from pacs_app.config import settings
from pacs_app.core import logs
from pacs_app.core.memory import keep_freed_memory, tune_collector
from pacs_app.services import system, uploads
from pacs_app.ui.errors import on_backend_error
from pacs_app.ui.head import head_components
from pacs_app.ui.pages import (  # noqa: F401  (register pages)
    ai_admin,
    analytics,
    audit,
    billing,
    centres,
    dashboard,
    devices,
    login,
    reading,
    studies,
    templates,
    upload,
    users,
    viewer,
)

logs.configure()
logging.getLogger("alembic").setLevel(logging.WARNING)


async def _sweep_staging_hourly() -> None:
    """Remove uploads abandoned in the staging folder (a crash during POST /studies, a web
    batch never committed) now and every hour."""
    while True:
        try:
            await asyncio.to_thread(uploads.sweep_stale)
        except Exception as exc:
            logging.getLogger(__name__).error("the staging folder sweep failed", exc_info=exc)
        await asyncio.sleep(uploads.SWEEP_EVERY_S)


@contextlib.asynccontextmanager
async def _bootstrap():
    """Lifespan task: migrate and check before serving; run the embedded AI worker (a child
    process, so this process never imports torch), the DICOM listener where DICOM_PORT is set
    (a child process too) and the ingest processes while the app runs."""
    system.bootstrap()
    from pacs_app.ai.worker import start_embedded
    from pacs_app.api import ingest_pool
    from pacs_app.dimse import listener

    children = [c for c in (start_embedded(), listener.start_embedded()) if c is not None]
    await ingest_pool.start()
    housekeeping = asyncio.create_task(_sweep_staging_hourly())
    try:
        yield
    finally:
        housekeeping.cancel()
        await ingest_pool.stop()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except Exception:
                child.kill()


keep_freed_memory()
app = rx.App(
    api_transformer=build_api(),
    backend_exception_handler=on_backend_error,
    head_components=head_components(),
)
app.register_lifespan_task(_bootstrap)
tune_collector()

__all__ = ["app", "settings"]
