"""Query and retrieve over DIMSE: a workstation registered as a device that may query and
retrieve finds (C-FIND) and fetches (C-GET) its centre's studies, and nothing of another
centre's; a device that may only send is refused. DCMTK's findscu and getscu, as a
workstation's integrator would try first, and pynetdicom where a test needs the answers as
data; on SQLite and PostgreSQL, against a live listener on a local port."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
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
    return {"doe": doe, "roe": roe, "south": other}


def _identifier(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find(port: int, identifier: Dataset, calling: str = "READING1"):
    """The C-FIND's pending answers and its final status."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    try:
        answers = list(assoc.send_c_find(identifier, FIND))
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
    port: int, identifier: Dataset, syntaxes=(ExplicitVRLittleEndian,), sop_class=CTImageStorage
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
    ae.add_requested_context(GET)
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
        answers = list(assoc.send_c_get(identifier, GET))
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

    target = tmp_path / "fetched"
    target.mkdir()
    fetched = _tool(
        "getscu",
        port,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={doe.StudyInstanceUID}",
        "-od",
        str(target),
    )
    assert fetched.returncode == 0, fetched.stderr
    files = sorted(target.iterdir())
    assert len(files) == 3
    got = {str(pydicom.dcmread(f).SOPInstanceUID) for f in files}
    assert doe.SOPInstanceUID in got


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


def test_a_compressed_instance_is_sent_decompressed_to_a_workstation_that_asks_so(
    session, world, archive, port
):
    source = TESTDATA / "transfer_syntax" / "MR_small_jpeg_ls_lossless.dcm"
    if not source.exists():
        pytest.skip(f"{source} is absent (the shared test data)")
    ingest(
        session=session,
        actor=actor_of(world["tech"]),
        files=[StagedFile(name=source.name, path=source)],
        storage=get_storage(),
    )
    original = pydicom.dcmread(source)
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
