"""The storage interface: put/get/delete/exists by key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class StorageError(RuntimeError):
    """A storage operation failed (disk full, permissions, a missing object)."""


class KeyExists(StorageError):
    """``put_file(..., overwrite=False)`` found the key taken."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Digest:
    """A file's size and sha256, where the caller computed them as it wrote the file."""

    size: int
    sha256: str


class Storage(Protocol):
    """Keys look like ``{centre}/{study_id}/instance_NNN.dcm``; values are whole files.

    ``put_file`` is atomic: after it returns the object is complete, and durable unless the
    caller asked for ``durable=False``; if it raises, nothing is left under the key.
    """

    def put_file(
        self,
        key: str,
        source: Path,
        *,
        overwrite: bool = True,
        move: bool = False,
        durable: bool = True,
        digest: Digest | None = None,
    ) -> StoredObject:
        """Store ``source`` under ``key``.

        ``overwrite=False`` raises :class:`KeyExists` when the key is taken; ``move=True``
        lets the store take the file over instead of copying it (the caller must not change
        it afterwards). ``durable=False`` returns before the object is on stable storage: the
        caller must :meth:`sync` it before relying on it (ingest does so before its commit,
        overlapping the wait with its database work). ``digest``, when given, is trusted as
        the file's size and sha256 instead of reading the file again.
        """
        ...

    def sync(self, keys: Sequence[str]) -> None:
        """Make the objects under ``keys`` durable: once it returns, they survive a crash."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to read the object from, where the back-end has one."""
        ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...
