"""The OHIF viewer (4.12, the npm build that `scripts/setup.sh` fetches) as a radiologist's
third-party DICOMweb viewer on this server, in Chromium: it finds a study in its study list
by QIDO-RS, opens it, and shows the pixels the stored file holds.

OHIF decodes frames itself: it asks for them in any transfer syntax
(``transfer-syntax=*``) and reads them as the metadata describes them. Compressed colour
images must then come as stored; before this server sent them so, a JPEG echocardiogram
showed as green noise, and a YBR JPEG with shifted colours. The check is on the pixel values
OHIF's image loader decoded (cornerstone's image), against pydicom's decoding of the file.

OHIF sends its token with QIDO-RS requests from its configuration but its frame requests only
from a signed-in user (OpenID Connect, which is not set up here); the browser context adds the
token to every request instead, as that sign-in would.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from playwright.sync_api import expect
from pydicom.uid import generate_uid

from tests.browser.conftest import ROOT, _free_port
from tests.browser.test_viewer import _token, _upload
from tests.dicom_factory import TESTDATA, make_series

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}"),
]

OHIF = ROOT / ".tools" / "ohif-viewer"

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OHIF</title></head>
<body><div id="root"></div>
<script src="/app-config.js"></script>
<script src="/index.umd.js" crossorigin></script>
<script>window.OHIFViewer.installViewer(window.config, "root", function () {});</script>
</body></html>"""


def _config(dicomweb: str) -> str:
    server = {
        "name": "PACS",
        "wadoUriRoot": dicomweb,
        "qidoRoot": dicomweb,
        "wadoRoot": dicomweb,
        "qidoSupportsIncludeField": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "supportsFuzzyMatching": False,
    }
    config = {
        "routerBasename": "/",
        "extensions": [],
        "showStudyList": True,
        "filterQueryParam": False,
        "servers": {"dicomWeb": [server]},
    }
    return f"window.config = {json.dumps(config)};"


@contextlib.contextmanager
def _serve_ohif(dicomweb: str) -> Iterator[str]:
    """OHIF's page, configuration and bundle on a port of their own (another origin than the
    server's, as a separate deployment would be); every other path is the page (its routes)."""
    files = {
        "/app-config.js": ("application/javascript", _config(dicomweb).encode()),
        "/index.umd.js": ("application/javascript", (OHIF / "index.umd.js").read_bytes()),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            kind, body = files.get(self.path, ("text/html", PAGE.encode()))
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ohif(app_url) -> Iterator[str]:
    if not (OHIF / "index.umd.js").exists():
        reason = f"the OHIF viewer is not at {OHIF} (scripts/setup.sh fetches it)"
        if os.environ.get("PACS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but cannot run: {reason}")
        pytest.skip(reason)
    with _serve_ohif(app_url + "/dicomweb") as url:
        yield url


def _restamped(name: str, folder: Path, patient_id: str) -> Path:
    """A copy of a test file as a new study of its own patient."""
    ds = pydicom.dcmread(TESTDATA / name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName = patient_id, "OHIF^INTEROP"
    path = folder / f"{patient_id}.dcm"
    ds.save_as(path)
    return path


def _open_in_ohif(browser, ohif: str, token: str, patient_id: str) -> dict:
    """Find the patient's study in OHIF's study list, open it, and return the image its
    viewport shows: its imageId, size, and the pixel values OHIF decoded."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        extra_http_headers={"Authorization": f"Bearer {token}"},
    )
    try:
        page = context.new_page()
        failed: list[str] = []
        page.on(
            "response",
            lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.goto(ohif + "/")
        page.locator("#filter-patientNameOrId").fill(patient_id)
        # QIDO-RS finds the one study (the list shows every study until then)
        expect(page.locator("tbody tr")).to_have_count(1, timeout=30_000)
        expect(page.locator("tbody tr")).to_contain_text(patient_id)
        page.locator("tbody tr").click()
        page.wait_for_function(
            "() => window.cornerstone && window.cornerstone.getEnabledElements()"
            ".some(e => e.image)",
            timeout=60_000,
        )
        image = page.evaluate(
            """() => { const e = window.cornerstone.getEnabledElements().find(e => e.image);
                return { id: e.image.imageId, width: e.image.width, height: e.image.height,
                         color: e.image.color, pixels: Array.from(e.image.getPixelData()) }; }"""
        )
        assert not failed, failed
        return image
    finally:
        context.close()


def _rgb(image: dict) -> np.ndarray:
    values = np.asarray(image["pixels"], dtype=np.int16)
    per_pixel = values.size // (image["width"] * image["height"])  # RGBA or RGB
    return values.reshape(image["height"], image["width"], per_pixel)[..., :3]


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [
        # JPEG baseline, YBR_FULL: OHIF's decoder and pydicom's agree exactly
        ("transfer_syntax/SC_rgb_jpeg_dcmtk.dcm", 0),
        # JPEG baseline, YBR_FULL_422 (an echocardiogram, 30 frames): chrominance upsampling
        # differs by a few levels between decoders
        ("clinical/US_multiframe_30f_jpeg.dcm", 4),
    ],
)
def test_ohif_shows_a_compressed_colour_image_as_stored(
    browser, ohif, app_url, tmp_path, name, tolerance
):
    patient_id = "OHIF-" + secrets.token_hex(4).upper()
    path = _restamped(name, tmp_path, patient_id)
    _upload(app_url, [path])
    image = _open_in_ohif(browser, ohif, _token(app_url, "radiologist", "radio123"), patient_id)
    expected = pydicom.dcmread(path).pixel_array
    expected = expected[0] if expected.ndim == 4 else expected  # the first frame
    assert image["color"] and (image["height"], image["width"]) == expected.shape[:2]
    difference = np.abs(_rgb(image) - expected.astype(np.int16))
    assert difference.max() <= tolerance and difference.mean() < 0.1, (
        difference.max(),
        difference.mean(),
    )


def test_ohif_shows_a_ct_series_stored_values(browser, ohif, app_url, tmp_path):
    patient_id = "OHIF-" + secrets.token_hex(4).upper()
    paths = make_series(tmp_path, 3, patient_name="OHIF^CT", patient_id=patient_id)
    _upload(app_url, paths)
    image = _open_in_ohif(browser, ohif, _token(app_url, "radiologist", "radio123"), patient_id)
    sent = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in paths)}
    [shown] = [sop for sop in sent if f"/instances/{sop}/frames/" in image["id"]]
    expected = sent[shown].pixel_array
    assert not image["color"] and (image["height"], image["width"]) == expected.shape
    assert np.array_equal(np.asarray(image["pixels"]).reshape(expected.shape), expected)
