"""DICOM ingest through the domain service, on SQLite and PostgreSQL, with a real storage folder."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydantic import ValidationError
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from sqlmodel import func, select

from pacs_app.core.errors import (
    InvalidInput,
    PermissionDenied,
    StorageUnavailable,
    TooLarge,
)
from pacs_app.dicom.reader import InvalidDicom
from pacs_app.models import AuditEvent, Instance, Priority, Role, Series, Study, StudyStatus
from pacs_app.services.ingest import (
    DeclarationMismatch,
    StagedFile,
    StudyForm,
    ingest,
    normalize_age,
)
from pacs_app.storage import LocalStorage, StorageError
from tests.dicom_factory import TESTDATA, make_ct, make_series
from tests.factories import actor_of, make_centre, make_user


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def centre(session):
    return make_centre(session, "NORTH")


@pytest.fixture
def tech(session, centre):
    return actor_of(make_user(session, Role.TECHNICIAN, centre=centre))


def staged(*paths: Path) -> list[StagedFile]:
    return [StagedFile(name=p.name, path=p) for p in paths]


def stored_files(storage: LocalStorage) -> list[Path]:
    if not storage.root.exists():
        return []
    return sorted(p for p in storage.root.rglob("*") if p.is_file())


def counts(session) -> tuple[int, int, int]:
    session.expire_all()
    return tuple(
        session.exec(select(func.count()).select_from(m)).one() for m in (Study, Series, Instance)
    )


def test_a_batch_becomes_one_study_with_its_series_and_files(session, storage, tech, tmp_path):
    study_uid = generate_uid()
    files = make_series(tmp_path / "a", 3, study_uid=study_uid) + make_series(
        tmp_path / "b", 2, study_uid=study_uid
    )

    result = ingest(
        session=session,
        actor=tech,
        files=staged(*files),
        storage=storage,
        form=StudyForm(priority="urgent", clinical_notes="fall, wrist pain"),
    )

    [study] = result.studies
    assert len(study.study_id) == 8 and study.study_id.isalnum() and study.study_id.isupper()
    assert (study.num_series, study.num_instances, result.stored, result.duplicates) == (2, 5, 5, 0)
    assert study.priority is Priority.URGENT and study.status is StudyStatus.UNASSIGNED
    assert study.patient_name == "TEST^PATIENT" and study.modality == "CT"
    assert study.uploaded_by == tech.username and study.centre_code == "NORTH"
    on_disk = stored_files(storage)
    assert [p.relative_to(storage.root).as_posix() for p in on_disk] == [
        f"NORTH/{study.study_id}/instance_{n:03d}.dcm" for n in range(1, 6)
    ]
    rows = session.exec(select(Instance).order_by(Instance.number)).all()
    for row, source in zip(rows, files, strict=True):
        assert row.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert row.size_bytes == source.stat().st_size
        assert row.dicom_json["0020000D"]["Value"] == [study_uid]
        assert "7FE00010" not in row.dicom_json  # no pixel data in the index


def test_resending_adds_to_the_same_study_and_skips_duplicates(session, storage, tech, tmp_path):
    study_uid = generate_uid()
    first = make_series(tmp_path / "s", 2, study_uid=study_uid)
    extra = make_ct(tmp_path / "extra.dcm", study_uid=study_uid)
    one = ingest(session=session, actor=tech, files=staged(*first), storage=storage)

    two = ingest(
        session=session,
        actor=tech,
        files=staged(first[0], extra),
        storage=storage,
        form=StudyForm(priority="stat"),
    )

    assert two.studies[0].study_id == one.studies[0].study_id
    assert [f.status for f in two.files] == ["duplicate", "stored"]
    assert two.studies[0].num_instances == 3 and two.studies[0].priority is Priority.STAT
    assert counts(session) == (1, 2, 3) and len(stored_files(storage)) == 3


def test_a_series_sent_an_instance_at_a_time_is_one_line_of_the_study_history(
    session, storage, tech, centre, tmp_path
):
    from datetime import timedelta

    from pacs_app.services import studies

    study_uid = generate_uid()
    slices = make_series(tmp_path / "s", 5, study_uid=study_uid)
    for path in slices[:3]:  # as a modality sends by C-STORE: one upload per instance
        ingest(session=session, actor=tech, files=staged(path), storage=storage, address="10.0.0.5")
    other = actor_of(make_user(session, Role.CENTRE, centre=centre))
    ingest(session=session, actor=other, files=staged(slices[3]), storage=storage)
    for event in session.exec(select(AuditEvent)).all():  # all that came an hour ago
        event.at -= timedelta(hours=1)
        session.add(event)
    session.commit()
    # the technician again, an hour later
    late = ingest(
        session=session, actor=tech, files=staged(slices[4]), storage=storage, address="10.0.0.5"
    )
    conflicting = _variant(slices[0], tmp_path / "again.dcm", PatientName="OTHER^NAME")
    ingest(session=session, actor=tech, files=staged(conflicting), storage=storage)

    detail = studies.get_study(session=session, actor=tech, study_id=late.studies[0].study_id)
    uploads = [(e.username, e.detail) for e in detail.history if e.action == "study.uploaded"]
    assert [(who, d["instances"], d.get("uploads", 1)) for who, d in uploads] == [
        (tech.username, 3, 3),  # the three sent within minutes: one line
        (other.username, 1, 1),
        (tech.username, 1, 1),  # an hour later: a line of its own
        (tech.username, 0, 1),  # a conflict is never folded away
    ]
    assert uploads[0][1]["new_study"] is True and "until" in uploads[0][1]
    assert "conflicts" in uploads[3][1]
    # the audit trail keeps every upload
    every = session.exec(select(AuditEvent).where(AuditEvent.action == "study.uploaded")).all()
    assert len(every) == 6


def _variant(source: Path, target: Path, **changes) -> Path:
    """``source`` saved again as ``target`` with attributes (or, with ``meta_``, file meta
    attributes) changed; ``implicit=True`` re-encodes it as implicit VR little endian."""
    ds = pydicom.dcmread(source)
    implicit = changes.pop("implicit", False)
    for keyword, value in changes.items():
        if keyword.startswith("meta_"):
            setattr(ds.file_meta, keyword.removeprefix("meta_"), value)
        else:
            setattr(ds, keyword, value)
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target


def test_a_resend_with_other_data_is_not_stored_and_says_what_differs(
    session, storage, tech, tmp_path
):
    study_uid = generate_uid()
    first = make_series(tmp_path / "s", 3, study_uid=study_uid)
    ingest(session=session, actor=tech, files=staged(*first), storage=storage)
    kept = {p.name: p.read_bytes() for p in stored_files(storage)}
    corrected = _variant(first[0], tmp_path / "again" / "corrected.dcm", PatientName="OTHER^NAME")
    recoded = _variant(first[1], tmp_path / "again" / "recoded.dcm", implicit=True)
    both = _variant(first[2], tmp_path / "again" / "both.dcm", implicit=True, PatientID="P-2")
    extra = make_ct(tmp_path / "again" / "extra.dcm", study_uid=study_uid)

    result = ingest(
        session=session,
        actor=tech,
        files=staged(corrected, recoded, both, extra),
        storage=storage,
    )

    # the same instance re-encoded without loss (implicit VR) is a duplicate; what holds
    # other data is a conflict, named by the attribute that differs (not its value)
    assert [f.status for f in result.files] == ["conflict", "duplicate", "conflict", "stored"]
    assert (result.stored, result.duplicates, result.conflicts) == (1, 1, 2)
    assert "its PatientName (0010,0010) differs from the stored one's" in result.files[0].detail
    assert "its PatientID (0010,0020) differs" in result.files[2].detail
    assert "another transfer syntax (Implicit VR Little Endian)" in result.files[2].detail
    assert "(Explicit VR Little Endian)" in result.files[2].detail
    assert "kept unchanged" in result.files[0].detail and result.files[3].detail is None
    assert result.files[1].detail is None
    # the stored instances are what was first sent, byte for byte; only the new one was added
    assert counts(session) == (1, 2, 4)
    assert {p.name: p.read_bytes() for p in stored_files(storage) if p.name in kept} == kept
    [event] = session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == "study.uploaded")
        .order_by(AuditEvent.id.desc())
    ).all()[:1]
    assert event.detail["instances"] == 1 and event.detail["conflicts_total"] == 2
    assert [c["sop_instance_uid"] for c in event.detail["conflicts"]] == [
        result.files[0].sop_instance_uid,
        result.files[2].sop_instance_uid,
    ]
    assert "OTHER" not in str(event.detail)  # no patient data in the audit record


def test_a_resend_differing_only_in_file_meta_is_a_duplicate(session, storage, tech, tmp_path):
    [first] = make_series(tmp_path / "s", 1)
    ingest(session=session, actor=tech, files=staged(first), storage=storage)
    forwarded = _variant(
        first,
        tmp_path / "fwd" / "forwarded.dcm",
        meta_ImplementationVersionName="OTHER_PACS_1",
        meta_SourceApplicationEntityTitle="FORWARDER",
    )
    assert forwarded.read_bytes() != first.read_bytes()

    result = ingest(session=session, actor=tech, files=staged(forwarded), storage=storage)

    assert [(f.status, f.detail) for f in result.files] == [("duplicate", None)]
    assert counts(session) == (1, 1, 1)


def test_two_files_of_one_upload_with_one_uid_and_other_data(session, storage, tech, tmp_path):
    [first] = make_series(tmp_path / "s", 1)
    other = _variant(first, tmp_path / "t" / "other.dcm", PatientID="ANOTHER")
    same = tmp_path / "t" / "same.dcm"
    same.write_bytes(first.read_bytes())

    result = ingest(session=session, actor=tech, files=staged(first, other, same), storage=storage)

    assert [f.status for f in result.files] == ["stored", "conflict", "duplicate"]
    assert counts(session) == (1, 1, 1) and len(stored_files(storage)) == 1


def test_a_resend_whose_stored_file_is_unreadable_stores_nothing(session, storage, tech, tmp_path):
    study_uid = generate_uid()
    [first] = make_series(tmp_path / "s", 1, study_uid=study_uid)
    ingest(session=session, actor=tech, files=staged(first), storage=storage)
    [held] = stored_files(storage)
    held.unlink()  # lost outside the application
    other = _variant(first, tmp_path / "t" / "other.dcm", PatientID="ANOTHER")
    extra = make_ct(tmp_path / "t" / "extra.dcm", study_uid=study_uid)

    with pytest.raises(StorageUnavailable, match=r"other\.dcm: the study holds this instance"):
        ingest(session=session, actor=tech, files=staged(extra, other), storage=storage)

    assert counts(session) == (1, 1, 1) and stored_files(storage) == []


def test_several_studies_in_one_upload_are_kept_apart(session, storage, tech, tmp_path):
    files = make_series(tmp_path / "x", 2) + make_series(tmp_path / "y", 1, patient_id="OTHER")
    result = ingest(session=session, actor=tech, files=staged(*files), storage=storage)
    assert sorted(s.num_instances for s in result.studies) == [1, 2]
    assert len({s.study_id for s in result.studies}) == 2 and result.study_id is None


def test_form_values_win_and_disagreements_are_kept(session, storage, tech, tmp_path):
    f = make_ct(tmp_path / "one.dcm", patient_name="HEADER^NAME", patient_id="H-1")
    result = ingest(
        session=session,
        actor=tech,
        files=staged(f),
        storage=storage,
        form=StudyForm(
            patient_name="Form^Name", patient_age="45", patient_sex="f", body_part="chest"
        ),
    )
    study = result.studies[0]
    assert (
        study.patient_name,
        study.patient_id,
        study.patient_age,
        study.patient_sex,
        study.body_part,
    ) == ("Form^Name", "H-1", "045Y", "F", "CHEST")
    assert {(d.field, d.shown, d.header) for d in study.differences} >= {
        ("patient_name", "Form^Name", "HEADER^NAME")
    }


def test_zip_archives_are_unpacked(session, storage, tech, tmp_path):
    files = make_series(tmp_path / "z", 3)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files:
            zf.write(f, f"CT/{f.name}")
    result = ingest(session=session, actor=tech, files=staged(archive), storage=storage)
    assert result.stored == 3 and result.files[0].name == "study.zip/CT/slice_000.dcm"


# --- bad input: a clear error, and nothing stored (rows and files checked) ---------------


def _refused(session, storage, tech, files, exc=InvalidInput, match=None, form=None):
    before = counts(session), stored_files(storage)
    with pytest.raises(exc, match=match):
        ingest(session=session, actor=tech, files=files, storage=storage, form=form)
    assert (counts(session), stored_files(storage)) == before


def test_a_text_file_named_dcm_is_refused_with_its_name(session, storage, tech, tmp_path):
    good = make_ct(tmp_path / "good.dcm")
    text = tmp_path / "notes.dcm"
    text.write_text("this is not a DICOM file\n" * 20)
    _refused(
        session,
        storage,
        tech,
        staged(good, text),
        InvalidDicom,
        match=r"notes\.dcm: not a DICOM file",
    )


def test_a_truncated_file_is_refused(session, storage, tech, tmp_path):
    good = make_ct(tmp_path / "good.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-5000])
    _refused(
        session,
        storage,
        tech,
        staged(good, cut),
        InvalidDicom,
        match=r"cut\.dcm: the file is truncated",
    )


@pytest.mark.parametrize("missing", ["StudyInstanceUID", "SOPInstanceUID", "SeriesInstanceUID"])
def test_a_file_without_required_uids_is_refused(session, storage, tech, tmp_path, missing):
    import pydicom

    path = make_ct(tmp_path / "nouid.dcm")
    ds = pydicom.dcmread(path)
    delattr(ds, missing)
    ds.save_as(path)
    _refused(
        session,
        storage,
        tech,
        staged(path),
        InvalidDicom,
        match=rf"nouid\.dcm: missing required UID: {missing}",
    )


def test_a_file_that_is_not_the_instance_its_sender_declared_is_refused(
    session, storage, tech, tmp_path
):
    # a C-STORE request names the instance it carries; a data set naming another is refused
    path = make_ct(tmp_path / "sent.dcm")
    ds = pydicom.dcmread(path)
    sop_class, sop_instance = str(ds.SOPClassUID), str(ds.SOPInstanceUID)

    def declared(uids):
        return [StagedFile(name="sent.dcm", path=path, declared=uids)]

    for uids, what in [
        ((sop_class, generate_uid()), "SOP Instance UID"),
        (("1.2.840.10008.5.1.4.1.1.4", sop_instance), "SOP Class UID"),
    ]:
        _refused(
            session,
            storage,
            tech,
            declared(uids),
            DeclarationMismatch,
            match=rf"sent\.dcm: its {what} differs from the request's",
        )
    # padding as a request may carry it is no difference
    result = ingest(
        session=session,
        actor=tech,
        files=declared((sop_class + "\0", sop_instance)),
        storage=storage,
    )
    assert [f.status for f in result.files] == ["stored"]


def test_a_dicom_file_ending_like_a_zip_directory_is_stored_as_dicom(
    session, storage, tech, tmp_path
):
    """Pixel data may end with bytes that read as a zip's end record (here, an empty
    archive's): a file with DICOM's marker is DICOM, not an archive holding nothing."""
    path = make_ct(tmp_path / "ct.dcm")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with path.open("ab") as out:
        out.write((tmp_path / "empty.zip").read_bytes())
    assert zipfile.is_zipfile(path)  # what the marker check saves it from
    result = ingest(session=session, actor=tech, files=staged(path), storage=storage)
    assert result.stored == 1 and counts(session) == (1, 1, 1)
    (stored,) = stored_files(storage)
    assert stored.read_bytes() == path.read_bytes()


def test_a_zip_with_a_non_dicom_member_is_refused_whole(session, storage, tech, tmp_path):
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(make_ct(tmp_path / "ok.dcm"), "ok.dcm")
        zf.writestr("readme.txt", "hello")
    _refused(
        session,
        storage,
        tech,
        staged(archive),
        InvalidDicom,
        match=r"mixed\.zip/readme\.txt: not a DICOM file",
    )


def test_an_empty_upload_is_refused(session, storage, tech, tmp_path):
    _refused(session, storage, tech, [], match="The upload is empty")
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    _refused(
        session, storage, tech, staged(empty), InvalidDicom, match="empty.dcm: the file is empty"
    )


def test_a_file_over_the_size_limit_is_refused(
    session, storage, tech, tmp_path, settings, monkeypatch
):
    monkeypatch.setattr(settings, "max_upload_file_mb", 1)
    big = make_ct(tmp_path / "big.dcm", size=1024)  # 2 MB of pixels
    _refused(
        session,
        storage,
        tech,
        staged(big),
        exc=TooLarge,
        match=r"big\.dcm: the file is 2\.0 MB, over the 1 MB limit",
    )


def test_a_patient_age_that_is_not_a_number_is_refused():
    with pytest.raises(ValidationError, match="patient_age must be a number"):
        StudyForm(patient_age="forty")
    assert normalize_age("7") == "007Y" and normalize_age("6m") == "006M"
    with pytest.raises(ValueError, match="not plausible"):
        normalize_age("420")


def test_a_radiologist_cannot_upload(session, storage, tmp_path):
    centre = make_centre(session)
    for radiologist in (
        make_user(session, Role.RADIOLOGIST),
        make_user(session, Role.RADIOLOGIST, centre=centre),
    ):
        _refused(
            session,
            storage,
            actor_of(radiologist),
            staged(make_ct(tmp_path / "r.dcm")),
            PermissionDenied,
            match="Only technicians and centre users",
        )
    admin = actor_of(make_user(session, Role.ADMIN))
    _refused(session, storage, admin, staged(make_ct(tmp_path / "a.dcm")), PermissionDenied)


def test_a_technician_cannot_upload_for_another_centre(session, storage, tech, tmp_path):
    other = make_centre(session, "SOUTH")
    before = counts(session), stored_files(storage)
    with pytest.raises(PermissionDenied, match="for their own centre"):
        ingest(
            session=session,
            actor=tech,
            files=staged(make_ct(tmp_path / "x.dcm")),
            storage=storage,
            centre_id=other.id,
        )
    assert (counts(session), stored_files(storage)) == before
    with pytest.raises(PermissionDenied):  # a centre that does not exist is not theirs either
        ingest(
            session=session,
            actor=tech,
            files=staged(make_ct(tmp_path / "y.dcm")),
            storage=storage,
            centre_id=other.id + 100,
        )


class FailingStorage(LocalStorage):
    """Real local storage whose third write fails, as a full disk would (cannot be made here)."""

    def __init__(self, root):
        super().__init__(root)
        self.writes = 0

    def put_file(self, key, source, **options):
        self.writes += 1
        if self.writes == 3:
            raise StorageError("No space left on device")
        return super().put_file(key, source, **options)


def test_a_failed_write_mid_upload_leaves_nothing(session, tech, tmp_path):
    storage = FailingStorage(tmp_path / "store")
    files = make_series(tmp_path / "f", 4)
    _refused(
        session,
        storage,
        tech,
        staged(*files),
        StorageUnavailable,
        match="could not be stored .*nothing of this upload was kept",
    )
    assert stored_files(storage) == []


class RecordingStorage(LocalStorage):
    """Real local storage that notes when files are written, made durable, and committed."""

    def __init__(self, root, log, fail_sync=False):
        super().__init__(root)
        self.log, self.fail_sync = log, fail_sync

    def put_file(self, key, source, **options):
        self.log.append(("put", key, options.get("durable", True)))
        return super().put_file(key, source, **options)

    def sync(self, keys):
        if self.fail_sync:
            raise StorageError("I/O error")  # as a failing disk would (cannot be made here)
        super().sync(keys)
        self.log.append(("sync", tuple(keys)))


def test_files_are_made_durable_before_their_rows_commit(session, tech, tmp_path):
    from sqlalchemy import event

    log: list = []
    storage = RecordingStorage(tmp_path / "store", log)
    event.listen(session, "after_commit", lambda _s: log.append(("commit",)))
    files = make_series(tmp_path / "f", 3)
    ingest(session=session, actor=tech, files=staged(*files), storage=storage)
    puts = [e for e in log if e[0] == "put"]
    assert len(puts) == 3 and all(durable is False for *_, durable in puts)
    keys = tuple(key for _, key, _ in puts)
    assert log[3:] == [("sync", keys), ("commit",)]


def test_a_failed_sync_keeps_nothing(session, tech, tmp_path):
    storage = RecordingStorage(tmp_path / "store", [], fail_sync=True)
    _refused(
        session,
        storage,
        tech,
        staged(*make_series(tmp_path / "f", 2)),
        StorageUnavailable,
        match="could not be made durable .*nothing of it was kept",
    )
    assert stored_files(storage) == []


def test_an_existing_stray_file_is_never_overwritten(session, storage, tech, tmp_path):
    study_uid = generate_uid()
    result = ingest(
        session=session,
        actor=tech,
        storage=storage,
        files=staged(make_ct(tmp_path / "1.dcm", study_uid=study_uid)),
    )
    sid = result.studies[0].study_id
    stray = storage.root / "NORTH" / sid / "instance_002.dcm"
    stray.write_bytes(b"left by an interrupted upload")
    again = ingest(
        session=session,
        actor=tech,
        storage=storage,
        files=staged(make_ct(tmp_path / "2.dcm", study_uid=study_uid)),
    )
    assert again.stored == 1
    assert stray.read_bytes() == b"left by an interrupted upload"
    assert (storage.root / "NORTH" / sid / "instance_003.dcm").exists()


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_real_files_of_every_kind_are_accepted_or_refused_cleanly(session, storage, tech):
    accepted, refused = [], []
    for path in sorted(p for p in TESTDATA.rglob("*") if p.is_file()):
        try:
            ingest(
                session=session, actor=tech, files=[StagedFile(path.name, path)], storage=storage
            )
            accepted.append(path.relative_to(TESTDATA).as_posix())
        except InvalidInput as exc:
            assert path.name in exc.message
            refused.append(path.relative_to(TESTDATA).as_posix())
    for must_refuse in (
        "malformed/MR_truncated.dcm",
        "malformed/rtplan_truncated.dcm",
        "malformed/emri_small_jpeg_2k_lossless_too_short.dcm",
        "malformed/priv_SQ.dcm",
        "malformed/zipMR.gz",
        "malformed/badVR.dcm",
    ):
        assert must_refuse in refused
    for must_accept in (
        "clinical/CT_small.dcm",
        "clinical/CR_chest_RG1_J2KI.dcm",
        "clinical/US_multiframe_30f_jpeg.dcm",
        "malformed/bad_sequence.dcm",
        "transfer_syntax/MR_small_RLE.dcm",
        "transfer_syntax/image_dfl.dcm",
        "charset/chrArab.dcm",
        "non_image/rtstruct.dcm",
    ):
        assert must_accept in accepted
    assert 0 < counts(session)[2] <= len(accepted)  # same-SOP re-encodings are duplicates
    names = {s.patient_name for s in session.exec(select(Study))}
    assert any("\u0642" in n or "\u0628" in n for n in names)  # Arabic decoded, not mojibake


def test_concurrent_uploads_of_one_new_study_make_one_study(
    engine, session, storage, tech, tmp_path
):
    """Two uploads racing to create the same study: one study, every instance, no orphans."""
    import threading

    from sqlmodel import Session

    study_uid = generate_uid()
    halves = [make_series(tmp_path / f"h{i}", 6, study_uid=study_uid) for i in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def upload(paths):
        try:
            with Session(engine, expire_on_commit=False) as own:
                barrier.wait()
                ingest(session=own, actor=tech, files=staged(*paths), storage=storage)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert counts(session) == (1, 2, 12)
    keys = {row.storage_key for row in session.exec(select(Instance))}
    on_disk = {p.relative_to(storage.root).as_posix() for p in stored_files(storage)}
    assert keys == on_disk and len(keys) == 12


def test_an_upload_into_a_study_waits_for_one_being_recorded(
    engine, session, storage, tech, tmp_path, monkeypatch
):
    """Upload B into a study starts while upload A has read the study's row to update it:
    B must wait for A's commit, or one of them writes counts from a stale row (on SQLite a
    read before the first write is outside any transaction unless the writers take turns)."""
    import threading

    from sqlmodel import Session

    from pacs_app.services import ingest as ingest_module

    study_uid = generate_uid()
    first, a, b = (make_series(tmp_path / n, 2, study_uid=study_uid) for n in "fab")
    ingest(session=session, actor=tech, files=staged(*first), storage=storage)

    done = threading.Event()
    errors: list[BaseException] = []

    def upload_b():
        try:
            with Session(engine, expire_on_commit=False) as own:
                ingest(session=own, actor=tech, files=staged(*b), storage=storage)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    real_now, thread = ingest_module.utcnow, threading.Thread(target=upload_b)

    def now_with_b_racing():  # called in A's phase 2, after the study's row is read
        monkeypatch.setattr(ingest_module, "utcnow", real_now)
        thread.start()
        done.wait(timeout=1.0)  # B runs to its end here unless it waits for A
        return real_now()

    monkeypatch.setattr(ingest_module, "utcnow", now_with_b_racing)
    with Session(engine, expire_on_commit=False) as own:
        ingest(session=own, actor=tech, files=staged(*a), storage=storage)
    thread.join(timeout=30)

    assert errors == []
    session.expire_all()
    study = session.exec(select(Study)).one()
    assert counts(session) == (1, 3, 6)  # a series per make_series
    assert (study.num_instances, study.num_series) == (6, 3)
    sizes = session.exec(select(func.sum(Instance.size_bytes))).one()
    assert study.size_bytes == sizes
    numbers = sorted(i.number for i in session.exec(select(Instance)))
    assert numbers == [1, 2, 3, 4, 5, 6] and study.next_instance_number == 7
