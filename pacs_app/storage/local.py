"""Local filesystem storage with atomic, durable writes (temp file or hard link, fsync)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from pacs_app.storage.base import Digest, KeyExists, StorageError, StoredObject

CHUNK = 1024 * 1024


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        """The file of ``key``: relative, of plain names, so it cannot leave the root. (Checked
        on the key's text: resolving the path on disk cost a system call per folder.)"""
        parts = key.split("/")
        if not key or "\0" in key or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"storage key escapes the storage root: {key!r}")
        return self.root.joinpath(*parts)

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
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move and not overwrite:
            stored = self._adopt(key, target, Path(source), durable, digest)
            if stored is not None:
                return stored
        hasher = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)  # atomic, and fails if the key exists
                finally:
                    os.unlink(tmp)
            if durable:
                _fsync_path(target.parent)
        except FileExistsError as exc:
            raise KeyExists(f"{key} exists already") from exc
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc
        return StoredObject(key=key, size=size, sha256=hasher.hexdigest())

    def _adopt(
        self, key: str, target: Path, source: Path, durable: bool, digest: Digest | None
    ) -> StoredObject | None:
        """Hard-link a disposable source into place (no copy); ``None`` across filesystems.

        Linking first and syncing after lets one journal commit carry both the data and the
        new name on journalling filesystems; the folder's own fsync is what POSIX asks for."""
        try:
            if digest is None:
                hasher = hashlib.sha256()
                size = 0
                with open(source, "rb") as src:
                    while chunk := src.read(CHUNK):
                        hasher.update(chunk)
                        size += len(chunk)
                digest = Digest(size=size, sha256=hasher.hexdigest())
            os.link(source, target)
            if durable:
                self._sync_paths([target])
        except FileExistsError as exc:
            raise KeyExists(f"{key} exists already") from exc
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                return None  # another filesystem, or no hard links: copy instead
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc
        return StoredObject(key=key, size=digest.size, sha256=digest.sha256)

    def sync(self, keys: Sequence[str]) -> None:
        try:
            self._sync_paths([self._path(k) for k in keys])
        except OSError as exc:
            raise StorageError(f"could not make the stored files durable: {exc}") from exc

    @staticmethod
    def _sync_paths(paths: Sequence[Path]) -> None:
        """fsync each file, then each folder holding them (their names), once."""
        for path in paths:
            _fsync_path(path)
        for folder in dict.fromkeys(p.parent for p in paths):
            _fsync_path(folder)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"missing object {key}") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):  # drop the study folder once it is empty
            path.parent.rmdir()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
