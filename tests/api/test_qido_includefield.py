"""QIDO-RS answers with each level's required attributes and what ``includefield`` asks for,
from a representative instance's header where the index does not hold them."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from pacs_app.models import Role
from pacs_app.services import qido
from tests.api.test_dicomweb import _auth
from tests.dicom_factory import make_overlaid_ct, make_series
from tests.factories import make_centre, make_user


@pytest.fixture
def sent(api, session, tmp_path):
    north = make_centre(session, "NORTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    h = _auth(api, "tech")
    paths = make_series(tmp_path / "s", 2, patient_name="HEADER^HELEN", patient_id="IF-1")
    bits = np.zeros((128, 128), bool)
    bits[2:5, 2:5] = True
    paths.append(make_overlaid_ct(tmp_path / "ov.dcm", bits))
    first = pydicom.dcmread(paths[0])
    for number, path in enumerate(paths, 1):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
        ds.PatientName, ds.PatientID, ds.InstanceNumber = "HEADER^HELEN", "IF-1", number
        ds.StudyTime, ds.StudyID, ds.PatientBirthDate = "101500", "S-77", "19700102"
        ds.ReferringPhysicianName = "WHO^REFERRED"
        ds.PatientWeight, ds.AdditionalPatientHistory = "71.5", "Asthma"
        ds.InstitutionName, ds.Manufacturer = "NORTH HOSPITAL", "ACME"
        ds.PerformedProcedureStepStartDate = "20260105"
        ds.save_as(path)
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    # the form corrects the name: the index's value is what QIDO answers
    r = api.post("/studies", headers=h, files=files, data={"patient_name": "HEADER^HELENA"})
    assert r.status_code == 201, r.text
    return {"h": h, "ds": pydicom.dcmread(paths[0]), "overlaid": pydicom.dcmread(paths[-1])}


def _one(api, sent, url, pairs=(), **params):
    r = api.get(url, headers=sent["h"], params=[*pairs, *params.items()])
    assert r.status_code == 200, r.text
    return r.json()


def _values(match: dict) -> dict:
    out = {}
    for tag, attribute in match.items():
        value = attribute.get("Value")
        if value and isinstance(value[0], dict) and "Alphabetic" in value[0]:
            value = [v["Alphabetic"] for v in value]
        out[pydicom.datadict.keyword_for_tag(int(tag, 16)) or tag] = value
    return out


def test_a_study_match_has_the_required_attributes_and_those_asked_for(api, sent):
    [study] = _one(api, sent, "/dicomweb/studies", PatientID="IF-1")
    v = _values(study)
    assert v["StudyTime"] == ["101500"] and v["StudyID"] == ["S-77"]
    assert v["PatientBirthDate"] == ["19700102"]
    assert v["ReferringPhysicianName"] == ["WHO^REFERRED"]
    assert "PatientWeight" not in v and "InstitutionName" not in v
    assert list(study) == sorted(study)  # in tag order, as DICOM JSON lists them

    [study] = _one(
        api, sent, "/dicomweb/studies", PatientID="IF-1", includefield="PatientWeight,00080080"
    )
    v = _values(study)
    assert v["PatientWeight"] == [71.5]
    assert "InstitutionName" not in v  # a series' attribute, not asked of a study
    [study] = _one(api, sent, "/dicomweb/studies", PatientID="IF-1", includefield="all")
    v = _values(study)
    assert v["AdditionalPatientHistory"] == ["Asthma"] and v["PatientWeight"] == [71.5]
    assert "SOPInstanceUID" not in v and "SeriesDescription" not in v and "Rows" not in v
    assert v["PatientName"] == ["HEADER^HELENA"]  # the index's value, not the header's


def test_a_series_match_takes_its_levels_attributes(api, sent):
    ds = sent["ds"]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series"
    [series] = _one(api, sent, url)
    assert _values(series)["PerformedProcedureStepStartDate"] == ["20260105"]
    assert "Manufacturer" not in _values(series)
    [series] = _one(api, sent, url, includefield="Manufacturer")
    assert _values(series)["Manufacturer"] == ["ACME"]
    [series] = _one(api, sent, url, includefield="all")
    v = _values(series)
    assert v["InstitutionName"] == ["NORTH HOSPITAL"] and v["StudyTime"] == ["101500"]
    assert v["PatientName"] == ["HEADER^HELENA"]  # the index's, over the header's
    assert "SOPInstanceUID" not in v and "Rows" not in v
    # overlay bits are an instance's bulk data, not a series' attribute
    assert "60003000" not in series


def test_an_instance_match_can_take_its_whole_header(api, sent):
    ds, overlaid = sent["ds"], sent["overlaid"]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/instances"
    matches = _one(api, sent, url)
    assert [_values(m)["BitsAllocated"] for m in matches] == [[16]] * 3
    assert all(_values(m)["InstanceAvailability"] == ["ONLINE"] for m in matches)
    assert "SliceThickness" not in _values(matches[0])
    matches = _one(
        api, sent, url, [("includefield", "SliceThickness"), ("includefield", "00200032")]
    )
    v = _values(matches[0])
    assert v["SliceThickness"] == [float(ds.SliceThickness)]
    assert v["ImagePositionPatient"] == [float(x) for x in ds.ImagePositionPatient]
    everything = _one(api, sent, url, includefield="all", InstanceNumber="3")
    [match] = everything
    assert match["00080018"]["Value"] == [overlaid.SOPInstanceUID]
    assert match["60003000"]["BulkDataURI"].endswith(
        f"/instances/{overlaid.SOPInstanceUID}/bulk/60003000"
    )
    assert _values(match)["PatientName"] == ["HEADER^HELENA"]
    assert "00180050" in match and "00280030" in match  # the slice's own attributes


def test_includefield_names_attributes(api, sent):
    r = api.get("/dicomweb/studies", headers=sent["h"], params={"includefield": "NoSuchThing"})
    assert r.status_code == 422 and "NoSuchThing" in r.json()["detail"]


def test_the_level_lists_name_dicom_attributes():
    for keyword in qido.SERIES_LEVEL:
        assert pydicom.datadict.tag_for_keyword(keyword) is not None, keyword


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"StudyID": "S-77"}, True),
        ({"00200010": "S-7?"}, True),
        ({"StudyID": "S-78"}, False),
        ({"ReferringPhysicianName": "who^referred"}, True),  # names without regard to case
        ({"ReferringPhysicianName": "WHO*"}, True),
        ({"ReferringPhysicianName": "NOBODY"}, False),
        ({"StudyTime": "101500"}, True),
        ({"StudyTime": "1015"}, True),  # the whole minute
        ({"StudyTime": "10"}, True),
        ({"StudyTime": "1016"}, False),
        ({"StudyTime": "0900-1100"}, True),
        ({"StudyTime": "101500-"}, True),
        ({"StudyTime": "-1014"}, False),
        ({"StudyTime": "-1015"}, True),  # to the end of 10:15
        ({"StudyTime": "1016-"}, False),
        ({"StudyTime": "10:15:00"}, True),
    ],
)
def test_studies_match_on_study_time_referring_physician_and_study_id(api, sent, params, found):
    """Required matching keys of PS3.18 Table 10.6.1-5 that come from the header, at the
    study level and in every study's series and instances."""
    for level in ("studies", "series", "instances"):
        matches = _one(api, sent, f"/dicomweb/{level}", **params)
        assert len(matches) == ((3 if level == "instances" else 1) if found else 0), level
        if found and level == "studies":
            assert _values(matches[0])["StudyID"] == ["S-77"]


def test_a_time_that_is_not_one_is_refused(api, sent):
    for value, message in (
        ("2500", "not a time"),
        ("1015.5", "not a time"),
        ("1100-1000", "ends before it starts"),
        ("-", "names no time"),
    ):
        r = api.get("/dicomweb/studies", headers=sent["h"], params={"StudyTime": value})
        assert r.status_code == 422 and message in r.json()["detail"], (value, r.text)


def test_an_includefield_attribute_not_of_the_level_is_said_so(api, sent):
    """A study's match has no Manufacturer (a series' attribute): the Warning says it was
    not returned; an attribute the index gives the match, or one of the level, is not named."""
    r = api.get(
        "/dicomweb/studies",
        headers=sent["h"],
        params=[("includefield", "Manufacturer,ModalitiesInStudy,PatientWeight")],
    )
    assert r.status_code == 200
    [match] = r.json()
    assert "00080070" not in match and _values(match)["PatientWeight"] == [71.5]
    assert r.headers["warning"] == (
        '299 pacs: "The following includefield attributes are not returned at this level: '
        'Manufacturer"'
    )
    # no match: nothing is left out of one
    r = api.get(
        "/dicomweb/studies",
        headers=sent["h"],
        params={"includefield": "Manufacturer", "PatientID": "nobody"},
    )
    assert r.json() == [] and "warning" not in r.headers
    r = api.get("/dicomweb/series", headers=sent["h"], params={"includefield": "Manufacturer"})
    assert _values(r.json()[0])["Manufacturer"] == ["ACME"] and "warning" not in r.headers
    r = api.get(
        f"/dicomweb/studies/{sent['ds'].StudyInstanceUID}/instances",
        headers=sent["h"],
        params={"includefield": "Manufacturer"},
    )
    assert "warning" not in r.headers
