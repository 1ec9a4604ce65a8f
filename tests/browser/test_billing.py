"""Billing in real Chromium: the admin changes the CT price of the demo centre in the app, a
study of that centre is delivered, the centre sees the new amount on its monthly invoice and
downloads the PDF; a centre user cannot open pricing."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from tests.browser.test_sign_in import sign_in
from tests.dicom_factory import make_series

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _token(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    r = client.post("/auth/token", data={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _deliver_ct(app_url: str, tmp_path: Path) -> str:
    """Upload, read and deliver a CT study of the demo centre over the REST API (the reading
    journey itself is clicked through in test_workflow.py)."""
    with httpx.Client(base_url=app_url, timeout=60) as client:
        tech = _token(client, "technician", "tech123")
        paths = make_series(tmp_path, 2, patient_name="BILL^CT")
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
        r = client.post("/studies", headers=tech, files=files, data={"modality": "CT"})
        r.raise_for_status()
        sid = r.json()["study_id"]
        doc = _token(client, "radiologist", "radio123")
        for method, path, body in (
            ("POST", f"/studies/{sid}/claim", None),
            ("GET", f"/studies/{sid}/report", None),
            ("PUT", f"/studies/{sid}/report", {"findings": "Normal.", "impression": "Normal."}),
            ("POST", f"/studies/{sid}/report/verify", None),
            ("POST", f"/studies/{sid}/report/deliver", None),
        ):
            client.request(method, path, headers=doc, json=body).raise_for_status()
    return sid


def test_admin_prices_ct_and_the_centre_sees_it_on_its_invoice(page, new_page, app_url, tmp_path):
    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    page.click("#sidebar >> text=Pricing")
    expect(page.locator("#pricing-table")).to_be_visible()
    page.click("#new-rule")
    page.click("#rule-centre")
    page.get_by_role("option", name="DEMO · Demo Diagnostic Centre").click()
    # a bad price is refused with a clear message
    page.fill("#rule-price", "-10")
    page.click("#rule-review")
    expect(page.locator("#rule-error")).to_contain_text("cannot be negative")
    page.fill("#rule-price", "1875.50")
    page.click("#rule-review")
    expect(page.locator("#rule-summary")).to_contain_text("₹1,875.50 per read")
    page.click("#rule-confirm")
    expect(page.locator("#pricing-table")).to_contain_text("₹1,875.50")

    sid = _deliver_ct(app_url, tmp_path)

    centre = new_page()
    sign_in(centre, "centre", "centre123")
    expect(centre.locator("#dashboard-centre")).to_be_visible()
    centre.click("#sidebar >> text=Invoices")
    expect(centre.locator("#billing-page")).to_be_visible()
    row = centre.locator(".billing-row", has_text=sid)
    expect(row).to_contain_text("₹1,875.50")
    invoice = centre.locator(".invoice-row").first
    expect(invoice).to_contain_text("DEMO")
    with centre.expect_download() as info:
        invoice.locator(".invoice-pdf").click()
    target = ARTIFACTS / "invoice-demo.pdf"
    ARTIFACTS.mkdir(exist_ok=True)
    info.value.save_as(target)
    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(target.read_bytes())).pages)
    assert sid in text and "1,875.50" in text
    centre.screenshot(path=str(ARTIFACTS / "invoices-centre.png"), full_page=True)

    # pricing is the administrators': the page refuses a centre user
    centre.goto("/admin/pricing")
    expect(centre.locator("#access-denied")).to_be_visible()
    expect(centre.locator("#sidebar")).not_to_contain_text("Pricing")


def test_analytics_show_volume_revenue_per_currency_and_workload(page, new_page, app_url, tmp_path):
    _deliver_ct(app_url, tmp_path)  # at least one delivered, billed study of today
    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    page.click("#sidebar >> text=Analytics")
    expect(page.locator("#analytics-page")).to_be_visible()
    expect(page.locator("#chart-studies-modality")).to_be_visible()
    expect(page.locator("#chart-studies-modality svg").first).to_be_visible()
    expect(page.locator("#revenue-table")).to_contain_text("₹")
    expect(page.locator("#workload-table")).to_contain_text("Dr Demo Radiologist")
    page.screenshot(path=str(ARTIFACTS / "analytics-admin.png"), full_page=True)
    # a technician may not look
    tech = new_page()
    sign_in(tech, "technician", "tech123")
    expect(tech.locator("#dashboard-technician")).to_be_visible()
    tech.goto("/analytics")
    expect(tech.locator("#access-denied")).to_be_visible()
