"""`GET /studies/{id}/report/measurements`: a study's SR measurements for the findings."""

from __future__ import annotations

import pydicom
import pytest

from pacs_app.models import Role
from tests.dicom_factory import TESTDATA
from tests.factories import PASSWORD, make_centre, make_user

SR = TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm"


def _auth(api, username):
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.mark.skipif(not SR.exists(), reason=f"shared test data not found at {SR}")
def test_measurements_of_the_studys_reports(api, session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    make_user(session, Role.TECHNICIAN, centre=south, username="other")
    ds = pydicom.dcmread(SR)
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "sr.dcm")
    h = _auth(api, "tech")
    r = api.post(
        "/studies", headers=h, files=[("files", ("sr.dcm", (tmp_path / "sr.dcm").read_bytes()))]
    )
    assert r.status_code == 201, r.text
    url = f"/studies/{r.json()['study_id']}/report/measurements"
    r = api.get(url, headers=h)
    assert r.status_code == 200
    (only,) = r.json()
    assert only["sop_instance_uid"] == ds.SOPInstanceUID
    assert only["title"] == "Imaging Measurement Report"
    assert only["observed"] == "2019-03-17 17:33:15"
    assert only["lines"] == ["Spinal cord, Cervico-thoracic spine: Area of defined region 1.7 cm2"]
    assert only["text"].endswith("\n- " + only["lines"][0])
    assert api.get(url, headers=_auth(api, "other")).status_code == 404
    assert api.get(url).status_code == 401
