"""The REST auth calls of the product documentation, through FastAPI's TestClient."""

from __future__ import annotations

from sqlmodel import select

from pacs_app.models import AuditEvent, Role
from tests.factories import PASSWORD, make_centre, make_user


def _token(api, username: str, password: str = PASSWORD) -> str:
    r = api.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_token_and_me(api, session):
    centre = make_centre(session, "DIAG1")
    make_user(session, Role.TECHNICIAN, centre=centre, username="tech")

    r = api.post("/auth/token", data={"username": "tech", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["access_token"] and body["expires_in"] > 0

    me = api.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    data = me.json()
    assert (data["username"], data["role"], data["centre"]["code"]) == (
        "tech",
        "technician",
        "DIAG1",
    )
    assert data["email"] == "tech@example.org" and "hashed_password" not in data


def test_wrong_credentials_answer_401_with_a_message(api, session):
    make_user(session, Role.RADIOLOGIST, username="doc")
    for username, password in (("doc", "wrong-one"), ("nobody", PASSWORD)):
        r = api.post("/auth/token", data={"username": username, "password": password})
        assert r.status_code == 401
        assert r.json()["detail"] == "Incorrect username or password."
        assert r.headers["www-authenticate"] == "Bearer"
    failures = session.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert len(list(failures)) == 2


def test_missing_form_fields_answer_422_not_500(api):
    r = api.post("/auth/token", data={"username": "x"})
    assert r.status_code == 422


def test_me_without_or_with_bad_token_is_401(api):
    r = api.get("/auth/me")
    assert r.status_code == 401 and "Not signed in" in r.json()["detail"]
    for header in ("Bearer nonsense", "Bearer a.b.c", "Basic dXNlcjpwYXNz"):
        r = api.get("/auth/me", headers={"Authorization": header})
        assert r.status_code == 401, header


def test_inactive_user_gets_401_on_sign_in_and_with_an_old_token(api, session):
    admin = make_user(session, Role.ADMIN, username="boss")
    doc = make_user(session, Role.RADIOLOGIST, username="doc")
    doc_token = _token(api, "doc")
    admin_token = _token(api, "boss")

    r = api.post(f"/users/{doc.id}/deactivate", headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200 and r.json()["is_active"] is False

    r = api.get("/auth/me", headers={"Authorization": f"Bearer {doc_token}"})
    assert r.status_code == 401 and "deactivated" in r.json()["detail"]
    r = api.post("/auth/token", data={"username": "doc", "password": PASSWORD})
    assert r.status_code == 401 and "deactivated" in r.json()["detail"]
    assert admin.id


def test_logout_revokes_the_token(api, session):
    make_user(session, Role.RADIOLOGIST, username="doc")
    token = _token(api, "doc")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.post("/auth/logout", headers=headers).status_code == 204
    r = api.get("/auth/me", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_lockout_answers_429_with_retry_after(api, session, settings, monkeypatch):
    monkeypatch.setattr(settings, "login_max_failures_per_account", 2)
    make_user(session, Role.RADIOLOGIST, username="doc")
    for _ in range(2):
        api.post("/auth/token", data={"username": "doc", "password": "wrong-one"})
    r = api.post("/auth/token", data={"username": "doc", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0 and "Too many failed sign-ins" in r.json()["detail"]


def test_user_admin_endpoints_are_scoped(api, session):
    a, b = make_centre(session), make_centre(session)
    make_user(session, Role.CENTRE, centre=a, username="mgr")
    make_user(session, Role.TECHNICIAN, centre=a, username="tech-a")
    other = make_user(session, Role.TECHNICIAN, centre=b, username="tech-b")
    headers = {"Authorization": f"Bearer {_token(api, 'mgr')}"}

    listed = api.get("/users", headers=headers).json()
    assert sorted(u["username"] for u in listed["items"]) == ["mgr", "tech-a"]
    assert listed["total"] == 2
    assert api.post(f"/users/{other.id}/deactivate", headers=headers).status_code == 404
    r = api.post(
        "/users",
        headers=headers,
        json={"username": "spy", "password": PASSWORD, "role": "technician", "centre_id": b.id},
    )
    assert r.status_code == 403
    r = api.post(
        "/users",
        headers=headers,
        json={"username": "newtech", "password": PASSWORD, "role": "technician", "centre_id": a.id},
    )
    assert r.status_code == 201 and r.json()["centre"]["id"] == a.id
    r = api.post(
        "/users",
        headers=headers,
        json={"username": "x", "password": PASSWORD, "role": "technician", "centre_id": a.id},
    )
    assert r.status_code == 422 and "username" in r.json()["detail"]
    tech_headers = {"Authorization": f"Bearer {_token(api, 'tech-a')}"}
    assert api.get("/users", headers=tech_headers).status_code == 403
    assert (
        api.post("/centres", headers=headers, json={"name": "N", "code": "NN"}).status_code == 403
    )


def test_docs_and_openapi_are_served(api):
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json").json()
    assert "/auth/token" in spec["paths"] and "/auth/me" in spec["paths"]


def test_behind_a_trusted_proxy_throttling_and_audit_see_the_client(
    api, session, settings, monkeypatch
):
    make_user(session, Role.RADIOLOGIST, username="doc")
    monkeypatch.setattr(settings, "login_max_failures_per_address", 2)

    def sign_in(forwarded_for: str, password: str):
        return api.post(
            "/auth/token",
            data={"username": "doc", "password": password},
            headers={"X-Forwarded-For": forwarded_for},
        )

    # no proxy trusted (the default): the header is a client's word, and ignored
    sign_in("203.0.113.7", "wrong-one")
    monkeypatch.setattr(settings, "trusted_proxy_hops", 1)
    # what the proxy saw comes last; whatever the client wrote itself comes before it
    sign_in("6.6.6.6, 203.0.113.7", "wrong-one")
    failed = session.exec(
        select(AuditEvent.address).where(AuditEvent.action == "auth.login_failed")
    ).all()
    assert failed == ["testclient", "203.0.113.7"]

    # one client's failures lock that client out, not everyone behind the proxy
    sign_in("203.0.113.7", "wrong-one")
    assert sign_in("203.0.113.7", PASSWORD).status_code == 429
    assert sign_in("198.51.100.4", PASSWORD).status_code == 200
