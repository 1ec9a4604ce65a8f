"""The OHIF viewer (3.13, the npm build that `scripts/fetch_ohif.sh` fetches) as a radiologist's
third-party DICOMweb viewer on this server, in Chromium: its study list finds a study by
QIDO-RS, a double click opens it, and the image it shows holds the pixel values of the file.

OHIF decodes frames itself: it asks for them in any transfer syntax
(``transfer-syntax=*``) and reads them as the metadata describes them. Compressed colour
images must then come as stored; while this server sent them decoded, OHIF showed a JPEG
echocardiogram as green noise and a YBR JPEG with shifted colours. And its study list reads
every study's ModalitiesInStudy: one study without a modality ended the whole list in
"Data Source Connection Error". The check is on the values OHIF's image loader decoded
(cornerstone's cached image), against pydicom's decoding of the file (which the rendering
tests compare with DCMTK's): compressed and native, greyscale and colour (YBR JPEG, palette,
planes).

OHIF is configured with this server's DICOMweb root; its requests carry a user's token, which
the browser context adds (OHIF would take it from an OpenID Connect sign-in, not set up here).
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

import httpx
import numpy as np
import pydicom
import pytest
from playwright.sync_api import expect
from pydicom.pixels import apply_color_lut, apply_modality_lut

from tests.browser.conftest import ROOT
from tests.browser.test_viewer import _signed_series, _token, _upload
from tests.dicom_factory import TESTDATA, make_series, restamped
from tests.processes import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}"),
]

OHIF = ROOT / ".tools" / "ohif"
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css"}


def _config(dicomweb: str) -> str:
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "pacs",
        "configuration": {
            "friendlyName": "PACS",
            "name": "pacs",
            "wadoUriRoot": dicomweb,
            "qidoRoot": dicomweb,
            "wadoRoot": dicomweb,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "routerBasename": None,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "pacs",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config)};"


@contextlib.contextmanager
def _serve_ohif(dicomweb: str) -> Iterator[str]:
    """OHIF's build on a port of its own (another origin than the server's, as a separate
    deployment would be), configured for ``dicomweb``; a path that is no file is its page
    (the app's routes)."""
    config = _config(dicomweb).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            file = (OHIF / path.lstrip("/")).resolve()
            if path == "/app-config.js":
                kind, body = TYPES[".js"], config
            elif file.is_file() and file.is_relative_to(OHIF):
                kind, body = TYPES.get(file.suffix, "application/octet-stream"), file.read_bytes()
            else:
                kind, body = "text/html", (OHIF / "index.html").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ohif(app_url) -> Iterator[str]:
    if not (OHIF / "index.html").exists():
        reason = f"the OHIF viewer is not at {OHIF} (scripts/test.sh fetches it: fetch_ohif.sh)"
        if os.environ.get("PACS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but cannot run: {reason}")
        pytest.skip(reason)
    with _serve_ohif(app_url + "/dicomweb") as url:
        yield url


# The image a viewport of OHIF shows: its id, size and the values its loader decoded.
SHOWN = """() => {
    if (!window.cornerstone) return null;
    const e = window.cornerstone.getEnabledElements().find(
        e => e.viewport && e.viewport.getCurrentImageId && e.viewport.getCurrentImageId());
    const image = e && window.cornerstone.cache.getImage(e.viewport.getCurrentImageId());
    return image ? { id: image.imageId, width: image.width, height: image.height,
                     color: image.color, pixels: Array.from(image.getPixelData()) } : null;
}"""


def _open_in_ohif(browser, ohif: str, token: str, patient_id: str, study_uid: str = "") -> dict:
    """Find the patient's study in OHIF's study list (by its MRN filter), open it with a
    double click, and return the image shown (:data:`SHOWN`). With ``study_uid``, open it by
    OHIF's link instead (OHIF offers no viewer for a study without a modality)."""
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
        page.goto(f"{ohif}/?mrn={patient_id}")
        expect(page.get_by_text("1-1 of 1")).to_be_visible(timeout=30_000)  # one match
        row = page.locator("tbody tr", has_text="INTEROP")
        expect(row).to_have_count(1)
        if study_uid:
            page.goto(f"{ohif}/viewer?StudyInstanceUIDs={study_uid}")
        else:
            row.dblclick()
            page.wait_for_url("**/viewer?StudyInstanceUIDs=*")
        page.wait_for_function(f"() => ({SHOWN})() !== null", timeout=60_000)
        assert not failed, failed
        return page.evaluate(SHOWN)
    finally:
        context.close()


def _expected(path: Path, image: dict) -> np.ndarray:
    """What the shown frame holds by pydicom: colour as RGB (a palette's 16-bit entries to 8
    bits, as OHIF shows them), greyscale as modality values (OHIF applies the rescale as it
    loads)."""
    ds = pydicom.dcmread(path)
    values = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        values = values[int(image["id"].rsplit("/frames/", 1)[1]) - 1]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = apply_color_lut(values, ds).astype(np.int64)
        return rgb >> 8 if rgb.max() > 255 else rgb
    return values if image["color"] else apply_modality_lut(values, ds)


def _shown(image: dict) -> np.ndarray:
    values = np.asarray(image["pixels"], dtype=np.float64)
    if not image["color"]:
        return values.reshape(image["height"], image["width"])
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
        # JPEG lossless (process 14), the archives' usual lossless syntax
        ("transfer_syntax/JPEG-LL.dcm", 0),
        # JPEG-LS near-lossless, 16 bits, in a file that names no modality
        ("transfer_syntax/JPEGLSNearLossless_16.dcm", 0),
        # native colour as stored: palette indexes, and RGB plane by plane
        ("pydicom:palette", 0),
        ("pydicom:planes", 0),
    ],
)
def test_ohif_finds_opens_and_decodes_a_stored_image(
    browser, ohif, app_url, tmp_path, name, tolerance
):
    patient_id = "OHIF-" + secrets.token_hex(4).upper()
    path = restamped(name, tmp_path, patient_id, "OHIF^INTEROP")
    _upload(app_url, [path])
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    image = _open_in_ohif(
        browser,
        ohif,
        _token(app_url, "radiologist", "radio123"),
        patient_id,
        study_uid="" if ds.get("Modality") else ds.StudyInstanceUID,
    )
    expected = _expected(path, image)
    shown = _shown(image)
    assert shown.shape == expected.shape
    difference = np.abs(shown - expected)
    assert difference.max() <= tolerance and difference.mean() < 0.1, (
        difference.max(),
        difference.mean(),
    )


def test_ohif_shows_a_ct_series_values(browser, ohif, app_url, tmp_path):
    patient_id = "OHIF-" + secrets.token_hex(4).upper()
    paths = make_series(tmp_path, 3, patient_name="OHIF^INTEROP", patient_id=patient_id)
    _upload(app_url, paths)
    image = _open_in_ohif(browser, ohif, _token(app_url, "radiologist", "radio123"), patient_id)
    [path] = [p for p in paths if f"/instances/{pydicom.dcmread(p).SOPInstanceUID}/" in image["id"]]
    assert not image["color"]
    assert np.allclose(_shown(image), _expected(path, image))


def test_ohif_opens_a_study_with_its_key_images_filed(browser, ohif, app_url, tmp_path):
    """A signed report's key images, filed in the study as a key object selection and a
    presentation state (series KO and PR), do not keep OHIF from the study's images: it
    lists the study and shows the CT's values, with no request refused."""
    patient_id = "OHIF-" + secrets.token_hex(4).upper()
    paths = make_series(tmp_path, 3, patient_name="OHIF^INTEROP", patient_id=patient_id)
    study_id = _upload(app_url, paths)
    token = _token(app_url, "radiologist", "radio123")
    doctor = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{app_url}/studies/{study_id}/claim", headers=doctor).status_code == 200
    sop = pydicom.dcmread(paths[1]).SOPInstanceUID
    marked = httpx.put(
        f"{app_url}/studies/{study_id}/key-images/{sop}?window=40,400&rotation=90", headers=doctor
    )
    assert marked.status_code == 200, marked.text
    series = _signed_series(app_url, study_id, doctor)
    assert sorted(s["modality"] for s in series) == ["CT", "KO", "PR"]
    image = _open_in_ohif(browser, ohif, token, patient_id)
    [path] = [p for p in paths if f"/instances/{pydicom.dcmread(p).SOPInstanceUID}/" in image["id"]]
    assert not image["color"]
    assert np.allclose(_shown(image), _expected(path, image))
