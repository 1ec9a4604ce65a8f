"""Accounts and centres through the domain layer, on both databases."""

from __future__ import annotations

import pytest
from sqlmodel import select

from pacs_app.config import Environment
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import AuditEvent, Role
from pacs_app.services import users
from tests.factories import PASSWORD, actor_of, make_centre, make_user


def test_role_and_centre_rules(session):
    centre = make_centre(session)
    with pytest.raises(InvalidInput, match="must belong to a centre"):
        make_user(session, Role.TECHNICIAN)
    with pytest.raises(InvalidInput, match="must belong to a centre"):
        make_user(session, Role.CENTRE)
    with pytest.raises(InvalidInput, match="not to a centre"):
        make_user(session, Role.ADMIN, centre=centre)
    tele = make_user(session, Role.RADIOLOGIST)
    internal = make_user(session, Role.RADIOLOGIST, centre=centre)
    assert tele.is_tele_radiologist and tele.centre is None
    assert not internal.is_tele_radiologist and internal.centre.id == centre.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "ab"}, "3 to 64 characters"),
        ({"username": "bad name"}, "3 to 64 characters"),
        ({"password": "short"}, "at least 8"),
        ({"email": "not-an-email"}, "not a valid e-mail"),
        ({"role": "superuser"}, "Unknown role"),
        ({"centre_id": 99999}, "No centre with id"),
    ],
)
def test_invalid_accounts_are_refused(session, kwargs, message):
    args = {"username": "valid.name", "password": PASSWORD, "role": Role.RADIOLOGIST}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        users.create_user(session=session, actor=None, **args)
    assert (
        users.list_users(session=session, actor=actor_of(make_user(session, Role.ADMIN))).total == 1
    )  # only the admin made for the check


def test_usernames_and_emails_are_unique_case_insensitively(session):
    make_user(session, Role.RADIOLOGIST, username="doc")
    with pytest.raises(Conflict, match="already taken"):
        users.create_user(
            session=session, actor=None, username="DOC", password=PASSWORD, role=Role.RADIOLOGIST
        )
    with pytest.raises(Conflict, match="e-mail"):
        users.create_user(
            session=session,
            actor=None,
            username="doc2",
            password=PASSWORD,
            role=Role.RADIOLOGIST,
            email="Doc@Example.org",
        )


def test_production_refuses_demo_passwords_for_new_accounts(session, settings, monkeypatch):
    monkeypatch.setattr(settings, "pacs_env", Environment.PRODUCTION)
    with pytest.raises(InvalidInput, match="demo passwords"):
        users.create_user(
            session=session, actor=None, username="newadmin", password="admin123", role=Role.ADMIN
        )


def test_centre_manager_creates_users_only_in_own_centre(session):
    a, b = make_centre(session), make_centre(session)
    manager = actor_of(make_user(session, Role.CENTRE, centre=a))
    tech = users.create_user(
        session=session,
        actor=manager,
        username="newtech",
        password=PASSWORD,
        role=Role.TECHNICIAN,
        centre_id=a.id,
    )
    assert tech.centre.id == a.id
    with pytest.raises(PermissionDenied):
        users.create_user(
            session=session,
            actor=manager,
            username="spy",
            password=PASSWORD,
            role=Role.TECHNICIAN,
            centre_id=b.id,
        )
    with pytest.raises(PermissionDenied):
        users.create_user(
            session=session, actor=manager, username="boss2", password=PASSWORD, role=Role.ADMIN
        )
    technician = actor_of(tech)
    with pytest.raises(PermissionDenied):
        users.create_user(
            session=session,
            actor=technician,
            username="friend",
            password=PASSWORD,
            role=Role.TECHNICIAN,
            centre_id=a.id,
        )


def test_user_lists_are_scoped_searchable_and_paginated(session):
    a, b = make_centre(session), make_centre(session)
    admin = actor_of(make_user(session, Role.ADMIN, username="root"))
    manager_a = actor_of(make_user(session, Role.CENTRE, centre=a, username="mgr-a"))
    for i in range(5):
        make_user(session, Role.TECHNICIAN, centre=a, username=f"tech-a{i}")
    make_user(session, Role.TECHNICIAN, centre=b, username="tech-b")
    make_user(session, Role.RADIOLOGIST, username="tele")

    assert users.list_users(session=session, actor=admin).total == 9
    mine = users.list_users(session=session, actor=manager_a, page_size=4)
    assert mine.total == 6 and len(mine.items) == 4 and mine.pages == 2
    assert all(u.centre and u.centre.id == a.id for u in mine.items)
    second = users.list_users(session=session, actor=manager_a, page=2, page_size=4)
    assert [u.username for u in second.items] == ["tech-a3", "tech-a4"]
    assert [
        u.username for u in users.list_users(session=session, actor=admin, search="TECH-B").items
    ] == ["tech-b"]
    tech = actor_of(make_user(session, Role.TECHNICIAN, centre=a))
    with pytest.raises(PermissionDenied):
        users.list_users(session=session, actor=tech)


def test_deactivation_rules_and_audit(session):
    a, b = make_centre(session), make_centre(session)
    admin = actor_of(make_user(session, Role.ADMIN))
    manager_a = actor_of(make_user(session, Role.CENTRE, centre=a))
    tech_a = make_user(session, Role.TECHNICIAN, centre=a)
    tech_b = make_user(session, Role.TECHNICIAN, centre=b)

    with pytest.raises(InvalidInput, match="your own account"):
        users.set_active(session=session, actor=admin, user_id=admin.user_id, active=False)
    with pytest.raises(NotFound):  # another centre's user is invisible to a centre manager
        users.set_active(session=session, actor=manager_a, user_id=tech_b.id, active=False)
    done = users.set_active(
        session=session, actor=manager_a, user_id=tech_a.id, active=False, address="4.4.4.4"
    )
    assert done.is_active is False
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "user.deactivated")).one()
    assert (event.actor_id, event.resource_id, event.address) == (
        manager_a.user_id,
        str(tech_a.id),
        "4.4.4.4",
    )


def test_password_change_by_self_and_by_manager(session):
    from pacs_app.services import auth

    centre = make_centre(session)
    manager = actor_of(make_user(session, Role.CENTRE, centre=centre))
    tech = make_user(session, Role.TECHNICIAN, centre=centre, username="pwtech")
    users.set_password(
        session=session, actor=actor_of(tech), user_id=tech.id, new_password="my-new-pass-1"
    )
    users.set_password(
        session=session, actor=manager, user_id=tech.id, new_password="reset-by-mgr-2"
    )
    assert auth.authenticate(session=session, username="pwtech", password="reset-by-mgr-2")


def test_centre_validation(session):
    with pytest.raises(InvalidInput, match="uppercase"):
        users.create_centre(session=session, actor=None, name="X", code="a b")
    with pytest.raises(InvalidInput, match="currency"):
        users.create_centre(session=session, actor=None, name="X", code="XX", currency="EUR")
    users.create_centre(session=session, actor=None, name="Alpha", code="ALPHA")
    with pytest.raises(Conflict):
        users.create_centre(session=session, actor=None, name="Alpha", code="OTHER")
    tech = actor_of(make_user(session, Role.RADIOLOGIST))
    with pytest.raises(PermissionDenied):
        users.create_centre(session=session, actor=tech, name="Beta", code="BETA")
