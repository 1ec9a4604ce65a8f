"""Accounts and centres through the domain layer, on both databases."""

from __future__ import annotations

import pytest
from sqlmodel import select

from pacs_app.config import Environment
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import AuditEvent, Currency, Role
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


# --- centres: edit, deactivate, activate -------------------------------------------------


def _events(session, action: str) -> list[AuditEvent]:
    return list(
        session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def test_admin_edits_a_centre_and_the_change_is_audited(session):
    admin = actor_of(make_user(session, Role.ADMIN))
    centre = make_centre(session, "EDIT1")

    done = users.update_centre(
        session=session,
        actor=admin,
        centre_id=centre.id,
        name="  Edited   Centre ",
        code="edit1",  # the same code, in another case: accepted, nothing to change
        currency="AED",
        auto_release_to_pool=False,
        ai_auto_process=False,
        address="5.5.5.5",
    )
    assert (done.name, done.code, done.default_currency) == ("Edited Centre", "EDIT1", "AED")
    assert (done.auto_release_to_pool, done.ai_auto_process) == (False, False)
    stored = users.get_centre(session=session, actor=admin, centre_id=centre.id)
    assert stored == done
    (event,) = _events(session, "centre.updated")
    assert (event.actor_id, event.resource_id, event.centre_id, event.address) == (
        admin.user_id,
        str(centre.id),
        centre.id,
        "5.5.5.5",
    )
    assert event.detail == {
        "name": "Edited Centre",
        "default_currency": "AED",
        "auto_release_to_pool": False,
        "ai_auto_process": False,
    }
    # the same values again change nothing and record nothing
    users.update_centre(
        session=session, actor=admin, centre_id=centre.id, currency="AED", name="Edited Centre"
    )
    assert len(_events(session, "centre.updated")) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "   "}, InvalidInput, "needs a name"),
        ({"name": "x" * 201}, InvalidInput, "at most 200"),
        ({"currency": "EUR"}, InvalidInput, "Unknown currency 'EUR'"),
        ({"code": "OTHER"}, InvalidInput, "cannot change"),
        ({"name": "centre taken"}, Conflict, "already exists"),  # names clash ignoring case
    ],
)
def test_bad_centre_edits_are_refused_and_change_nothing(session, kwargs, error, message):
    admin = actor_of(make_user(session, Role.ADMIN))
    make_centre(session, "TAKEN")  # named "Centre TAKEN"
    centre = make_centre(session, "KEEP1", currency=Currency.INR)
    with pytest.raises(error, match=message):
        users.update_centre(
            session=session, actor=admin, centre_id=centre.id, ai_auto_process=False, **kwargs
        )
    session.rollback()
    stored = users.get_centre(session=session, actor=admin, centre_id=centre.id)
    assert (stored.name, stored.code, stored.default_currency, stored.ai_auto_process) == (
        "Centre KEEP1",
        "KEEP1",
        Currency.INR,
        True,
    )
    assert _events(session, "centre.updated") == []


def test_only_administrators_manage_centres(session):
    centre = make_centre(session)
    manager = actor_of(make_user(session, Role.CENTRE, centre=centre))
    with pytest.raises(PermissionDenied, match="Only administrators"):
        users.update_centre(session=session, actor=manager, centre_id=centre.id, name="Mine")
    with pytest.raises(PermissionDenied, match="Only administrators"):
        users.set_centre_active(session=session, actor=manager, centre_id=centre.id, active=False)
    with pytest.raises(PermissionDenied):
        users.list_centre_details(session=session, actor=manager)
    admin = actor_of(make_user(session, Role.ADMIN))
    with pytest.raises(NotFound):
        users.update_centre(session=session, actor=admin, centre_id=99999, name="Nowhere")
    # a centre's own users may read it; another centre's may not
    assert users.get_centre(session=session, actor=manager, centre_id=centre.id).id == centre.id
    other = make_centre(session)
    with pytest.raises(NotFound):
        users.get_centre(session=session, actor=manager, centre_id=other.id)


def test_duplicate_centre_code_or_name_is_refused(session):
    users.create_centre(session=session, actor=None, name="City Diagnostics", code="CITY")
    with pytest.raises(Conflict, match="code 'CITY'"):
        users.create_centre(session=session, actor=None, name="Another", code="city")
    with pytest.raises(Conflict, match="named 'city diagnostics'"):
        users.create_centre(session=session, actor=None, name="city diagnostics", code="CITY2")
    with pytest.raises(InvalidInput, match="needs a name"):
        users.create_centre(session=session, actor=None, name=" ", code="CITY3")


def test_centre_list_for_administrators_has_switches_counts_and_search(session):
    admin = actor_of(make_user(session, Role.ADMIN))
    alpha = users.create_centre(session=session, actor=None, name="Alpha Imaging", code="ALPHA")
    users.create_centre(session=session, actor=None, name="Beta Scans", code="BETA")
    make_user(session, Role.TECHNICIAN, centre=alpha)
    make_user(session, Role.TECHNICIAN, centre=alpha, active=False)

    listed = users.list_centre_details(session=session, actor=admin)
    assert [c.code for c in listed] == ["ALPHA", "BETA"]
    assert (listed[0].users, listed[0].active_users) == (2, 1)
    assert listed[0].auto_release_to_pool and listed[0].ai_auto_process
    assert [
        c.code for c in users.list_centre_details(session=session, actor=admin, search="bet")
    ] == ["BETA"]
    assert [c.code for c in users.list_centres(session=session, actor=admin, search="IMAG")] == [
        "ALPHA"
    ]


def test_deactivating_a_centre_signs_its_users_out_and_reactivation_restores_them(session):
    from pacs_app.core.errors import AuthenticationFailed
    from pacs_app.services import auth

    admin = actor_of(make_user(session, Role.ADMIN))
    centre, other = make_centre(session), make_centre(session)
    manager = make_user(session, Role.CENTRE, centre=centre, username="mgr")
    tech = make_user(session, Role.TECHNICIAN, centre=centre, username="tech")
    already_off = make_user(session, Role.TECHNICIAN, centre=centre, active=False)
    elsewhere = make_user(session, Role.TECHNICIAN, centre=other, username="elsewhere")
    tele = make_user(session, Role.RADIOLOGIST, username="tele")
    token = auth.authenticate(session=session, username="tech", password=PASSWORD).access_token

    done = users.set_centre_active(
        session=session, actor=admin, centre_id=centre.id, active=False, address="6.6.6.6"
    )
    assert (done.is_active, done.users, done.active_users) == (False, 3, 0)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        auth.resolve_token(session=session, token=token)  # signed out at once: no uploads
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        auth.authenticate(session=session, username="tech", password=PASSWORD)
    for name in ("elsewhere", "tele"):  # other centres and tele-radiologists are untouched
        assert auth.authenticate(session=session, username=name, password=PASSWORD)
    with pytest.raises(InvalidInput, match="deactivated"):
        make_user(session, Role.TECHNICIAN, centre=done)
    with pytest.raises(InvalidInput, match="reactivate the centre first"):
        users.set_active(session=session, actor=admin, user_id=tech.id, active=True)
    (event,) = _events(session, "centre.deactivated")
    assert event.detail == {"users_deactivated": sorted([manager.id, tech.id])}
    assert event.address == "6.6.6.6"
    per_user = [e for e in _events(session, "user.deactivated") if e.detail]
    assert {(e.resource_id, e.detail["reason"]) for e in per_user} == {
        (str(manager.id), "centre_deactivated"),
        (str(tech.id), "centre_deactivated"),
    }
    # deactivating again changes and records nothing
    users.set_centre_active(session=session, actor=admin, centre_id=centre.id, active=False)
    assert len(_events(session, "centre.deactivated")) == 1

    again = users.set_centre_active(session=session, actor=admin, centre_id=centre.id, active=True)
    assert (again.is_active, again.active_users) == (True, 2)
    assert auth.authenticate(session=session, username="tech", password=PASSWORD)
    states = {u.id: u.is_active for u in users.list_users(session=session, actor=admin).items}
    assert states[manager.id] and states[tech.id] and not states[already_off.id]
    assert states[elsewhere.id] and states[tele.id]
    (event,) = _events(session, "centre.activated")
    assert event.detail == {"users_reactivated": sorted([manager.id, tech.id])}


# --- users: edit, reset password ----------------------------------------------------------


@pytest.fixture
def two_centres(session):
    a, b = make_centre(session, "ACEN"), make_centre(session, "BCEN")
    return {
        "a": a,
        "b": b,
        "admin": make_user(session, Role.ADMIN, username="root"),
        "mgr_a": make_user(session, Role.CENTRE, centre=a, username="mgr-a"),
        "mgr_a2": make_user(session, Role.CENTRE, centre=a, username="mgr-a2"),
        "tech_a": make_user(session, Role.TECHNICIAN, centre=a, username="tech-a"),
        "rad_a": make_user(session, Role.RADIOLOGIST, centre=a, username="rad-a"),
        "tech_b": make_user(session, Role.TECHNICIAN, centre=b, username="tech-b"),
        "tele": make_user(session, Role.RADIOLOGIST, username="tele"),
    }


def test_centre_manager_edits_its_technicians_and_doctors(session, two_centres):
    w = two_centres
    manager = actor_of(w["mgr_a"])
    done = users.update_user(
        session=session,
        actor=manager,
        user_id=w["tech_a"].id,
        full_name="  Asha   Rao ",
        email="ASHA@Example.org",
        address="7.7.7.7",
    )
    assert (done.full_name, done.email, done.username) == ("Asha Rao", "asha@example.org", "tech-a")
    done = users.update_user(
        session=session, actor=manager, user_id=w["rad_a"].id, role=Role.TECHNICIAN
    )
    assert done.role is Role.TECHNICIAN
    events = _events(session, "user.updated")
    assert [e.detail for e in events] == [
        {"fields": ["email", "full_name"]},
        {"fields": ["role"], "role": "technician"},
    ]
    assert (events[0].actor_id, events[0].resource_id, events[0].address) == (
        manager.user_id,
        str(w["tech_a"].id),
        "7.7.7.7",
    )
    # clearing the optional fields
    done = users.update_user(
        session=session, actor=manager, user_id=w["tech_a"].id, full_name="", email=""
    )
    assert (done.full_name, done.email) == (None, None)


def test_centre_manager_is_refused_other_users_and_promotions(session, two_centres):
    w = two_centres
    manager = actor_of(w["mgr_a"])
    before = {u.id: u for u in users.list_users(session=session, actor=actor_of(w["admin"])).items}
    refusals = [
        # another centre's user, an administrator, a tele-radiologist: invisible
        (NotFound, "No such user", {"user_id": w["tech_b"].id, "full_name": "Spy"}),
        (NotFound, "No such user", {"user_id": w["admin"].id, "full_name": "Spy"}),
        (NotFound, "No such user", {"user_id": w["tele"].id, "full_name": "Spy"}),
        # a centre-role colleague, and itself
        (PermissionDenied, "technicians and internal", {"user_id": w["mgr_a2"].id, "email": ""}),
        (PermissionDenied, "technicians and internal", {"user_id": w["mgr_a"].id, "email": ""}),
        # promotions and moves out of its centre
        (
            PermissionDenied,
            "technicians and internal",
            {"user_id": w["tech_a"].id, "role": "centre"},
        ),
        (
            InvalidInput,
            "not to a centre",
            {"user_id": w["tech_a"].id, "role": "admin"},
        ),
        (
            PermissionDenied,
            "technicians and internal",
            {"user_id": w["tech_a"].id, "centre_id": w["b"].id},
        ),
        (
            PermissionDenied,
            "technicians and internal",
            {"user_id": w["rad_a"].id, "centre_id": None},
        ),
    ]
    for error, message, kwargs in refusals:
        with pytest.raises(error, match=message):
            users.update_user(session=session, actor=manager, **kwargs)
        session.rollback()
    with pytest.raises(NotFound):
        users.reset_password(
            session=session, actor=manager, user_id=w["tech_b"].id, new_password="a-new-secret-1"
        )
    with pytest.raises(PermissionDenied):
        users.reset_password(
            session=session, actor=manager, user_id=w["mgr_a2"].id, new_password="a-new-secret-1"
        )
    technician = actor_of(w["tech_a"])
    with pytest.raises(PermissionDenied):  # not even their own account
        users.update_user(session=session, actor=technician, user_id=w["tech_a"].id, full_name="X")
    with pytest.raises(NotFound):
        users.update_user(session=session, actor=technician, user_id=w["rad_a"].id, full_name="X")
    after = {u.id: u for u in users.list_users(session=session, actor=actor_of(w["admin"])).items}
    assert after == before
    assert _events(session, "user.updated") == [] and _events(session, "user.password_reset") == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"email": "not-an-email"}, InvalidInput, "not a valid e-mail"),
        ({"email": "tech-b@example.org"}, Conflict, "already used"),
        ({"full_name": "x" * 201}, InvalidInput, "at most 200"),
        ({"role": "superuser"}, InvalidInput, "Unknown role"),
        ({"role": "admin"}, InvalidInput, "not to a centre"),
        ({"centre_id": None}, InvalidInput, "must belong to a centre"),
        ({"centre_id": 99999}, InvalidInput, "No centre with id"),
    ],
)
def test_bad_user_edits_are_refused(session, two_centres, kwargs, error, message):
    w = two_centres
    with pytest.raises(error, match=message):
        users.update_user(
            session=session, actor=actor_of(w["admin"]), user_id=w["tech_a"].id, **kwargs
        )
    session.rollback()
    stored = users.list_users(session=session, actor=actor_of(w["admin"]), search="tech-a").items[0]
    assert stored == w["tech_a"]


def test_admin_moves_and_promotes_users_but_not_itself(session, two_centres):
    w = two_centres
    admin = actor_of(w["admin"])
    moved = users.update_user(
        session=session, actor=admin, user_id=w["tech_a"].id, centre_id=w["b"].id
    )
    assert moved.centre.code == "BCEN"
    tele = users.update_user(session=session, actor=admin, user_id=w["rad_a"].id, centre_id=None)
    assert tele.is_tele_radiologist
    boss = users.update_user(
        session=session, actor=admin, user_id=w["tele"].id, role="admin", centre_id=None
    )
    assert boss.role is Role.ADMIN
    with pytest.raises(InvalidInput, match="your own role"):
        users.update_user(session=session, actor=admin, user_id=admin.user_id, role="technician")
    # its own name is fine
    me = users.update_user(session=session, actor=admin, user_id=admin.user_id, full_name="Chief")
    assert me.full_name == "Chief"
    off = users.set_centre_active(session=session, actor=admin, centre_id=w["a"].id, active=False)
    with pytest.raises(InvalidInput, match="deactivated"):
        users.update_user(session=session, actor=admin, user_id=w["tech_b"].id, centre_id=off.id)


def test_a_radiologist_with_studies_to_read_keeps_role_and_centre(session, two_centres, tmp_path):
    from sqlalchemy import update

    from pacs_app.models import Study, StudyStatus
    from pacs_app.services.ingest import StagedFile, StudyForm, ingest
    from pacs_app.storage import LocalStorage
    from tests.dicom_factory import make_series

    w = two_centres
    files = make_series(tmp_path / "s", 1)
    result = ingest(
        session=session,
        actor=actor_of(w["tech_a"]),
        files=[StagedFile(name=p.name, path=p) for p in files],
        form=StudyForm(patient_name="DOE^JANE", modality="CT"),
        storage=LocalStorage(tmp_path / "store"),
    )
    session.exec(
        update(Study)
        .where(Study.study_id == result.studies[0].study_id)
        .values(assigned_radiologist_id=w["rad_a"].id, status=StudyStatus.IN_PROGRESS)
    )
    session.commit()
    with pytest.raises(Conflict, match="still has 1 study to read"):
        users.update_user(
            session=session, actor=actor_of(w["admin"]), user_id=w["rad_a"].id, centre_id=None
        )
    # the name may change all the same
    renamed = users.update_user(
        session=session, actor=actor_of(w["mgr_a"]), user_id=w["rad_a"].id, full_name="Dr R"
    )
    assert renamed.full_name == "Dr R"


def test_password_reset_by_manager_and_admin_is_audited(session, two_centres):
    from pacs_app.services import auth

    w = two_centres
    users.reset_password(
        session=session,
        actor=actor_of(w["mgr_a"]),
        user_id=w["tech_a"].id,
        new_password="fresh-secret-77",
        address="8.8.8.8",
    )
    assert auth.authenticate(session=session, username="tech-a", password="fresh-secret-77")
    users.reset_password(
        session=session, actor=actor_of(w["admin"]), user_id=w["mgr_a"].id, new_password="m-g-r-99x"
    )
    assert auth.authenticate(session=session, username="mgr-a", password="m-g-r-99x")
    events = _events(session, "user.password_reset")
    assert [(e.actor_id, e.resource_id) for e in events] == [
        (w["mgr_a"].id, str(w["tech_a"].id)),
        (w["admin"].id, str(w["mgr_a"].id)),
    ]
    assert events[0].address == "8.8.8.8" and events[0].detail is None


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short7!", "at least 8"),
        ("aaaaaaaaaa", "too easy to guess"),
        ("Password1", "too easy to guess"),
        ("xx-tech-a-xx", "must not contain the username"),
    ],
)
def test_weak_passwords_are_refused_and_the_old_one_still_works(
    session, two_centres, password, message
):
    from pacs_app.services import auth

    w = two_centres
    with pytest.raises(InvalidInput, match=message):
        users.reset_password(
            session=session,
            actor=actor_of(w["mgr_a"]),
            user_id=w["tech_a"].id,
            new_password=password,
        )
    session.rollback()
    assert auth.authenticate(session=session, username="tech-a", password=PASSWORD)
    assert _events(session, "user.password_reset") == []


def test_can_manage_matches_the_rules(session, two_centres):
    w = two_centres
    manager = actor_of(w["mgr_a"])
    assert users.can_manage(manager, w["tech_a"]) and users.can_manage(manager, w["rad_a"])
    assert not users.can_manage(manager, w["mgr_a2"])
    assert not users.can_manage(manager, w["tech_b"])
    assert not users.can_manage(manager, w["tele"])
    assert users.can_manage(actor_of(w["admin"]), w["mgr_a2"])


# --- the audit trail's filters ------------------------------------------------------------


def test_audit_events_are_filtered_and_paginated(session):
    from datetime import UTC, date, datetime

    from pacs_app.services import audit

    admin = actor_of(make_user(session, Role.ADMIN, username="auditor"))
    for day, name, action, resource in [
        (1, "alice", "study.viewed", "K3Q9ZP2A"),
        (2, "alice", "study.viewed", "AAAA1111"),
        (3, "bob", "user.created", "42"),
        (3, "bob", "study.viewed", "K3Q9ZP2A"),
        (5, "alice", "report.verified", "K3Q9ZP2A"),
    ]:
        audit.record(
            session,
            action=action,
            username=name,
            resource_type="user" if action.startswith("user") else "study",
            resource_id=resource,
            at=datetime(2030, 1, day, 12, tzinfo=UTC),
        )
    session.commit()

    def rows(page):
        return [(e.at.day, e.username, e.action) for e in page.items]

    def listed(**kwargs):
        return rows(audit.list_events(session=session, actor=admin, **kwargs))

    assert listed(action="study.viewed", username=" ALICE ") == [
        (2, "alice", "study.viewed"),
        (1, "alice", "study.viewed"),
    ]
    assert listed(resource_id="k3q9zp2a") == [
        (5, "alice", "report.verified"),
        (3, "bob", "study.viewed"),
        (1, "alice", "study.viewed"),
    ]
    assert listed(date_from=date(2030, 1, 2), date_to=date(2030, 1, 3), username="bob") == [
        (3, "bob", "study.viewed"),
        (3, "bob", "user.created"),
    ]
    assert listed(date_from=date(2030, 1, 4)) == [(5, "alice", "report.verified")]
    assert listed(resource_type="user", date_from=date(2030, 1, 1)) == [(3, "bob", "user.created")]
    page = audit.list_events(
        session=session, actor=admin, date_from=date(2030, 1, 1), page=2, page_size=2
    )
    assert (page.total, page.pages) == (5, 3)
    assert rows(page) == [(3, "bob", "user.created"), (2, "alice", "study.viewed")]
    with pytest.raises(InvalidInput, match="start date is after the end date"):
        audit.list_events(
            session=session, actor=admin, date_from=date(2030, 1, 5), date_to=date(2030, 1, 1)
        )
    centre = make_centre(session)
    manager = actor_of(make_user(session, Role.CENTRE, centre=centre))
    with pytest.raises(PermissionDenied):
        audit.list_events(session=session, actor=manager)
