"""WADO-RS bulk data over HTTP: the metadata's BulkDataURIs lead to the values it leaves out."""

from __future__ import annotations

import numpy as np
import pydicom

from pacs_app.models import Role
from tests.api.test_dicomweb import _auth, _parts
from tests.dicom_factory import make_overlaid_ct, make_series
from tests.factories import make_centre, make_user


def test_a_left_out_value_is_retrieved_by_its_uri(api, session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    make_user(session, Role.TECHNICIAN, centre=south, username="other")
    h = _auth(api, "tech")
    bits = np.zeros((128, 128), bool)
    bits[10:20, 30:90] = True
    path = make_overlaid_ct(tmp_path / "ov.dcm", bits)
    plain = make_series(tmp_path / "plain", 1)[0]
    ds = pydicom.dcmread(path)
    # one study: the overlaid slice and a plain one of another series
    other = pydicom.dcmread(plain)
    other.StudyInstanceUID, other.PatientID = ds.StudyInstanceUID, ds.PatientID
    other.save_as(plain)
    files = [("files", (p.name, p.read_bytes())) for p in (path, plain)]
    assert api.post("/studies", headers=h, files=files).status_code == 201

    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    instance = f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    metadata = api.get(f"{study}/metadata", headers=h).json()
    assert len(metadata) == 2
    [overlaid] = [m for m in metadata if "60003000" in m]
    uri = overlaid["60003000"]["BulkDataURI"]
    assert uri == f"http://testserver{instance}/bulk/60003000"
    assert api.get(f"{instance}/metadata", headers=h).json()[0]["60003000"]["BulkDataURI"] == uri

    r = api.get(uri, headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    assert _parts(r) == [ds[0x60003000].value]

    r = api.get(f"{instance}/bulk/00100010", headers=h)
    assert r.status_code == 422 and "not bulk data" in r.json()["detail"]
    r = api.get(f"{instance}/bulk/6000300", headers=h)
    assert r.status_code == 422 and "not a tag" in r.json()["detail"]
    assert api.get(uri, headers=_auth(api, "other")).status_code == 404
    assert api.get(uri).status_code == 401


def test_urls_follow_the_public_url_behind_a_proxy(api, session, tmp_path, monkeypatch):
    """Behind a reverse proxy that terminates TLS, the request says http://internal-host; the
    URLs a client follows must name the address it reaches."""
    from pacs_app.config import settings

    north = make_centre(session, "NORTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    h = _auth(api, "tech")
    bits = np.ones((128, 128), bool)
    ds = pydicom.dcmread(make_overlaid_ct(tmp_path / "ov.dcm", bits))
    files = [("files", ("ov.dcm", (tmp_path / "ov.dcm").read_bytes()))]
    assert api.post("/studies", headers=h, files=files).status_code == 201
    monkeypatch.setattr(settings, "public_url", "https://pacs.example.org/")
    root = f"https://pacs.example.org/dicomweb/studies/{ds.StudyInstanceUID}"
    [study] = api.get("/dicomweb/studies", headers=h).json()
    assert study["00081190"]["Value"] == [root]
    [meta] = api.get(f"{root.removeprefix('https://pacs.example.org')}/metadata", headers=h).json()
    assert meta["60003000"]["BulkDataURI"].startswith(f"{root}/series/")
