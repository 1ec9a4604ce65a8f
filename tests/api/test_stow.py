"""STOW-RS over HTTP (PS3.18 §10.5): `POST /dicomweb/studies[/{study}]`, on both databases.

A refused request leaves the database, the storage and the staging folder as they were."""

from __future__ import annotations

import pydicom
import pytest
from sqlmodel import func, select

from pacs_app.models import Instance, Role, Series, Study
from pacs_app.models.audit import AuditEvent
from pacs_app.services import stow
from pacs_app.services.audit import AuditAction
from tests.api.test_ingest_pool import _staged, pool  # noqa: F401 (pool: a fixture)
from tests.api.test_studies_routes import _auth, _state
from tests.dicom_factory import make_ct, make_series
from tests.factories import make_centre, make_user

BOUNDARY = "stow-test-7c1d"


def _related(
    parts: list[bytes],
    *,
    part_type: str = "application/dicom",
    root_type: str = "application/dicom",
    media_type: str = "multipart/related",
) -> tuple[bytes, dict[str, str]]:
    body = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f'{media_type}; type="{root_type}"; boundary="{BOUNDARY}"'}


def _store(api, auth, parts, url="/dicomweb/studies", **kind):
    body, headers = _related(parts, **kind)
    return api.post(url, content=body, headers={**auth, **headers})


def _items(response, tag: str) -> list[dict]:
    return response.json().get(tag, {}).get("Value", [])


def _value(item: dict, tag: str):
    return item[tag].get("Value", [None])[0]


@pytest.fixture
def world(session):
    north = make_centre(session, "NORTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    make_user(session, Role.RADIOLOGIST, username="tele")
    return north


def test_instances_are_stored_for_the_senders_centre(api, world, session, tmp_path):
    tech = _auth(api, "tech")
    paths = make_series(tmp_path / "s", 3, patient_name="DOE^JANE", patient_id="STOW-1")
    sent = [pydicom.dcmread(p) for p in paths]
    study_uid = sent[0].StudyInstanceUID

    r = _store(api, tech, [p.read_bytes() for p in paths])

    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    assert "warning" not in r.headers
    base = "http://testserver/dicomweb"
    assert _value(r.json(), "00081190") == f"{base}/studies/{study_uid}"  # RetrieveURL
    items = _items(r, "00081199")  # ReferencedSOPSequence
    assert [_value(i, "00081155") for i in items] == [ds.SOPInstanceUID for ds in sent]
    assert {_value(i, "00081150") for i in items} == {sent[0].SOPClassUID}
    first = sent[0]
    assert _value(items[0], "00081190") == (
        f"{base}/studies/{study_uid}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}"
    )
    assert "00081198" not in r.json()  # no FailedSOPSequence

    # the study is the centre's, filled from the headers, and the URLs answer
    listed = api.get("/studies", headers=tech).json()["items"]
    assert [(s["patient_name"], s["patient_id"], s["num_instances"]) for s in listed] == [
        ("DOE^JANE", "STOW-1", 3)
    ]
    back = api.get(_value(items[0], "00081190").removeprefix("http://testserver"), headers=tech)
    assert back.status_code == 200 and back.content.count(b"DICM") == 1
    uploaded = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.STUDY_UPLOADED)
    ).all()
    assert len(uploaded) == 1


def test_a_resent_instance_is_answered_as_stored_but_not_stored_twice(
    api, world, session, tmp_path
):
    tech = _auth(api, "tech")
    paths = make_series(tmp_path / "s", 2)
    assert _store(api, tech, [paths[0].read_bytes()]).status_code == 200

    r = _store(api, tech, [p.read_bytes() for p in paths])  # the first again, and the second

    assert r.status_code == 200, r.text
    assert len(_items(r, "00081199")) == 2
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 2
    assert session.exec(select(func.count()).select_from(Study)).one() == 1


def test_instances_sent_to_a_study_must_belong_to_it(api, world, session, tmp_path, storage_root):
    tech = _auth(api, "tech")
    ours = make_series(tmp_path / "a", 1)
    theirs = make_series(tmp_path / "b", 1)
    study_uid = pydicom.dcmread(ours[0]).StudyInstanceUID
    before = _state(session, storage_root)

    r = _store(
        api,
        tech,
        [ours[0].read_bytes(), theirs[0].read_bytes()],
        url=f"/dicomweb/studies/{study_uid}",
    )

    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    failed = _items(r, "00081198")  # FailedSOPSequence: every instance, none stored
    assert [_value(i, "00081155") for i in failed] == [
        pydicom.dcmread(p).SOPInstanceUID for p in (ours[0], theirs[0])
    ]
    assert [_value(i, "00081197") for i in failed] == [
        stow.PROCESSING_FAILURE,
        stow.STUDY_MISMATCH,
    ]
    assert "instance 2" in r.headers["warning"] and "another study" in r.headers["warning"]
    assert "nothing of the request was stored" in r.headers["warning"]
    assert _state(session, storage_root) == before
    assert _staged(storage_root) == []

    # sent to its own study, it is stored
    ok = _store(api, tech, [ours[0].read_bytes()], url=f"/dicomweb/studies/{study_uid}")
    assert ok.status_code == 200, ok.text


def test_a_part_that_is_not_dicom_refuses_the_whole_request(
    api, world, session, tmp_path, storage_root
):
    tech = _auth(api, "tech")
    good = make_series(tmp_path / "s", 2)
    truncated = good[1].read_bytes()[:-1000]
    before = _state(session, storage_root)

    r = _store(api, tech, [good[0].read_bytes(), b"just some text", truncated])

    assert r.status_code == 409, r.text
    failed = _items(r, "00081198")
    assert [_value(i, "00081197") for i in failed] == [
        stow.PROCESSING_FAILURE,
        stow.CANNOT_UNDERSTAND,
        stow.CANNOT_UNDERSTAND,
    ]
    assert "00081155" not in failed[1] or _value(failed[1], "00081155") is None
    warning = r.headers["warning"]
    assert warning.startswith('299 pacs: "instance 2: not a DICOM file')
    assert "(and 1 more refused)" in warning
    assert _state(session, storage_root) == before
    assert _staged(storage_root) == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ({"media_type": "multipart/form-data"}, "multipart/related"),
        ({"root_type": "application/dicom+json"}, "multipart/related"),
        ({"part_type": "application/dicom+xml"}, "Part 1 is application/dicom+xml"),
    ],
)
def test_other_media_types_are_refused_with_415(
    api, world, session, tmp_path, storage_root, kind, expected
):
    tech = _auth(api, "tech")
    before = _state(session, storage_root)
    r = _store(api, tech, [make_series(tmp_path / "s", 1)[0].read_bytes()], **kind)
    assert r.status_code == 415, r.text
    assert expected in r.json()["detail"]
    assert _state(session, storage_root) == before
    assert _staged(storage_root) == []


def test_who_may_store_and_what_an_empty_request_gets(api, world, session, tmp_path, storage_root):
    part = make_series(tmp_path / "s", 1)[0].read_bytes()
    before = _state(session, storage_root)

    assert _store(api, {}, [part]).status_code == 401
    bad = _store(api, {"Authorization": "Bearer not-a-token"}, [part])
    assert bad.status_code == 401
    radiologist = _store(api, _auth(api, "tele"), [part])
    assert radiologist.status_code == 403, radiologist.text
    empty = _store(api, _auth(api, "tech"), [])
    assert empty.status_code == 422 and "no instances" in empty.json()["detail"]

    assert _state(session, storage_root) == before
    assert _staged(storage_root) == []
    assert session.exec(select(func.count()).select_from(Series)).one() == 0


def test_an_ingest_process_stores_them_as_the_web_process_does(
    api,
    world,
    pool,  # noqa: F811 (the fixture imported above)
    session,
    tmp_path,
    storage_root,
):
    started = pool(1)
    tech = _auth(api, "tech")
    paths = make_series(tmp_path / "s", 2, patient_name="ROE^RICHARD")
    before = _state(session, storage_root)

    refused = _store(api, tech, [paths[0].read_bytes(), b"not DICOM"])
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/dicom+json"
    assert refused.headers["warning"].startswith('299 pacs: "instance 2: not a DICOM file')
    assert _state(session, storage_root) == before

    r = _store(api, tech, [p.read_bytes() for p in paths])
    assert r.status_code == 200, r.text
    assert len(_items(r, "00081199")) == 2
    assert started.answered == 2  # the child did the work, not the web process

    radiologist = _store(api, _auth(api, "tele"), [paths[0].read_bytes()])
    assert radiologist.status_code == 403 and radiologist.json()["code"] == "permission_denied"
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 2
    assert _staged(storage_root) == []


def test_one_request_may_hold_several_studies(api, world, tmp_path):
    tech = _auth(api, "tech")
    a = make_series(tmp_path / "a", 1, patient_name="DOE^JANE")
    b = make_series(tmp_path / "b", 1, patient_name="ROE^RICHARD")

    r = _store(api, tech, [a[0].read_bytes(), b[0].read_bytes()])

    assert r.status_code == 200, r.text
    assert "00081190" in r.json() and "Value" not in r.json()["00081190"]  # no one study
    assert len(_items(r, "00081199")) == 2
    listed = api.get("/studies", headers=tech).json()["items"]
    assert sorted(s["patient_name"] for s in listed) == ["DOE^JANE", "ROE^RICHARD"]


def _with(path, target, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(target, enforce_file_format=True)
    return target


def test_a_resend_with_other_data_fails_as_a_duplicate_sop_instance(
    api, world, session, tmp_path, storage_root
):
    tech = _auth(api, "tech")
    paths = make_series(tmp_path / "s", 2)
    assert _store(api, tech, [paths[0].read_bytes()]).status_code == 200
    corrected = _with(paths[0], tmp_path / "corrected.dcm", PatientName="OTHER^NAME")
    sop = pydicom.dcmread(paths[0]).SOPInstanceUID

    # the new instance is stored; the other data under a held UID is not (202)
    r = _store(api, tech, [corrected.read_bytes(), paths[1].read_bytes()])

    assert r.status_code == 202, r.text
    assert [_value(i, "00081155") for i in _items(r, "00081199")] == [
        pydicom.dcmread(paths[1]).SOPInstanceUID
    ]
    [failed] = _items(r, "00081198")
    assert _value(failed, "00081155") == sop
    assert _value(failed, "00081197") == stow.DUPLICATE_SOP_INSTANCE  # FailureReason 0111H
    assert r.headers["warning"].startswith('299 pacs: "instance 1: not stored: the study')
    assert "differ" in r.headers["warning"]
    after = _state(session, storage_root)
    assert after[0] == (1, 1, 2)

    # sent alone, it stores nothing: 409, and the held instance is unchanged
    r = _store(api, tech, [corrected.read_bytes()])

    assert r.status_code == 409, r.text
    assert "00081199" not in r.json()
    assert [_value(i, "00081197") for i in _items(r, "00081198")] == [0x0111]
    assert _state(session, storage_root) == after
    held = api.get(
        f"/studies/{api.get('/studies', headers=tech).json()['items'][0]['study_id']}"
        "/instances/1/file",
        headers=tech,
    )
    assert held.content == paths[0].read_bytes()


def test_an_instance_over_the_size_limit_is_413(
    api, world, session, tmp_path, storage_root, settings, monkeypatch
):
    tech = _auth(api, "tech")
    small, big = make_series(tmp_path / "s", 1)[0], make_ct(tmp_path / "big.dcm", size=1024)
    monkeypatch.setattr(settings, "max_upload_file_mb", 1)
    before = _state(session, storage_root)

    r = _store(api, tech, [small.read_bytes(), big.read_bytes()])

    assert r.status_code == 413, r.text
    assert "over the 1 MB limit" in r.json()["detail"] and r.json()["code"] == "too_large"
    assert _state(session, storage_root) == before
