"""`GET /dicom/dictionary`: the data dictionary's keywords that the viewer's tag browser shows."""

from __future__ import annotations

import pydicom

from pacs_app.models import Role
from tests.factories import PASSWORD, make_centre, make_user


def test_keywords_for_tags_and_repeating_groups(api, session):
    make_user(session, Role.RADIOLOGIST, centre=make_centre(session, "NORTH"), username="rad")
    assert api.get("/dicom/dictionary").status_code == 401
    token = api.post("/auth/token", data={"username": "rad", "password": PASSWORD})
    r = api.get(
        "/dicom/dictionary", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, max-age=86400"
    body = r.json()
    assert body["version"] == pydicom.__version__
    assert body["tags"]["00100010"] == "PatientName"
    assert body["tags"]["7FE00010"] == "PixelData"
    assert body["tags"]["00101002"] == "OtherPatientIDsSequence"
    # retired tags stay: old files carry them
    assert body["tags"]["00080010"] == "RecognitionCode"
    assert body["repeaters"]["60xx3000"] == "OverlayData"
    assert all(len(k) == 8 and k == k.upper() for k in body["tags"])
