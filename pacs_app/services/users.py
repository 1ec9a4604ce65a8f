"""Centres and user accounts: create, list, activate/deactivate, set passwords.

``actor=None`` means the operator at the server's shell (the ``pacs`` command), who is trusted
like an administrator; it is audited as ``system``.
"""

from __future__ import annotations

import re

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from pacs_app.config import settings
from pacs_app.core.errors import Conflict, InvalidInput, NotFound
from pacs_app.core.security import hash_password
from pacs_app.models import Centre, Currency, Role, User
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Action, Actor, UserDraft, require, visible_centre_ids
from pacs_app.services.dto import CentrePublic, Page, UserPublic
from pacs_app.services.seed import DEMO_PASSWORDS

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CENTRE_CODE_RE = re.compile(r"^[A-Z0-9]{2,16}$")
MIN_PASSWORD_LENGTH = 8
SYSTEM = "system"


def _require(actor: Actor | None, action: Action, resource=None) -> None:
    if actor is not None:  # None: the trusted operator at the shell
        require(actor, action, resource)


def validate_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if settings.is_production and password in DEMO_PASSWORDS:
        raise InvalidInput("Production mode refuses the documented demo passwords.")


def _user_public(session: Session, user: User) -> UserPublic:
    centre = session.get(Centre, user.centre_id) if user.centre_id else None
    return UserPublic.of(user, centre)


def create_centre(
    *,
    session: Session,
    actor: Actor | None,
    name: str,
    code: str,
    currency: Currency | str = Currency.USD,
    address: str | None = None,
) -> CentrePublic:
    """Create a diagnostic centre. ``code`` is 2 to 16 uppercase letters or digits."""
    _require(actor, Action.MANAGE_CENTRES)
    name = (name or "").strip()
    code = (code or "").strip().upper()
    if not name:
        raise InvalidInput("The centre needs a name.")
    if not CENTRE_CODE_RE.match(code):
        raise InvalidInput("The centre code must be 2 to 16 uppercase letters or digits.")
    try:
        currency = Currency(currency)
    except ValueError as exc:
        raise InvalidInput(f"Unknown currency {currency!r}: use USD, INR or AED.") from exc
    if session.exec(select(Centre).where(or_(Centre.code == code, Centre.name == name))).first():
        raise Conflict(f"A centre named {name!r} or with code {code!r} already exists.")
    centre = Centre(name=name, code=code, default_currency=currency)
    session.add(centre)
    session.flush()
    audit.record(
        session,
        action=AuditAction.CENTRE_CREATED,
        actor=actor,
        username=None if actor else SYSTEM,
        resource_type="centre",
        resource_id=centre.id,
        centre_id=centre.id,
        address=address,
    )
    session.commit()
    return CentrePublic.of(centre)


def get_centre_by_code(*, session: Session, code: str) -> Centre:
    centre = session.exec(select(Centre).where(Centre.code == (code or "").strip().upper())).first()
    if centre is None:
        raise NotFound(f"No centre with code {code!r}.")
    return centre


def create_user(
    *,
    session: Session,
    actor: Actor | None,
    username: str,
    password: str,
    role: Role | str,
    centre_id: int | None = None,
    email: str | None = None,
    full_name: str | None = None,
    address: str | None = None,
) -> UserPublic:
    """Create an account.

    Rules: admins belong to no centre; centre and technician users belong to one; a
    radiologist belongs to one (internal doctor) or none (tele-radiologist). A centre user may
    create technicians and internal radiologists of its own centre only.

    Raises :class:`InvalidInput` for a bad username, e-mail, password or role/centre
    combination, :class:`Conflict` when the username or e-mail is taken.
    """
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "The username must be 3 to 64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput(
            f"Unknown role {role!r}: use admin, centre, technician or radiologist."
        ) from exc
    email = (email or "").strip().lower() or None
    if email and not EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not a valid e-mail address.")
    if role is Role.ADMIN and centre_id is not None:
        raise InvalidInput("An administrator belongs to the business, not to a centre.")
    if role in (Role.CENTRE, Role.TECHNICIAN) and centre_id is None:
        raise InvalidInput(f"A {role.value} user must belong to a centre.")
    if centre_id is not None:
        centre = session.get(Centre, centre_id)
        if centre is None:
            raise InvalidInput(f"No centre with id {centre_id}.")
        if not centre.is_active:
            raise InvalidInput(f"The centre {centre.code} is deactivated.")
    _require(actor, Action.MANAGE_USER, UserDraft(role=role, centre_id=centre_id))
    validate_password(password)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"The username {username!r} is already taken.")
    if email and session.exec(select(User).where(User.email == email)).first():
        raise Conflict(f"The e-mail address {email!r} is already used by another account.")

    user = User(
        username=username,
        email=email,
        full_name=(full_name or "").strip() or None,
        hashed_password=hash_password(password),
        role=role,
        centre_id=centre_id,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        action=AuditAction.USER_CREATED,
        actor=actor,
        username=None if actor else SYSTEM,
        resource_type="user",
        resource_id=user.id,
        centre_id=centre_id,
        address=address,
        detail={"role": role.value},
    )
    session.commit()
    return _user_public(session, user)


def _get_user(
    session: Session,
    actor: Actor | None,
    *,
    user_id: int | None = None,
    username: str | None = None,
) -> User:
    if user_id is not None:
        user = session.get(User, user_id)
    else:
        user = session.exec(
            select(User).where(User.username == (username or "").strip().lower())
        ).first()
    if user is None or (actor is not None and not _can_view(actor, user)):
        raise NotFound("No such user.")
    return user


def _can_view(actor: Actor, user: User) -> bool:
    from pacs_app.services.authz import can

    return can(actor, Action.VIEW_USER, user)


def set_active(
    *,
    session: Session,
    actor: Actor | None,
    active: bool,
    user_id: int | None = None,
    username: str | None = None,
    address: str | None = None,
) -> UserPublic:
    """Activate or deactivate an account. A deactivated user's tokens stop working at once."""
    user = _get_user(session, actor, user_id=user_id, username=username)
    _require(actor, Action.MANAGE_USER, user)
    if actor is not None and user.id == actor.user_id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    if user.is_active != active:
        user.is_active = active
        session.add(user)
        audit.record(
            session,
            action=AuditAction.USER_ACTIVATED if active else AuditAction.USER_DEACTIVATED,
            actor=actor,
            username=None if actor else SYSTEM,
            resource_type="user",
            resource_id=user.id,
            centre_id=user.centre_id,
            address=address,
        )
        session.commit()
    return _user_public(session, user)


def set_password(
    *,
    session: Session,
    actor: Actor | None,
    new_password: str,
    user_id: int | None = None,
    username: str | None = None,
    address: str | None = None,
) -> UserPublic:
    user = _get_user(session, actor, user_id=user_id, username=username)
    if actor is None or actor.user_id != user.id:
        _require(actor, Action.MANAGE_USER, user)
    validate_password(new_password)
    user.hashed_password = hash_password(new_password)
    session.add(user)
    audit.record(
        session,
        action=AuditAction.PASSWORD_CHANGED,
        actor=actor,
        username=None if actor else SYSTEM,
        resource_type="user",
        resource_id=user.id,
        centre_id=user.centre_id,
        address=address,
    )
    session.commit()
    return _user_public(session, user)


def list_users(
    *,
    session: Session,
    actor: Actor,
    search: str | None = None,
    role: Role | None = None,
    page: int = 1,
    page_size: int = 25,
) -> Page[UserPublic]:
    """Users the actor may see (admin: all; centre: own centre's), by username."""
    require(actor, Action.LIST_USERS)
    page = max(1, page)
    page_size = min(max(1, page_size), 100)
    query = select(User)
    centres = visible_centre_ids(actor)
    if centres is not None:
        query = query.where(col(User.centre_id).in_(centres))
    if role is not None:
        query = query.where(User.role == role)
    if search and search.strip():
        like = f"%{search.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(User.username).like(like),
                func.lower(func.coalesce(User.full_name, "")).like(like),
                func.lower(func.coalesce(User.email, "")).like(like),
            )
        )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    users = session.exec(
        query.order_by(User.username).offset((page - 1) * page_size).limit(page_size)
    ).all()
    centre_ids = {u.centre_id for u in users if u.centre_id}
    centres_by_id = (
        {c.id: c for c in session.exec(select(Centre).where(col(Centre.id).in_(centre_ids)))}
        if centre_ids
        else {}
    )
    return Page[UserPublic](
        items=[UserPublic.of(u, centres_by_id.get(u.centre_id)) for u in users],
        total=total,
        page=page,
        page_size=page_size,
    )


def list_centres(*, session: Session, actor: Actor) -> list[CentrePublic]:
    query = select(Centre).order_by(Centre.name)
    centres = visible_centre_ids(actor)
    if centres is not None and not actor.is_tele_radiologist:
        query = query.where(col(Centre.id).in_(centres))
    return [CentrePublic.of(c) for c in session.exec(query)]


def count_users_by_role(*, session: Session, actor: Actor) -> dict[str, int]:
    """Active accounts per role, within the actor's scope (for dashboards)."""
    require(actor, Action.LIST_USERS)
    query = select(User.role, func.count()).where(col(User.is_active)).group_by(User.role)
    centres = visible_centre_ids(actor)
    if centres is not None:
        query = query.where(col(User.centre_id).in_(centres))
    counts = {r.value: 0 for r in Role}
    for role, n in session.exec(query):
        counts[Role(role).value] = n
    return counts
