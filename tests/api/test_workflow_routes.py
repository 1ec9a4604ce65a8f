"""The reading workflow over HTTP: status codes, messages, and the PDF."""

from __future__ import annotations

import pytest
from pypdf import PdfReader

from pacs_app.models import Role
from tests.api.test_studies_routes import _auth, _upload
from tests.dicom_factory import make_series
from tests.factories import make_centre, make_user


@pytest.fixture
def world(session):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech-n")
    make_user(session, Role.CENTRE, centre=north, username="mgr-n")
    make_user(session, Role.CENTRE, centre=south, username="mgr-s")
    rad = make_user(session, Role.RADIOLOGIST, centre=north, username="rad-n")
    rad_s = make_user(session, Role.RADIOLOGIST, centre=south, username="rad-s")
    tele = make_user(session, Role.RADIOLOGIST, username="tele")
    make_user(session, Role.RADIOLOGIST, username="tele2")
    return {"rad": rad, "rad_s": rad_s, "tele": tele}


@pytest.fixture
def study_id(api, world, tmp_path):
    r = _upload(
        api,
        _auth(api, "tech-n"),
        make_series(tmp_path / "s", 2, patient_name="ROUTE^TEST"),
        modality="CT",
        priority="stat",
    )
    assert r.status_code == 201, r.text
    return r.json()["study_id"]


def test_assign_read_verify_deliver_and_download(api, world, study_id):
    mgr, rad = _auth(api, "mgr-n"), _auth(api, "rad-n")
    options = api.get(f"/studies/{study_id}/radiologists", headers=mgr).json()
    assert {o["username"] for o in options} == {"rad-n", "tele", "tele2"}  # not rad-s

    r = api.post(
        f"/studies/{study_id}/assign", headers=mgr, json={"radiologist_id": world["rad"].id}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "assigned"

    mine = api.get("/worklists/mine", headers=rad).json()
    assert [i["study_id"] for i in mine["items"]] == [study_id]
    assert mine["items"][0]["target_minutes"] == 60

    assert api.get(f"/studies/{study_id}/report", headers=rad).json()["status"] == "in_progress"
    r = api.put(
        f"/studies/{study_id}/report",
        headers=rad,
        json={"findings": "No bleed.", "impression": "Normal CT head.", "base_revision": 0},
    )
    assert r.status_code == 200 and r.json()["revision"] == 1
    stale = api.put(
        f"/studies/{study_id}/report",
        headers=rad,
        json={"findings": "x", "impression": "y", "base_revision": 0},
    )
    assert stale.status_code == 409 and "changed elsewhere" in stale.json()["detail"]

    # the centre sees no draft and cannot download one
    assert api.get(f"/studies/{study_id}/report", headers=mgr).json()["draft"] is None
    assert api.get(f"/studies/{study_id}/report.pdf", headers=mgr).status_code == 404

    assert api.post(f"/studies/{study_id}/report/verify", headers=rad).status_code == 200
    edit = api.put(
        f"/studies/{study_id}/report", headers=rad, json={"findings": "z", "impression": "z"}
    )
    assert edit.status_code == 409 and "addendum" in edit.json()["detail"]
    r = api.post(f"/studies/{study_id}/report/deliver", headers=rad)
    assert r.status_code == 200 and r.json()["status"] == "delivered"
    r = api.post(
        f"/studies/{study_id}/report/addenda", headers=rad, json={"text": "Prior CT reviewed."}
    )
    assert [v["kind"] for v in r.json()["versions"]] == ["signed", "addendum"]

    pdf = api.get(f"/studies/{study_id}/report.pdf", headers=mgr)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    import io

    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Normal CT head." in text and "Prior CT reviewed." in text and study_id in text

    notes = api.get("/notifications", headers=mgr).json()
    assert notes["unread"] >= 2  # the STAT arrival and the delivery (and the addendum)
    assert api.post("/notifications/read", headers=mgr, json={}).json()["marked"] >= 2
    assert api.get("/notifications", headers=mgr).json()["unread"] == 0


def test_refusals_have_the_right_status_and_say_why(api, world, study_id):
    mgr, tele, tele2 = _auth(api, "mgr-n"), _auth(api, "tele"), _auth(api, "tele2")
    assert api.post(f"/studies/{study_id}/assign", headers=mgr, json={}).status_code == 422
    r = api.post(f"/studies/{study_id}/assign", headers=mgr, json={"radiologist_id": 999999})
    assert r.status_code == 422 and "no user" in r.json()["detail"]
    r = api.post(
        f"/studies/{study_id}/assign", headers=mgr, json={"radiologist_id": world["rad_s"].id}
    )
    assert r.status_code == 422 and "another centre" in r.json()["detail"]

    assert api.post(f"/studies/{study_id}/claim", headers=tele).status_code == 200
    again = api.post(f"/studies/{study_id}/claim", headers=_auth(api, "rad-n"))
    assert again.status_code == 409 and "taken by" in again.json()["detail"]
    # out of the pool, so out of the other tele-radiologist's sight, yet a claim moments
    # later is told who took it; the study itself stays hidden from them
    late = api.post(f"/studies/{study_id}/claim", headers=tele2)
    assert late.status_code == 409 and "just taken by tele" in late.json()["detail"]
    assert api.get(f"/studies/{study_id}/report", headers=tele2).status_code == 404
    assert api.get(f"/studies/{study_id}/report", headers=_auth(api, "rad-s")).status_code == 404

    r = api.post(f"/studies/{study_id}/report/verify", headers=tele)
    assert r.status_code == 409 and "Cannot verify" in r.json()["detail"]  # not opened yet
    assert api.get(f"/studies/{study_id}/report", headers=tele).json()["status"] == "in_progress"
    r = api.post(f"/studies/{study_id}/report/verify", headers=tele)
    assert r.status_code == 422 and "impression" in r.json()["detail"]
    r = api.post(f"/studies/{study_id}/report/deliver", headers=tele)
    assert r.status_code == 409 and "Cannot deliver" in r.json()["detail"]
    r = api.post(f"/studies/{study_id}/cancel", headers=mgr, json={"reason": ""})
    assert r.status_code == 422
    r = api.post(f"/studies/{study_id}/priority", headers=mgr, json={"priority": "routine"})
    assert r.status_code == 422 and "administrator" in r.json()["detail"]
    assert (
        api.get("/turnaround?date_from=2026-01-01&date_to=2026-12-31", headers=tele).status_code
        == 403
    )
    ok = api.get("/turnaround?date_from=2026-01-01&date_to=2026-12-31", headers=mgr)
    assert ok.status_code == 200 and ok.json()["targets_minutes"]["stat"] == 60
