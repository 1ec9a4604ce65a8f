"""QIDO-RS searches and WADO-RS retrieval of whole studies and series, over HTTP, as a
DICOMweb client (OHIF, Weasis, dicomweb-client) asks for them."""

from __future__ import annotations

import io

import pydicom
import pytest
from sqlmodel import select

from pacs_app.models import AuditEvent, Role
from pacs_app.services.audit import AuditAction
from tests.api.test_dicomweb import _auth, _parts
from tests.dicom_factory import make_series
from tests.factories import make_centre, make_user


def _upload(api, headers, paths) -> pydicom.Dataset:
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    r = api.post("/studies", headers=headers, files=files)
    assert r.status_code == 201, r.text
    return pydicom.dcmread(paths[0])


def _value(match: dict, tag: str):
    values = match[tag].get("Value", [])
    return values[0] if values else None


def _uids(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    return [_value(m, "0020000D") for m in response.json()]


@pytest.fixture
def world(api, session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    make_user(session, Role.TECHNICIAN, centre=south, username="other")
    make_user(session, Role.ADMIN, username="boss")
    tech, other = _auth(api, "tech"), _auth(api, "other")
    jane = _upload(
        api,
        tech,
        make_series(tmp_path / "a", 3, patient_name="DOE^JANE", patient_id="QA-1"),
    )
    # Richard's study has a CT series and an MR one
    ct = make_series(tmp_path / "b", 2, patient_name="ROE^RICHARD", patient_id="QB-2")
    mr = make_series(
        tmp_path / "b-mr",
        1,
        patient_name="ROE^RICHARD",
        patient_id="QB-2",
        study_uid=pydicom.dcmread(ct[0]).StudyInstanceUID,
    )
    ds = pydicom.dcmread(mr[0])
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "MR", 7, "T2 axial"
    ds.save_as(mr[0])
    richard = _upload(api, tech, [*ct, *mr])
    john = _upload(
        api,
        other,
        make_series(tmp_path / "c", 1, patient_name="DOE^JOHN", patient_id="QC-3"),
    )
    return {
        "tech": tech,
        "other": other,
        "admin": _auth(api, "boss"),
        "jane": jane,
        "richard": richard,
        "mr": ds,
        "john": john,
        "paths": {"jane": sorted((tmp_path / "a").iterdir())},
    }


def test_studies_are_searched_among_those_the_user_may_see(api, world):
    h, jane, richard = world["tech"], world["jane"], world["richard"]
    r = api.get("/dicomweb/studies", headers=h)
    assert _uids(r) == [richard.StudyInstanceUID, jane.StudyInstanceUID]  # newest first
    found = r.json()[1]
    assert found["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}
    assert _value(found, "00100020") == "QA-1"
    assert _value(found, "00080020") == jane.StudyDate
    assert found["00080061"]["Value"] == ["CT"]
    assert (_value(found, "00201206"), _value(found, "00201208")) == (1, 3)
    assert _value(found, "00080056") == "ONLINE"
    assert _value(found, "00081190").endswith(f"/dicomweb/studies/{jane.StudyInstanceUID}")
    assert r.json()[0]["00080061"]["Value"] == ["CT", "MR"]
    # the other centre's patient is not among them; an administrator sees all three
    assert world["john"].StudyInstanceUID not in _uids(r)
    assert len(_uids(api.get("/dicomweb/studies", headers=world["admin"]))) == 3
    assert api.get("/dicomweb/studies").status_code == 401


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"PatientID": "QA-1"}, ["jane"]),
        ({"00100020": "QB-2"}, ["richard"]),  # by tag
        ({"PatientName": "doe*"}, ["jane"]),  # wildcard, any case; John is elsewhere
        ({"PatientName": "DOE^JANE"}, ["jane"]),
        ({"PatientName": "R?E^*"}, ["richard"]),
        ({"PatientName": ""}, ["richard", "jane"]),  # universal matching
        ({"ModalitiesInStudy": "MR"}, ["richard"]),
        ({"ModalitiesInStudy": "CT"}, ["richard", "jane"]),
        ({"StudyDate": "20040119"}, ["richard", "jane"]),
        ({"StudyDate": "20040101-20040131"}, ["richard", "jane"]),
        ({"StudyDate": "20050101-"}, []),
        ({"StudyDate": "-20031231"}, []),
        ({"PatientID": "QA-1", "ModalitiesInStudy": "MR"}, []),
    ],
)
def test_study_matching(api, world, query, expected):
    r = api.get("/dicomweb/studies", headers=world["tech"], params=query)
    assert _uids(r) == [world[name].StudyInstanceUID for name in expected]


def test_a_uid_list_limit_and_offset(api, world):
    h, jane, richard = world["tech"], world["jane"], world["richard"]
    for both in (
        f"{jane.StudyInstanceUID},{richard.StudyInstanceUID}",
        f"{jane.StudyInstanceUID}\\{richard.StudyInstanceUID}",
    ):
        r = api.get("/dicomweb/studies", headers=h, params={"StudyInstanceUID": both})
        assert _uids(r) == [richard.StudyInstanceUID, jane.StudyInstanceUID]
    r = api.get("/dicomweb/studies", headers=h, params={"StudyInstanceUID": jane.StudyInstanceUID})
    assert _uids(r) == [jane.StudyInstanceUID]
    r = api.get("/dicomweb/studies", headers=h, params={"limit": 1})
    assert _uids(r) == [richard.StudyInstanceUID]
    assert "additional results" in r.headers["warning"]
    r = api.get("/dicomweb/studies", headers=h, params={"limit": 1, "offset": 1})
    assert _uids(r) == [jane.StudyInstanceUID] and "warning" not in r.headers


def test_bad_queries_are_refused_by_name_and_unsupported_keys_are_told(api, world):
    h = world["tech"]
    for params, message in (
        ({"StudyDate": "2004"}, "not a date"),
        ({"StudyDate": "20040231"}, "not a date of the calendar"),
        ({"StudyDate": "20050101-20040101"}, "ends before it starts"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"Colour": "red"}, "neither a DICOM attribute nor a QIDO-RS parameter"),
    ):
        r = api.get("/dicomweb/studies", headers=h, params=params)
        assert r.status_code == 422 and message in r.json()["detail"], (params, r.text)
    r = api.get("/dicomweb/studies", headers=h, params={"InstitutionName": "X*"})
    assert len(_uids(r)) == 2  # not matched on: said so
    assert "not supported: InstitutionName" in r.headers["warning"]


def test_series_and_instances_of_a_study(api, world):
    h, jane, richard, mr = world["tech"], world["jane"], world["richard"], world["mr"]
    r = api.get(f"/dicomweb/studies/{richard.StudyInstanceUID}/series", headers=h)
    assert r.status_code == 200
    assert [_value(s, "00080060") for s in r.json()] == ["CT", "MR"]  # by series number
    [found] = api.get(
        f"/dicomweb/studies/{richard.StudyInstanceUID}/series",
        headers=h,
        params={"Modality": "MR"},
    ).json()
    assert _value(found, "0020000E") == mr.SeriesInstanceUID
    assert (_value(found, "00200011"), _value(found, "0008103E")) == (7, "T2 axial")
    assert _value(found, "00201209") == 1

    study = f"/dicomweb/studies/{jane.StudyInstanceUID}"
    r = api.get(study + "/instances", headers=h)
    assert r.status_code == 200
    numbers = [_value(i, "00200013") for i in r.json()]
    assert numbers == [1, 2, 3]
    first = r.json()[0]
    assert _value(first, "00080016") == jane.SOPClassUID
    assert (_value(first, "00280010"), _value(first, "00280008")) == (128, 1)
    assert _value(first, "00081190").endswith(
        f"{study}/series/{jane.SeriesInstanceUID}/instances/{_value(first, '00080018')}"
    )
    r = api.get(
        f"{study}/series/{jane.SeriesInstanceUID}/instances",
        headers=h,
        params={"InstanceNumber": 2},
    )
    assert [_value(i, "00200013") for i in r.json()] == [2]
    r = api.get(study + "/instances", headers=h, params={"SOPInstanceUID": jane.SOPInstanceUID})
    assert [_value(i, "00080018") for i in r.json()] == [jane.SOPInstanceUID]
    assert (
        api.get(study + "/instances", headers=h, params={"InstanceNumber": "x"}).status_code == 422
    )
    # another centre's users find nothing of it
    assert api.get(study + "/series", headers=world["other"]).status_code == 404
    assert api.get(study + "/instances", headers=world["other"]).status_code == 404
    assert api.get(f"{study}/series/1.2.3/instances", headers=h).status_code == 404


def test_a_whole_study_or_series_is_retrieved_streamed_and_audited(api, world, session):
    h, jane, richard, mr = world["tech"], world["jane"], world["richard"], world["mr"]
    r = api.get(f"/dicomweb/studies/{jane.StudyInstanceUID}", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert _parts(r) == [p.read_bytes() for p in world["paths"]["jane"]]
    r = api.get(
        f"/dicomweb/studies/{richard.StudyInstanceUID}/series/{mr.SeriesInstanceUID}", headers=h
    )
    [part] = _parts(r)
    assert pydicom.dcmread(io.BytesIO(part)).SOPInstanceUID == mr.SOPInstanceUID
    events = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.STUDY_VIEWED)
    ).all()
    assert sorted(e.detail["retrieved"] for e in events if "retrieved" in e.detail) == [1, 3]
    assert (
        api.get(f"/dicomweb/studies/{jane.StudyInstanceUID}", headers=world["other"]).status_code
        == 404
    )


def _series_uids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [_value(m, "0020000E") for m in response.json()]


def test_series_of_every_study_match_study_keys_and_carry_the_study(api, world):
    """PS3.18's All Series (``/series``): study-level keys match too, and each match has its
    study's attributes, among the studies the user may see, newest study first."""
    h, jane, richard, mr = world["tech"], world["jane"], world["richard"], world["mr"]
    r = api.get("/dicomweb/series", headers=h)
    assert _series_uids(r) == [
        richard.SeriesInstanceUID,
        mr.SeriesInstanceUID,
        jane.SeriesInstanceUID,
    ]
    found = r.json()[2]
    assert _value(found, "0020000D") == jane.StudyInstanceUID
    assert _value(found, "00100020") == "QA-1"
    assert found["00100010"]["Value"] == [{"Alphabetic": "DOE^JANE"}]
    assert _value(found, "00080020") == jane.StudyDate
    assert _value(found, "00080030") == jane.StudyTime  # a required attribute, from the header
    assert found["00080061"]["Value"] == ["CT"]
    assert (_value(found, "00201206"), _value(found, "00201208")) == (1, 3)
    assert _value(found, "00201209") == 3
    assert _value(found, "00081190").endswith(
        f"/dicomweb/studies/{jane.StudyInstanceUID}/series/{jane.SeriesInstanceUID}"
    )
    assert r.json()[0]["00080061"]["Value"] == ["CT", "MR"]

    def found_for(**params):
        return _series_uids(api.get("/dicomweb/series", headers=h, params=params))

    assert found_for(Modality="MR") == [mr.SeriesInstanceUID]
    assert found_for(PatientID="QA-1") == [jane.SeriesInstanceUID]
    assert found_for(PatientName="doe*") == [jane.SeriesInstanceUID]  # John is elsewhere
    # a study with an MR, and of it the CT series: the two keys are of different series
    assert found_for(ModalitiesInStudy="MR", Modality="CT") == [richard.SeriesInstanceUID]
    assert found_for(StudyInstanceUID=jane.StudyInstanceUID, SeriesNumber=7) == []
    assert found_for(StudyDate="20050101-") == []
    r = api.get("/dicomweb/series", headers=h, params={"limit": 1, "offset": 1})
    assert _series_uids(r) == [mr.SeriesInstanceUID]
    assert "additional results" in r.headers["warning"]
    r = api.get("/dicomweb/series", headers=h, params={"SOPInstanceUID": jane.SOPInstanceUID})
    assert len(_series_uids(r)) == 3 and "not supported: SOPInstanceUID" in r.headers["warning"]
    assert api.get("/dicomweb/series", headers=h, params={"StudyDate": "x"}).status_code == 422
    # each user finds only the series of studies they may see
    assert _series_uids(api.get("/dicomweb/series", headers=world["other"])) == [
        world["john"].SeriesInstanceUID
    ]
    assert len(_series_uids(api.get("/dicomweb/series", headers=world["admin"]))) == 4
    assert api.get("/dicomweb/series").status_code == 401


def test_instances_of_every_study_and_of_a_study_match_series_keys(api, world):
    """PS3.18's All Instances (``/instances``) match study and series keys and carry both
    levels' attributes; a study's instances match series keys and carry the series'."""
    h, jane, richard, mr = world["tech"], world["jane"], world["richard"], world["mr"]

    def sops(response) -> list[str]:
        assert response.status_code == 200, response.text
        return [_value(m, "00080018") for m in response.json()]

    r = api.get("/dicomweb/instances", headers=h)
    assert len(sops(r)) == 6  # Richard's 2 CT and 1 MR, then Jane's 3
    assert [_value(m, "0020000D") for m in r.json()] == [richard.StudyInstanceUID] * 3 + [
        jane.StudyInstanceUID
    ] * 3
    assert [_value(m, "00080060") for m in r.json()[:3]] == ["CT", "CT", "MR"]
    r = api.get("/dicomweb/instances", headers=h, params={"PatientID": "QB-2", "Modality": "MR"})
    [found] = r.json()
    assert _value(found, "00080018") == mr.SOPInstanceUID
    assert found["00100010"]["Value"] == [{"Alphabetic": "ROE^RICHARD"}]
    assert found["00080061"]["Value"] == ["CT", "MR"]
    assert (_value(found, "0008103E"), _value(found, "00201209")) == ("T2 axial", 1)
    assert _value(found, "00081190").endswith(
        f"/studies/{richard.StudyInstanceUID}/series/{mr.SeriesInstanceUID}"
        f"/instances/{mr.SOPInstanceUID}"
    )
    assert sops(
        api.get("/dicomweb/instances", headers=h, params={"SOPInstanceUID": jane.SOPInstanceUID})
    ) == [jane.SOPInstanceUID]
    assert sops(api.get("/dicomweb/instances", headers=h, params={"PatientName": "nobody"})) == []
    r = api.get("/dicomweb/instances", headers=h, params={"limit": 4})
    assert len(sops(r)) == 4 and "additional results" in r.headers["warning"]
    assert sops(api.get("/dicomweb/instances", headers=world["other"])) == [
        world["john"].SOPInstanceUID
    ]
    assert api.get("/dicomweb/instances").status_code == 401

    # within a study: series keys match, and each match says its series' attributes
    study = f"/dicomweb/studies/{richard.StudyInstanceUID}"
    [found] = api.get(study + "/instances", headers=h, params={"SeriesDescription": "T2*"}).json()
    assert _value(found, "00080018") == mr.SOPInstanceUID
    assert (_value(found, "0008103E"), _value(found, "00201209")) == ("T2 axial", 1)
    assert "00100020" not in found  # the study's attributes are the path's, unless asked for
    assert len(sops(api.get(study + "/instances", headers=h, params={"Modality": "CT"}))) == 2
    # within a series, series keys are the path's: ignored, and said so
    r = api.get(
        f"{study}/series/{mr.SeriesInstanceUID}/instances", headers=h, params={"Modality": "CT"}
    )
    assert sops(r) == [mr.SOPInstanceUID] and "not supported: Modality" in r.headers["warning"]


def test_a_study_without_a_modality_has_no_modalities_in_study(api, world, tmp_path):
    """Not an empty ModalitiesInStudy: OHIF 3 reads its Value in every match of its study
    list, and one such study ended the whole list in an error (tests/browser/test_ohif.py)."""
    [path] = make_series(tmp_path / "none", 1, patient_name="NO^MODALITY", patient_id="QN-9")
    ds = pydicom.dcmread(path)
    del ds.Modality
    ds.save_as(path)
    _upload(api, world["tech"], [path])
    [found] = api.get(
        "/dicomweb/studies", headers=world["tech"], params={"PatientID": "QN-9"}
    ).json()
    assert "00080061" not in found and _value(found, "00100020") == "QN-9"
    # the other studies keep theirs
    r = api.get("/dicomweb/studies", headers=world["tech"], params={"PatientID": "QA-1"})
    assert r.json()[0]["00080061"]["Value"] == ["CT"]
