"""Query and retrieve over DIMSE: a workstation registered as a device that may query and
retrieve finds (C-FIND) and fetches (C-GET, or C-MOVE to a device of its centre) its
centre's studies, and nothing of another centre's; a device that may only send is refused.
DCMTK's findscu, getscu and movescu, as a workstation's integrator would try first, and
pynetdicom where a test needs the answers as data; on SQLite and PostgreSQL, against a live
listener on a local port."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlmodel import select

from pacs_app.models import AuditEvent, Role
from pacs_app.services import devices
from pacs_app.services.ingest import StagedFile, ingest
from pacs_app.storage import get_storage
from tests.dcmtk import tool as dcmtk_tool
from tests.dicom_factory import TESTDATA, make_series
from tests.factories import actor_of, make_centre, make_user

FIND, GET = StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet
MOVE = StudyRootQueryRetrieveInformationModelMove
P_FIND = PatientRootQueryRetrieveInformationModelFind
P_GET = PatientRootQueryRetrieveInformationModelGet
P_MOVE = PatientRootQueryRetrieveInformationModelMove


@pytest.fixture
def archive(session, world, tmp_path, storage_root):
    """Two studies of NORTH (3 and 2 slices), one of SOUTH, and a NORTH workstation that may
    query and retrieve."""

    def upload(actor, folder, count, **kw):
        paths = make_series(tmp_path / folder, count, **kw)
        ingest(
            session=session,
            actor=actor,
            files=[StagedFile(name=p.name, path=p) for p in paths],
            storage=get_storage(),
        )
        return pydicom.dcmread(paths[0])

    tech = actor_of(world["tech"])
    south = make_centre(session, "SOUTH")
    south_tech = actor_of(make_user(session, Role.TECHNICIAN, centre=south))
    doe = upload(tech, "doe", 3, patient_name="DOE^JANE", patient_id="N-1")
    roe = upload(tech, "roe", 2, patient_name="ROE^RICHARD", patient_id="N-2")
    other = upload(south_tech, "south", 2, patient_name="DOE^JOHN", patient_id="S-1")
    devices.create_device(
        session=session,
        actor=actor_of(world["admin"]),
        ae_title="READING1",
        centre_id=world["centre"].id,
        uploads_as_id=world["tech"].id,
        networks="127.0.0.1",
        may_retrieve=True,
    )
    return {"doe": doe, "roe": roe, "south": other, "south_centre": south}


def _identifier(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find(port: int, identifier: Dataset, calling: str = "READING1", model=FIND):
    """The C-FIND's pending answers and its final status (Study Root, or ``model``)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = list(assoc.send_c_find(identifier, model))
    finally:
        assoc.release()
    pending = [ds for status, ds in answers if status and status.Status == 0xFF00]
    return pending, answers[-1][0]


def test_a_workstation_finds_its_centres_studies_series_and_images(session, world, archive, port):
    doe, roe, south = archive["doe"], archive["roe"], archive["south"]
    wanted = {"PatientID": "", "StudyDate": "", "ModalitiesInStudy": "", "AccessionNumber": ""}
    found, final = _find(port, _identifier("STUDY", PatientName="DOE*", **wanted))
    assert final.Status == 0x0000
    # DOE^JOHN is SOUTH's: not found
    assert [str(ds.StudyInstanceUID) for ds in found] == [doe.StudyInstanceUID]
    (answer,) = found
    assert answer.QueryRetrieveLevel == "STUDY" and answer.RetrieveAETitle == "PACS"
    assert answer.PatientID == "N-1" and str(answer.PatientName) == "DOE^JANE"
    assert answer.ModalitiesInStudy == "CT" and answer.StudyDate == doe.StudyDate
    assert "AccessionNumber" in answer and not answer.AccessionNumber  # asked, not held
    assert "PatientBirthDate" not in answer  # not asked

    found, _ = _find(port, _identifier("STUDY", PatientName="", StudyInstanceUID=""))
    assert {str(ds.StudyInstanceUID) for ds in found} == {
        doe.StudyInstanceUID,
        roe.StudyInstanceUID,
    }

    series, _ = _find(
        port,
        _identifier(
            "SERIES",
            StudyInstanceUID=doe.StudyInstanceUID,
            SeriesInstanceUID="",
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    (one,) = series
    assert one.SeriesInstanceUID == doe.SeriesInstanceUID and one.Modality == "CT"
    assert int(one.NumberOfSeriesRelatedInstances) == 3

    images, _ = _find(
        port,
        _identifier(
            "IMAGE",
            StudyInstanceUID=doe.StudyInstanceUID,
            SeriesInstanceUID=doe.SeriesInstanceUID,
            SOPInstanceUID="",
            InstanceNumber="",
        ),
    )
    assert [int(ds.InstanceNumber) for ds in images] == [1, 2, 3]

    # another centre's study, named by its UID, matches nothing
    hidden, final = _find(
        port, _identifier("SERIES", StudyInstanceUID=south.StudyInstanceUID, Modality="")
    )
    assert hidden == [] and final.Status == 0x0000

    session.expire_all()
    queries = session.exec(
        select(AuditEvent).where(AuditEvent.action == "dicom.queried").order_by(AuditEvent.id)
    ).all()
    assert [(q.detail["level"], q.detail["matches"]) for q in queries] == [
        ("STUDY", 1),
        ("STUDY", 2),
        ("SERIES", 1),
        ("IMAGE", 3),
        ("SERIES", 0),
    ]
    assert queries[0].actor_id == world["tech"].id and queries[0].address == "127.0.0.1"
    assert "DOE" not in str([q.detail for q in queries])  # the query's values are not kept


# the workstation side (pydicom) warns of the invalid values these send on purpose
@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_queries_that_cannot_be_answered_say_why(session, world, archive, port):
    _, final = _find(port, _identifier("STUDY", PatientName="DOE*"), calling="MODALITY1")
    assert final.Status == 0x0124
    assert final.ErrorComment == "device MODALITY1 may send, not query or retrieve"

    no_level = Dataset()
    no_level.PatientName = "DOE*"
    _, final = _find(port, no_level)
    assert final.Status == 0xA900 and "QueryRetrieveLevel" in final.ErrorComment
    _, final = _find(port, _identifier("PATIENT", PatientName=""))
    assert final.Status == 0xA900

    _, final = _find(port, _identifier("STUDY", StudyDate="20201345"))
    assert final.Status == 0xC000 and "not a date" in final.ErrorComment

    # the permission is asked again for each query
    admin = actor_of(world["admin"])
    (reading,) = devices.list_devices(session=session, actor=admin, search="READING1").items
    devices.update_device(
        session=session,
        actor=admin,
        device_id=reading.id,
        ae_title="READING1",
        uploads_as_id=world["tech"].id,
        networks="127.0.0.1",
        may_retrieve=False,
    )
    _, final = _find(port, _identifier("STUDY", PatientName=""))
    assert final.Status == 0x0124


def _get(
    port: int,
    identifier: Dataset,
    syntaxes=(ExplicitVRLittleEndian,),
    sop_class=CTImageStorage,
    model=GET,
):
    """What a C-GET sends back (data sets, by the SCU's C-STORE handler) and its final
    status."""
    received: list[Dataset] = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE(ae_title="READING1")
    ae.add_requested_context(model)
    ae.add_requested_context(sop_class, list(syntaxes))
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACS",
        ext_neg=[build_role(sop_class, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        answers = list(assoc.send_c_get(identifier, model))
    finally:
        assoc.release()
    return received, answers[-1][0]


# the workstation side (pydicom) warns of the invalid values these send on purpose
@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_a_workstation_retrieves_a_study_a_series_or_images_as_stored(
    session, world, archive, port
):
    doe, south = archive["doe"], archive["south"]
    received, final = _get(port, _identifier("STUDY", StudyInstanceUID=doe.StudyInstanceUID))
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 3
    assert [int(ds.InstanceNumber) for ds in received] == [1, 2, 3]
    assert np.array_equal(received[0].pixel_array, doe.pixel_array)  # the pixels as sent
    assert str(received[0].PatientName) == "DOE^JANE"

    one = received[1].SOPInstanceUID
    images, final = _get(
        port,
        _identifier(
            "IMAGE",
            StudyInstanceUID=doe.StudyInstanceUID,
            SeriesInstanceUID=doe.SeriesInstanceUID,
            SOPInstanceUID=one,
        ),
    )
    assert [ds.SOPInstanceUID for ds in images] == [one]

    # in the syntax the workstation accepts
    implicit, _ = _get(
        port,
        _identifier(
            "SERIES",
            StudyInstanceUID=doe.StudyInstanceUID,
            SeriesInstanceUID=doe.SeriesInstanceUID,
        ),
        syntaxes=(ImplicitVRLittleEndian,),
    )
    assert len(implicit) == 3
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in implicit} == {ImplicitVRLittleEndian}

    # another centre's study is not there for it: nothing is sent
    nothing, final = _get(port, _identifier("STUDY", StudyInstanceUID=south.StudyInstanceUID))
    assert nothing == [] and final.Status == 0xC000
    assert "No study" in final.ErrorComment

    nothing, final = _get(port, _identifier("STUDY", StudyInstanceUID="*"))
    assert nothing == [] and final.Status == 0xA900

    session.expire_all()
    views = session.exec(
        select(AuditEvent).where(AuditEvent.action == "study.viewed").order_by(AuditEvent.id)
    ).all()
    assert [(v.detail["via"], v.detail["retrieved"]) for v in views] == [
        ("dimse", 3),
        ("dimse", 1),
        ("dimse", 3),
    ]


def _tool(name: str, port: int, *args: str, calling: str = "READING1", cwd=None):
    return subprocess.run(
        [dcmtk_tool(name), "-aet", calling, "-aec", "PACS", *args, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_dcmtk_findscu_and_getscu_query_and_retrieve(dcmtk, world, archive, port, tmp_path):
    doe = archive["doe"]
    found = _tool(
        "findscu",
        port,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=DOE*",
        "-k",
        "StudyInstanceUID",
    )
    assert found.returncode == 0, found.stderr
    output = found.stdout + found.stderr
    assert doe.StudyInstanceUID in output and "DOE^JANE" in output
    assert "DOE^JOHN" not in output  # SOUTH's
    # the Patient Root model (-P): the patient, found by name
    patients = _tool(
        "findscu",
        port,
        "-P",
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientName=DOE*",
        "-k",
        "PatientID",
        "-k",
        "NumberOfPatientRelatedStudies",
    )
    assert patients.returncode == 0, patients.stderr
    output = patients.stdout + patients.stderr
    assert "N-1" in output and "DOE^JANE" in output and "S-1" not in output

    fetched = _fetch_study("getscu", port, doe.StudyInstanceUID, tmp_path / "fetched")
    assert len(fetched) == 3
    assert doe.SOPInstanceUID in {str(ds.SOPInstanceUID) for ds in fetched}


def _fetch_study(tool: str, port: int, study_uid: str, target, *args: str) -> list[Dataset]:
    """What DCMTK's getscu or movescu (``tool``) writes to ``target`` for a study."""
    target.mkdir()
    done = _tool(
        tool,
        port,
        "-S",
        *args,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-od",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    return [pydicom.dcmread(f) for f in sorted(target.iterdir())]


def test_the_permission_is_registered_and_audited(session, world):
    admin = actor_of(world["admin"])
    device = world["device"]
    assert device.may_retrieve is False  # a device registered without it may only send
    changed = devices.update_device(
        session=session,
        actor=admin,
        device_id=device.id,
        ae_title=device.ae_title,
        uploads_as_id=world["tech"].id,
        networks=device.networks,
        description=device.description,
        may_retrieve=True,
    )
    assert changed.may_retrieve is True
    session.expire_all()
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "device.updated")).one()
    assert event.detail["changed"] == ["may_retrieve"]
    assert devices.retriever(session=session, calling_ae="MODALITY1", address="127.0.0.1")


def test_a_query_matching_more_than_one_c_find_answers_is_cut_and_says_so(
    session, world, archive, port, monkeypatch
):
    from pacs_app.services import query_retrieve

    monkeypatch.setattr(query_retrieve, "MAX_MATCHES", 1)
    found, final = _find(port, _identifier("STUDY", PatientName=""))
    assert len(found) == 1 and final.Status == 0x0000
    session.expire_all()
    (query,) = session.exec(select(AuditEvent).where(AuditEvent.action == "dicom.queried")).all()
    assert query.detail == {"level": "STUDY", "matches": 1, "cut": True}


def _stored_jpeg_ls(session, world) -> Dataset:
    """A JPEG-LS lossless MR instance of the shared test data, stored for NORTH."""
    source = TESTDATA / "transfer_syntax" / "MR_small_jpeg_ls_lossless.dcm"
    if not source.exists():
        pytest.skip(f"{source} is absent (the shared test data)")
    ingest(
        session=session,
        actor=actor_of(world["tech"]),
        files=[StagedFile(name=source.name, path=source)],
        storage=get_storage(),
    )
    return pydicom.dcmread(source)


def test_a_compressed_instance_is_sent_decompressed_to_a_workstation_that_asks_so(
    session, world, archive, port
):
    original = _stored_jpeg_ls(session, world)
    received, final = _get(
        port,
        _identifier("STUDY", StudyInstanceUID=original.StudyInstanceUID),
        syntaxes=(ExplicitVRLittleEndian,),
        sop_class=MRImageStorage,
    )
    assert final.Status == 0x0000
    (ds,) = received
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(ds.pixel_array, original.pixel_array)  # lossless: the same pixels


# --- C-MOVE -------------------------------------------------------------------------------


@contextmanager
def _storage_scp(ae_title: str, syntaxes=(ExplicitVRLittleEndian, ImplicitVRLittleEndian)):
    """A workstation's storage SCP on a local port: (its port, the data sets it received and
    the AE titles that sent them)."""
    received: list[Dataset] = []
    callers: list[str] = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        callers.append(event.assoc.requestor.ae_title.strip())
        return 0x0000

    ae = AE(ae_title=ae_title)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, list(syntaxes))
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        yield server.server_address[1], received, callers
    finally:
        server.shutdown()


def _move(port: int, identifier: Dataset, destination: str, calling: str = "READING1", model=MOVE):
    """A C-MOVE's final response (Study Root, or ``model``)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = list(assoc.send_c_move(identifier, destination, model))
    finally:
        assoc.release()
    return answers[-1][0]


def _set_move(session, world, ae_title: str, move_port, move_address="", **kw):
    admin = actor_of(world["admin"])
    (device,) = devices.list_devices(session=session, actor=admin, search=ae_title).items
    return devices.update_device(
        session=session,
        actor=admin,
        device_id=device.id,
        ae_title=device.ae_title,
        uploads_as_id=device.uploads_as_id,
        networks=device.networks,
        may_retrieve=kw.get("may_retrieve", device.may_retrieve),
        move_port=move_port,
        move_address=move_address,
    )


def _register(session, world, ae_title: str, centre_id: int, uploads_as_id: int, **kw):
    return devices.create_device(
        session=session,
        actor=actor_of(world["admin"]),
        ae_title=ae_title,
        centre_id=centre_id,
        uploads_as_id=uploads_as_id,
        networks="127.0.0.1",
        **kw,
    )


def test_a_workstation_moves_studies_to_itself_or_another_device_of_its_centre(
    session, world, archive, port
):
    doe, roe = archive["doe"], archive["roe"]
    with _storage_scp("READING1") as (scp_port, received, callers):
        # no address registered: the address it calls from
        _set_move(session, world, "READING1", scp_port)
        final = _move(port, _identifier("STUDY", StudyInstanceUID=doe.StudyInstanceUID), "READING1")
        assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 3
        assert [int(ds.InstanceNumber) for ds in received] == [1, 2, 3]
        assert np.array_equal(received[0].pixel_array, doe.pixel_array)  # the pixels as sent
        assert set(callers) == {"PACS"}

    # a viewing station of the same centre, at its registered address
    with _storage_scp("VIEWER2") as (scp_port, received, _):
        _register(
            session,
            world,
            "VIEWER2",
            world["centre"].id,
            world["tech"].id,
            move_port=scp_port,
            move_address="127.0.0.1",
        )
        series = _identifier(
            "SERIES", StudyInstanceUID=roe.StudyInstanceUID, SeriesInstanceUID=roe.SeriesInstanceUID
        )
        final = _move(port, series, "VIEWER2")
        assert final.Status == 0x0000 and len(received) == 2
        assert {str(ds.StudyInstanceUID) for ds in received} == {roe.StudyInstanceUID}

    session.expire_all()
    views = session.exec(
        select(AuditEvent).where(AuditEvent.action == "study.viewed").order_by(AuditEvent.id)
    ).all()
    assert [(v.detail["via"], v.detail["retrieved"], v.detail["destination"]) for v in views] == [
        ("dimse", 3, "READING1"),
        ("dimse", 2, "VIEWER2"),
    ]


def test_a_move_is_sent_only_where_the_centre_registered_and_only_what_it_may_see(
    session, world, archive, port
):
    doe, south = archive["doe"], archive["south"]
    study = _identifier("STUDY", StudyInstanceUID=doe.StudyInstanceUID)
    with _storage_scp("ANY") as (scp_port, received, _):
        # an AE title nobody registered, or another centre's device: unknown (0xA801)
        assert _move(port, study, "NOBODY").Status == 0xA801
        south_centre = archive["south_centre"]
        south_tech = make_user(session, Role.TECHNICIAN, centre=south_centre)
        _register(session, world, "SOUTHWS", south_centre.id, south_tech.id, move_port=scp_port)
        assert _move(port, study, "SOUTHWS").Status == 0xA801
        # a device of the centre without a C-MOVE port (the modality)
        assert _move(port, study, "MODALITY1").Status == 0xA801
        # another device of the centre with a port but no address: nowhere known to send
        _register(session, world, "VIEWER3", world["centre"].id, world["tech"].id, move_port=1)
        assert _move(port, study, "VIEWER3").Status == 0xA801
        assert received == []

        _set_move(session, world, "READING1", scp_port)
        # another centre's study: the refusal is answered once the destination is open
        final = _move(
            port, _identifier("STUDY", StudyInstanceUID=south.StudyInstanceUID), "READING1"
        )
        assert final.Status == 0xC000 and "No study" in final.ErrorComment
        assert received == []
        # a device that may only send may not move, even to itself
        _set_move(session, world, "MODALITY1", scp_port)
        final = _move(port, study, "MODALITY1", calling="MODALITY1")
        assert final.Status == 0x0124
        assert final.ErrorComment == "device MODALITY1 may send, not query or retrieve"
        assert received == []
        # a destination switched off is not one any more
        admin = actor_of(world["admin"])
        (reading,) = devices.list_devices(session=session, actor=admin, search="READING1").items
        devices.set_device_active(session=session, actor=admin, device_id=reading.id, active=False)
        assert _move(port, study, "READING1", calling="MODALITY1").Status == 0xA801
        assert received == []


def test_a_move_converts_what_the_destination_does_not_take_as_stored(
    session, world, archive, port
):
    original = _stored_jpeg_ls(session, world)
    study = _identifier("STUDY", StudyInstanceUID=original.StudyInstanceUID)
    with _storage_scp("READING1", syntaxes=(ExplicitVRLittleEndian,)) as (scp_port, got, _):
        _set_move(session, world, "READING1", scp_port)
        assert _move(port, study, "READING1").Status == 0x0000
        (ds,) = got
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert np.array_equal(ds.pixel_array, original.pixel_array)  # lossless: the same
    with _storage_scp("READING1", syntaxes=(original.file_meta.TransferSyntaxUID,)) as (
        scp_port,
        got,
        _,
    ):
        _set_move(session, world, "READING1", scp_port)
        assert _move(port, study, "READING1").Status == 0x0000
        (ds,) = got  # taken as stored where the destination accepts that
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert ds.PixelData == original.PixelData


def test_dcmtk_movescu_moves_a_study_to_its_own_storage_scp(
    session, dcmtk, world, archive, port, tmp_path, unused_port
):
    doe = archive["doe"]
    _set_move(session, world, "READING1", unused_port)
    moved = _fetch_study(
        "movescu",
        port,
        doe.StudyInstanceUID,
        tmp_path / "moved",
        *("-aem", "READING1", "--port", str(unused_port)),
    )
    assert len(moved) == 3
    assert {str(ds.StudyInstanceUID) for ds in moved} == {doe.StudyInstanceUID}


# --- Patient Root -------------------------------------------------------------------------


def test_patient_root_finds_patients_then_their_studies_series_and_images(
    session, world, archive, port, tmp_path
):
    doe, roe = archive["doe"], archive["roe"]
    # a second study of DOE^JANE (N-1)
    later = make_series(tmp_path / "later", 2, patient_name="DOE^JANE", patient_id="N-1")
    ingest(
        session=session,
        actor=actor_of(world["tech"]),
        files=[StagedFile(name=p.name, path=p) for p in later],
        storage=get_storage(),
    )
    asked = {
        "PatientName": "",
        "PatientBirthDate": "",
        "NumberOfPatientRelatedStudies": "",
        "NumberOfPatientRelatedInstances": "",
        "StudyDate": "",  # not of the patient level: returned empty
    }
    patients, final = _find(port, _identifier("PATIENT", **asked), model=P_FIND)
    assert final.Status == 0x0000
    by_id = {ds.PatientID: ds for ds in patients}
    assert sorted(by_id) == ["N-1", "N-2"]  # SOUTH's S-1 is not there
    assert str(by_id["N-1"].PatientName) == "DOE^JANE"
    assert by_id["N-1"].NumberOfPatientRelatedStudies == 2
    assert by_id["N-1"].NumberOfPatientRelatedInstances == 5
    assert by_id["N-2"].NumberOfPatientRelatedStudies == 1
    assert "StudyDate" in by_id["N-1"] and not by_id["N-1"].StudyDate
    assert all(ds.QueryRetrieveLevel == "PATIENT" for ds in patients)
    named, _ = _find(port, _identifier("PATIENT", PatientName="ROE*"), model=P_FIND)
    assert [ds.PatientID for ds in named] == ["N-2"]

    studies, _ = _find(
        port, _identifier("STUDY", PatientID="N-1", StudyInstanceUID=""), model=P_FIND
    )
    assert len(studies) == 2 and {ds.PatientID for ds in studies} == {"N-1"}
    assert doe.StudyInstanceUID in {ds.StudyInstanceUID for ds in studies}

    def below(level: str, patient_id: str, **keys):
        scope = {"StudyInstanceUID": doe.StudyInstanceUID, **keys}
        return _find(port, _identifier(level, PatientID=patient_id, **scope), model=P_FIND)

    series, _ = below("SERIES", "N-1", SeriesInstanceUID="")
    assert [(ds.PatientID, ds.SeriesInstanceUID) for ds in series] == [
        ("N-1", doe.SeriesInstanceUID)
    ]
    images, _ = below("IMAGE", "N-1", SeriesInstanceUID=doe.SeriesInstanceUID, SOPInstanceUID="")
    assert len(images) == 3 and {ds.PatientID for ds in images} == {"N-1"}
    # the study is not that patient's: nothing
    assert below("SERIES", "N-2", SeriesInstanceUID="")[0] == []
    assert roe.PatientID == "N-2"
    # the upper level's unique key is one value
    _, final = _find(port, _identifier("STUDY", PatientID="N-*"), model=P_FIND)
    assert final.Status == 0xA900 and "PatientID" in final.ErrorComment
    _, final = _find(port, _identifier("PATIENT", PatientName=""))  # not of Study Root
    assert final.Status == 0xA900


def test_patient_root_retrieves_a_patients_studies_by_get_and_move(session, world, archive, port):
    doe, south = archive["doe"], archive["south"]
    received, final = _get(port, _identifier("PATIENT", PatientID="N-1"), model=P_GET)
    assert final.Status == 0x0000 and len(received) == 3
    assert {ds.StudyInstanceUID for ds in received} == {doe.StudyInstanceUID}
    # another centre's patient: nothing of it is there for this workstation
    nothing, final = _get(port, _identifier("PATIENT", PatientID=south.PatientID), model=P_GET)
    assert nothing == [] and final.Status == 0x0000
    nothing, final = _get(port, _identifier("PATIENT", PatientID="N-*"), model=P_GET)
    assert nothing == [] and final.Status == 0xA900

    with _storage_scp("READING1") as (scp_port, moved, _):
        _set_move(session, world, "READING1", scp_port)
        study = _identifier("STUDY", PatientID="N-1", StudyInstanceUID=doe.StudyInstanceUID)
        assert _move(port, study, "READING1", model=P_MOVE).Status == 0x0000
        assert len(moved) == 3
