"""Stateless components shared by the pages."""

from pacs_app.ui.components.tables import record_table
from pacs_app.ui.components.text import audit_detail, count_of, file_size, optional_day

__all__ = ["audit_detail", "count_of", "file_size", "optional_day", "record_table"]
