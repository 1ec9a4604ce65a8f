"""The DICOM listener over real associations on a local port: DCMTK's echoscu and storescu
(what a modality's integration engineer tries first), and pynetdicom as the sending side
where a test needs to propose particular transfer syntaxes; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification
from sqlalchemy import text
from sqlmodel import select

from pacs_app.models import AuditEvent, Instance, Study
from pacs_app.services import devices, users
from pacs_app.storage import get_storage
from tests.dcmtk import tool as dcmtk_tool
from tests.dicom_factory import TESTDATA, make_ct, make_series
from tests.factories import actor_of

MR_SMALL = TESTDATA / "transfer_syntax"


def _dcmtk(tool: str, port: int, *args: str, calling: str = "MODALITY1", called: str = "PACS"):
    return subprocess.run(
        [dcmtk_tool(tool), "-aet", calling, "-aec", called, *args, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _storescu(
    port: int, *files: Path, calling: str = "MODALITY1", called: str = "PACS", options=()
):
    """storescu, proposing each file's SOP class in the uncompressed syntaxes (or as
    ``options`` say); it takes its files after the peer and port."""
    command = [dcmtk_tool("storescu"), "-aet", calling, "-aec", called, "-R", *options]
    return subprocess.run(
        [*command, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _studies(session):
    session.expire_all()
    return session.exec(select(Study)).all()


def _stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm") if ".staging" not in p.parts)


def _associate(port: int, contexts, calling: str = "MODALITY1"):
    ae = AE(ae_title=calling)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    return ae.associate("127.0.0.1", port, ae_title="PACS")


def test_a_registered_modality_echoes_and_stores_a_series(dcmtk, session, world, port, tmp_path):
    assert _dcmtk("echoscu", port).returncode == 0
    files = make_series(tmp_path / "series", 3, patient_name="DOE^JANE", patient_id="P77")
    sent = _storescu(port, *files)
    assert sent.returncode == 0, sent.stderr

    (study,) = _studies(session)
    assert (study.centre_id, study.uploaded_by_id) == (world["centre"].id, world["tech"].id)
    assert (study.patient_name, study.patient_id, study.num_instances) == ("DOE^JANE", "P77", 3)
    stored = _stored_files(get_storage().root)
    assert len(stored) == 3
    for original in files:
        ds = pydicom.dcmread(original)
        match = [p for p in stored if pydicom.dcmread(p).SOPInstanceUID == ds.SOPInstanceUID]
        assert len(match) == 1
        assert pydicom.dcmread(match[0]).PixelData == ds.PixelData  # the pixels as sent

    # the same series again, in a second association: duplicates, nothing stored twice
    assert _storescu(port, *files).returncode == 0
    assert [s.num_instances for s in _studies(session)] == [3]
    assert len(_stored_files(get_storage().root)) == 3

    seen = devices.get_device(
        session=session, actor=actor_of(world["admin"]), device_id=world["device"].id
    )
    assert seen.last_seen_at is not None
    uploads = session.exec(select(AuditEvent).where(AuditEvent.action == "study.uploaded")).all()
    assert uploads and {(e.actor_id, e.address) for e in uploads} == {
        (world["tech"].id, "127.0.0.1")
    }


def test_instances_of_one_study_sent_by_two_modalities_land_in_one_study(
    dcmtk, session, world, port, tmp_path
):
    devices.create_device(
        session=session,
        actor=actor_of(world["admin"]),
        ae_title="MODALITY2",
        centre_id=world["centre"].id,
        uploads_as_id=world["tech"].id,
        networks="127.0.0.0/8",
    )
    first = make_series(tmp_path / "a", 2)
    study_uid = pydicom.dcmread(first[0]).StudyInstanceUID
    second = make_series(tmp_path / "b", 2, study_uid=study_uid)
    assert _storescu(port, *first).returncode == 0
    assert _storescu(port, *second, calling="MODALITY2").returncode == 0
    (study,) = _studies(session)
    assert (study.num_series, study.num_instances) == (2, 4)


def test_a_lossless_compressed_image_is_kept_as_sent(dcmtk, session, world, port):
    source = MR_SMALL / "MR_small_jpeg_ls_lossless.dcm"
    if not source.exists():
        pytest.skip(f"{source} is absent (the shared test data)")
    # JPEG-LS lossless and the uncompressed syntaxes proposed: the first is taken
    assert _storescu(port, source, options=("-xt",)).returncode == 0
    (path,) = _stored_files(get_storage().root)
    kept = pydicom.dcmread(path)
    assert kept.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert kept.PixelData == pydicom.dcmread(source).PixelData  # not decoded, not re-encoded


def test_lossless_syntaxes_are_preferred_and_lossy_ones_taken_only_alone(world, port):
    assoc = _associate(
        port,
        [
            (CTImageStorage, [JPEGBaseline8Bit, ExplicitVRLittleEndian]),
            (MRImageStorage, [ImplicitVRLittleEndian, JPEGLSLossless]),
        ],
    )
    try:
        assert assoc.is_established
        chosen = {cx.abstract_syntax: cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
    finally:
        assoc.release()
    # a sender holding an image without loss is never asked to compress it with loss
    assert chosen == {CTImageStorage: ExplicitVRLittleEndian, MRImageStorage: JPEGLSLossless}


@pytest.mark.parametrize(
    ("calling", "called", "networks", "reason"),
    [
        # DCMTK spells them "Not Recognized" or "not recognised", by version and code path
        ("STRANGER", "PACS", "127.0.0.1", "calling ae title not recogni"),
        ("MODALITY1", "OTHERPACS", "127.0.0.1", "called ae title not recogni"),
        ("MODALITY1", "PACS", "10.0.0.0/8", "calling ae title not recogni"),
    ],
)
def test_an_association_from_an_unregistered_caller_is_rejected_and_audited(
    dcmtk, session, world, port, tmp_path, calling, called, networks, reason
):
    devices.update_device(
        session=session,
        actor=actor_of(world["admin"]),
        device_id=world["device"].id,
        ae_title="MODALITY1",
        uploads_as_id=world["tech"].id,
        networks=networks,
    )
    echo = _dcmtk("echoscu", port, calling=calling, called=called)
    assert echo.returncode != 0 and "Association Rejected" in echo.stderr
    assert reason in echo.stderr.lower()
    ct = make_ct(tmp_path / "ct.dcm")
    assert _storescu(port, ct, calling=calling, called=called).returncode != 0
    assert _studies(session) == [] and _stored_files(get_storage().root) == []
    session.expire_all()
    refusals = session.exec(
        select(AuditEvent).where(AuditEvent.action == "dicom.association_refused")
    ).all()
    assert refusals and all(e.outcome == "denied" for e in refusals)
    assert all(e.address == "127.0.0.1" and e.actor_id is None for e in refusals)


def test_a_caller_refused_again_and_again_is_audited_once_a_minute(
    dcmtk, session, world, listener, port
):
    """A modality that retries every few seconds with an unknown AE title leaves one audit
    row a minute, which counts the refusals left out (the listener's clock is moved on
    here instead of waiting a minute)."""
    now = [1000.0]
    listener.refusals.clock = lambda: now[0]

    def refusals():
        session.expire_all()
        return session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "dicom.association_refused")
            .order_by(AuditEvent.id)
        ).all()

    for _ in range(3):
        echo = _dcmtk("echoscu", port, calling="STRANGER")
        assert "calling ae title not recogni" in echo.stderr.lower()  # every one refused
    (first,) = refusals()
    assert "repeats_left_out" not in first.detail
    now[0] += 61
    assert _dcmtk("echoscu", port, calling="STRANGER").returncode != 0
    later = refusals()
    assert len(later) == 2 and later[1].detail["repeats_left_out"] == 2
    # another caller is recorded at once
    assert _dcmtk("echoscu", port, calling="OTHER").returncode != 0
    assert len(refusals()) == 3


def _store(assoc, path: Path):
    return assoc.send_c_store(pydicom.dcmread(path))


def test_statuses_name_what_went_wrong_and_store_nothing_of_it(session, world, port, tmp_path):
    good = make_ct(tmp_path / "good.dcm", patient_name="DOE^JANE")
    no_study = pydicom.dcmread(make_ct(tmp_path / "bad.dcm"))
    del no_study.StudyInstanceUID
    conflicting = pydicom.dcmread(good)
    conflicting.PatientName = "ROE^RICHARD"
    assoc = _associate(port, [(CTImageStorage, [ExplicitVRLittleEndian])])
    try:
        assert assoc.is_established
        assert _store(assoc, good).Status == 0x0000
        refused = assoc.send_c_store(no_study)
        assert refused.Status == 0xC000
        assert "StudyInstanceUID" in refused.ErrorComment and len(refused.ErrorComment) <= 64
        assert _store(assoc, good).Status == 0x0000  # the same data again: a duplicate
        clash = assoc.send_c_store(conflicting)
        assert clash.Status == 0x0111
        # what differs, never its value
        assert clash.ErrorComment == "its PatientName (0010,0010) differs from the stored one's"
    finally:
        assoc.release()
    (study,) = _studies(session)
    assert study.num_instances == 1 and study.patient_name == "DOE^JANE"
    (path,) = _stored_files(get_storage().root)
    assert str(pydicom.dcmread(path).PatientName) == "DOE^JANE"
    rows = session.execute(text("SELECT count(*) FROM instance")).scalar_one()
    assert rows == 1


def _misdeclared(path: Path, tmp_path: Path, **meta) -> Path:
    """The file at ``path`` with its file meta naming another instance: sent from the file,
    pynetdicom's request takes its UIDs from the meta, while the data set keeps its own."""
    ds = pydicom.dcmread(path)
    for keyword, value in meta.items():
        setattr(ds.file_meta, keyword, value)
    out = tmp_path / f"misdeclared-{len(list(tmp_path.iterdir()))}.dcm"
    ds.save_as(out)  # as it is: enforcing the file format would mend the meta
    return out


def test_a_data_set_that_is_not_the_instance_its_request_names_is_refused(
    session, world, port, tmp_path, monkeypatch
):
    # pynetdicom files a received data set under the request's UIDs (its file meta): one that
    # names another instance would be stored with two identities
    from pynetdicom import _config

    good = make_ct(tmp_path / "good.dcm")
    other_instance = _misdeclared(good, tmp_path, MediaStorageSOPInstanceUID=generate_uid())
    other_class = _misdeclared(good, tmp_path, MediaStorageSOPClassUID=MRImageStorage)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # send from the file
    assoc = _associate(
        port,
        [(CTImageStorage, [ExplicitVRLittleEndian]), (MRImageStorage, [ExplicitVRLittleEndian])],
    )
    try:
        assert assoc.is_established
        refused = assoc.send_c_store(other_instance)
        assert refused.Status == 0xA900
        assert refused.ErrorComment == "its SOP Instance UID differs from the request's"
        refused = assoc.send_c_store(other_class)
        assert refused.Status == 0xA900
        assert refused.ErrorComment == "its SOP Class UID differs from the request's"
        assert _studies(session) == []
        assert _stored_files(get_storage().root) == []
        assert assoc.send_c_store(good).Status == 0x0000  # the same data, declared as itself
    finally:
        assoc.release()
    (study,) = _studies(session)
    assert study.num_instances == 1
    (path,) = _stored_files(get_storage().root)
    stored = pydicom.dcmread(path)
    assert stored.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    assert stored.file_meta.MediaStorageSOPClassUID == stored.SOPClassUID == CTImageStorage


def test_a_device_switched_off_mid_association_stores_nothing_more(session, world, port, tmp_path):
    first, second = make_series(tmp_path, 2)
    assoc = _associate(
        port, [(CTImageStorage, [ExplicitVRLittleEndian]), (Verification, [ImplicitVRLittleEndian])]
    )
    try:
        assert _store(assoc, first).Status == 0x0000
        users.set_active(session=session, actor=None, user_id=world["tech"].id, active=False)
        answer = _store(assoc, second)
        assert answer.Status == 0x0124
        assert "may not upload" in answer.ErrorComment
        assert assoc.send_c_echo().Status == 0x0000  # an echo stores nothing: still answered
    finally:
        assoc.release()
    session.expire_all()
    assert session.exec(select(Instance)).all().__len__() == 1


def test_the_command_refuses_to_start_without_a_port(capsys, settings, monkeypatch):
    from pacs_app.dimse import listener

    monkeypatch.setattr(settings, "dicom_port", None)
    assert listener.main(["--port", "0"]) == 2
    assert "set DICOM_PORT" in capsys.readouterr().err
    assert listener.main(["--port", "11112", "--ae-title", "A\\B"]) == 2
    assert "AE title" in capsys.readouterr().err


def test_pacs_dicom_listener_runs_as_its_own_process(
    dcmtk, session, world, database_url, tmp_path, unused_port
):
    """`pacs dicom-listener`: what an operator runs beside the app (or `reflex run` starts
    with DICOM_PORT): it stores into STORAGE_PATH, and stops on SIGTERM."""
    import signal
    import sys
    import time

    free = unused_port
    storage = tmp_path / "storage"
    env = {**os.environ, "DATABASE_URL": database_url, "STORAGE_PATH": str(storage)}
    command = [sys.executable, "-m", "pacs_app.cli", "dicom-listener", "--host", "127.0.0.1"]
    child = subprocess.Popen(
        [*command, "--port", str(free), "--ae-title", "PACS"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _dcmtk("echoscu", free).returncode != 0:
            assert child.poll() is None, child.stdout.read()
            assert time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.5)
        assert _storescu(free, make_ct(tmp_path / "ct.dcm")).returncode == 0
        (study,) = _studies(session)
        assert study.num_instances == 1
        assert len(_stored_files(storage)) == 1
        # the received data set was staged beside the storage, and is gone from there
        assert list((storage / ".staging").iterdir()) == []
    finally:
        child.send_signal(signal.SIGTERM)
        output = child.communicate(timeout=30)[0]
    assert child.returncode == 0, output
    assert "DICOM listener PACS on 127.0.0.1" in output
    assert "DOE" not in output and "TEST^PATIENT" not in output  # no patient data logged


def test_of_several_backend_workers_one_listens_and_another_takes_over(
    dcmtk, world, database_url, tmp_path, monkeypatch, unused_port
):
    """With REDIS_URL set, `reflex run` runs several backend workers, and each starts the
    listener that DICOM_PORT asks for: one listens; the others stand by instead of failing
    on the port, and one of them takes over when it ends."""
    import time

    from pacs_app.config import settings
    from pacs_app.dimse import listener
    from tests.processes import listens, wait_for

    free = unused_port
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STORAGE_PATH", str(tmp_path / "storage"))
    monkeypatch.setenv("DICOM_PORT", str(free))
    monkeypatch.setenv("DICOM_BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setattr(settings, "dicom_port", free)
    monkeypatch.setattr(settings, "dicom_bind_address", "127.0.0.1")

    def answered() -> bool:
        return _dcmtk("echoscu", free).returncode == 0

    workers = [listener.start_embedded() for _ in range(3)]
    try:
        assert wait_for(answered, 60, every=0.3), "no listener started"
        time.sleep(2)  # the others have looked for their turn by now
        assert [w.poll() for w in workers] == [None, None, None]  # none failed on the port
        first = next(w for w in workers if listens(w.pid, free))
        assert sum(listens(w.pid, free) for w in workers) == 1
        first.terminate()
        first.wait(timeout=30)
        assert wait_for(answered, 30, every=0.3), "no listener took over"
        assert sum(listens(w.pid, free) for w in workers if w is not first) == 1
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)


def test_refusals_kept_for_counting_stay_bounded():
    from pacs_app.dimse.listener import Repeats

    now = [0.0]
    repeats = Repeats(clock=lambda: now[0])
    repeats.MAX_KEPT = 3
    assert [repeats.due(("A",)), repeats.due(("A",)), repeats.due(("A",))] == [0, None, None]
    now[0] = 100.0
    for caller in "BCD":  # a fourth caller: the quiet ones' counts are dropped
        assert repeats.due((caller,)) == 0
    assert len(repeats._last) <= 3
    assert repeats.due(("B",)) is None  # still counted within its minute
