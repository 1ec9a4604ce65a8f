"""AI analysis in real Chromium against the running app (its embedded worker process runs the
jobs): status in the worklist, findings on the study page, the draft reviewed in the report
editor, and the administrator's page of plugins and jobs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_sign_in import sign_in
from tests.browser.test_studies import _upload
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_radiologist_reviews_ai_findings_and_starts_from_the_draft(page, new_page, tmp_path):
    pid = "AI-" + uuid.uuid4().hex[:8].upper()
    paths = make_series(tmp_path, 8, patient_name="AI^REVIEW", patient_id=pid, size=64)
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()
    study_id = _upload(page, paths)

    doctor = new_page()
    sign_in(doctor, "radiologist", "radio123")
    expect(doctor.locator("#dashboard-radiologist")).to_be_visible()
    doctor.click("#sidebar >> text=Worklist")
    doctor.get_by_role("radio", name="Available to claim").click()
    row = doctor.locator(f"#worklist-row-{study_id}")
    expect(row).to_be_visible(timeout=20_000)
    # the embedded worker analyses it; the worklist shows the state without a reload
    expect(row).to_contain_text("AI done", timeout=120_000)
    doctor.click(f"#claim-{study_id}")
    expect(doctor.locator(f"#report-{study_id}")).to_be_visible()

    doctor.goto(f"/study/{study_id}")
    expect(doctor.locator("#ai-card")).to_be_visible()
    findings = doctor.locator("#ai-findings .ai-finding")
    expect(findings.first).to_be_visible()
    expect(findings.first).to_contain_text("Method:")
    expect(findings.first).to_contain_text("Limitations:")
    ARTIFACTS.mkdir(exist_ok=True)
    doctor.locator("#ai-card").screenshot(path=str(ARTIFACTS / "ai-card.png"))

    doctor.goto(f"/report/{study_id}")
    panel = doctor.locator("#ai-draft")
    expect(panel).to_contain_text("AI-generated preliminary draft")
    reviews = doctor.locator(".ai-review-finding")
    expect(reviews.first).to_be_visible()
    # findings with a mask show their overlay beside the viewer, loaded with the user's token
    overlay = doctor.locator("#ai-draft img.ai-overlay").first
    expect(overlay).to_have_attribute("src", re.compile(r"^blob:"), timeout=15_000)
    reviews.first.get_by_role("button", name="Reject").click()
    expect(reviews.first).to_contain_text("rejected")
    doctor.click("#accept-ai-draft")
    expect(doctor.locator("#findings")).to_have_value(
        re.compile(r"^\[AI-generated preliminary draft"), timeout=15_000
    )
    expect(doctor.locator("#impression")).not_to_have_value("")
    doctor.screenshot(path=str(ARTIFACTS / "report-ai-draft.png"))

    admin = new_page()
    sign_in(admin, "admin", "admin123")
    expect(admin.locator("#dashboard-admin")).to_be_visible()
    admin.click("#sidebar >> text=AI analysis")
    expect(admin.locator("#ai-plugins")).to_contain_text("ct_measure")
    expect(admin.locator("#ai-jobs")).to_contain_text(study_id)
