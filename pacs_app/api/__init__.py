"""The HTTP API (REST now; DICOMweb later), mounted into the Reflex backend."""

from pacs_app.api.main import build_api

__all__ = ["build_api"]
