"""Administration in real Chromium against the running app: an administrator creates, edits and
deactivates a centre; a centre manager resets its technician's password and sees only its own
centre's users."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_sign_in import sign_in

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _pick(page: Page, trigger: str, option: str) -> None:
    page.click(trigger)
    page.get_by_role("option", name=option, exact=True).click()


def _by_id(page: Page, element_id: str):
    """A locator by id, for ids with dots (usernames) that a CSS ``#id`` would misread."""
    return page.locator(f'[id="{element_id}"]')


def test_admin_manages_a_centre_and_a_manager_resets_a_technician_password(new_page):
    suffix = uuid.uuid4().hex[:6]
    code, name = f"BT{suffix.upper()}", f"Browser Centre {suffix}"
    outsider = f"outsider.{suffix}"  # a technician of the new centre
    tech = f"tech.reset.{suffix}"  # a technician of the demo centre

    admin = new_page()
    sign_in(admin, "admin", "admin123")
    expect(admin.locator("#dashboard-admin")).to_be_visible()

    # create the centre
    admin.click("#sidebar >> text=Centres")
    expect(admin.locator("#centres-table")).to_be_visible()
    admin.click("#new-centre-open")
    admin.fill("#new-centre-name", name)
    admin.fill("#new-centre-code", code.lower())  # upper-cased by the domain
    _pick(admin, "#new-centre-currency", "INR")
    admin.click("#create-centre")
    expect(admin.locator("#notice")).to_have_text(f"Created centre {code} · {name}.")
    row = admin.locator(f"#centre-row-{code}")
    expect(row).to_contain_text("INR")
    expect(row).to_contain_text("active")

    # a duplicate code is refused with the reason, in the dialog
    admin.click("#new-centre-open")
    admin.fill("#new-centre-name", f"{name} bis")
    admin.fill("#new-centre-code", code)
    admin.click("#create-centre")
    expect(admin.locator("#create-centre-error")).to_contain_text("already exists")
    admin.keyboard.press("Escape")

    # one of its users, whom the demo centre's manager must never see
    admin.click("#sidebar >> text=Users")
    expect(admin.locator("#users-table")).to_be_visible()
    admin.click("#new-user")
    admin.fill("#new-username", outsider)
    admin.select_option("#new-centre", label=f"{code} · {name}")
    admin.fill("#new-password", "outsider-pass-1")
    admin.fill("#new-password2", "outsider-pass-1")
    admin.click("#create-user")
    expect(admin.locator("#notice")).to_have_text(f"Created technician user {outsider}.")

    # edit its currency
    admin.click("#sidebar >> text=Centres")
    admin.click(f"#edit-centre-{code}")
    expect(admin.locator("#edit-centre-name")).to_have_value(name)
    expect(admin.locator("#edit-centre-auto-release")).to_be_checked()
    _pick(admin, "#edit-centre-currency", "AED")
    ARTIFACTS.mkdir(exist_ok=True)
    admin.screenshot(path=str(ARTIFACTS / "admin-centre-edit.png"))
    admin.click("#save-centre")
    expect(admin.locator("#notice")).to_have_text(f"Saved centre {code}.")
    expect(row).to_contain_text("AED")

    # deactivate it, after confirming
    admin.click(f"#toggle-centre-{code}")
    expect(admin.get_by_text(f"Deactivate centre {code}?")).to_be_visible()
    expect(admin.get_by_text("Its 1 active account is signed out at once")).to_be_visible()
    admin.screenshot(path=str(ARTIFACTS / "admin-centre-deactivate.png"))
    admin.click("#confirm-centre-toggle")
    expect(admin.locator("#notice")).to_contain_text(f"{code} is now deactivated")
    expect(row).to_contain_text("inactive")
    expect(row).to_contain_text("0 of 1")

    # the demo centre's manager creates a technician and resets its password
    manager = new_page()
    sign_in(manager, "centre", "centre123")
    expect(manager.locator("#dashboard-centre")).to_be_visible()
    manager.click("#sidebar >> text=Centre users")
    expect(manager.locator("#users-table")).to_be_visible()
    manager.click("#new-user")
    manager.fill("#new-username", tech)
    manager.fill("#new-password", "first-pass-41")
    manager.fill("#new-password2", "first-pass-41")
    manager.click("#create-user")
    expect(manager.locator("#notice")).to_have_text(f"Created technician user {tech}.")

    _by_id(manager, f"reset-{tech}").click()
    expect(manager.get_by_text(f"Reset the password of {tech}?")).to_be_visible()
    manager.fill("#reset-password", "short")
    manager.fill("#reset-password2", "short")
    manager.click("#confirm-reset")
    expect(manager.locator("#reset-error")).to_contain_text("at least 8 characters")
    manager.fill("#reset-password", "second-pass-42")
    manager.fill("#reset-password2", "second-pass-42")
    manager.screenshot(path=str(ARTIFACTS / "centre-password-reset.png"))
    manager.click("#confirm-reset")
    expect(manager.locator("#notice")).to_have_text(f"The password of {tech} was reset.")

    # it sees its own centre's users, with no buttons for itself, and nobody else's
    expect(_by_id(manager, f"user-row-{tech}")).to_be_visible()
    expect(manager.locator("#reset-centre")).to_have_count(0)
    expect(manager.locator("#users-table")).not_to_contain_text(outsider)
    expect(manager.locator("#user-row-admin")).to_have_count(0)
    expect(manager.locator("#user-row-radiologist")).to_have_count(0)
    manager.fill("#user-search", "outsider")
    expect(manager.get_by_text("No users match this search.")).to_be_visible()
    manager.goto("/admin/centres")
    expect(manager.locator("#access-denied")).to_be_visible()
    expect(manager.locator("#centres-table")).to_have_count(0)

    # the technician signs in with the new password only
    person = new_page()
    sign_in(person, tech, "first-pass-41")
    expect(person.locator("#login-error")).to_have_text("Incorrect username or password.")
    sign_in(person, tech, "second-pass-42")
    expect(person).to_have_url(re.compile(r"/technician/?$"))
    expect(person.locator("#dashboard-technician")).to_be_visible()

    # and the administrator finds the reset in the audit trail
    admin.click("#sidebar >> text=Audit trail")
    expect(admin.locator("#audit-table")).to_be_visible()
    _pick(admin, "#audit-action", "user.password_reset")
    admin.fill("#audit-username", "centre")
    table = admin.locator("#audit-table")
    expect(table).to_contain_text("user.password_reset")
    expect(table).not_to_contain_text("auth.login")
    admin.screenshot(path=str(ARTIFACTS / "admin-audit-filters.png"))
    admin.click("#audit-clear")
    expect(table).to_contain_text("auth.login")
    # the technician's first try, with its reason in words rather than as key=value
    _pick(admin, "#audit-action", "auth.login_failed")
    admin.fill("#audit-username", tech)
    expect(table).to_contain_text("reason: wrong_password")
