"""DICOM devices in real Chromium against the running app, whose DICOM listener `reflex run`
started (DICOM_PORT): an administrator registers a modality, DCMTK's storescu sends a series
as that modality, and the centre finds the study; a centre user sees only its own centre's
devices; deactivating one, confirmed, makes the listener refuse it."""

from __future__ import annotations

import subprocess
import time
import uuid

import pydicom
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


def test_admin_registers_a_modality_that_then_sends_a_series(
    dcmtk, new_page, dicom_port, tmp_path, unused_port
):
    ae_title = f"CT{uuid.uuid4().hex[:6].upper()}"
    pid = f"DEV-{uuid.uuid4().hex[:8]}"
    paths = make_series(tmp_path / "sent", 4, patient_name="DEVICE^SENT", patient_id=pid)
    study_uid = pydicom.dcmread(paths[0]).StudyInstanceUID

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
    # four C-STORE instances, four uploads: one line of the history
    expect(centre.locator("#history-table")).to_contain_text("instances: 4 · new study: yes")
    expect(centre.locator("#history-table")).to_contain_text("uploads: 4")

    # the centre user manages its own centre's devices, here this one
    centre.click("#sidebar >> text=DICOM devices")
    expect(centre.locator(f"#device-row-{ae_title}")).to_contain_text("CT room 1")

    # a device may only send until it is allowed to query and retrieve
    def find(*keys: str):
        command = [dcmtk_tool("findscu"), "-aet", ae_title, "-aec", "PACS", "-S", "-v"]
        for key in ("QueryRetrieveLevel=STUDY", f"PatientID={pid}", "PatientName", *keys):
            command += ["-k", key]
        done = subprocess.run(
            [*command, "127.0.0.1", str(dicom_port)], capture_output=True, text=True, timeout=60
        )
        return done.stdout + done.stderr

    assert "Status: 0x124" in find()  # refused: not authorised
    admin.reload()
    admin.click(f"#edit-device-{ae_title}")
    expect(admin.locator("#device-may-retrieve")).not_to_be_checked()
    admin.click("#device-may-retrieve")
    admin.fill("#device-move-port", "99999")
    admin.click("#device-save")
    expect(admin.locator("#device-form-error")).to_contain_text("1 to 65535")
    admin.fill("#device-move-port", str(unused_port))
    admin.screenshot(path=str(ARTIFACTS / "dicom-device-form.png"))
    admin.click("#device-save")
    expect(admin.locator("#notice")).to_contain_text(f"Saved device {ae_title}")
    expect(row).to_contain_text("query/retrieve")
    expect(row).to_contain_text(f"C-MOVE to its address:{unused_port}")
    assert "DEVICE^SENT" in find()

    # ... and by C-MOVE, the study comes to its own storage SCP (movescu's)
    moved_to = tmp_path / "moved"
    moved_to.mkdir()
    command = [dcmtk_tool("movescu"), "-aet", ae_title, "-aec", "PACS", "-aem", ae_title, "-S"]
    command += ["--port", str(unused_port), "-od", str(moved_to)]
    command += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]
    moved = subprocess.run(
        [*command, "127.0.0.1", str(dicom_port)], capture_output=True, text=True, timeout=120
    )
    assert moved.returncode == 0, moved.stderr
    assert len(list(moved_to.iterdir())) == 4

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


def test_long_lists_are_paged_devices_and_the_audit_trail(new_page, app_database):
    from sqlmodel import select

    from pacs_app.core import db
    from pacs_app.models import Centre, User
    from pacs_app.services import devices
    from pacs_app.services.authz import Actor

    # 51 modalities of the demo centre, registered through the domain, sorting after the
    # rest, and one the search leaves out
    prefix = f"ZZ{uuid.uuid4().hex[:4].upper()}_"
    with db.session_scope(app_database) as session:
        admin = Actor.of(session.exec(select(User).where(User.username == "admin")).one())
        demo = session.exec(select(Centre).where(Centre.code == "DEMO")).one()
        tech = session.exec(select(User).where(User.username == "technician")).one()
        for title in [f"{prefix}{n:02d}" for n in range(51)] + [f"MR{prefix[2:6]}"]:
            devices.create_device(
                session=session,
                actor=admin,
                ae_title=title,
                centre_id=demo.id,
                uploads_as_id=tech.id,
                networks="10.20.0.0/16",
            )

    page = new_page()
    sign_in(page, "admin", "admin123")
    page.click("#sidebar >> text=DICOM devices")
    pager, rows = page.locator("#devices-pager"), page.locator("#devices-table tbody tr")
    expect(pager).to_contain_text("Page 1 of 3")
    expect(rows).to_have_count(25)

    expect(pager).not_to_contain_text(" 51 devices")
    page.fill("#device-search", prefix.lower())  # the search ignores case
    expect(pager).to_have_text("Page 1 of 3 · 51 devices")
    expect(page.locator(f"#device-row-{prefix}00")).to_be_visible()
    expect(page.locator("#devices-pager-prev")).to_be_disabled()
    page.click("#devices-pager-next")
    expect(pager).to_have_text("Page 2 of 3 · 51 devices")
    expect(page.locator(f"#device-row-{prefix}25")).to_be_visible()
    page.click("#devices-pager-next")
    expect(pager).to_have_text("Page 3 of 3 · 51 devices")
    expect(rows).to_have_count(1)
    last = page.locator(f"#device-row-{prefix}50")
    expect(last).to_be_visible()
    expect(page.locator("#devices-pager-next")).to_be_disabled()

    # deleting the last page's only device, confirmed, shows the page before
    page.click(f"#delete-device-{prefix}50")
    expect(page.get_by_role("alertdialog")).to_contain_text(f"{prefix}50")
    page.click("#device-confirm")
    expect(pager).to_have_text("Page 2 of 2 · 50 devices")
    expect(rows).to_have_count(25)
    expect(last).to_have_count(0)
    page.click("#devices-pager-prev")
    expect(pager).to_have_text("Page 1 of 2 · 50 devices")

    # the audit trail pages the same way: 51 registrations, newer first
    page.click("#sidebar >> text=Audit trail")
    audit_pager = page.locator("#pager")
    expect(audit_pager).to_contain_text("Page 1 of ")
    page.click("#pager-next")  # "Older"
    expect(audit_pager).to_contain_text("Page 2 of ")
    page.click("#pager-prev")  # "Newer"
    expect(audit_pager).to_contain_text("Page 1 of ")
