"""Where DICOM files live, behind a small interface (local disk now; an object store later)."""

from functools import cache

from pacs_app.storage.base import Digest, KeyExists, Storage, StorageError, StoredObject
from pacs_app.storage.local import LocalStorage


@cache
def get_storage(root: str | None = None) -> Storage:
    """The configured storage (``STORAGE_PATH``), created once per root."""
    from pacs_app.config import settings

    return LocalStorage(root or settings.storage_path)


__all__ = [
    "Digest",
    "KeyExists",
    "LocalStorage",
    "Storage",
    "StorageError",
    "StoredObject",
    "get_storage",
]
