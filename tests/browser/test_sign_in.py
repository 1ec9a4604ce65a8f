"""Sign-in journeys in real Chromium against the running app."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

DEMO = {
    "admin": ("admin123", "Administrator"),
    "centre": ("centre123", "Centre manager"),
    "technician": ("tech123", "Technician"),
    "radiologist": ("radio123", "Tele-radiologist"),
}


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")


@pytest.mark.parametrize("role", list(DEMO))
def test_each_role_signs_in_to_its_own_dashboard_and_the_session_survives_reload(page, role):
    password, label = DEMO[role]
    sign_in(page, role, password)

    expect(page).to_have_url(re.compile(rf"/{role}/?$"))
    expect(page.locator(f"#dashboard-{role}")).to_be_visible()
    expect(page.locator("#signed-in-role")).to_have_text(label)

    page.reload()
    expect(page.locator(f"#dashboard-{role}")).to_be_visible()
    expect(page.locator("#signed-in-role")).to_have_text(label)

    page.goto("/")  # the index sends a signed-in user home
    expect(page).to_have_url(re.compile(rf"/{role}/?$"))

    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    page.goto(f"/{role}")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_a_technician_is_refused_the_admin_routes(page):
    sign_in(page, "technician", "tech123")
    expect(page.locator("#dashboard-technician")).to_be_visible()

    for route in ("/admin", "/admin/users", "/admin/audit", "/centre"):
        page.goto(route)
        expect(page.locator("#access-denied")).to_be_visible()
        expect(page.locator("#dashboard-admin")).to_have_count(0)
        expect(page.locator("#users-table")).to_have_count(0)
        expect(page.locator("#audit-table")).to_have_count(0)
    expect(page.locator("#access-denied")).to_contain_text("Only centre users")


def test_wrong_password_shows_a_clear_error_and_stays_on_login(page):
    sign_in(page, "centre", "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Incorrect username or password.")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_signed_out_visitors_are_sent_to_login(page):
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_admin_deactivates_a_user_whose_open_session_then_ends(new_page):
    doctor = new_page()
    sign_in(doctor, "radiologist", "radio123")
    expect(doctor.locator("#dashboard-radiologist")).to_be_visible()

    admin = new_page()
    sign_in(admin, "admin", "admin123")
    expect(admin.locator("#dashboard-admin")).to_be_visible()
    admin.click("#sidebar >> text=Users")
    expect(admin.locator("#users-table")).to_be_visible()
    admin.click("#toggle-radiologist")
    expect(admin.get_by_text("Deactivate radiologist?")).to_be_visible()
    admin.click("#confirm-toggle")
    expect(admin.locator("#notice")).to_have_text("radiologist is now deactivated.")

    try:
        doctor.reload()
        expect(doctor).to_have_url(re.compile(r"/login/?$"))
        sign_in(doctor, "radiologist", "radio123")
        expect(doctor.locator("#login-error")).to_contain_text("deactivated")
    finally:
        admin.click("#toggle-radiologist")
        admin.click("#confirm-toggle")
        expect(admin.locator("#notice")).to_have_text("radiologist is now active.")

    sign_in(doctor, "radiologist", "radio123")
    expect(doctor.locator("#dashboard-radiologist")).to_be_visible()


def test_admin_sees_sign_ins_in_the_audit_trail(page):
    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    page.click("#sidebar >> text=Audit trail")
    table = page.locator("#audit-table")
    expect(table).to_be_visible()
    expect(table).to_contain_text("auth.login")


def test_centre_manager_creates_a_technician_for_its_centre(page):
    sign_in(page, "centre", "centre123")
    expect(page.locator("#dashboard-centre")).to_be_visible()
    page.click("#sidebar >> text=Centre users")
    expect(page.locator("#users-table")).to_be_visible()
    page.click("#new-user")
    page.fill("#new-username", "tech.second")
    page.fill("#new-password", "a-good-password")
    page.fill("#new-password2", "a-good-password")
    page.click("#create-user")
    expect(page.locator("#notice")).to_have_text("Created technician user tech.second.")
    expect(page.locator("#user-row-tech\\.second")).to_contain_text("DEMO")
