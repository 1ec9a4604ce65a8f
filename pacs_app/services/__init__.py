"""The domain layer: use cases as plain functions.

Functions here are keyword-only, take an explicit SQLModel ``Session`` and the acting user
(:class:`~pacs_app.services.authz.Actor`), enforce authorization through
:mod:`pacs_app.services.authz`, return DTOs from :mod:`pacs_app.services.dto` and raise
:class:`~pacs_app.core.errors.DomainError` subclasses. Nothing here imports Reflex, FastAPI or
Starlette (``tests/test_layering.py`` enforces it), so the web UI, the HTTP API, the CLI and the
tests all call the same rules.
"""
