"""The reading workflow across roles, in real Chromium against the running app:
technician uploads an urgent study, the centre assigns it, the radiologist opens it, writes,
verifies and delivers, the centre downloads the PDF; a tele-radiologist claims a pool study."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_sign_in import sign_in
from tests.browser.test_studies import _upload
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _pid() -> str:
    return "WF-" + uuid.uuid4().hex[:8].upper()


def _pick(page: Page, trigger: str, option: str) -> None:
    page.click(trigger)
    page.get_by_role("option", name=option).click()


def test_urgent_study_from_upload_to_delivered_pdf(page, new_page, tmp_path):
    paths = make_series(tmp_path, 4, patient_name="JOURNEY^URGENT", patient_id=_pid())
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    study_id = _upload(page, paths, priority="urgent")

    # the centre manager is told, sees it on the worklist, and assigns it to the radiologist
    centre = new_page()
    sign_in(centre, "centre", "centre123")
    expect(centre.locator("#dashboard-centre")).to_be_visible()
    expect(centre.locator("#notification-count")).to_be_visible(timeout=15_000)
    centre.click("#sidebar >> text=Worklist")
    row = centre.locator(f"#worklist-row-{study_id}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("urgent")
    ARTIFACTS.mkdir(exist_ok=True)
    centre.screenshot(path=str(ARTIFACTS / "worklist-centre.png"))
    row.get_by_role("button", name="Open").click()
    expect(centre.locator("#reading-card")).to_be_visible()
    _pick(centre, "#assign-choice", "Dr Demo Radiologist (tele-radiologist)")
    centre.click("#assign-study")
    expect(centre.locator("#workflow-status")).to_have_text("assigned")
    expect(centre.locator("#workflow-assigned")).to_contain_text("Dr Demo Radiologist")

    # the radiologist gets a notification and finds it under "My studies"
    doctor = new_page()
    sign_in(doctor, "radiologist", "radio123")
    expect(doctor.locator("#dashboard-radiologist")).to_be_visible()
    expect(doctor.locator("#notification-count")).to_be_visible(timeout=15_000)
    doctor.click("#notification-bell")
    expect(doctor.locator("#notification-list")).to_contain_text(f"{study_id}")
    doctor.keyboard.press("Escape")
    doctor.click("#sidebar >> text=Worklist")
    mine = doctor.locator(f"#worklist-row-{study_id}")
    expect(mine).to_be_visible()
    mine.get_by_role("button", name="Report").click()
    expect(doctor.locator("#report-editor")).to_be_visible()
    expect(doctor.locator("#report-status")).to_have_text("in_progress")
    expect(doctor.locator("#report-viewer")).to_be_visible()

    # writing saves by itself
    doctor.fill("#findings", "Patchy consolidation in the right lower lobe.")
    expect(doctor.locator("#saved-note")).to_contain_text("Draft v1 saved", timeout=15_000)
    doctor.fill("#impression", "Right lower lobe pneumonia.")
    expect(doctor.locator("#saved-note")).to_contain_text("Draft v2 saved", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    doctor.screenshot(path=str(ARTIFACTS / "report-editor.png"))
    doctor.reload()
    expect(doctor.locator("#impression")).to_have_value("Right lower lobe pneumonia.")
    expect(doctor.locator("#report-status")).to_have_text("reported")

    doctor.click("#verify-report")
    expect(doctor.locator("#confirm-verify")).to_be_visible()
    expect(doctor.locator("#verify-key-images")).to_have_count(0)  # it has none
    doctor.click("#confirm-verify")
    expect(doctor.locator(".report-version")).to_have_count(1)
    expect(doctor.locator(".report-version")).to_contain_text("Right lower lobe pneumonia.")
    expect(doctor.locator("#report-editor")).to_have_count(0)
    doctor.click("#deliver-report")
    expect(doctor.locator("#deliver-report")).to_have_count(0)

    # the centre hears of it, opens the report and downloads the PDF
    expect(centre.locator("#notification-count")).to_be_visible(timeout=15_000)
    centre.goto(f"/report/{study_id}")
    expect(centre.locator(".report-version")).to_contain_text("Right lower lobe pneumonia.")
    with centre.expect_download() as download_info:
        centre.click("#download-pdf")
    download = download_info.value
    assert download.suggested_filename == f"report_{study_id}.pdf"
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"report_{study_id}.pdf"
    download.save_as(target)
    data = target.read_bytes()
    assert data.startswith(b"%PDF")
    from io import BytesIO

    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(data)).pages)
    assert "JOURNEY URGENT" in text and "Right lower lobe pneumonia." in text
    assert "Dr Demo Radiologist" in text

    # the study page's history tells the whole story
    centre.goto(f"/study/{study_id}")
    history = centre.locator("#history-table")
    for action in ("study.assigned", "study.opened_for_reading", "report.verified"):
        expect(history).to_contain_text(action)
    expect(centre.locator("#workflow-status")).to_have_text("delivered")
    centre.screenshot(path=str(ARTIFACTS / "study-delivered.png"), full_page=True)


def test_tele_radiologist_claims_a_pool_study_and_the_list_updates_itself(page, new_page, tmp_path):
    paths = make_series(tmp_path, 2, patient_name="POOL^CLAIM", patient_id=_pid())
    doctor = new_page()
    sign_in(doctor, "radiologist", "radio123")
    expect(doctor.locator("#dashboard-radiologist")).to_be_visible()
    doctor.click("#sidebar >> text=Worklist")
    doctor.get_by_role("radio", name="Available to claim").click()
    expect(doctor.locator("#worklist-total")).to_be_visible()

    # a technician uploads while the radiologist watches: the row appears without a reload
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    study_id = _upload(page, paths)
    row = doctor.locator(f"#worklist-row-{study_id}")
    expect(row).to_be_visible(timeout=20_000)

    doctor.click(f"#claim-{study_id}")
    expect(doctor.locator("#worklist-kind")).to_be_visible()
    expect(doctor.locator(f"#report-{study_id}")).to_be_visible()
    doctor.goto(f"/study/{study_id}")
    expect(doctor.locator("#workflow-assigned")).to_contain_text("Dr Demo Radiologist")
    expect(doctor.locator("#release-study")).to_be_visible()


def test_a_structured_reports_measurements_go_into_the_findings(page, app_url, tmp_path):
    import httpx
    import pydicom

    from tests.browser.test_viewer import _token
    from tests.browser.test_viewer import _upload as upload_by_api
    from tests.dicom_factory import TESTDATA

    source = TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm"
    if not source.exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID = pydicom.uid.generate_uid()  # pydicom's test files share study UIDs
    ds.PatientID = _pid()
    ds.save_as(tmp_path / "sr.dcm")
    study_id = upload_by_api(app_url, [tmp_path / "sr.dcm"])
    token = _token(app_url, "radiologist", "radio123")
    claimed = httpx.post(
        f"{app_url}/studies/{study_id}/claim", headers={"Authorization": f"Bearer {token}"}
    )
    assert claimed.status_code == 200, claimed.text

    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/report/{study_id}")
    panel = page.locator("#sr-measurements")
    expect(panel).to_contain_text("Imaging Measurement Report", timeout=15_000)
    line = "Spinal cord, Cervico-thoracic spine: Area of defined region 1.7 cm2"
    expect(panel).to_contain_text(line)
    page.fill("#findings", "CT of the cervical spine.")
    expect(page.locator("#saved-note")).to_contain_text("Draft v1 saved", timeout=15_000)
    page.click("#insert-measurements-0")
    block = (
        "CT of the cervical spine.\n\n"
        "Measurements from the structured report “Imaging Measurement Report” "
        f"(2019-03-17 17:33:15):\n- {line}"
    )
    expect(page.locator("#findings")).to_have_value(block)
    expect(page.locator("#saved-note")).to_contain_text("Draft v2 saved", timeout=15_000)
    # a second click adds nothing: they are there already
    page.click("#insert-measurements-0")
    expect(page.get_by_text("These measurements are already in the findings.")).to_be_visible()
    expect(page.locator("#findings")).to_have_value(block)
    # saved: they are in the report after a reload
    page.reload()
    expect(page.locator("#findings")).to_have_value(block, timeout=15_000)
    expect(page.locator("#saved-note")).to_contain_text("Draft v2 saved")


def test_the_radiologist_compares_with_the_patients_earlier_study(page, app_url, tmp_path):
    """The earlier study was read by another radiologist: the tele-radiologist reading the new
    one sees it only for comparison, beside the report."""
    import re

    import httpx

    from tests.browser.test_viewer import _drag, _token
    from tests.browser.test_viewer import _upload as upload_by_api

    def auth(user: str, password: str) -> dict:
        return {"Authorization": f"Bearer {_token(app_url, user, password)}"}

    tech, admin = auth("technician", "tech123"), auth("admin", "admin123")
    centre_id = httpx.get(f"{app_url}/auth/me", headers=tech).json()["centre"]["id"]
    peer, password = "peer-" + uuid.uuid4().hex[:8], "Peer-Passw0rd-2026"
    r = httpx.post(
        f"{app_url}/users",
        headers=admin,
        json={
            "username": peer,
            "password": password,
            "role": "radiologist",
            "centre_id": centre_id,
        },
    )
    assert r.status_code == 201, r.text
    pid = _pid()
    earlier = upload_by_api(
        app_url, make_series(tmp_path / "earlier", 3, patient_name="COMPARE^ME", patient_id=pid)
    )
    r = httpx.post(
        f"{app_url}/studies/{earlier}/assign", headers=tech, json={"radiologist_id": r.json()["id"]}
    )
    assert r.status_code == 200, r.text
    reader = auth(peer, password)
    for method, path, body in (
        ("PUT", "report", {"findings": "4 mm nodule.", "impression": "Stable 4 mm nodule."}),
        ("POST", "report/verify", None),
        ("POST", "report/deliver", None),
    ):
        r = httpx.request(method, f"{app_url}/studies/{earlier}/{path}", headers=reader, json=body)
        assert r.status_code == 200, r.text
    current = upload_by_api(
        app_url, make_series(tmp_path / "current", 4, patient_name="COMPARE^ME", patient_id=pid)
    )
    doctor = auth("radiologist", "radio123")
    assert httpx.post(f"{app_url}/studies/{current}/claim", headers=doctor).status_code == 200

    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/report/{current}")
    panel = page.locator("#comparison-studies")
    expect(panel).to_contain_text("Other studies of this patient (1)", timeout=15_000)
    expect(panel).to_contain_text("Stable 4 mm nodule.")
    expect(panel).to_contain_text(f"{earlier} · 1 series, 3 images")
    # its images, in the viewer beside the editor, marked as another study
    page.click(f"#compare-{earlier}")
    viewer = page.frame_locator("#report-viewer")
    expect(viewer.locator("#vw-comparing")).to_contain_text(f"beside {current}", timeout=30_000)
    expect(viewer.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(viewer.locator("#vw-overlay-bl")).to_contain_text("Im 2/3")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-comparison.png"))
    # and back to the study read
    page.click("#show-this-study")
    expect(viewer.locator("#vw-overlay-bl")).to_contain_text("Im 3/4", timeout=30_000)
    expect(viewer.locator("#vw-comparing")).to_have_count(0)
    # named as the comparison at the top of the findings, and saved
    page.fill("#findings", "New 2 mm nodule.")
    expect(page.locator("#saved-note")).to_contain_text("Draft v1 saved", timeout=15_000)
    page.click(f"#cite-{earlier}")
    cited = re.compile(rf"^Comparison: CT.* of \d{{4}}-\d\d-\d\d \(Study {earlier}\)\.\n\nNew 2 mm")
    expect(page.locator("#findings")).to_have_value(cited)
    expect(page.locator("#saved-note")).to_contain_text("Draft v2 saved", timeout=15_000)

    # a length drawn in the viewer beside the editor goes to the findings, with where it was
    # drawn; then one drawn on the earlier study, saying which study it was taken on
    def measure_and_send() -> None:
        stage = viewer.locator("#vw-stage")
        expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
        viewer.locator("#vw-mode-measure").click()
        box = stage.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        _drag(page, (x - 60, y), (x + 60, y), steps=5)
        expect(stage).to_have_attribute("data-measure", re.compile(r"^[\d.]+ mm$"))
        viewer.locator("#vw-to-report").click()

    measure_and_send()
    length = viewer.locator("#vw-stage").get_attribute("data-measure")
    here = f"Measurements:\n- Length {length} (series 1, image 3)"
    expect(page.locator("#findings")).to_have_value(re.compile(re.escape(here) + "$"))
    expect(page.locator("#saved-note")).to_contain_text("Draft v3 saved", timeout=15_000)
    # sent once: a second click has nothing new to send
    viewer.locator("#vw-to-report").click()
    nothing_new = "No new measurement to send: draw one first."
    expect(viewer.locator("#vw-message")).to_have_text(nothing_new)
    page.click(f"#compare-{earlier}")
    expect(viewer.locator("#vw-comparing")).to_be_visible(timeout=30_000)
    measure_and_send()
    length = viewer.locator("#vw-stage").get_attribute("data-measure")
    there = re.escape(f" ({earlier}):\n- Length {length} (series 1, image 2)")
    expect(page.locator("#findings")).to_have_value(
        re.compile(re.escape(here) + r"\n\nMeasurements on the study of [\d-]+" + there + "$")
    )
    expect(page.locator("#saved-note")).to_contain_text("Draft v4 saved", timeout=15_000)
    # the study's page lists it too, its images a click away, its own page not offered
    page.goto(f"/study/{current}")
    others = page.locator("#other-studies")
    expect(others).to_contain_text("Stable 4 mm nodule.", timeout=15_000)
    expect(others.get_by_role("link", name=earlier)).to_have_count(0)
    page.click(f"#view-other-{earlier}")
    expect(page.locator("#vw-comparing")).to_contain_text(f"beside {current}", timeout=30_000)
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)


def test_key_images_marked_in_the_viewer_go_with_the_report(page, app_url, tmp_path):
    import io

    import httpx
    from pypdf import PdfReader

    from tests.browser.test_viewer import _token
    from tests.browser.test_viewer import _upload as upload_by_api

    pid = _pid()
    earlier = upload_by_api(
        app_url, make_series(tmp_path / "earlier", 2, patient_name="KEY^IMAGES", patient_id=pid)
    )
    study_id = upload_by_api(
        app_url, make_series(tmp_path, 3, patient_name="KEY^IMAGES", patient_id=pid)
    )
    doctor = {"Authorization": f"Bearer {_token(app_url, 'radiologist', 'radio123')}"}
    assert httpx.post(f"{app_url}/studies/{study_id}/claim", headers=doctor).status_code == 200
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/report/{study_id}")
    panel = page.locator("#key-images")
    expect(panel).to_contain_text("Key images (0)", timeout=15_000)
    viewer = page.frame_locator("#report-viewer")
    stage = viewer.locator("#vw-stage")
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(stage).to_have_attribute("data-key", "0")
    viewer.locator("#vw-key").click()
    expect(stage).to_have_attribute("data-key", "1")
    expect(viewer.locator("#vw-overlay-bl")).to_contain_text("Key image")
    # the report page lists it at once, with its picture
    expect(panel).to_contain_text("Key images (1)", timeout=15_000)
    expect(panel.locator(".key-image")).to_contain_text("image 2")
    page.wait_for_function(
        "document.querySelector('#key-images img').naturalWidth > 0", timeout=15_000
    )
    # K on the next image marks it too; K again unmarks it
    stage.focus()
    page.keyboard.press("ArrowDown")
    expect(stage).to_have_attribute("data-index", "2")
    page.keyboard.press("k")
    expect(panel).to_contain_text("Key images (2)", timeout=15_000)
    page.keyboard.press("k")
    expect(panel).to_contain_text("Key images (1)", timeout=15_000)
    # a click on it on the report page shows it in the viewer again
    stage.focus()
    page.keyboard.press("End")
    expect(stage).to_have_attribute("data-key", "0")
    panel.locator(".key-image img").click()
    expect(stage).to_have_attribute("data-key", "1", timeout=15_000)
    expect(stage).to_have_attribute("data-index", "1")
    # and from another of the patient's studies shown there, back to this one at it
    page.click(f"#compare-{earlier}")
    expect(viewer.locator("#vw-comparing")).to_be_visible(timeout=30_000)
    panel.locator(".key-image img").click()
    expect(viewer.locator("#vw-comparing")).to_have_count(0, timeout=30_000)
    expect(stage).to_have_attribute("data-key", "1", timeout=30_000)
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(viewer.locator("#vw-overlay-bl")).to_contain_text("Im 2/3")
    # a viewer in another tab tells the report page too
    tab = page.context.new_page()
    tab.goto(f"/viewer/{study_id}")
    tab_stage = tab.locator("#vw-stage")
    expect(tab_stage).to_have_attribute("data-ready", "1", timeout=30_000)
    # at 1280 px its toolbar, with the key image's star, stays one line
    tops = tab.evaluate("""() => [...document.querySelectorAll('#vw-toolbar > *')]
        .filter((e) => e.getClientRects().length).map((e) => e.getBoundingClientRect().top)""")
    assert tab.locator("#vw-key").is_visible() and max(tops) - min(tops) < 8, tops
    tab_stage.focus()
    tab.keyboard.press("Home")
    expect(tab_stage).to_have_attribute("data-index", "0")
    tab.keyboard.press("k")
    expect(tab_stage).to_have_attribute("data-key", "1")
    expect(panel).to_contain_text("Key images (2)", timeout=15_000)
    tab.keyboard.press("k")
    expect(panel).to_contain_text("Key images (1)", timeout=15_000)
    tab.close()
    # the report's PDF prints it
    page.fill("#findings", "See the key image.")
    expect(page.locator("#saved-note")).to_contain_text("Draft v1 saved", timeout=15_000)
    page.fill("#impression", "Normal.")
    expect(page.locator("#saved-note")).to_contain_text("Draft v2 saved", timeout=15_000)
    with page.expect_download() as download:
        page.click("#download-pdf")
    pdf = PdfReader(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert "Key images" in "".join(p.extract_text() for p in pdf.pages)
    assert sum(len(p.images) for p in pdf.pages) == 1
    # signed: the viewer beside it offers neither the star nor To report any more
    expect(viewer.locator("#vw-to-report")).to_be_visible()
    page.click("#verify-report")
    expect(page.locator("#verify-key-images")).to_contain_text("key images (1)")
    page.click("#confirm-verify")
    expect(page.locator(".report-version")).to_have_count(1, timeout=15_000)
    page.reload()
    expect(page.locator("#report-status")).to_have_text("verified", timeout=15_000)
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(viewer.locator("#vw-key")).to_be_hidden()
    expect(viewer.locator("#vw-to-report")).to_be_hidden()
    expect(panel).to_contain_text("Key images (1)")
    # and they are filed with the study as a DICOM key object selection: a series of its
    # own, whose document opens the image
    series = httpx.get(f"{app_url}/studies/{study_id}", headers=doctor).json()["series"]
    [filed] = [s for s in series if s["modality"] == "KO"]
    assert (filed["description"], filed["num_instances"]) == ("Key images", 1)
    thumb = viewer.locator(f'.vw-thumb[data-uid="{filed["series_instance_uid"]}"]')
    expect(thumb).to_contain_text("structured report", timeout=30_000)
    thumb.click()
    expect(stage).to_have_attribute("data-kind", "report", timeout=15_000)
    expect(viewer.locator("#vw-sr-title")).to_contain_text("Of Interest")
    expect(viewer.locator("#vw-document")).to_contain_text(f"report of study {study_id}")
    expect(viewer.locator(".vw-sr-where")).to_have_text([" · series 1, image 2"])
    viewer.locator(".vw-sr-show").first.click()
    expect(stage).to_have_attribute("data-kind", "image", timeout=15_000)
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(stage).to_have_attribute("data-key", "1")
    expect(viewer.locator("#vw-overlay-bl")).to_contain_text("Im 2/3")
