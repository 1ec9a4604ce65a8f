"""WADO-RS over HTTP: metadata from the index, frames, rendered images, originals, refusals."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from sqlmodel import select

from pacs_app.dicom import pixels
from pacs_app.models import AuditEvent, Centre, Role
from pacs_app.services.audit import AuditAction
from tests.dicom_factory import TESTDATA, make_series
from tests.factories import PASSWORD, make_centre, make_user


def _auth(api, username):
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _parts(response) -> list[bytes]:
    ctype = response.headers["content-type"]
    boundary = ctype.split("boundary=")[1].encode()
    chunks = response.content.split(b"--" + boundary)[1:-1]
    return [c.split(b"\r\n\r\n", 1)[1][:-2] for c in chunks]


@pytest.fixture
def uploaded(api, session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    make_user(session, Role.TECHNICIAN, centre=south, username="other")
    headers = _auth(api, "tech")
    paths = make_series(tmp_path / "ct", 3)
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    assert api.post("/studies", headers=headers, files=files).status_code == 201
    ds = pydicom.dcmread(paths[0])
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    return {
        "headers": headers,
        "other": _auth(api, "other"),
        "paths": paths,
        "ds": ds,
        "base": base,
        "instance": f"{base}/instances/{ds.SOPInstanceUID}",
    }


def test_metadata_comes_from_the_index(api, uploaded, storage_root):
    shutil.rmtree(storage_root / "NORTH")  # no file is read for metadata
    h, ds = uploaded["headers"], uploaded["ds"]
    r = api.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json"
    body = r.json()
    assert len(body) == 3
    assert {i["00080018"]["Value"][0] for i in body} == {
        pydicom.dcmread(p).SOPInstanceUID for p in uploaded["paths"]
    }
    assert len(api.get(uploaded["base"] + "/metadata", headers=h).json()) == 3
    one = api.get(uploaded["instance"] + "/metadata", headers=h).json()
    assert one[0]["00280010"]["Value"] == [128]


def test_frames_rendered_and_original(api, uploaded, session):
    h, ds, inst = uploaded["headers"], uploaded["ds"], uploaded["instance"]
    r = api.get(inst + "/frames/1", headers=h)
    assert r.status_code == 200 and 'type="application/octet-stream"' in r.headers["content-type"]
    [frame] = _parts(r)
    assert frame == ds.pixel_array.astype("<i2").tobytes()

    r = api.get(inst + "/rendered", headers=h, params={"window": "40,400,linear"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (128, 128)

    r = api.get(
        inst + "/frames/1/rendered",
        headers={**h, "Accept": "image/png"},
        params={"window": "40,400"},
    )
    assert r.headers["content-type"] == "image/png"
    expected = pixels.render(ds, 0, pixels.Window(40, 400))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), expected)

    r = api.get(inst, headers=h)
    assert 'type="application/dicom"' in r.headers["content-type"]
    assert _parts(r) == [uploaded["paths"][0].read_bytes()]
    # the file is a download of the patient's data, audited as the REST download is
    [event] = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.INSTANCE_DOWNLOADED)
    ).all()
    assert event.detail == {"via": "dicomweb", "sop_instance_uid": ds.SOPInstanceUID}
    assert (event.username, event.resource_type) == ("tech", "study")
    # one that is refused, or was never found, is not
    r = api.get(
        inst, headers={**h, "Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.2"}
    )
    assert r.status_code == 406
    assert api.get(inst, headers=uploaded["other"]).status_code == 404
    session.expire_all()
    assert (
        len(
            session.exec(
                select(AuditEvent).where(AuditEvent.action == AuditAction.INSTANCE_DOWNLOADED)
            ).all()
        )
        == 1
    )


def test_refusals_are_clear(api, uploaded):
    h, inst = uploaded["headers"], uploaded["instance"]
    r = api.get(inst + "/frames/2", headers=h)
    assert r.status_code == 404 and "Frame 2 does not exist" in r.json()["detail"]
    r = api.get(inst + "/frames/x", headers=h)
    assert r.status_code == 422
    r = api.get(inst + "/frames/1,1/rendered", headers=h)
    assert r.status_code == 422 and "one frame number" in r.json()["detail"]
    r = api.get(inst + "/rendered", headers=h, params={"window": "40,400,gamma"})
    assert r.status_code == 422 and "linear-exact or sigmoid" in r.json()["detail"]
    r = api.get(inst + "/rendered", headers=h, params={"window": "40,0"})
    assert r.status_code == 422 and "width" in r.json()["detail"]
    other = _auth(api, "other")
    for url in (inst + "/metadata", inst + "/frames/1", inst + "/rendered", inst):
        assert api.get(url, headers=other).status_code == 404, url
    assert api.get(inst + "/metadata").status_code == 401


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_undecodable_pixel_data_is_a_clear_422(api, session):
    centre = make_centre(session, "WEST")
    make_user(session, Role.TECHNICIAN, centre=centre, username="west")
    h = _auth(api, "west")
    path = TESTDATA / "malformed" / "JPEG2000-embedded-sequence-delimiter.dcm"
    assert (
        api.post(
            "/studies", headers=h, files=[("files", (path.name, path.read_bytes()))]
        ).status_code
        == 201
    )
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/rendered"
    )
    r = api.get(url, headers=h)
    assert r.status_code == 422 and "cannot be decoded" in r.json()["detail"]


def test_a_frames_overlay_planes_for_the_viewer(api, uploaded, session, tmp_path):
    from tests.dicom_factory import make_overlaid_ct

    h = uploaded["headers"]
    bits = np.zeros((10, 20), bool)
    bits[0, :] = bits[:, 0] = True
    path = make_overlaid_ct(tmp_path / "ov.dcm", bits, group=0x6002, origin=(5, -3), label="L1")
    files = [("files", (path.name, path.read_bytes()))]
    assert api.post("/studies", headers=h, files=files).status_code == 201
    ds = pydicom.dcmread(path)
    inst = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    r = api.get(inst + "/frames/1/overlays", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    [plane] = r.json()
    assert {k: plane[k] for k in ("group", "type", "label", "rows", "columns", "origin")} == {
        "group": "6002",
        "type": "G",
        "label": "L1",
        "rows": 10,
        "columns": 20,
        "origin": [5, -3],
    }
    import base64

    unpacked = np.unpackbits(np.frombuffer(base64.b64decode(plane["bits"]), np.uint8))
    assert np.array_equal(unpacked[:200].reshape(10, 20).astype(bool), bits)
    # the metadata tells the viewer there is one (the bits themselves are bulk data)
    meta = api.get(inst + "/metadata", headers=h).json()[0]
    assert "60023000" in meta and meta["60020010"]["Value"] == [10]
    # the rendered image has it drawn in white
    png = api.get(inst + "/rendered", headers={**h, "Accept": "image/png"}).content
    shown = np.asarray(Image.open(io.BytesIO(png)))
    # image row 5 (1-based), columns -3..16 (1-based): the first 16 columns of the image
    assert (shown[4, :16] == 255).all() and shown[4, 16] != 255
    # without them, for a viewer that draws them in a layer its reader can hide
    bare = api.get(
        inst + "/rendered", headers={**h, "Accept": "image/png"}, params={"overlays": "false"}
    )
    assert bare.status_code == 200
    bare_shown = np.asarray(Image.open(io.BytesIO(bare.content)))
    drawn = np.zeros(shown.shape, bool)
    drawn[4, :16] = drawn[4:14, 0] = True  # the plane's top row and first column, in the image
    assert not (bare_shown[4, :16] == 255).all()
    assert np.array_equal(bare_shown[~drawn], shown[~drawn])
    r = api.get(inst + "/rendered", headers=h, params={"overlays": "some"})
    assert r.status_code == 422 and "overlays must be true or false" in r.json()["detail"]

    assert api.get(uploaded["instance"] + "/frames/1/overlays", headers=h).json() == []
    assert api.get(inst + "/frames/2/overlays", headers=h).status_code == 404
    r = api.get(inst + "/frames/1,1/overlays", headers=h)
    assert r.status_code == 422 and "one frame number" in r.json()["detail"]
    assert api.get(inst + "/frames/1/overlays", headers=_auth(api, "other")).status_code == 404
    assert api.get(inst + "/frames/1/overlays").status_code == 401


@pytest.mark.skipif(not (TESTDATA / "non_image").exists(), reason=f"no test data at {TESTDATA}")
def test_a_structured_reports_content_tree_for_the_viewer(api, uploaded):
    from pydicom.data import get_testdata_file

    h = uploaded["headers"]
    report_path = TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm"
    ct_path = get_testdata_file("CT_small.dcm")  # the image the report measured, same study
    files = [
        ("files", ("sr.dcm", report_path.read_bytes())),
        ("files", ("ct.dcm", Path(ct_path).read_bytes())),
    ]
    assert api.post("/studies", headers=h, files=files).status_code == 201
    ds, ct = pydicom.dcmread(report_path), pydicom.dcmread(ct_path)
    inst = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/structured-report"
    )
    r = api.get(inst, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["title"] == "Imaging Measurement Report"
    assert (body["completion"], body["verification"]) == ("PARTIAL", "UNVERIFIED")
    items = {item["position"]: item for item in body["items"]}
    assert items["1.8.1.6"]["value"] == "1.7 cm2" and items["1.8.1.6"]["depth"] == 3
    source = items["1.8.1.4.1"]
    # the referenced CT is in this study: its series is named, for the viewer to open it
    assert source["sop_instance_uid"] == ct.SOPInstanceUID
    assert source["series_uid"] == ct.SeriesInstanceUID
    assert source["where"] == f"series {ct.SeriesNumber}, image {ct.InstanceNumber}"
    # an image is not a report; another centre and no token see nothing
    r = api.get(uploaded["instance"] + "/structured-report", headers=h)
    assert r.status_code == 422 and "not a structured report" in r.json()["detail"]
    assert api.get(inst, headers=_auth(api, "other")).status_code == 404
    assert api.get(inst).status_code == 401


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_a_waveforms_channels_for_the_viewer(api, uploaded, tmp_path):
    h = uploaded["headers"]
    ecg = pydicom.dcmread(TESTDATA / "non_image" / "waveform_ecg.dcm")
    ecg.StudyInstanceUID = pydicom.uid.generate_uid()  # pydicom's test files share study UIDs
    ecg.save_as(tmp_path / "ecg.dcm")
    files = [("files", ("ecg.dcm", (tmp_path / "ecg.dcm").read_bytes()))]
    assert api.post("/studies", headers=h, files=files).status_code == 201
    inst = (
        f"/dicomweb/studies/{ecg.StudyInstanceUID}/series/{ecg.SeriesInstanceUID}"
        f"/instances/{ecg.SOPInstanceUID}/waveform"
    )
    r = api.get(inst, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["document"] == "12-lead ECG Waveform Storage"
    rhythm, median = body["groups"]
    assert (rhythm["label"], rhythm["sampling_frequency"], rhythm["samples"]) == (
        "RHYTHM",
        1000,
        10000,
    )
    assert median["label"] == "MEDIAN BEAT" and len(median["channels"]) == 12
    lead = rhythm["channels"][1]
    assert (lead["label"], lead["units"]) == ("Lead II", "uV")
    values = np.array(lead["samples"]) * lead["factor"] + lead["baseline"]
    assert np.array_equal(values, ecg.waveform_array(0)[:, 1])
    assert "QT Interval: 368 ms" in body["annotations"]
    # an image has none; another centre and no token see nothing
    r = api.get(uploaded["instance"] + "/waveform", headers=h)
    assert r.status_code == 422 and "no waveform" in r.json()["detail"]
    assert api.get(inst, headers=_auth(api, "other")).status_code == 404
    assert api.get(inst).status_code == 401


def test_json_answers_are_gzipped_for_a_client_that_accepts_it(api, uploaded):
    h, ds = uploaded["headers"], uploaded["ds"]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata"
    plain = api.get(url, headers={**h, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    for accepted in ("gzip", "br, gzip;q=0.5", "*"):
        with api.stream("GET", url, headers={**h, "Accept-Encoding": accepted}) as r:
            raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip", accepted
        assert "Accept-Encoding" in r.headers["vary"]
        assert int(r.headers["content-length"]) == len(raw) < len(plain.content) / 4
        assert gzip.decompress(raw) == plain.content
    refused = api.get(url, headers={**h, "Accept-Encoding": "gzip;q=0, *"})
    assert "content-encoding" not in refused.headers and refused.content == plain.content
    # pixels are not: frames, rendered images and whole instances pass as they are
    for path in ("/frames/1", "/rendered", ""):
        r = api.get(uploaded["instance"] + path, headers={**h, "Accept-Encoding": "gzip"})
        assert r.status_code == 200 and "content-encoding" not in r.headers, path
    # nor a short answer
    assert "content-encoding" not in api.get("/health").headers


def test_the_reading_radiologist_opens_the_patients_other_studies(api, session, uploaded, tmp_path):
    """``uploaded`` is the patient's first study; a tele-radiologist reads a second."""
    make_user(session, Role.RADIOLOGIST, username="tele")
    north = session.exec(select(Centre).where(Centre.code == "NORTH")).one()
    reader = make_user(session, Role.RADIOLOGIST, centre=north, username="reader")
    h = uploaded["headers"]
    files = [("files", (p.name, p.read_bytes())) for p in make_series(tmp_path / "again", 2)]
    current = api.post("/studies", headers=h, files=files).json()["study_id"]
    prior = api.get("/studies", headers=h).json()["items"][-1]["study_id"]
    assert prior != current
    # the first is out of the pool: the centre's own radiologist reads it
    r = api.post(f"/studies/{prior}/assign", headers=h, json={"radiologist_id": reader.id})
    assert r.status_code == 200, r.text
    tele = _auth(api, "tele")
    assert api.post(f"/studies/{current}/claim", headers=tele).status_code == 200
    r = api.get(f"/studies/{current}/comparison-studies", headers=tele)
    assert r.status_code == 200 and [c["study_id"] for c in r.json()] == [prior]
    assert r.json()[0]["num_instances"] == 3
    # the images come when the study read is named
    frames = uploaded["instance"] + "/frames/1"
    assert api.get(frames, headers=tele).status_code == 404
    assert api.get(frames + f"?for={current}", headers=tele).status_code == 200
    assert api.get(uploaded["base"] + f"/metadata?for={current}", headers=tele).status_code == 200
    # another centre's user names the study in vain
    assert api.get(frames + f"?for={current}", headers=_auth(api, "other")).status_code == 404
    assert (
        api.get(f"/studies/{current}/comparison-studies", headers=_auth(api, "other")).status_code
        == 404
    )
