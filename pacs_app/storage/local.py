"""Local filesystem storage with atomic, durable writes (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from pacs_app.storage.base import KeyExists, StorageError, StoredObject

CHUNK = 1024 * 1024


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"storage key escapes the storage root: {key!r}")
        return path

    def put_file(
        self, key: str, source: Path, *, overwrite: bool = True, move: bool = False
    ) -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move and not overwrite:
            stored = self._adopt(key, target, Path(source))
            if stored is not None:
                return stored
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)  # atomic, and fails if the key exists
                finally:
                    os.unlink(tmp)
            _fsync_dir(target.parent)
        except FileExistsError as exc:
            raise KeyExists(f"{key} exists already") from exc
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    def _adopt(self, key: str, target: Path, source: Path) -> StoredObject | None:
        """Hard-link a disposable source into place (no copy); ``None`` across filesystems."""
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                os.fsync(src.fileno())
            os.link(source, target)
            _fsync_dir(target.parent)
        except FileExistsError as exc:
            raise KeyExists(f"{key} exists already") from exc
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                return None  # another filesystem, or no hard links: copy instead
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

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


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
