"""Stateless components shared by the pages."""

from pacs_app.ui.components.tables import record_table

__all__ = ["record_table"]
