"""DICOM ingest: validate every file, then store files and rows together, or nothing.

Used by the REST upload, the web upload and later DICOMweb STOW-RS and the C-STORE listener.
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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, field_validator
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from pacs_app.config import settings
from pacs_app.core.errors import InvalidInput, NotFound, StorageUnavailable
from pacs_app.dicom.reader import DicomHeader, InvalidDicom, read_header
from pacs_app.models import Centre, Instance, Priority, Series, Study, StudyStatus
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.authz import Action, Actor, require
from pacs_app.services.dto import StudyPublic
from pacs_app.storage import KeyExists, Storage, StorageError, StoredObject

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
    status: str  # "stored" or "duplicate"
    study_id: str
    sop_instance_uid: str


class IngestResult(BaseModel):
    studies: list[StudyPublic]
    files: list[FileOutcome]
    stored: int
    duplicates: int

    @property
    def study_id(self) -> str | None:
        return self.studies[0].study_id if len(self.studies) == 1 else None


def normalize_name(name: str) -> str:
    """Patient names as searched and sorted: upper case, DICOM ``^`` as spaces."""
    return " ".join(name.replace("^", " ").upper().split())


def new_study_id(session: Session) -> str:
    """A random 8-character Study ID not used yet (the unique index is the final guard)."""
    for _ in range(20):
        candidate = "".join(secrets.choice(STUDY_ID_ALPHABET) for _ in range(STUDY_ID_LENGTH))
        if session.exec(select(Study.id).where(Study.study_id == candidate)).first() is None:
            return candidate
    raise RuntimeError("could not find a free Study ID after 20 tries")


def expand_archives(files: list[StagedFile], workdir: Path) -> list[StagedFile]:
    """Replace each zip archive by its members (named ``archive.zip/member``), within limits."""
    out: list[StagedFile] = []
    for f in files:
        if not zipfile.is_zipfile(f.path):
            out.append(f)
            continue
        try:
            with zipfile.ZipFile(f.path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > settings.max_zip_entries:
                    raise InvalidInput(
                        f"{f.name}: the archive has {len(members)} files, over "
                        f"the limit of {settings.max_zip_entries}"
                    )
                unpacked = sum(m.file_size for m in members)
                if unpacked > settings.max_zip_unpacked_mb * 1024 * 1024:
                    raise InvalidInput(
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
    study.clinical_notes = form.clinical_notes[:4000]
    study.priority = form.priority
    study.priority_rank = form.priority.rank
    study.header_values = differences or None


def _check_sizes(files: list[StagedFile]) -> None:
    limit = settings.max_upload_file_mb * 1024 * 1024
    for f in files:
        size = f.path.stat().st_size
        if size > limit:
            raise InvalidInput(
                f"{f.name}: the file is {size / 1024 / 1024:.1f} MB, over the "
                f"{settings.max_upload_file_mb} MB limit"
            )


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
    centre_id = centre_id if centre_id is not None else actor.centre_id
    centre = session.get(Centre, centre_id) if centre_id is not None else None
    require(actor, Action.UPLOAD_STUDY, centre)
    if centre is None:
        raise NotFound("No such centre.")
    if not files:
        raise InvalidInput("The upload is empty: add at least one DICOM file.")
    has_archives = any(zipfile.is_zipfile(f.path) for f in files)
    with (
        tempfile.TemporaryDirectory(prefix="pacs-ingest-")
        if has_archives
        else contextlib.nullcontext(None)
    ) as workdir:
        expanded = expand_archives(files, Path(workdir)) if has_archives else list(files)
        if not expanded:
            raise InvalidInput("The upload is empty: the archive holds no files.")
        _check_sizes(expanded)
        headers = [(f, read_header(f.path, f.name)) for f in expanded]
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


def _known_sops(session: Session, study_pk: int, sops: list[str]) -> set[str]:
    """Which of ``sops`` the study already holds (queried in chunks of 500)."""
    known: set[str] = set()
    for i in range(0, len(sops), 500):
        known.update(
            session.exec(
                select(Instance.sop_instance_uid).where(
                    Instance.study_pk == study_pk,
                    col(Instance.sop_instance_uid).in_(sops[i : i + 500]),
                )
            )
        )
    return known


def _put_next(storage: Storage, prefix: str, number: int, staged: StagedFile):
    """Store under the first free ``instance_NNN.dcm`` key from ``number`` (never overwriting)."""
    while True:
        key = f"{prefix}/instance_{number:03d}.dcm"
        try:
            return (
                number,
                key,
                storage.put_file(key, staged.path, overwrite=False, move=staged.disposable),
            )
        except KeyExists:
            number += 1  # a file left by an interrupted upload, or a concurrent one
        except StorageError as exc:
            raise StorageUnavailable(
                f"{staged.name} could not be stored ({exc}); nothing of this upload was kept."
            ) from exc


def _write_files(session, centre, by_study, storage, written) -> list[_Planned]:
    """Phase 1, with no database write: decide duplicates and write every new file."""
    plans = []
    for study_uid, items in by_study.items():
        study = session.exec(
            select(Study.id, Study.study_id, Study.next_instance_number).where(
                Study.centre_id == centre.id, Study.study_instance_uid == study_uid
            )
        ).first()
        if study is None:
            study_id, number, known = new_study_id(session), 1, set()
        else:
            study_pk, study_id, number = study
            known = _known_sops(session, study_pk, [h.sop_instance_uid for _, h in items])
        plan = _Planned(study_uid, study_id, study is None, items[0][1], [], [])
        for staged, header in items:
            if header.sop_instance_uid in known:
                plan.duplicates.append((staged, header))
                continue
            known.add(header.sop_instance_uid)
            number, key, stored = _put_next(storage, f"{centre.code}/{study_id}", number, staged)
            written.append(key)
            plan.stored.append((staged, header, number, key, stored))
            number += 1
        plans.append(plan)
    return plans


def _record_rows(session, actor, centre, form, plan: _Planned, address) -> Study:
    """Phase 2: the rows of one planned study, inside the upload's transaction."""
    study = session.exec(
        select(Study)
        .where(Study.centre_id == centre.id, Study.study_instance_uid == plan.study_uid)
        .with_for_update()
    ).first()
    if (study is None) != plan.is_new or (study is not None and study.study_id != plan.study_id):
        raise _Retry  # created or deleted by a concurrent upload since phase 1
    from pacs_app.services import workflow  # workflow -> studies -> ingest: import late

    raised = False
    if study is None:
        study = Study(
            study_id=plan.study_id,
            study_instance_uid=plan.study_uid,
            centre_id=centre.id,
            uploaded_by_id=actor.user_id,
            # the pool, or the centre's own queue until it routes the study
            status=StudyStatus.UNASSIGNED if centre.auto_release_to_pool else StudyStatus.RECEIVED,
        )
        _apply_metadata(study, form, plan.first_header)
        session.add(study)
        session.flush()
        series_by_uid: dict[str, Series] = {}
        raised = study.priority is not Priority.ROUTINE
    else:
        series_by_uid = {
            s.series_instance_uid: s
            for s in session.exec(select(Series).where(Series.study_pk == study.id))
        }
        if form.priority.rank > study.priority_rank:  # a re-send may raise the priority
            study.priority, study.priority_rank = form.priority, form.priority.rank
            raised = True
    for _staged, header, number, key, stored in plan.stored:
        series = series_by_uid.get(header.series_instance_uid)
        if series is None:
            series = Series(
                study_pk=study.id,
                series_instance_uid=header.series_instance_uid,
                series_number=header.series_number,
                modality=header.modality,
                body_part=header.body_part,
                description=header.series_description,
            )
            session.add(series)
            session.flush()
            series_by_uid[header.series_instance_uid] = series
            study.num_series += 1
        session.add(
            Instance(
                study_pk=study.id,
                series_pk=series.id,
                number=number,
                sop_instance_uid=header.sop_instance_uid,
                sop_class_uid=header.sop_class_uid,
                instance_number=header.instance_number,
                transfer_syntax_uid=header.transfer_syntax_uid,
                rows=header.rows,
                columns=header.columns,
                number_of_frames=header.number_of_frames,
                storage_key=key,
                size_bytes=stored.size,
                sha256=stored.sha256,
                dicom_json=header.dicom_json,
            )
        )
        series.num_instances += 1
        study.num_instances += 1
        study.size_bytes += stored.size
        study.next_instance_number = max(study.next_instance_number, number + 1)
    study.updated_at = utcnow()
    session.add(study)
    audit.record(
        session,
        action=audit.AuditAction.STUDY_UPLOADED,
        actor=actor,
        resource_type="study",
        resource_id=study.study_id,
        centre_id=centre.id,
        address=address,
        detail={"instances": len(plan.stored), "new_study": plan.is_new},
    )
    if raised:
        workflow.notify_urgent(session, study, tele=study.status is StudyStatus.UNASSIGNED)
    if plan.stored:
        from pacs_app.services import ai  # queued with the rows, in the same transaction

        ai.enqueue_after_upload(session, study, centre)
    return study


def _store(
    session: Session,
    actor: Actor,
    centre: Centre,
    headers: list[tuple[StagedFile, DicomHeader]],
    form: StudyForm,
    storage: Storage,
    address: str | None,
) -> IngestResult:
    """Write the files, then record them in one short transaction; undo both on any failure.

    Files go first, so the database's write lock (all of SQLite, or the study row in
    PostgreSQL) is held only for the rows, not while gigabytes are copied.
    """
    by_study: dict[str, list[tuple[StagedFile, DicomHeader]]] = defaultdict(list)
    for item in headers:
        by_study[item[1].study_instance_uid].append(item)
    written: list[str] = []
    try:
        plans = _write_files(session, centre, by_study, storage, written)
        # End phase 1's read transaction before writing. The centre stays as read (a rollback
        # would expire it, and reading it again costs a query).
        if centre in session:
            session.expunge(centre)
        session.rollback()
        studies = [_record_rows(session, actor, centre, form, plan, address) for plan in plans]
        session.commit()
    except BaseException:
        session.rollback()
        for key in written:
            storage.delete(key)
        raise

    from pacs_app.services.studies import study_public

    outcomes = []
    for plan in plans:
        outcomes += [
            FileOutcome(
                name=f.name,
                status="stored",
                study_id=plan.study_id,
                sop_instance_uid=h.sop_instance_uid,
            )
            for f, h, *_ in plan.stored
        ]
        outcomes += [
            FileOutcome(
                name=f.name,
                status="duplicate",
                study_id=plan.study_id,
                sop_instance_uid=h.sop_instance_uid,
            )
            for f, h in plan.duplicates
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
    )


__all__ = [
    "FileOutcome",
    "IngestResult",
    "InvalidDicom",
    "StagedFile",
    "StudyForm",
    "expand_archives",
    "ingest",
    "normalize_age",
]
