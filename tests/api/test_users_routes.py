"""`/users/{id}` edits and password resets, `/centres/{id}` edits and (de)activation."""

from __future__ import annotations

from sqlmodel import select

from pacs_app.models import AuditEvent, Role
from tests.factories import PASSWORD, make_centre, make_user


def _auth(api, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = api.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_admin_edits_deactivates_and_reactivates_a_centre(api, session):
    make_user(session, Role.ADMIN, username="boss")
    centre = make_centre(session, "APIC")
    make_user(session, Role.TECHNICIAN, centre=centre, username="tech")
    tech = _auth(api, "tech")
    admin = _auth(api, "boss")

    r = api.patch(
        f"/centres/{centre.id}",
        headers=admin,
        json={"name": "API Centre", "default_currency": "AED", "auto_release_to_pool": False},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["code"], body["default_currency"]) == ("API Centre", "APIC", "AED")
    assert (body["auto_release_to_pool"], body["ai_auto_process"]) == (False, True)
    assert api.get(f"/centres/{centre.id}", headers=admin).json() == body

    r = api.post(f"/centres/{centre.id}/deactivate", headers=admin)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert r.json()["active_users"] == 0
    # the centre's users are signed out: no upload, no sign-in
    r = api.post("/studies", headers=tech, data={"patient_name": "X"}, files={"files": b"x"})
    assert r.status_code == 401 and "deactivated" in r.json()["detail"]
    r = api.post("/auth/token", data={"username": "tech", "password": PASSWORD})
    assert r.status_code == 401

    r = api.post(f"/centres/{centre.id}/activate", headers=admin)
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert r.json()["active_users"] == 1
    assert api.get("/auth/me", headers=_auth(api, "tech")).status_code == 200
    actions = [
        e.action
        for e in session.exec(
            select(AuditEvent).where(AuditEvent.resource_type == "centre").order_by(AuditEvent.id)
        )
    ]
    assert actions == [
        "centre.created",
        "centre.updated",
        "centre.deactivated",
        "centre.activated",
    ]


def test_bad_centre_edits_answer_with_the_reason(api, session):
    make_user(session, Role.ADMIN, username="boss")
    make_centre(session, "TAKEN")
    centre = make_centre(session, "MINE")
    make_user(session, Role.CENTRE, centre=centre, username="mgr")
    admin = _auth(api, "boss")
    for body, status, message in [
        ({"default_currency": "EUR"}, 422, "Unknown currency 'EUR'"),
        ({"name": " "}, 422, "needs a name"),
        ({"name": "Centre TAKEN"}, 409, "already exists"),
        ({"code": "NEW"}, 422, "cannot change"),
    ]:
        r = api.patch(f"/centres/{centre.id}", headers=admin, json=body)
        assert r.status_code == status, (body, r.text)
        assert message in r.json()["detail"]
    r = api.patch(f"/centres/{centre.id}", headers=admin, json={"colour": "red"})
    assert r.status_code == 422  # unknown fields are refused, not ignored
    r = api.get(f"/centres/{centre.id}", headers=admin).json()
    assert (r["name"], r["default_currency"]) == ("Centre MINE", "INR")

    mgr = _auth(api, "mgr")
    assert api.patch(f"/centres/{centre.id}", headers=mgr, json={"name": "X"}).status_code == 403
    assert api.post(f"/centres/{centre.id}/deactivate", headers=mgr).status_code == 403
    assert api.post("/centres/99999/activate", headers=admin).status_code == 404


def test_user_edit_and_password_reset_are_scoped(api, session):
    a, b = make_centre(session), make_centre(session)
    make_user(session, Role.CENTRE, centre=a, username="mgr")
    colleague = make_user(session, Role.CENTRE, centre=a, username="mgr2")
    tech = make_user(session, Role.TECHNICIAN, centre=a, username="tech-a")
    other = make_user(session, Role.TECHNICIAN, centre=b, username="tech-b")
    mgr = _auth(api, "mgr")

    r = api.patch(f"/users/{tech.id}", headers=mgr, json={"full_name": "Asha Rao", "email": ""})
    assert r.status_code == 200, r.text
    assert (r.json()["full_name"], r.json()["email"]) == ("Asha Rao", None)
    r = api.post(f"/users/{tech.id}/password", headers=mgr, json={"new_password": "n3w-secret!"})
    assert r.status_code == 200 and "hashed_password" not in r.json()
    assert api.get("/auth/me", headers=_auth(api, "tech-a", "n3w-secret!")).status_code == 200

    r = api.patch(f"/users/{other.id}", headers=mgr, json={"full_name": "Spy"})
    assert r.status_code == 404
    r = api.post(f"/users/{other.id}/password", headers=mgr, json={"new_password": "n3w-secret!"})
    assert r.status_code == 404
    r = api.patch(f"/users/{colleague.id}", headers=mgr, json={"full_name": "Spy"})
    assert r.status_code == 403 and "technicians and internal radiologists" in r.json()["detail"]
    r = api.patch(f"/users/{tech.id}", headers=mgr, json={"role": "centre"})
    assert r.status_code == 403
    r = api.patch(f"/users/{tech.id}", headers=mgr, json={"centre_id": b.id})
    assert r.status_code == 403
    r = api.patch(f"/users/{tech.id}", headers=mgr, json={"username": "renamed"})
    assert r.status_code == 422
    r = api.post(f"/users/{tech.id}/password", headers=mgr, json={"new_password": "short"})
    assert r.status_code == 422 and "at least 8" in r.json()["detail"]
    r = api.patch(f"/users/{tech.id}", headers=mgr, json={"email": "bad"})
    assert r.status_code == 422 and "not a valid e-mail" in r.json()["detail"]


def test_admin_moves_a_radiologist_to_the_tele_pool_with_null_centre(api, session):
    make_user(session, Role.ADMIN, username="boss")
    centre = make_centre(session)
    doc = make_user(session, Role.RADIOLOGIST, centre=centre, username="doc")
    admin = _auth(api, "boss")
    r = api.patch(f"/users/{doc.id}", headers=admin, json={"full_name": "Dr Doc"})
    assert r.json()["centre"]["id"] == centre.id  # centre_id left out: unchanged
    r = api.patch(f"/users/{doc.id}", headers=admin, json={"centre_id": None})
    assert r.status_code == 200 and r.json()["is_tele_radiologist"] is True
    assert r.json()["full_name"] == "Dr Doc"


def test_centre_search(api, session):
    make_user(session, Role.ADMIN, username="boss")
    make_centre(session, "NORTHX")
    make_centre(session, "SOUTHX")
    r = api.get("/centres", headers=_auth(api, "boss"), params={"q": "north"})
    assert [c["code"] for c in r.json()] == ["NORTHX"]


def test_a_password_reset_ends_the_accounts_open_sessions(api, session):
    import time

    centre = make_centre(session, "RESET")
    make_user(session, Role.CENTRE, centre=centre, username="mgr-reset")
    tech = make_user(session, Role.TECHNICIAN, centre=centre, username="tech-reset")
    old = _auth(api, "tech-reset")
    assert api.get("/auth/me", headers=old).status_code == 200
    time.sleep(1.1)  # token times have one-second resolution
    r = api.post(
        f"/users/{tech.id}/password",
        headers=_auth(api, "mgr-reset"),
        json={"new_password": "a-new-Secret-77"},
    )
    assert r.status_code in (200, 204), r.text
    stale = api.get("/auth/me", headers=old)
    assert stale.status_code == 401 and "password" in stale.json()["detail"]
    fresh = api.post("/auth/token", data={"username": "tech-reset", "password": "a-new-Secret-77"})
    token = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert api.get("/auth/me", headers=token).status_code == 200
