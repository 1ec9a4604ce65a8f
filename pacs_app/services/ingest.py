"""DICOM ingest: validate every file, then store files and rows together, or nothing.

Used by the REST upload, the web upload, DICOMweb STOW-RS and the DICOM listener (C-STORE).
Callers stage the uploaded bytes in a private temporary folder and pass :class:`StagedFile`s;
zip archives among them are unpacked here (within limits).

All-or-nothing: every file's header is read and checked before anything is written; if any
file is refused, or a write or the commit fails, no row and no file of the upload remains.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import string
import tempfile
import zipfile
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Row, bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from pacs_app.config import settings
from pacs_app.core import db
from pacs_app.core.errors import InvalidInput, NotFound, StorageUnavailable, TooLarge
from pacs_app.core.fileio import sha256_of
from pacs_app.dicom import sameness
from pacs_app.dicom.matching import normalize_name, study_matching_values
from pacs_app.dicom.reader import DicomHeader, InvalidDicom, read_header
from pacs_app.models import Centre, Instance, Priority, Series, Study, StudyStatus
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.authz import Action, Actor, require
from pacs_app.services.dto import StudyPublic
from pacs_app.storage import Digest, KeyExists, Storage, StorageError, StoredObject

STUDY_ID_ALPHABET = string.ascii_uppercase + string.digits
STUDY_ID_LENGTH = 8
AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class StagedFile:
    """An uploaded file already on local disk; ``name`` is what the user called it.

    ``disposable``: the file is the caller's temporary copy, which storage may take over
    (hard-link) instead of copying, when it lies on the same filesystem.
    """

    name: str
    path: Path
    disposable: bool = False
    digest: Digest | None = None  # size and sha256, where the caller hashed it as it wrote it
    # the SOP Class and Instance UIDs its sender declared for it (a C-STORE request's), which
    # its data set must carry: a file whose header names another instance is refused
    declared: tuple[str, str] | None = None


class DeclarationMismatch(InvalidDicom):
    """A data set is not the instance its sender declared (a C-STORE request's Affected SOP
    Class or Instance UID names another): storing it would file it under the wrong identity."""

    code = "data_set_mismatch"


class StudyForm(BaseModel):
    """Patient and order data typed in the upload form; empty fields come from the header."""

    patient_name: str = ""
    patient_id: str = ""
    patient_age: str = ""
    patient_sex: str = ""
    modality: str = ""
    body_part: str = ""
    clinical_notes: str = ""
    priority: Priority = Priority.ROUTINE

    @field_validator(
        "patient_name",
        "patient_id",
        "modality",
        "body_part",
        "clinical_notes",
        "patient_sex",
        "patient_age",
        mode="before",
    )
    @classmethod
    def _strip(cls, value: object) -> str:
        return "" if value is None else str(value).strip()

    @field_validator("patient_age")
    @classmethod
    def _age(cls, value: str) -> str:
        return normalize_age(value)

    @field_validator("patient_sex")
    @classmethod
    def _sex(cls, value: str) -> str:
        value = value.upper()[:1]
        if value and value not in "MFO":
            raise ValueError("patient_sex must be M, F or O")
        return value

    @field_validator("modality", "body_part")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def normalize_age(value: str) -> str:
    """``"45"`` or ``"45Y"`` to the DICOM age string ``"045Y"``; ``""`` stays empty.

    Raises ``ValueError`` for anything that is not a number of days, weeks, months or years.
    """
    if not value:
        return ""
    match = AGE_RE.match(value)
    if not match:
        raise ValueError(
            f"patient_age must be a number of years (e.g. 45) or a DICOM age such as 045Y, "
            f"006M, 003W or 010D; got {value!r}"
        )
    number, unit = int(match.group(1)), (match.group(2) or "Y").upper()
    if unit == "Y" and number > 150:
        raise ValueError(f"patient_age {number} years is not plausible")
    return f"{number:03d}{unit}"


class FileOutcome(BaseModel):
    name: str
    # "stored"; "duplicate": the study holds this instance already, the same data; "conflict":
    # the study holds another data set under this SOP Instance UID, which it keeps (``detail``
    # says what differs), so this file was not stored
    status: str
    study_id: str
    sop_instance_uid: str
    detail: str | None = None
    # a conflict's difference alone (what ``detail`` quotes), for a short answer such as a
    # C-STORE response's ErrorComment; left out of the JSON answers
    difference: str | None = Field(default=None, exclude=True)


class IngestResult(BaseModel):
    studies: list[StudyPublic]
    files: list[FileOutcome]
    stored: int
    duplicates: int
    conflicts: int = 0

    @property
    def study_id(self) -> str | None:
        return self.studies[0].study_id if len(self.studies) == 1 else None


def new_study_id(session: Session) -> str:
    """A random 8-character Study ID not used yet (the unique index is the final guard)."""
    conn = session.connection()
    for _ in range(20):
        candidate = "".join(secrets.choice(STUDY_ID_ALPHABET) for _ in range(STUDY_ID_LENGTH))
        if conn.execute(_STUDY_ID_TAKEN, {"study_id": candidate}).first() is None:
            return candidate
    raise RuntimeError("could not find a free Study ID after 20 tries")


def is_archive(path: Path) -> bool:
    """Whether the file is a zip archive to unpack. A file with DICOM's ``DICM`` marker after
    its 128-byte preamble is DICOM, and is not searched for a zip directory at its end (which
    costs a read of its last 64 KB when it has none)."""
    with path.open("rb") as fp:
        head = fp.read(132)
    if head[128:132] == b"DICM":
        return False
    return zipfile.is_zipfile(path)


def expand_archives(
    files: list[StagedFile], workdir: Path, archives: list[bool]
) -> list[StagedFile]:
    """Replace each zip archive by its members (named ``archive.zip/member``), within limits.
    ``archives``: which of ``files`` are archives (:func:`is_archive`)."""
    out: list[StagedFile] = []
    for f, archive in zip(files, archives, strict=True):
        if not archive:
            out.append(f)
            continue
        try:
            with zipfile.ZipFile(f.path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > settings.max_zip_entries:
                    raise TooLarge(
                        f"{f.name}: the archive has {len(members)} files, over "
                        f"the limit of {settings.max_zip_entries}"
                    )
                unpacked = sum(m.file_size for m in members)
                if unpacked > settings.max_zip_unpacked_mb * 1024 * 1024:
                    raise TooLarge(
                        f"{f.name}: the archive unpacks to "
                        f"{unpacked // (1024 * 1024)} MB, over the limit of "
                        f"{settings.max_zip_unpacked_mb} MB"
                    )
                target = Path(tempfile.mkdtemp(dir=workdir, prefix="zip-"))
                for i, member in enumerate(members):
                    base = Path(member.filename).name
                    if base.startswith(".") or base.startswith("__MACOSX") or base == "DICOMDIR":
                        continue  # hidden files, macOS metadata and DICOMDIR index files
                    dest = target / f"{i:06d}"
                    with zf.open(member) as src, dest.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
                    out.append(StagedFile(name=f"{f.name}/{member.filename}", path=dest))
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"{f.name}: the zip archive is damaged ({exc})") from exc
    return out


def _merge(form_value: str, header_value: str) -> tuple[str, str | None]:
    """The value to show, and the header's value when the form disagreed with it."""
    if form_value:
        differs = header_value and header_value.strip().upper() != form_value.strip().upper()
        return form_value, header_value if differs else None
    return header_value, None


def _apply_metadata(study: Study, form: StudyForm, header: DicomHeader) -> None:
    """Fill a new study's fields from the form, else the header; keep disagreements."""
    differences: dict[str, str] = {}
    for field, header_value in (
        ("patient_name", header.patient_name),
        ("patient_id", header.patient_id),
        ("patient_age", header.patient_age),
        ("patient_sex", header.patient_sex),
        ("modality", header.modality),
        ("body_part", header.body_part),
    ):
        value, disagreement = _merge(getattr(form, field), header_value)
        setattr(study, field, value)
        if disagreement is not None:
            differences[field] = disagreement
    study.patient_name_norm = normalize_name(study.patient_name)
    study.description = header.study_description
    study.accession_number = header.accession_number
    study.study_date = header.study_date
    # what QIDO-RS matches StudyTime, ReferringPhysicianName and StudyID on
    study.study_time, study.referring_physician_norm, study.dicom_study_id = study_matching_values(
        header.dicom_json
    )
    study.clinical_notes = form.clinical_notes[:4000]
    study.priority = form.priority
    study.priority_rank = form.priority.rank
    study.header_values = differences or None


def _check_sizes(files: list[StagedFile]) -> None:
    limit = settings.max_upload_file_mb * 1024 * 1024
    for f in files:
        size = f.path.stat().st_size
        if size > limit:
            raise TooLarge(
                f"{f.name}: the file is {size / 1024 / 1024:.1f} MB, over the "
                f"{settings.max_upload_file_mb} MB limit"
            )


def _as_declared(f: StagedFile, header: DicomHeader) -> DicomHeader:
    """``header``, once it names the instance ``f``'s sender declared (if it declared one)."""
    if f.declared is None:
        return header
    sop_class, sop_instance = (uid.strip("\0 ") for uid in f.declared)
    if header.sop_instance_uid != sop_instance:
        raise DeclarationMismatch(f.name, "its SOP Instance UID differs from the request's")
    if header.sop_class_uid != sop_class:
        raise DeclarationMismatch(f.name, "its SOP Class UID differs from the request's")
    return header


def ingest(
    *,
    session: Session,
    actor: Actor,
    files: list[StagedFile],
    form: StudyForm | None = None,
    storage: Storage,
    address: str | None = None,
    centre_id: int | None = None,
) -> IngestResult:
    """Ingest an upload of DICOM files (and zip archives of them) for the actor's centre.

    Instances are grouped by StudyInstanceUID and SeriesInstanceUID; a StudyInstanceUID the
    centre already has gets the new instances added; an instance whose SOPInstanceUID the
    study already holds is reported as a duplicate and not stored again.

    Raises :class:`PermissionDenied` unless the actor is a technician or centre user of the
    centre, :class:`InvalidInput` (:class:`InvalidDicom`) naming the first refused file. Nothing
    is stored unless everything is.

    Example::

        result = ingest(session=s, actor=tech, files=[StagedFile("ct1.dcm", path)],
                        form=StudyForm(patient_name="DOE^JANE", priority="urgent"),
                        storage=get_storage())
        result.studies[0].study_id  # e.g. "K3Q9ZP2A"
    """
    form = form or StudyForm()
    centre = upload_centre(session, actor, centre_id)
    if not files:
        raise InvalidInput("The upload is empty: add at least one DICOM file.")
    archives = [is_archive(f.path) for f in files]
    has_archives = any(archives)
    with (
        tempfile.TemporaryDirectory(prefix="pacs-ingest-")
        if has_archives
        else contextlib.nullcontext(None)
    ) as workdir:
        expanded = expand_archives(files, Path(workdir), archives) if has_archives else list(files)
        if not expanded:
            raise InvalidInput("The upload is empty: the archive holds no files.")
        _check_sizes(expanded)
        headers = [(f, _as_declared(f, read_header(f.path, f.name))) for f in expanded]
        return store_parsed(session, actor, centre, headers, form, storage, address)


def upload_centre(session: Session, actor: Actor, centre_id: int | None = None) -> Row:
    """The centre an upload by ``actor`` goes to (theirs, unless ``centre_id`` is given), once
    the actor may upload there: raises :class:`PermissionDenied` or :class:`NotFound`."""
    centre_id = centre_id if centre_id is not None else actor.centre_id
    centre = (
        session.connection().execute(_CENTRE_BY_ID, {"id": centre_id}).first()
        if centre_id is not None
        else None
    )
    require(actor, Action.UPLOAD_STUDY, centre)
    if centre is None:
        raise NotFound("No such centre.")
    return centre


def store_parsed(
    session: Session,
    actor: Actor,
    centre: Row,
    headers: list[tuple[StagedFile, DicomHeader]],
    form: StudyForm,
    storage: Storage,
    address: str | None = None,
) -> IngestResult:
    """Store files whose headers were read and accepted (:func:`read_header`) for ``centre``
    (from :func:`upload_centre`): what :func:`ingest` does once it has checked every file."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _store(session, actor, centre, headers, form, storage, address)
        except (IntegrityError, OperationalError, _Retry):
            # A concurrent upload created the same study or took the same key first:
            # everything of this attempt is undone; try again against the new state.
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class _Retry(Exception):
    """The database changed under this attempt (a concurrent upload); undo and try again."""


@dataclass
class _Planned:
    """One study of an upload: its files are written before the database transaction."""

    study_uid: str
    study_id: str
    is_new: bool
    first_header: DicomHeader
    stored: list[tuple[StagedFile, DicomHeader, int, str, StoredObject]]
    duplicates: list[tuple[StagedFile, DicomHeader]]
    # a re-sent SOP Instance UID with other data than the stored one's: what differs
    conflicts: list[tuple[StagedFile, DicomHeader, str]]


@dataclass(frozen=True)
class _Held:
    """An instance the study holds (or this upload has just written): its file and sha256."""

    key: str
    sha256: str


# The rows are read and written with statements built once: a modality or a PACS sending one
# instance per request does this hundreds of times a second, and building a statement (or
# flushing objects through the unit of work) costs several times executing it.
_STUDY, _SERIES, _INSTANCE = Study.__table__, Series.__table__, Instance.__table__
# The uploader's centre as a row; ``centre_id`` is what the authorization reads from a
# resource that is not a Centre object.
_CENTRE_BY_ID = select(Centre.__table__, Centre.__table__.c.id.label("centre_id")).where(
    Centre.__table__.c.id == bindparam("id")
)
_STUDY_OF_CENTRE = (_STUDY.c.centre_id == bindparam("centre")) & (
    _STUDY.c.study_instance_uid == bindparam("uid")
)
_SOPS_CHUNK = 500
_SOP_AMONG = _INSTANCE.c.sop_instance_uid.in_(bindparam("sops", expanding=True))
# The study, with those of the first (up to 500) SOP Instance UIDs it holds already: a row
# per one it holds, or a single row with a NULL when it holds none.
_FIND_STUDY = (
    select(
        _STUDY.c.id,
        _STUDY.c.study_id,
        _STUDY.c.next_instance_number,
        _INSTANCE.c.sop_instance_uid,
        _INSTANCE.c.storage_key,
        _INSTANCE.c.sha256,
    )
    .select_from(
        _STUDY.outerjoin(
            _INSTANCE,
            (_INSTANCE.c.study_pk == _STUDY.c.id) & _SOP_AMONG,
        )
    )
    .where(_STUDY_OF_CENTRE)
)
_KNOWN_SOPS = select(
    _INSTANCE.c.sop_instance_uid, _INSTANCE.c.storage_key, _INSTANCE.c.sha256
).where(_INSTANCE.c.study_pk == bindparam("study"), _SOP_AMONG)


@cache
def _lock_study():
    """The study, locked, with a row per series it has (one with NULLs when it has none), and
    its queued or running analysis. (Built on first use: the AI service imports this module.)"""
    from pacs_app.services import ai

    return (
        select(
            _STUDY,
            _SERIES.c.series_instance_uid.label("series_uid"),
            _SERIES.c.id.label("series_pk"),
            ai.active_job_of(_STUDY.c.id).label("active_job"),
        )
        .select_from(_STUDY.outerjoin(_SERIES, _SERIES.c.study_pk == _STUDY.c.id))
        .where(_STUDY_OF_CENTRE)
        .with_for_update(of=_STUDY)
    )


_STUDY_COLUMNS = tuple(c.name for c in _STUDY.c)
_STUDY_ID_TAKEN = select(_STUDY.c.id).where(_STUDY.c.study_id == bindparam("study_id"))
_INSERT_STUDY = insert(_STUDY).returning(_STUDY.c.id)
_INSERT_SERIES = insert(_SERIES).returning(_SERIES.c.id)
_INSERT_INSTANCE = insert(_INSTANCE).inline()  # no RETURNING: it may be pipelined
_COUNT_INTO_SERIES = (
    update(_SERIES)
    .where(_SERIES.c.id == bindparam("series"))
    .values(num_instances=_SERIES.c.num_instances + bindparam("added"))
)
_UPDATE_STUDY = (
    update(_STUDY)
    .where(_STUDY.c.id == bindparam("study"))
    .values(
        num_series=bindparam("n_series"),
        num_instances=bindparam("n_instances"),
        size_bytes=bindparam("n_bytes", type_=_STUDY.c.size_bytes.type),
        next_instance_number=bindparam("next_number"),
        priority=bindparam("new_priority", type_=_STUDY.c.priority.type),
        priority_rank=bindparam("new_rank"),
        updated_at=bindparam("now", type_=_STUDY.c.updated_at.type),
    )
)
_SYNC_POOL: ThreadPoolExecutor | None = None


def _sync_pool() -> ThreadPoolExecutor:
    global _SYNC_POOL
    if _SYNC_POOL is None:
        _SYNC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pacs-ingest-sync")
    return _SYNC_POOL


def _find_study(conn, centre_id: int, study_uid: str, sops: list[str]):
    """``(Study ID, next instance number)`` of the centre's study, or ``None``; and those of
    ``sops`` it holds already (the first 500 asked with the study, the rest in chunks)."""
    rows = conn.execute(
        _FIND_STUDY, {"centre": centre_id, "uid": study_uid, "sops": sops[:_SOPS_CHUNK]}
    ).all()
    if not rows:
        return None, {}
    study_pk = rows[0].id
    for i in range(_SOPS_CHUNK, len(sops), _SOPS_CHUNK):
        chunk = sops[i : i + _SOPS_CHUNK]
        rows += conn.execute(_KNOWN_SOPS, {"study": study_pk, "sops": chunk}).all()
    known = {
        r.sop_instance_uid: _Held(r.storage_key, r.sha256)
        for r in rows
        if r.sop_instance_uid is not None
    }
    return (rows[0].study_id, rows[0].next_instance_number), known


def _put_next(storage: Storage, prefix: str, number: int, staged: StagedFile):
    """Store under the first free ``instance_NNN.dcm`` key from ``number`` (never overwriting).

    Not durable yet: :func:`_store` syncs the files before its commit."""
    while True:
        key = f"{prefix}/instance_{number:03d}.dcm"
        try:
            return (
                number,
                key,
                storage.put_file(
                    key,
                    staged.path,
                    overwrite=False,
                    move=staged.disposable,
                    durable=False,
                    digest=staged.digest,
                ),
            )
        except KeyExists:
            number += 1  # a file left by an interrupted upload, or a concurrent one
        except StorageError as exc:
            raise StorageUnavailable(
                f"{staged.name} could not be stored ({exc}); nothing of this upload was kept."
            ) from exc


def _write_files(session, centre, by_study, storage, written) -> list[_Planned]:
    """Phase 1, with no database write: decide duplicates and write every new file."""
    conn = session.connection()
    plans = []
    for study_uid, items in by_study.items():
        found, known = _find_study(
            conn, centre.id, study_uid, [h.sop_instance_uid for _, h in items]
        )
        study_id, number = found or (new_study_id(session), 1)
        plan = _Planned(study_uid, study_id, found is None, items[0][1], [], [], [])
        for staged, header in items:
            held = known.get(header.sop_instance_uid)
            if held is not None:
                differs = _resend_difference(storage, held, staged)
                if differs:
                    plan.conflicts.append((staged, header, differs))
                else:
                    plan.duplicates.append((staged, header))
                continue
            number, key, stored = _put_next(storage, f"{centre.code}/{study_id}", number, staged)
            known[header.sop_instance_uid] = _Held(key, stored.sha256)
            written.append(key)
            plan.stored.append((staged, header, number, key, stored))
            number += 1
        plans.append(plan)
    return plans


def _resend_difference(storage: Storage, held: _Held, staged: StagedFile) -> str | None:
    """``None`` when ``staged`` is the instance ``held`` (the same bytes, the same data set
    under other file meta information, or the same data re-encoded without loss); otherwise
    what differs. Only a re-send gets here."""
    sent = staged.digest.sha256 if staged.digest is not None else sha256_of(staged.path)
    if sent == held.sha256:
        return None
    try:
        with storage.open(held.key) as stored, open(staged.path, "rb") as fp:
            return sameness.difference(stored, fp)
    except (OSError, StorageError) as exc:
        raise StorageUnavailable(
            f"{staged.name}: the study holds this instance already, and its stored file could "
            f"not be read to compare the two ({exc}); nothing of this upload was kept."
        ) from exc


def _insert_series(conn, study_pk: int, header: DicomHeader, num_instances: int = 0) -> int:
    """Insert the series ``header`` is of; returns its primary key."""
    series = Series(
        study_pk=study_pk,
        series_instance_uid=header.series_instance_uid,
        series_number=header.series_number,
        modality=header.modality,
        body_part=header.body_part,
        description=header.series_description,
        num_instances=num_instances,
    )
    return conn.execute(_INSERT_SERIES, series.model_dump(exclude={"id"})).scalar_one()


def _instance_values(
    study_pk: int, series_pk: int, number: int, header: DicomHeader, stored: StoredObject, now
) -> dict:
    """An Instance row's values, for the prepared insert."""
    return {
        "study_pk": study_pk,
        "series_pk": series_pk,
        "number": number,
        "sop_instance_uid": header.sop_instance_uid,
        "sop_class_uid": header.sop_class_uid,
        "instance_number": header.instance_number,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "rows": header.rows,
        "columns": header.columns,
        "number_of_frames": header.number_of_frames,
        "storage_key": stored.key,
        "size_bytes": stored.size,
        "sha256": stored.sha256,
        "dicom_json": header.dicom_json,
        "received_at": now,
    }


def _record_rows(session, actor, centre, form, plan: _Planned, address) -> SimpleNamespace:
    """Phase 2: the rows of one planned study, inside the upload's transaction. Returns the
    study's values as they will be committed, as attributes."""
    conn = session.connection()
    rows = conn.execute(_lock_study(), {"centre": centre.id, "uid": plan.study_uid}).all()
    row = rows[0] if rows else None
    if (row is None) != plan.is_new or (row is not None and row.study_id != plan.study_id):
        raise _Retry  # created or deleted by a concurrent upload since phase 1
    from pacs_app.services import workflow  # workflow -> studies -> ingest: import late

    if row is None:
        study = Study(
            study_id=plan.study_id,
            study_instance_uid=plan.study_uid,
            centre_id=centre.id,
            uploaded_by_id=actor.user_id,
            # the pool, or the centre's own queue until it routes the study
            status=StudyStatus.UNASSIGNED if centre.auto_release_to_pool else StudyStatus.RECEIVED,
        )
        _apply_metadata(study, form, plan.first_header)
        values = study.model_dump(exclude={"id"})
        study = SimpleNamespace(id=conn.execute(_INSERT_STUDY, values).scalar_one(), **values)
        series_ids: dict[str, int] = {}
        raised = study.priority is not Priority.ROUTINE
    else:
        # the row's values, as attributes (a model object would cost more than the SQL)
        study = SimpleNamespace(**dict(zip(_STUDY_COLUMNS, row, strict=False)))
        series_ids = {r.series_uid: r.series_pk for r in rows if r.series_uid is not None}
        raised = form.priority.rank > study.priority_rank  # a re-send may raise the priority
        if raised:
            study.priority, study.priority_rank = form.priority, form.priority.rank
    now = utcnow()
    instances: list[dict] = []
    added: Counter[int] = Counter()
    for _staged, header, number, _key, stored in plan.stored:
        series_pk = series_ids.get(header.series_instance_uid)
        if series_pk is None:
            series_pk = _insert_series(conn, study.id, header)
            series_ids[header.series_instance_uid] = series_pk
            study.num_series += 1
        instances.append(_instance_values(study.id, series_pk, number, header, stored, now))
        added[series_pk] += 1
        study.size_bytes += stored.size
        study.next_instance_number = max(study.next_instance_number, number + 1)
    study.num_instances += len(instances)
    study.updated_at = now
    with db.pipelined(session):  # PostgreSQL: these writes in one round trip
        if instances:
            conn.execute(_INSERT_INSTANCE, instances[0] if len(instances) == 1 else instances)
            counts = [{"series": k, "added": n} for k, n in added.items()]
            conn.execute(_COUNT_INTO_SERIES, counts[0] if len(counts) == 1 else counts)
        conn.execute(
            _UPDATE_STUDY,
            {
                "study": study.id,
                "n_series": study.num_series,
                "n_instances": study.num_instances,
                "n_bytes": study.size_bytes,
                "next_number": study.next_instance_number,
                "new_priority": study.priority,
                "new_rank": study.priority_rank,
                "now": now,
            },
        )
        audit.write(
            session,
            action=audit.AuditAction.STUDY_UPLOADED,
            actor=actor,
            resource_type="study",
            resource_id=study.study_id,
            centre_id=centre.id,
            address=address,
            detail=_upload_detail(plan),
        )
    if raised:
        stored_study = session.get(Study, study.id)  # as just written; the notice links to it
        workflow.notify_urgent(session, stored_study, tele=study.status is StudyStatus.UNASSIGNED)
    if plan.stored:  # an analysis, queued with the rows in the same transaction
        from pacs_app.services import ai  # ai -> workflow -> studies -> ingest: import late

        active_job = row.active_job if row is not None else None
        ai.enqueue_after_upload(session, study.id, study.priority_rank, centre, active_job)
    return study


def _upload_detail(plan: _Planned) -> dict:
    """The audit record of one study's part of an upload (UIDs only: no patient data)."""
    detail: dict = {"instances": len(plan.stored), "new_study": plan.is_new}
    if plan.conflicts:
        # re-sent UIDs with other data: what a sender thinks is stored here and is not
        detail["conflicts"] = [
            {"sop_instance_uid": h.sop_instance_uid, "difference": differs}
            for _, h, differs in plan.conflicts[:100]
        ]
        detail["conflicts_total"] = len(plan.conflicts)
    return detail


def _store(
    session: Session,
    actor: Actor,
    centre: Row,  # the centre's row, as read by ingest()
    headers: list[tuple[StagedFile, DicomHeader]],
    form: StudyForm,
    storage: Storage,
    address: str | None,
) -> IngestResult:
    """Write the files, then record them in one short transaction; undo both on any failure.

    Files go first, so the database's write lock (all of SQLite, or the study row in
    PostgreSQL) is held only for the rows, not while gigabytes are copied. They are made
    durable (fsync) before the commit, so that a committed row never points at a file a crash
    could lose; with a database server, in another thread while the rows are written.
    """
    by_study: dict[str, list[tuple[StagedFile, DicomHeader]]] = defaultdict(list)
    for item in headers:
        by_study[item[1].study_instance_uid].append(item)
    written: list[str] = []
    syncing: Future | None = None
    embedded = session.get_bind().dialect.name == "sqlite"
    try:
        plans = _write_files(session, centre, by_study, storage, written)
        if written and embedded:
            # Writing SQLite's rows is all CPU in this process: a second thread for the
            # fsyncs would only add hand-offs of the interpreter lock.
            _make_durable(storage, written)
        elif written:
            # A database server's round trips leave the disk time to sync the files.
            syncing = _sync_pool().submit(_make_durable, storage, list(written))
        if embedded:
            # End phase 1's reads: on SQLite the write transaction begins anew below, with
            # BEGIN IMMEDIATE (db.write_transaction). PostgreSQL goes on in the same
            # transaction: phase 1 took no lock, and its rows are read again, locked, below.
            session.rollback()
        with db.write_transaction(session):
            studies = [_record_rows(session, actor, centre, form, plan, address) for plan in plans]
            if syncing is not None:
                syncing.result()
            session.commit()
    except BaseException:
        session.rollback()
        if syncing is not None:
            wait([syncing])  # its failure, if any, is not this one's cause
        for key in written:
            storage.delete(key)
        raise

    from pacs_app.services.studies import study_public

    outcomes = [
        FileOutcome(
            name=f.name,
            status=status,
            study_id=plan.study_id,
            sop_instance_uid=h.sop_instance_uid,
            detail=conflict_message(differs) if differs else None,
            difference=differs,
        )
        for plan in plans
        for f, h, status, differs in (
            *((f, h, "stored", None) for f, h, *_ in plan.stored),
            *((f, h, "duplicate", None) for f, h in plan.duplicates),
            *((f, h, "conflict", d) for f, h, d in plan.conflicts),
        )
    ]
    order = {f.name: i for i, (f, _) in enumerate(headers)}
    outcomes.sort(key=lambda o: order.get(o.name, 0))
    return IngestResult(
        studies=[
            study_public(
                session,
                s,
                centre=centre,
                uploader=actor.username if s.uploaded_by_id == actor.user_id else None,
            )
            for s in studies
        ],
        files=outcomes,
        stored=sum(len(p.stored) for p in plans),
        duplicates=sum(len(p.duplicates) for p in plans),
        conflicts=sum(len(p.conflicts) for p in plans),
    )


def conflict_message(differs: str) -> str:
    """What a sender is told of a file not stored because the study holds other data under
    its SOP Instance UID (``differs``: what :func:`sameness.difference` found)."""
    return (
        "not stored: the study already holds an instance with this SOP Instance UID, and "
        f"{differs}; "
        "the stored instance is kept unchanged (a corrected image needs a new SOP Instance UID)"
    )


_NEXT_SERIES_NUMBER = select(func.coalesce(func.max(_SERIES.c.series_number), 0) + 1).where(
    _SERIES.c.study_pk == bindparam("study")
)
_ADD_GENERATED = (
    update(_STUDY)
    .where(_STUDY.c.id == bindparam("study"))
    .values(
        num_series=_STUDY.c.num_series + 1,
        num_instances=_STUDY.c.num_instances + bindparam("instances"),
        size_bytes=_STUDY.c.size_bytes + bindparam("n_bytes", type_=_STUDY.c.size_bytes.type),
        next_instance_number=case(
            (_STUDY.c.next_instance_number <= bindparam("number"), bindparam("number") + 1),
            else_=_STUDY.c.next_instance_number,
        ),
        updated_at=bindparam("now", type_=_STUDY.c.updated_at.type),
    )
)


def next_series_number(session: Session, study: Study) -> int:
    """One more than the study's highest series number (1 for a study without numbers)."""
    return session.connection().execute(_NEXT_SERIES_NUMBER, {"study": study.id}).scalar_one()


def add_generated_series(
    session: Session, study: Study, paths: list[Path], storage: Storage
) -> list[StoredObject]:
    """Add DICOM objects the PACS made (a report's key object selection, or the presentation
    states of its key images), all of one new series, to ``study`` in the caller's
    transaction.

    The files are stored under the study's next free ``instance_NNN.dcm`` keys and made
    durable; their rows and the study's counts are written, not committed. The caller
    commits, or on a failure rolls back and deletes the stored keys: then nothing of them
    remains. This is not an upload (no upload audit, no analysis): the caller authorizes and
    audits it. Raises ``ValueError`` for a file of another study or series, or no file,
    :class:`StorageUnavailable` when the files cannot be stored."""
    headers = [read_header(path) for path in paths]
    if not headers:
        raise ValueError("no object to add")
    for path, header in zip(paths, headers, strict=True):
        if header.study_instance_uid != study.study_instance_uid:
            raise ValueError(f"{path.name} belongs to another study")
        if header.series_instance_uid != headers[0].series_instance_uid:
            raise ValueError(f"{path.name} belongs to another series")
    conn = session.connection()
    session.flush()
    number = conn.execute(  # locked: concurrent ingest into the study waits for this commit
        select(_STUDY.c.next_instance_number).where(_STUDY.c.id == study.id).with_for_update()
    ).scalar_one()
    centre_code = conn.execute(select(Centre.code).where(Centre.id == study.centre_id)).scalar_one()
    placed: list[tuple[int, str, StoredObject]] = []
    try:
        for path in paths:
            staged = StagedFile(name=path.name, path=path)
            placed.append(_put_next(storage, f"{centre_code}/{study.study_id}", number, staged))
            number = placed[-1][0] + 1
        _make_durable(storage, [key for _, key, _ in placed])
        now = utcnow()
        series_pk = _insert_series(conn, study.id, headers[0], num_instances=len(paths))
        for (number, _, stored), header in zip(placed, headers, strict=True):
            conn.execute(
                _INSERT_INSTANCE, _instance_values(study.id, series_pk, number, header, stored, now)
            )
        conn.execute(
            _ADD_GENERATED,
            {
                "study": study.id,
                "instances": len(placed),
                "n_bytes": sum(stored.size for _, _, stored in placed),
                "number": placed[-1][0],
                "now": now,
            },
        )
    except BaseException:
        for _, key, _ in placed:
            storage.delete(key)
        raise
    return [stored for _, _, stored in placed]


def _make_durable(storage: Storage, keys: list[str]) -> None:
    try:
        storage.sync(keys)
    except StorageError as exc:
        raise StorageUnavailable(
            f"The upload's files could not be made durable ({exc}); nothing of it was kept."
        ) from exc


__all__ = [
    "FileOutcome",
    "IngestResult",
    "InvalidDicom",
    "StagedFile",
    "StudyForm",
    "expand_archives",
    "ingest",
    "is_archive",
    "normalize_age",
]
