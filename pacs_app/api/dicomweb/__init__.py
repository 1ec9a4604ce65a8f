"""DICOMweb on the same backend: QIDO-RS searches, WADO-RS retrieval and STOW-RS storage."""

from starlette.requests import Request

from pacs_app.config import settings

PREFIX = "/dicomweb"


def base_url(request: Request) -> str:
    """The DICOMweb root as clients reach it (Retrieve and bulk data URLs are under it):
    under ``PUBLIC_URL`` where it is set, else under the host the request names."""
    root = settings.public_url or str(request.base_url)
    return root.rstrip("/") + PREFIX


def warning(text: str) -> str:
    """A ``Warning`` header's value (code 299, as PS3.18 uses it) saying ``text``, made safe
    to send in a header (no quotes or backslashes; Latin-1)."""
    text = text.replace("\\", "/").replace('"', "'")
    text = text.encode("latin-1", "replace").decode("latin-1")
    return f'299 pacs: "{text}"'
