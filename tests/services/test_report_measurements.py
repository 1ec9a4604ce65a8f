"""The measurements of a study's structured reports, offered to the report's findings."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacs_app.core.errors import NotFound
from pacs_app.dicom import sr
from pacs_app.models import Role
from pacs_app.services import reports
from pacs_app.services.ingest import StagedFile, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import TESTDATA, make_ct
from tests.factories import actor_of, make_centre, make_user

pytestmark = pytest.mark.skipif(
    not (TESTDATA / "non_image").exists(), reason=f"shared test data not found at {TESTDATA}"
)


def test_lines_name_what_was_measured():
    tid1500 = sr.read(pydicom.dcmread(TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm"))
    # the group's finding and its site say what the area is of
    assert sr.measurements(tid1500) == [
        "Spinal cord, Cervico-thoracic spine: Area of defined region 1.7 cm2"
    ]
    # a report of text only has none
    assert sr.measurements(sr.read(pydicom.dcmread(TESTDATA / "non_image" / "reportsi.dcm"))) == []


def test_a_studys_reports_with_measurements(session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    tech = actor_of(make_user(session, Role.TECHNICIAN, centre=north, username="tech"))
    other = actor_of(make_user(session, Role.TECHNICIAN, centre=south, username="other"))
    storage = LocalStorage(tmp_path / "store")
    study_uid = generate_uid()
    files = [StagedFile("ct.dcm", make_ct(tmp_path / "ct.dcm", study_uid=study_uid))]
    for name in ("SR_TID1500_highdicom.dcm", "reportsi.dcm", "test-SR.dcm"):
        ds = pydicom.dcmread(TESTDATA / "non_image" / name)
        ds.StudyInstanceUID = study_uid  # one study (pydicom's test files share study UIDs)
        ds.save_as(tmp_path / name)
        files.append(StagedFile(name, tmp_path / name))
    result = ingest(session=session, actor=tech, files=files, storage=storage)
    study_id = result.study_id

    found = reports.study_measurements(
        session=session, actor=tech, study_id=study_id, storage=storage
    )
    # the two reports that hold numbers, oldest first (here in the order they were sent);
    # the text-only one is left out
    assert [m.title for m in found] == ["Imaging Measurement Report", "Diagnosis"]
    by_title = {m.title: m for m in found}
    tid1500 = by_title["Imaging Measurement Report"]
    assert tid1500.lines == ["Spinal cord, Cervico-thoracic spine: Area of defined region 1.7 cm2"]
    assert tid1500.text == (
        "Measurements from the structured report “Imaging Measurement Report” "
        "(2019-03-17 17:33:15):\n"
        "- Spinal cord, Cervico-thoracic spine: Area of defined region 1.7 cm2"
    )
    ds = pydicom.dcmread(TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm")
    assert tid1500.sop_instance_uid == ds.SOPInstanceUID
    assert tid1500.series_instance_uid == ds.SeriesInstanceUID
    assert by_title["Diagnosis"].lines == ["Diameter: 3 cm", "Diameter: 3 cm"]

    # another centre's user: no such study; a study without reports: nothing to offer
    with pytest.raises(NotFound):
        reports.study_measurements(session=session, actor=other, study_id=study_id, storage=storage)
    plain = ingest(
        session=session,
        actor=tech,
        files=[StagedFile("solo.dcm", make_ct(tmp_path / "solo.dcm"))],
        storage=storage,
    )
    assert (
        reports.study_measurements(
            session=session, actor=tech, study_id=plain.study_id, storage=storage
        )
        == []
    )
