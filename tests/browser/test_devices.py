"""DICOM devices in real Chromium against the running app, whose DICOM listener `reflex run`
started (DICOM_PORT): an administrator registers a modality, DCMTK's storescu sends a series
as that modality, and the centre finds the study; a centre user sees only its own centre's
devices; deactivating one, confirmed, makes the listener refuse it."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_admin import ARTIFACTS
from tests.browser.test_sign_in import sign_in
from tests.dcmtk import tool as dcmtk_tool
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser
# DCMTK spells it "Not Recognized" or "not recognised", by version and code path
NOT_RECOGNISED = "calling ae title not recogni"


def _pick(page: Page, trigger: str, option: str) -> None:
    page.click(trigger)
    page.get_by_role("option", name=option, exact=True).click()


def _send(port: int, ae_title: str, *paths, tool: str = "storescu"):
    files = [str(p) for p in paths]
    return subprocess.run(
        [dcmtk_tool(tool), "-aet", ae_title, "-aec", "PACS", "127.0.0.1", str(port), *files],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_admin_registers_a_modality_that_then_sends_a_series(dcmtk, new_page, dicom_port, tmp_path):
    ae_title = f"CT{uuid.uuid4().hex[:6].upper()}"
    pid = f"DEV-{uuid.uuid4().hex[:8]}"
    paths = make_series(tmp_path, 4, patient_name="DEVICE^SENT", patient_id=pid)

    # the listener is up, but lets in no one it does not know
    deadline = time.monotonic() + 60
    while (
        "Association Rejected" not in (echo := _send(dicom_port, ae_title, tool="echoscu")).stderr
    ):
        assert time.monotonic() < deadline, echo.stderr
        time.sleep(1)
    assert NOT_RECOGNISED in echo.stderr.lower()

    admin = new_page()
    sign_in(admin, "admin", "admin123")
    admin.click("#sidebar >> text=DICOM devices")
    expect(admin.locator("#listener-status")).to_contain_text(f"AE title PACS, port {dicom_port}")
    expect(admin.locator("#listener-status")).to_contain_text("(answering)")

    admin.click("#new-device-open")
    admin.fill("#device-ae-title", ae_title)
    _pick(admin, "#device-centre", "DEMO · Demo Diagnostic Centre")
    admin.fill("#device-networks", "127.0.0.1")
    admin.click("#device-save")  # no account chosen yet: the domain says what is missing
    expect(admin.locator("#device-form-error")).to_contain_text("Choose the account")
    _pick(admin, "#device-uploader", "technician (technician)")
    admin.fill("#device-description", "CT room 1")
    admin.click("#device-save")
    expect(admin.locator("#notice")).to_contain_text(f"Registered {ae_title} for DEMO")
    row = admin.locator(f"#device-row-{ae_title}")
    expect(row).to_contain_text("127.0.0.1/32")
    expect(row).to_contain_text("never")
    ARTIFACTS.mkdir(exist_ok=True)
    admin.screenshot(path=str(ARTIFACTS / "dicom-devices.png"))

    # the modality sends; the study is the centre's, uploaded as the technician
    assert _send(dicom_port, ae_title, tool="echoscu").returncode == 0
    sent = _send(dicom_port, ae_title, *paths)
    assert sent.returncode == 0, sent.stderr

    centre = new_page()
    sign_in(centre, "centre", "centre123")
    centre.click("#sidebar >> text=Studies")
    centre.fill("#study-search", pid)
    expect(centre.locator(".study-row")).to_have_count(1)
    expect(centre.locator(".study-row")).to_contain_text("DEVICE SENT")
    centre.locator(".study-row a").first.click()
    expect(centre.locator("#instances-table tbody tr")).to_have_count(4)
    expect(centre.locator("#history-table")).to_contain_text("study.uploaded")

    # the centre user manages its own centre's devices, here this one
    centre.click("#sidebar >> text=DICOM devices")
    expect(centre.locator(f"#device-row-{ae_title}")).to_contain_text("CT room 1")

    # deactivating asks first, then the listener refuses the device
    admin.reload()
    expect(row).not_to_contain_text("never")  # its last association is shown
    admin.click(f"#toggle-device-{ae_title}")
    expect(admin.get_by_role("alertdialog")).to_contain_text("rejected until you activate it")
    admin.click("#device-confirm")
    expect(admin.locator("#notice")).to_have_text(f"{ae_title} is now deactivated.")
    expect(row).to_contain_text("inactive")
    refused = _send(dicom_port, ae_title, tool="echoscu")
    assert NOT_RECOGNISED in refused.stderr.lower()

    # and the refusal is in the audit trail, with the reason
    admin.click("#sidebar >> text=Audit trail")
    expect(admin.locator("body")).to_contain_text("dicom.association_refused")
