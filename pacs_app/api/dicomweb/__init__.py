"""DICOMweb on the same backend: QIDO-RS searches, WADO-RS retrieval and STOW-RS storage."""


def warning(text: str) -> str:
    """A ``Warning`` header's value (code 299, as PS3.18 uses it) saying ``text``, made safe
    to send in a header (no quotes or backslashes; Latin-1)."""
    text = text.replace("\\", "/").replace('"', "'")
    text = text.encode("latin-1", "replace").decode("latin-1")
    return f'299 pacs: "{text}"'
