"""Two centres' studies of one StudyInstanceUID over DICOMweb, on both databases.

A study sent to two centres, or a modality that repeats UIDs, gives two studies of one UID
(each centre's own). A user who may see both (an admin, a tele-radiologist) must get the one
they ask for, by its Study ID, and never one picked for them: its images could be another
patient's."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacs_app.models import Role
from tests.api.test_dicomweb import _auth, _parts
from tests.dicom_factory import make_ct
from tests.factories import make_centre, make_user


@pytest.fixture
def twins(api, session, tmp_path):
    """The same UIDs at NORTH (CT_small's pixels) and SOUTH (other pixels, another patient)."""
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech-n")
    make_user(session, Role.TECHNICIAN, centre=south, username="tech-s")
    make_user(session, Role.ADMIN, username="root")
    uids = {"study_uid": generate_uid(), "series_uid": generate_uid(), "sop_uid": generate_uid()}
    paths = {
        "tech-n": make_ct(tmp_path / "n.dcm", patient_name="NORTH^PATIENT", **uids),
        "tech-s": make_ct(tmp_path / "s.dcm", patient_name="SOUTH^PATIENT", size=128, **uids),
    }
    ids = {}
    for user, path in paths.items():
        r = api.post(
            "/studies", headers=_auth(api, user), files=[("files", (path.name, path.read_bytes()))]
        )
        assert r.status_code == 201, r.text
        ids[user] = r.json()["study_id"]
    base = f"/dicomweb/studies/{uids['study_uid']}"
    instance = f"{base}/series/{uids['series_uid']}/instances/{uids['sop_uid']}"
    return {"ids": ids, "paths": paths, "base": base, "instance": instance, **uids}


def _name(response) -> str:
    return response.json()[0]["00100010"]["Value"][0]["Alphabetic"]


def test_a_user_who_sees_one_of_them_gets_it(api, twins):
    for user, name in (("tech-n", "NORTH^PATIENT"), ("tech-s", "SOUTH^PATIENT")):
        r = api.get(twins["base"] + "/metadata", headers=_auth(api, user))
        assert r.status_code == 200 and _name(r) == name
    # naming the other centre's study is asking for one the user may not see
    r = api.get(
        twins["base"] + "/metadata",
        params={"study_id": twins["ids"]["tech-s"]},
        headers=_auth(api, "tech-n"),
    )
    assert r.status_code == 404


def test_one_who_sees_both_names_the_study_or_is_told_to(api, twins):
    admin = _auth(api, "root")
    north, south = twins["ids"]["tech-n"], twins["ids"]["tech-s"]
    for path in (
        twins["base"] + "/metadata",
        twins["base"],
        twins["base"] + f"/series/{twins['series_uid']}/instances",
        twins["instance"],
        twins["instance"] + "/frames/1",
        twins["instance"] + "/rendered",
    ):
        r = api.get(path, headers=admin)
        assert r.status_code == 409, (path, r.text)
        assert north in r.json()["detail"] and south in r.json()["detail"]
        assert "?study_id=" in r.json()["detail"]

    for study_id, user, name in (
        (north, "tech-n", "NORTH^PATIENT"),
        (south, "tech-s", "SOUTH^PATIENT"),
    ):
        asked = {"study_id": study_id.lower()}  # as typed: the Study ID is not case-sensitive
        assert _name(api.get(twins["base"] + "/metadata", params=asked, headers=admin)) == name
        sent = twins["paths"][user].read_bytes()
        whole = api.get(
            twins["base"],
            params=asked,
            headers={
                **admin,
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            },
        )
        assert whole.status_code == 200 and _parts(whole) == [sent]
        one = api.get(
            twins["instance"],
            params=asked,
            headers={
                **admin,
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            },
        )
        assert _parts(one) == [sent]
        frame = api.get(twins["instance"] + "/frames/1", params=asked, headers=admin)
        assert _parts(frame) == [pydicom.dcmread(twins["paths"][user]).PixelData]
        found = api.get(twins["base"] + "/series", params=asked, headers=admin)
        assert found.status_code == 200 and "warning" not in found.headers  # not a matching key
        assert [m["0020000E"]["Value"] for m in found.json()] == [[twins["series_uid"]]]
    # searching every study finds both, each by its own centre's Study ID
    r = api.get("/dicomweb/studies", params={"StudyInstanceUID": twins["study_uid"]}, headers=admin)
    assert r.status_code == 200 and len(r.json()) == 2


def test_search_results_retrieve_urls_name_the_study_where_the_uid_is_shared(api, twins):
    admin = _auth(api, "root")
    by_name = {}
    for level in ("studies", "series", "instances"):
        r = api.get(
            f"/dicomweb/{level}", params={"StudyInstanceUID": twins["study_uid"]}, headers=admin
        )
        assert r.status_code == 200 and len(r.json()) == 2, (level, r.text)
        for match in r.json():
            url = match["00081190"]["Value"][0]  # RetrieveURL
            name = match["00100010"]["Value"][0]["Alphabetic"]
            assert "?study_id=" in url, (level, url)
            by_name.setdefault(name, set()).add(url.rsplit("?study_id=", 1)[1])
    assert by_name == {
        "NORTH^PATIENT": {twins["ids"]["tech-n"]},
        "SOUTH^PATIENT": {twins["ids"]["tech-s"]},
    }
    # followed as given, each answers for its own study
    r = api.get("/dicomweb/studies", params={"PatientName": "SOUTH^PATIENT"}, headers=admin)
    url = r.json()[0]["00081190"]["Value"][0].removeprefix("http://testserver")
    found = api.get(url.replace("?", "/metadata?"), headers=admin)
    assert found.status_code == 200 and _name(found) == "SOUTH^PATIENT"

    # a user who sees one of them gets plain URLs
    r = api.get(
        "/dicomweb/instances",
        params={"StudyInstanceUID": twins["study_uid"]},
        headers=_auth(api, "tech-n"),
    )
    [match] = r.json()
    assert match["00081190"]["Value"][0] == "http://testserver" + twins["instance"]
