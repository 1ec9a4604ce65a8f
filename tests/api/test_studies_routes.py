"""`/studies` over HTTP: upload, list, detail, download, delete, and every bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlmodel import func, select

from pacs_app.models import Instance, Role, Series, Study
from pacs_app.models.audit import AuditEvent
from tests.dicom_factory import make_ct, make_series
from tests.factories import PASSWORD, make_centre, make_user


def _auth(api, username: str) -> dict[str, str]:
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def world(session):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech-n")
    make_user(session, Role.TECHNICIAN, centre=south, username="tech-s")
    make_user(session, Role.CENTRE, centre=north, username="mgr-n")
    make_user(session, Role.RADIOLOGIST, centre=north, username="rad-n")
    make_user(session, Role.RADIOLOGIST, username="tele")
    make_user(session, Role.ADMIN, username="root")
    return {"north": north, "south": south}


def _upload(api, headers, paths: list[Path], **fields):
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
    return api.post("/studies", headers=headers, files=files, data=fields)


def _state(session, storage_root: Path):
    session.expire_all()
    rows = tuple(
        session.exec(select(func.count()).select_from(m)).one() for m in (Study, Series, Instance)
    )
    files = (
        sorted(p for p in storage_root.rglob("*") if p.is_file()) if storage_root.exists() else []
    )
    return rows, files


def test_upload_then_list_detail_and_download(api, world, tmp_path, storage_root):
    tech = _auth(api, "tech-n")
    paths = make_series(tmp_path / "s", 3, patient_name="DOE^JANE", patient_id="P-77")

    r = _upload(
        api,
        tech,
        paths,
        patient_name="Doe^Jane",
        modality="CT",
        patient_age="61",
        priority="urgent",
    )
    assert r.status_code == 201, r.text
    body = r.json()
    study_id = body["study_id"]
    assert len(study_id) == 8 and body["stored"] == 3
    assert body["studies"][0]["patient_age"] == "061Y"

    listed = api.get("/studies", headers=tech).json()
    assert listed["total"] == 1 and listed["items"][0]["study_id"] == study_id

    detail = api.get(f"/studies/{study_id}", headers=tech).json()
    assert detail["priority"] == "urgent" and detail["num_instances"] == 3
    assert [s["num_instances"] for s in detail["series"]] == [3]
    assert [i["number"] for i in detail["instances"]] == [1, 2, 3]
    assert detail["instances"][0]["rows"] == 128
    assert detail["history"][0]["action"] == "study.uploaded"

    f = api.get(f"/studies/{study_id}/instances/2/file", headers=tech)
    assert f.status_code == 200 and f.headers["content-type"] == "application/dicom"
    assert f.content == paths[1].read_bytes()
    assert api.get(f"/studies/{study_id}/instances/9/file", headers=tech).status_code == 404


def test_visibility_follows_the_domain_rules(api, world, tmp_path):
    north = _upload(api, _auth(api, "tech-n"), [make_ct(tmp_path / "n.dcm")]).json()["study_id"]
    south = _upload(api, _auth(api, "tech-s"), [make_ct(tmp_path / "s.dcm")]).json()["study_id"]

    def visible(user):
        h = _auth(api, user)
        return {s["study_id"] for s in api.get("/studies", headers=h).json()["items"]}

    assert visible("root") == {north, south}
    assert visible("tech-n") == visible("mgr-n") == visible("rad-n") == {north}
    assert visible("tech-s") == {south}
    assert visible("tele") == {north, south}  # the unassigned pool of every centre
    # another centre's study answers 404, as if it did not exist
    h = _auth(api, "tech-s")
    assert api.get(f"/studies/{north}", headers=h).status_code == 404
    assert api.get(f"/studies/{north}/instances/1/file", headers=h).status_code == 404
    assert api.get("/studies/NOSUCH00", headers=h).status_code == 404


def test_filters_search_sort_and_pages(api, world, tmp_path):
    tech = _auth(api, "tech-n")
    ids = []
    for i, (name, pid, mod, prio) in enumerate(
        [
            ("ALPHA^ANN", "A-1", "CT", "routine"),
            ("BETA^BOB", "B-2", "MR", "stat"),
            ("GAMMA^GUS", "C-3", "CT", "urgent"),
            ("DELTA^DEB", "D-4", "CR", "routine"),
            ("ALPHONSE^AL", "E-5", "CT", "routine"),
        ]
    ):
        r = _upload(
            api,
            tech,
            [make_ct(tmp_path / f"{i}.dcm", patient_name=name, patient_id=pid)],
            modality=mod,
            priority=prio,
        )
        ids.append(r.json()["study_id"])

    def get(**params):
        r = api.get("/studies", headers=tech, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    assert {s["patient_id"] for s in get(q="alph")["items"]} == {"A-1", "E-5"}
    assert [s["patient_id"] for s in get(patient_id="C-3")["items"]] == ["C-3"]
    assert [s["study_id"] for s in get(q=ids[3].lower())["items"]] == [ids[3]]
    assert get(modality="ct")["total"] == 3
    assert [s["priority"] for s in get(sort="priority", order="desc", limit=2)["items"]] == [
        "stat",
        "urgent",
    ]
    assert get(status="unassigned")["total"] == 5 and get(status="verified")["total"] == 0
    today = get(date_from="2000-01-01", date_to="2999-12-31")
    assert today["total"] == 5
    assert (
        api.get(
            "/studies", headers=tech, params={"date_from": "2030-01-02", "date_to": "2030-01-01"}
        ).status_code
        == 422
    )

    # keyset pages walk forward and back over every study exactly once
    page1 = get(sort="patient_name", order="asc", limit=2)
    page2 = get(sort="patient_name", order="asc", limit=2, cursor=page1["next_cursor"])
    page3 = get(sort="patient_name", order="asc", limit=2, cursor=page2["next_cursor"])
    names = [s["patient_name"] for p in (page1, page2, page3) for s in p["items"]]
    assert names == sorted(names) and len(names) == 5 and page3["next_cursor"] is None
    assert page1["total"] == 5 and page1["prev_cursor"] is None
    back = get(sort="patient_name", order="asc", limit=2, cursor=page2["prev_cursor"])
    assert back["items"] == page1["items"]
    for sort in ("received_at", "patient_name", "modality", "priority", "status", "study_id"):
        for order in ("asc", "desc"):
            seen, cursor = [], None
            while True:
                params = {"sort": sort, "order": order, "limit": 2}
                page = get(**params, **({"cursor": cursor} if cursor else {}))
                seen += [s["study_id"] for s in page["items"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert sorted(seen) == sorted(ids), (sort, order)
    bad = api.get("/studies", headers=tech, params={"cursor": "garbage"})
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("make_bad", "fields", "message"),
    [
        (lambda d: d / "notes.dcm", {}, "notes.dcm: not a DICOM file"),
        (lambda d: d / "cut.dcm", {}, "cut.dcm: the file is truncated"),
        (lambda d: d / "nouid.dcm", {}, "nouid.dcm: missing required UID: StudyInstanceUID"),
        (lambda d: d / "mixed.zip", {}, "mixed.zip/readme.txt: not a DICOM file"),
        (lambda d: d / "ok.dcm", {"patient_age": "forty"}, "patient_age must be a number"),
        (lambda d: d / "ok.dcm", {"patient_sex": "X"}, "patient_sex must be M, F or O"),
    ],
    ids=["text-as-dcm", "truncated", "no-uid", "zip-with-junk", "bad-age", "bad-sex"],
)
def test_bad_uploads_are_refused_whole_with_a_clear_message(
    api, world, session, tmp_path, storage_root, make_bad, fields, message
):
    import pydicom

    good = make_ct(tmp_path / "ok.dcm")
    (tmp_path / "notes.dcm").write_text("not dicom at all\n" * 10)
    (tmp_path / "cut.dcm").write_bytes(good.read_bytes()[:-4000])
    nouid = make_ct(tmp_path / "nouid.dcm")
    ds = pydicom.dcmread(nouid)
    del ds.StudyInstanceUID
    ds.save_as(nouid)
    with zipfile.ZipFile(tmp_path / "mixed.zip", "w") as zf:
        zf.write(good, "ok.dcm")
        zf.writestr("readme.txt", "hello")
    bad = make_bad(tmp_path)
    before = _state(session, storage_root)

    paths = [good, bad] if bad != good else [good]
    r = _upload(api, _auth(api, "tech-n"), paths, **fields)

    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert _state(session, storage_root) == before


def test_empty_oversized_and_unauthorized_uploads(
    api, world, session, tmp_path, storage_root, settings, monkeypatch
):
    before = _state(session, storage_root)
    tech = _auth(api, "tech-n")
    r = api.post("/studies", headers=tech, data={"patient_name": "X"})
    assert r.status_code == 422  # no files field at all
    r = api.post(
        "/studies", headers=tech, files=[("files", ("empty.dcm", b"", "application/dicom"))]
    )
    assert r.status_code == 422 and "empty.dcm: the file is empty" in r.json()["detail"]

    monkeypatch.setattr(settings, "max_upload_file_mb", 1)
    r = _upload(api, tech, [make_ct(tmp_path / "big.dcm", size=1024)])
    assert r.status_code == 413 and "over the 1 MB limit" in r.json()["detail"]
    assert r.json()["code"] == "too_large"

    for user in ("tele", "rad-n", "root"):
        r = _upload(api, _auth(api, user), [make_ct(tmp_path / "r.dcm")])
        assert r.status_code == 403, user
        assert "Only technicians and centre users" in r.json()["detail"]
    assert api.post("/studies", files=[("files", ("a.dcm", b"x"))]).status_code == 401
    assert _state(session, storage_root) == before


def test_admin_deletes_a_study_with_confirmation(api, world, session, tmp_path, storage_root):
    uid = generate_uid()
    r = _upload(api, _auth(api, "tech-n"), make_series(tmp_path / "d", 2, study_uid=uid))
    study_id = r.json()["study_id"]
    assert _state(session, storage_root)[0] == (1, 1, 2)

    assert (
        api.delete(
            f"/studies/{study_id}", headers=_auth(api, "mgr-n"), params={"confirm": study_id}
        ).status_code
        == 403
    )
    admin = _auth(api, "root")
    r = api.delete(f"/studies/{study_id}", headers=admin)
    assert r.status_code == 422 and "confirm" in r.json()["detail"]
    assert (
        api.delete(f"/studies/{study_id}", headers=admin, params={"confirm": study_id}).status_code
        == 204
    )
    assert _state(session, storage_root) == ((0, 0, 0), [])
    assert api.get(f"/studies/{study_id}", headers=admin).status_code == 404


def test_malformed_bodies_and_forged_tokens_stage_nothing(
    api, world, session, tmp_path, storage_root
):
    before = _state(session, storage_root)
    tech = _auth(api, "tech-n")
    good = make_ct(tmp_path / "ok.dcm").read_bytes()

    # not multipart at all
    r = api.post("/studies", headers={**tech, "Content-Type": "application/dicom"}, content=good)
    assert r.status_code == 422 and "multipart/form-data" in r.json()["detail"]

    # a multipart body cut off in the middle of the file
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="ok.dcm"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()
    r = api.post(
        "/studies",
        headers={**tech, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=head + good[:5000],
    )
    assert r.status_code == 422 and "cut short" in r.json()["detail"]

    # a form field far over its size
    r = _upload(api, tech, [tmp_path / "ok.dcm"], clinical_notes="x" * 70_000)
    assert r.status_code == 413 and "clinical_notes" in r.json()["detail"]

    # a token this server did not sign: refused before the body is read, and audited
    def refusals():
        return session.exec(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "failure")
        ).one()

    seen = refusals()
    forged = {"Authorization": "Bearer " + tech["Authorization"].split()[1][:-4] + "AAAA"}
    r = _upload(api, forged, [tmp_path / "ok.dcm"])
    assert r.status_code == 401
    assert refusals() == seen + 1
    assert _state(session, storage_root) == before


def test_the_upload_route_stays_documented_and_works_under_a_prefix(api, world, tmp_path):
    """POST /studies is served by PacsApi's express lane: the OpenAPI entry stays, and the
    lane finds the route when the app is mounted or proxied under a prefix."""
    from pacs_app.api.main import _route_path

    doc = api.get("/openapi.json").json()["paths"]["/studies"]["post"]
    assert "multipart/form-data" in doc["requestBody"]["content"]
    assert _route_path({"path": "/pacs/studies", "root_path": "/pacs"}) == "/studies"
    assert _route_path({"path": "/studies", "root_path": ""}) == "/studies"

    tech = _auth(api, "tech-n")
    refused = api.post("/studies", headers={"Authorization": "Bearer nonsense"}, files=[])
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    r = _upload(api, tech, make_series(tmp_path / "s", 1))
    assert r.status_code == 201 and r.json()["stored"] == 1


def test_a_resend_with_other_data_is_answered_as_a_conflict(
    api, world, session, tmp_path, storage_root
):
    tech = _auth(api, "tech-n")
    [first] = make_series(tmp_path / "s", 1, patient_id="P-1")
    assert _upload(api, tech, [first]).status_code == 201
    before = _state(session, storage_root)
    ds = pydicom.dcmread(first)
    ds.PatientID = "P-2"  # the same SOP Instance UID with other data
    corrected = tmp_path / "corrected.dcm"
    ds.save_as(corrected, enforce_file_format=True)

    r = _upload(api, tech, [corrected, first])

    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["stored"], body["duplicates"], body["conflicts"]) == (0, 1, 1)
    conflict, duplicate = body["files"]
    assert (conflict["name"], conflict["status"]) == ("corrected.dcm", "conflict")
    assert conflict["detail"].startswith("not stored: the study already holds an instance")
    assert (duplicate["status"], duplicate["detail"]) == ("duplicate", None)
    assert _state(session, storage_root) == before
    assert [p.read_bytes() for p in before[1]] == [first.read_bytes()]
