"""Batch upload and study lists in real Chromium against the running app."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pydicom
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_billing import _token
from tests.browser.test_sign_in import sign_in
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser
PASSWORD = "filter-centre-pass-1"


def _pid() -> str:
    return "BR-" + uuid.uuid4().hex[:8].upper()


def _upload(page: Page, paths, *, age: str = "", priority: str = "routine") -> str:
    page.click("#sidebar >> text=Upload")
    expect(page.locator("#dropzone")).to_be_visible()
    expect(page.locator("html[data-uploader=ready]")).to_have_count(1)  # uploader.js listens
    if age:
        page.fill("#up-patient-age", age)
    page.select_option("#up-priority", priority)
    page.set_input_files("#file-input", [str(p) for p in paths])
    expect(page.locator(".upload-row")).to_have_count(len(paths))
    page.click("#start-upload")
    link = page.locator(".upload-study-link")
    expect(link).to_have_count(1, timeout=60_000)
    return re.search(r"Open study (\w{8})", link.inner_text()).group(1)


def test_technician_uploads_a_batch_and_finds_it_in_the_lists(page, new_page, tmp_path):
    pid = _pid()
    paths = make_series(tmp_path, 15, patient_name="BROWSER^BATCH", patient_id=pid)
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()

    study_id = _upload(page, paths, age="47", priority="urgent")

    expect(page.locator("#upload-summary")).to_have_text(
        "Stored 15 file(s), 0 duplicate(s), in 1 study."
    )
    notes = page.locator(".upload-note")
    expect(notes).to_have_count(15)
    expect(notes.first).to_have_text(f"stored in {study_id}")

    expect(page.locator(".upload-study-link")).to_have_text(
        f"Open study {study_id}: BROWSER BATCH · CT · 15 images"
    )
    expect(page.locator("#remove-refused")).to_be_hidden()  # nothing was refused
    page.click(".upload-study-link")
    expect(page.locator("#study-detail")).to_be_visible()
    expect(page.locator("#study-patient")).to_have_text("BROWSER BATCH")
    expect(page.locator("#series-table")).to_contain_text("15")
    expect(page.locator("#instances-table tbody tr")).to_have_count(15)
    expect(page.locator("#history-table")).to_contain_text("study.uploaded")

    page.click("#sidebar >> text=Studies")
    expect(page.locator("#studies-table")).to_be_visible()
    page.fill("#study-search", pid)
    row = page.locator(f"#study-row-{study_id}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("urgent")
    expect(row).to_contain_text("047Y")
    expect(page.locator(".study-row")).to_have_count(1)

    # the tele-radiologist sees it in the pool; re-sending it adds nothing
    tele = new_page()
    sign_in(tele, "radiologist", "radio123")
    expect(tele.locator("#dashboard-radiologist")).to_be_visible()
    tele.click("#sidebar >> text=Studies")
    tele.fill("#study-search", pid)
    expect(tele.locator(f"#study-row-{study_id}")).to_be_visible()
    expect(tele.locator("#sidebar")).not_to_contain_text("Upload")

    # re-sending adds nothing; a file with other data under a held UID is not stored, and says so
    corrected = pydicom.dcmread(paths[3])
    corrected.PatientName = "BROWSER^CORRECTED"
    corrected.save_as(tmp_path / "corrected.dcm", enforce_file_format=True)
    page.goto("/upload")
    assert _upload(page, [*paths[:3], tmp_path / "corrected.dcm"]) == study_id
    expect(page.locator("#upload-summary")).to_have_text(
        "Stored 0 file(s), 3 duplicate(s), in 1 study. 1 file(s) were not stored: the study "
        "already holds other data under their SOP Instance UIDs (see each file)."
    )
    expect(page.locator(".upload-note").nth(0)).to_have_text("already stored (duplicate)")
    expect(page.locator(".upload-note").nth(3)).to_contain_text(
        "not stored: the study already holds an instance with this SOP Instance UID"
    )
    expect(page.locator(".upload-study-link")).to_contain_text("15 images")


def test_a_refused_file_stops_the_batch_until_removed(page, tmp_path):
    pid = _pid()
    paths = make_series(tmp_path, 3, patient_id=pid)
    junk = tmp_path / "scan-notes.dcm"
    junk.write_text("not an image\n" * 50)
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    page.click("#sidebar >> text=Upload")
    expect(page.locator("html[data-uploader=ready]")).to_have_count(1)
    page.set_input_files("#file-input", [str(p) for p in [*paths, junk]])
    expect(page.locator(".upload-row")).to_have_count(4)
    page.click("#start-upload")
    summary = page.locator("#upload-summary")
    expect(summary).to_contain_text("1 file(s) were refused, so nothing was stored", timeout=60_000)
    expect(page.locator(".upload-row").last).to_contain_text("scan-notes.dcm: not a DICOM file")

    page.click("#sidebar >> text=Studies")
    page.fill("#study-search", pid)
    expect(page.locator("#studies-empty")).to_be_visible()

    page.click("#sidebar >> text=Upload")
    expect(page.locator("html[data-uploader=ready]")).to_have_count(1)
    page.set_input_files("#file-input", [str(p) for p in [*paths, junk]])
    expect(page.locator(".upload-row")).to_have_count(4)
    page.click("#start-upload")
    expect(summary).to_contain_text("were refused", timeout=60_000)
    page.click("#remove-refused")
    expect(page.locator(".upload-row")).to_have_count(3)
    expect(page.locator("#remove-refused")).to_be_hidden()
    page.click("#start-upload")
    expect(summary).to_have_text("Stored 3 file(s), 0 duplicate(s), in 1 study.", timeout=60_000)


def _transfer(page: Page, paths):
    """A DataTransfer carrying ``paths`` as files, as a drag from the desktop has (Playwright
    has no drag of desktop files)."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    return page.evaluate_handle(
        """files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, {type: "application/dicom"}));
            }
            return dt;
        }""",
        files,
    )


def _drop(page: Page, target: str, paths) -> None:
    """Drop ``paths`` on the element ``target`` as a drag from the desktop does."""
    transfer = _transfer(page, paths)
    page.dispatch_event(target, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def _drop_refused(page: Page, target: str, paths) -> dict:
    """Drag ``paths`` over ``target`` and let go: whether the page cancelled each event (a
    drop not cancelled is the browser's to handle, which opens the file in place of the
    page). Chromium keeps a script-made DataTransfer's drop effect at "none" whatever a
    handler sets, so the cursor the page chose cannot be read here."""
    return page.evaluate(
        """([selector, dt]) => {
            const target = document.querySelector(selector);
            const init = {bubbles: true, cancelable: true, dataTransfer: dt};
            const over = new DragEvent("dragover", init);
            const overDone = target.dispatchEvent(over);
            const drop = new DragEvent("drop", init);
            return {dragover_cancelled: !overDone, drop_cancelled: !target.dispatchEvent(drop)};
        }""",
        [target, _transfer(page, paths)],
    )


def test_files_dropped_on_the_zone_or_beside_it_are_queued_and_stored(page, tmp_path):
    pid = _pid()
    paths = make_series(tmp_path, 4, patient_id=pid)
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    page.click("#sidebar >> text=Upload")
    expect(page.locator("html[data-uploader=ready]")).to_have_count(1)
    url = page.url

    _drop(page, "#dropzone", paths[:2])
    expect(page.locator(".upload-row")).to_have_count(2)
    # beside the zone (on the form): queued too, and the page stays (no file opened in its place)
    _drop(page, "#up-patient-age", paths[2:])
    expect(page.locator(".upload-row")).to_have_count(4)
    assert page.url == url
    page.click("#start-upload")
    expect(page.locator("#upload-summary")).to_have_text(
        "Stored 4 file(s), 0 duplicate(s), in 1 study.", timeout=60_000
    )


def test_files_dropped_on_a_page_that_does_not_take_them_leave_the_page_in_place(page, tmp_path):
    paths = make_series(tmp_path, 1, patient_id=_pid())
    # The guard is in the served page's head, ahead of the app's scripts: it listens before
    # they have loaded (the first moment on the upload page included).
    html = page.request.get("/upload").text()
    assert "data-drop-guard" in html[: html.index("</head>")]
    assert html.index("data-drop-guard") < html.index('<script type="module"')

    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    expect(page.locator("html[data-drop-guard=on]")).to_have_count(1)
    page.click("#sidebar >> text=Studies")
    expect(page.locator("#study-search")).to_be_visible()
    url = page.url
    # both cancelled: the browser does not open the file
    assert _drop_refused(page, "#study-search", paths) == {
        "dragover_cancelled": True,
        "drop_cancelled": True,
    }
    assert page.url == url
    # the upload page still takes the files dropped on it
    page.click("#sidebar >> text=Upload")
    expect(page.locator("html[data-uploader=ready]")).to_have_count(1)
    assert _drop_refused(page, "#dropzone", paths)["drop_cancelled"]
    expect(page.locator(".upload-row")).to_have_count(1)


def test_radiologist_cannot_open_the_upload_page(page):
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto("/upload")
    expect(page.locator("#access-denied")).to_contain_text("Only technicians and centre users")
    expect(page.locator("#dropzone")).to_have_count(0)


def test_admin_deletes_a_study_after_typing_its_id(page, new_page, tmp_path):
    pid = _pid()
    tech = new_page()
    sign_in(tech, "technician", "tech123")
    expect(tech.locator("#dashboard-technician")).to_be_visible()
    study_id = _upload(tech, make_series(tmp_path, 2, patient_id=pid))

    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    page.goto(f"/study/{study_id}")
    expect(page.locator("#study-detail")).to_be_visible()
    page.click("#delete-study")
    page.fill("#delete-confirm", "WRONG")
    page.click("#confirm-delete")
    expect(page.get_by_text("confirm by repeating its Study ID")).to_be_visible()
    page.fill("#delete-confirm", study_id)
    page.click("#confirm-delete")
    expect(page).to_have_url(re.compile(r"/study-list/?$"))
    page.fill("#study-search", pid)
    expect(page.locator("#studies-empty")).to_be_visible()
    page.goto(f"/study/{study_id}")
    expect(page.locator("#study-not-found")).to_be_visible()


def centre_with_technician(client: httpx.Client, name: str, code: str, password: str) -> None:
    """A new centre (by the demo admin), with a technician named ``code`` in lower case."""
    admin = _token(client, "admin", "admin123")
    centre = client.post("/centres", headers=admin, json={"name": name, "code": code})
    centre.raise_for_status()
    client.post(
        "/users",
        headers=admin,
        json={
            "username": code.lower(),
            "password": password,
            "role": "technician",
            "centre_id": centre.json()["id"],
        },
    ).raise_for_status()


def test_admin_filters_the_list_by_centre_and_received_date(page, app_url, tmp_path):
    """Two centres' studies of one patient name: the centre and date filters narrow the list,
    a backwards range is refused with a message, and Clear filters brings both back."""
    name = "FILTER^" + uuid.uuid4().hex[:8].upper()
    code = "F" + uuid.uuid4().hex[:5].upper()
    ids = {}
    with httpx.Client(base_url=app_url, timeout=60) as client:
        centre_with_technician(client, f"Filter Centre {code}", code, PASSWORD)
        for username, password in (
            ("technician", "tech123"),
            (code.lower(), "filter-centre-pass-1"),
        ):
            paths = make_series(tmp_path / username, 1, patient_name=name)
            files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
            r = client.post("/studies", headers=_token(client, username, password), files=files)
            r.raise_for_status()
            ids[username] = r.json()["study_id"]

    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    page.click("#sidebar >> text=Studies")
    page.fill("#study-search", name.replace("^", " "))
    rows = page.locator(".study-row")
    expect(rows).to_have_count(2)
    expect(page.locator("#studies-count")).to_contain_text("2 studies")

    page.click("#filter-centre")
    page.get_by_role("option", name=f"{code} · Filter Centre {code}").click()
    expect(rows).to_have_count(1)
    expect(page.locator(f"#study-row-{ids[code.lower()]}")).to_be_visible()
    expect(page.locator("#studies-count")).to_contain_text("1 study")

    today = datetime.now(UTC).date()  # the list's dates are UTC days
    page.fill("#filter-from", (today - timedelta(days=7)).isoformat())
    expect(rows).to_have_count(1)
    page.fill("#filter-to", (today - timedelta(days=1)).isoformat())
    expect(page.locator("#studies-empty")).to_be_visible()
    page.fill("#filter-from", today.isoformat())
    expect(page.get_by_text("The date range ends before it starts.")).to_be_visible()

    page.click("#clear-filters")
    expect(page.locator("#study-search")).to_have_value("")
    expect(page.locator("#clear-filters")).to_have_count(0)
    page.click("#filter-centre")  # one filter alone is a filter too
    page.get_by_role("option", name=f"{code} · Filter Centre {code}").click()
    expect(page.locator("#clear-filters")).to_be_visible()
    page.click("#clear-filters")
    page.fill("#study-search", name.replace("^", " "))
    expect(rows).to_have_count(2)
