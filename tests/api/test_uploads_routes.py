"""The web uploader's batch API: files streamed one per request, committed all-or-nothing."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from pacs_app.models import Instance, Role, Study
from tests.dicom_factory import make_ct, make_series
from tests.factories import PASSWORD, make_centre, make_user


def _auth(api, username):
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def tech(api, session):
    centre = make_centre(session, "EAST")
    make_user(session, Role.TECHNICIAN, centre=centre, username="tech")
    make_user(session, Role.TECHNICIAN, centre=centre, username="other")
    return _auth(api, "tech")


def test_batch_upload_checks_each_file_and_commits_once(api, tech, session, tmp_path, storage_root):
    paths = make_series(tmp_path, 4)
    r = api.post("/uploads", headers=tech, json={"patient_name": "Roe^Ray", "priority": "stat"})
    assert r.status_code == 201
    batch = r.json()["batch_id"]
    for p in paths:
        r = api.put(
            f"/uploads/{batch}/files", headers=tech, params={"name": p.name}, content=p.read_bytes()
        )
        assert r.status_code == 200 and r.json()["ok"], r.text
    assert session.exec(select(func.count()).select_from(Study)).one() == 0  # not yet

    r = api.post(f"/uploads/{batch}/commit", headers=tech)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stored"] == 4 and body["studies"][0]["priority"] == "stat"
    assert body["studies"][0]["patient_name"] == "Roe^Ray"
    assert not (storage_root / ".staging" / batch).exists()
    assert api.post(f"/uploads/{batch}/commit", headers=tech).status_code == 404


def test_a_refused_file_is_reported_and_blocks_the_commit(
    api, tech, session, tmp_path, storage_root
):
    batch = api.post("/uploads", headers=tech, json={}).json()["batch_id"]
    good = make_ct(tmp_path / "good.dcm")
    api.put(
        f"/uploads/{batch}/files",
        headers=tech,
        params={"name": "good.dcm"},
        content=good.read_bytes(),
    )
    r = api.put(
        f"/uploads/{batch}/files",
        headers=tech,
        params={"name": "report.pdf"},
        content=b"%PDF-1.4 not dicom",
    )
    assert r.status_code == 200 and r.json() == {
        "index": 1,
        "name": "report.pdf",
        "size": 18,
        "ok": False,
        "message": "report.pdf: not a DICOM file (no DICM preamble and no DICOM identifiers)",
    }
    r = api.post(f"/uploads/{batch}/commit", headers=tech)
    assert r.status_code == 422 and "1 file(s) were refused" in r.json()["detail"]
    assert session.exec(select(func.count()).select_from(Instance)).one() == 0
    assert api.delete(f"/uploads/{batch}", headers=tech).status_code == 204
    assert not any((storage_root / ".staging").iterdir())


def test_batches_belong_to_their_owner_and_bad_input_is_clear(
    api, tech, tmp_path, settings, monkeypatch
):
    batch = api.post("/uploads", headers=tech, json={}).json()["batch_id"]
    other = _auth(api, "other")
    assert (
        api.put(
            f"/uploads/{batch}/files", headers=other, params={"name": "x"}, content=b"x"
        ).status_code
        == 404
    )
    assert api.post("/uploads/../../etc/commit", headers=tech).status_code == 404
    r = api.post("/uploads", headers=tech, json={"patient_age": "abc"})
    assert r.status_code == 422 and "patient_age must be a number" in r.json()["detail"]
    monkeypatch.setattr(settings, "max_upload_file_mb", 1)
    r = api.put(
        f"/uploads/{batch}/files",
        headers=tech,
        params={"name": "big.dcm"},
        content=make_ct(tmp_path / "big.dcm", size=1024).read_bytes(),
    )
    assert r.status_code == 413 and "big.dcm: over the 1 MB limit" in r.json()["detail"]
