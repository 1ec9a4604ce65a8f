"""Upload batches for the web uploader: files arrive one request each and are staged on disk.

A batch is created with the form's metadata, receives files one at a time (streamed to a
private staging folder, never served, each checked as it lands, so the page can show a result
per file), and is then committed in one :func:`~pacs_app.services.ingest.ingest` call, which
stores everything or nothing. A batch belongs to the user who opened it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import Session

from pacs_app.config import settings
from pacs_app.core.errors import InvalidInput, NotFound, StorageUnavailable, TooLarge
from pacs_app.dicom.reader import InvalidDicom, read_header
from pacs_app.models import Centre
from pacs_app.services.authz import Action, Actor, require
from pacs_app.services.ingest import IngestResult, StagedFile, StudyForm, ingest, is_archive
from pacs_app.storage import Storage

BATCH_ID_RE = re.compile(r"^[a-f0-9]{32}$")
STALE_AFTER_S = 24 * 3600
SWEEP_EVERY_S = 3600
log = logging.getLogger(__name__)


class FileCheck(BaseModel):
    index: int
    name: str
    size: int
    ok: bool
    message: str


def staging_failed(exc: OSError) -> StorageUnavailable:
    """The error for an upload that could not be written to the staging folder (its disk is
    full or gone)."""
    return StorageUnavailable(
        f"The upload could not be staged ({exc.strerror or exc}); nothing was stored."
    )


def staging_root() -> Path:
    """Private folder for uploads in progress, on the storage's filesystem (never served)."""
    root = Path(settings.storage_path) / ".staging"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise staging_failed(exc) from exc
    return root


def _batch_dir(batch_id: str) -> Path:
    if not BATCH_ID_RE.match(batch_id or ""):
        raise NotFound("No such upload batch.")
    return staging_root() / batch_id


def _load(actor: Actor, batch_id: str) -> tuple[Path, dict]:
    folder = _batch_dir(batch_id)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise NotFound("No such upload batch (it may have been committed or expired).") from exc
    if manifest.get("owner") != actor.user_id:
        raise NotFound("No such upload batch.")
    return folder, manifest


def _save(folder: Path, manifest: dict) -> None:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest))
    tmp.replace(folder / "manifest.json")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_stale(*, now: float | None = None) -> int:
    """Remove what uploads left in the staging folder untouched for a day: batches never
    committed, and files ``POST /studies`` staged before a crash stopped it. Returns how many
    entries went. The app runs it when it starts and then every hour."""
    now = time.time() if now is None else now
    root = staging_root()
    cutoff = now - STALE_AFTER_S
    removed = 0
    for entry in root.iterdir():
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            continue  # removed meanwhile, or cannot be: the next sweep tries again
    if removed:
        log.info("removed %d stale upload(s) from the staging folder", removed)
    return removed


def open_batch(*, session: Session, actor: Actor, form: StudyForm) -> str:
    """Start a batch for the actor's centre; returns its id."""
    centre = session.get(Centre, actor.centre_id) if actor.centre_id else None
    require(actor, Action.UPLOAD_STUDY, centre)
    batch_id = secrets.token_hex(16)
    folder = _batch_dir(batch_id)
    (folder / "files").mkdir(parents=True)
    _save(
        folder,
        {
            "owner": actor.user_id,
            "centre_id": actor.centre_id,
            "form": form.model_dump(mode="json"),
            "files": [],
        },
    )
    return batch_id


class FileSlot(BaseModel):
    """Where the caller streams one file of a batch; :func:`finish_file` then checks it."""

    batch_id: str
    key: str
    name: str
    path: Path
    limit_bytes: int


def reserve_file(*, actor: Actor, batch_id: str, name: str) -> FileSlot:
    folder, _ = _load(actor, batch_id)
    key = secrets.token_hex(8)
    return FileSlot(
        batch_id=batch_id,
        key=key,
        name=(name or "").strip().replace("/", "_")[:255] or "unnamed",
        path=folder / "files" / key,
        limit_bytes=settings.max_upload_file_mb * 1024 * 1024,
    )


def too_large(slot: FileSlot) -> TooLarge:
    """The error for a file that outgrew the limit while streaming (its bytes are removed)."""
    slot.path.unlink(missing_ok=True)
    return TooLarge(f"{slot.name}: over the {settings.max_upload_file_mb} MB limit")


def finish_file(*, actor: Actor, slot: FileSlot) -> FileCheck:
    """Check a streamed file (its header, or a zip's integrity) and add it to the batch.

    A refused file stays listed, so the batch can report it; committing a batch that holds a
    refused file is refused as a whole.
    """
    folder, _ = _load(actor, slot.batch_id)
    size = slot.path.stat().st_size
    if is_archive(slot.path):
        ok, message = True, "zip archive: its files are checked when the upload is committed"
        try:
            with zipfile.ZipFile(slot.path) as zf:
                bad = zf.testzip()
            if bad:
                ok, message = False, f"{slot.name}: the zip archive is damaged at {bad}"
        except zipfile.BadZipFile as exc:
            ok, message = False, f"{slot.name}: the zip archive is damaged ({exc})"
    else:
        try:
            header = read_header(slot.path, slot.name)
            ok, message = True, f"{header.modality or 'DICOM'} instance checked"
        except InvalidDicom as exc:
            ok, message = False, exc.message
    with _locked(folder):
        manifest = json.loads((folder / "manifest.json").read_text())
        check = FileCheck(
            index=len(manifest["files"]), name=slot.name, size=size, ok=ok, message=message
        )
        manifest["files"].append({**check.model_dump(), "key": slot.key})
        _save(folder, manifest)
    return check


def commit(
    *, session: Session, actor: Actor, batch_id: str, storage: Storage, address: str | None = None
) -> IngestResult:
    """Ingest every file of the batch as one upload, then discard the staging folder."""
    folder, manifest = _load(actor, batch_id)
    refused = [f for f in manifest["files"] if not f["ok"]]
    if refused:
        raise InvalidInput(
            f"{len(refused)} file(s) were refused, so nothing was stored: "
            + "; ".join(f["message"] for f in refused[:5])
            + (" …" if len(refused) > 5 else "")
        )
    files = [
        StagedFile(name=f["name"], path=folder / "files" / f["key"], disposable=True)
        for f in manifest["files"]
    ]
    result = ingest(
        session=session,
        actor=actor,
        files=files,
        form=StudyForm(**manifest["form"]),
        storage=storage,
        address=address,
        centre_id=manifest["centre_id"],
    )
    shutil.rmtree(folder, ignore_errors=True)
    return result


def discard(*, actor: Actor, batch_id: str) -> None:
    folder, _ = _load(actor, batch_id)
    shutil.rmtree(folder, ignore_errors=True)


def upload_centre(*, session: Session, actor: Actor) -> str:
    """The name of the centre the actor uploads for; refused unless the actor may upload."""
    centre = session.get(Centre, actor.centre_id) if actor.centre_id else None
    require(actor, Action.UPLOAD_STUDY, centre)
    return centre.name
