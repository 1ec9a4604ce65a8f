"""Reflex configuration, derived from the one settings object (pacs_app/config.py)."""

import os

import reflex as rx

from pacs_app.config import ROOT_DIR, settings

# The development server reloads when files under the project change; the database file and
# the DICOM store change at run time and must not trigger reloads.
_runtime_dirs = [ROOT_DIR / "data", ROOT_DIR / "storage", ROOT_DIR / "test-artifacts"]
for _d in _runtime_dirs:
    _d.mkdir(exist_ok=True)
os.environ.setdefault(
    "REFLEX_HOT_RELOAD_EXCLUDE_PATHS",
    ":".join(str(d) for d in [*_runtime_dirs, ROOT_DIR / "tests"]),
)

config = rx.Config(
    app_name="pacs_app",
    frontend_port=settings.frontend_port,
    backend_port=settings.backend_port,
    # Unset, Reflex follows the port `reflex run` is given (--backend-port, or BACKEND_PORT).
    **({"api_url": settings.api_url} if settings.api_url else {}),
    redis_url=settings.redis_url or None,
    trusted_proxy_hops=settings.trusted_proxy_hops,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
)
