"""DICOMweb on the same backend: QIDO-RS searches, WADO-RS retrieval and STOW-RS storage."""

from starlette.requests import Request

PREFIX = "/dicomweb"


def base_url(request: Request) -> str:
    """The DICOMweb root as the client reached it (Retrieve and bulk data URLs are under it)."""
    return str(request.base_url).rstrip("/") + PREFIX


def warning(text: str) -> str:
    """A ``Warning`` header's value (code 299, as PS3.18 uses it) saying ``text``, made safe
    to send in a header (no quotes or backslashes; Latin-1)."""
    text = text.replace("\\", "/").replace('"', "'")
    text = text.encode("latin-1", "replace").decode("latin-1")
    return f'299 pacs: "{text}"'
