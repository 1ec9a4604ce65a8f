"""The development server that the README's ``./scripts/start.sh`` runs (``reflex run``): the
pages on one port, the backend (events, REST API, DICOMweb) on another, where every other
browser test runs the single-port production server. A technician signs in, uploads a
series, opens the study and reads it in the viewer, the browser calling across the ports.
And the production server on one port, opened at another address than the backend's
default: the pages' requests go to the address the browser used."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import running_app
from tests.browser.test_sign_in import sign_in
from tests.browser.test_studies import _pid, _upload
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dev_url(_require_browser, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("dev"), prod=False) as url:
        yield url


def test_a_technician_uploads_and_reads_a_study_on_the_development_server(
    browser, dev_url, tmp_path
):
    context = browser.new_context(base_url=dev_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(90_000)  # the development server builds each page on first use
    try:
        page = context.new_page()
        origins = set()
        page.on(
            "request",
            lambda r: r.url.startswith("http") and origins.add(urlsplit(r.url).netloc),
        )
        sign_in(page, "technician", "tech123")
        expect(page.locator("#dashboard-technician")).to_be_visible()

        study_id = _upload(page, make_series(tmp_path, 3, patient_id=_pid()))
        page.click(".upload-study-link")
        expect(page.locator("#study-detail")).to_be_visible()
        expect(page.locator("#instances-table tbody tr")).to_have_count(3)
        page.click("#open-viewer")
        expect(page).to_have_url(f"{dev_url}/viewer/{study_id}")
        expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1")
        expect(page.locator(".vw-thumb-pending")).to_have_count(0)

        # the uploads, the study's frames and the events went to the backend's own port
        pages = urlsplit(dev_url).netloc
        backend = origins - {pages}
        assert len(backend) == 1 and pages in origins, origins
    finally:
        context.close()


def test_on_one_port_the_pages_requests_go_to_the_address_the_browser_used(
    browser, app_url, tmp_path
):
    """Production serves pages and backend on one port. A radiologist on another machine
    reaches it by the server's name; the viewer's and the uploader's requests must go there,
    not to ``localhost`` (their own computer). Here the app is opened at 127.0.0.1, which
    the backend's default address (http://localhost:port) does not name."""
    other = app_url.replace("localhost", "127.0.0.1")
    context = browser.new_context(base_url=other, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    try:
        page = context.new_page()
        origins = set()
        page.on(
            "request",
            lambda r: r.url.startswith(("http", "ws")) and origins.add(urlsplit(r.url).netloc),
        )
        sign_in(page, "technician", "tech123")
        expect(page.locator("#dashboard-technician")).to_be_visible()
        study_id = _upload(page, make_series(tmp_path, 2, patient_id=_pid()))
        page.goto(f"/viewer/{study_id}")
        expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1")
        expect(page.locator(".vw-thumb-pending")).to_have_count(0)
        assert origins == {urlsplit(other).netloc}, origins
    finally:
        context.close()
