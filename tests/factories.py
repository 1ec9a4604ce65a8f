"""Factories for accounts and centres, built through the domain layer like real data."""

from __future__ import annotations

import itertools

from sqlmodel import Session

from pacs_app.models import Currency, Role
from pacs_app.services import users
from pacs_app.services.authz import Actor
from pacs_app.services.dto import CentrePublic, UserPublic

PASSWORD = "correct-horse-42"
_seq = itertools.count(1)


def make_centre(
    session: Session, code: str | None = None, *, currency: Currency = Currency.INR
) -> CentrePublic:
    n = next(_seq)
    code = code or f"C{n:03d}"
    return users.create_centre(
        session=session, actor=None, name=f"Centre {code}", code=code, currency=currency
    )


def make_user(
    session: Session,
    role: Role,
    *,
    centre: CentrePublic | None = None,
    username: str | None = None,
    password: str = PASSWORD,
    active: bool = True,
) -> UserPublic:
    username = username or f"{role.value}{next(_seq)}"
    user = users.create_user(
        session=session,
        actor=None,
        username=username,
        password=password,
        role=role,
        centre_id=centre.id if centre else None,
        email=f"{username}@example.org",
    )
    if not active:
        user = users.set_active(session=session, actor=None, user_id=user.id, active=False)
    return user


def actor_of(user: UserPublic) -> Actor:
    return Actor(
        user_id=user.id,
        username=user.username,
        role=user.role,
        centre_id=user.centre.id if user.centre else None,
    )
