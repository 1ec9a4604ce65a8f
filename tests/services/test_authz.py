"""The authorization rules: pure functions, no database needed."""

from __future__ import annotations

import pytest

from pacs_app.core.errors import NotFound, PermissionDenied
from pacs_app.models import Centre, Role, User
from pacs_app.services.authz import Action, Actor, UserDraft, can, require, visible_centre_ids

ADMIN = Actor(1, "admin", Role.ADMIN, None)
CENTRE_A = Actor(2, "mgr-a", Role.CENTRE, 10)
TECH_A = Actor(3, "tech-a", Role.TECHNICIAN, 10)
INTERNAL_RAD_A = Actor(4, "rad-a", Role.RADIOLOGIST, 10)
TELE_RAD = Actor(5, "tele", Role.RADIOLOGIST, None)
CENTRE_B = Actor(6, "mgr-b", Role.CENTRE, 20)
ALL = [ADMIN, CENTRE_A, TECH_A, INTERNAL_RAD_A, TELE_RAD, CENTRE_B]


@pytest.mark.parametrize("actor", ALL, ids=lambda a: a.username)
@pytest.mark.parametrize("dashboard", list(Role), ids=lambda r: r.value)
def test_each_role_opens_only_its_own_dashboard(actor, dashboard):
    assert can(actor, Action.OPEN_DASHBOARD, dashboard) is (actor.role is dashboard)


def test_refusal_names_the_dashboard():
    with pytest.raises(PermissionDenied, match="Only admin users may open the admin dashboard"):
        require(TECH_A, Action.OPEN_DASHBOARD, Role.ADMIN)


def test_no_actor_may_do_anything():
    assert not any(can(None, action, None) for action in Action)


def test_centre_scoping():
    centre_a = Centre(id=10, name="A", code="A")
    assert can(ADMIN, Action.VIEW_CENTRE, centre_a)
    assert can(TECH_A, Action.VIEW_CENTRE, centre_a)
    assert not can(CENTRE_B, Action.VIEW_CENTRE, centre_a)
    assert not can(TELE_RAD, Action.VIEW_CENTRE, centre_a)


def test_hidden_refusal_looks_like_not_found():
    with pytest.raises(NotFound):
        require(CENTRE_B, Action.VIEW_CENTRE, Centre(id=10, name="A", code="A"), hide=True)


def test_centre_managers_manage_their_own_technicians_and_doctors_only():
    own_tech = User(id=30, username="t", hashed_password="x", role=Role.TECHNICIAN, centre_id=10)
    other_tech = User(id=31, username="u", hashed_password="x", role=Role.TECHNICIAN, centre_id=20)
    own_manager = User(id=32, username="m", hashed_password="x", role=Role.CENTRE, centre_id=10)
    assert can(CENTRE_A, Action.MANAGE_USER, own_tech)
    assert not can(CENTRE_A, Action.MANAGE_USER, other_tech)
    assert not can(CENTRE_A, Action.MANAGE_USER, own_manager)
    assert can(CENTRE_A, Action.MANAGE_USER, UserDraft(Role.RADIOLOGIST, 10))
    assert not can(CENTRE_A, Action.MANAGE_USER, UserDraft(Role.RADIOLOGIST, None))
    assert not can(CENTRE_A, Action.MANAGE_USER, UserDraft(Role.ADMIN, None))
    assert not can(TECH_A, Action.MANAGE_USER, own_tech)
    assert can(ADMIN, Action.MANAGE_USER, other_tech)


def test_users_see_themselves_and_managers_see_their_centre():
    me = User(id=3, username="tech-a", hashed_password="x", role=Role.TECHNICIAN, centre_id=10)
    colleague = User(id=7, username="c", hashed_password="x", role=Role.TECHNICIAN, centre_id=10)
    assert can(TECH_A, Action.VIEW_USER, me)
    assert not can(TECH_A, Action.VIEW_USER, colleague)
    assert can(CENTRE_A, Action.VIEW_USER, colleague)
    assert not can(CENTRE_B, Action.VIEW_USER, colleague)


def test_visible_centres():
    assert visible_centre_ids(ADMIN) is None
    assert visible_centre_ids(TELE_RAD) is None
    assert visible_centre_ids(TECH_A) == frozenset({10})
    assert visible_centre_ids(INTERNAL_RAD_A) == frozenset({10})


def test_radiologist_kinds():
    assert TELE_RAD.is_tele_radiologist and not TELE_RAD.is_internal_radiologist
    assert INTERNAL_RAD_A.is_internal_radiologist and not INTERNAL_RAD_A.is_tele_radiologist


def test_only_admins_read_the_audit_trail_and_manage_centres():
    for actor in ALL:
        assert can(actor, Action.VIEW_AUDIT) is actor.is_admin
        assert can(actor, Action.MANAGE_CENTRES) is actor.is_admin
