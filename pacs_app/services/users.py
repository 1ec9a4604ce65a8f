"""Centres and user accounts: create, edit, list, activate/deactivate, set and reset passwords.

``actor=None`` means the operator at the server's shell (the ``pacs`` command), who is trusted
like an administrator; it is audited as ``system``.

Who may do what: administrators manage every centre and account; a centre manager manages
the technicians and internal radiologists of its own centre only (another centre's users are
invisible to it: :class:`NotFound`). Every change is audited in the same commit.

Deactivating a centre deactivates its active accounts (so they are signed out at once, cannot
sign in and cannot upload for it) and refuses new accounts in it; reactivating the centre
reactivates exactly the accounts its deactivation switched off (listed in the
``centre.deactivated`` audit event), not those an administrator had deactivated before.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from pacs_app.config import settings
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.core.security import hash_password
from pacs_app.models import AuditEvent, Centre, Currency, Role, Study, StudyStatus, User
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import (
    Action,
    Actor,
    UserDraft,
    can,
    require,
    visible_centre_ids,
)
from pacs_app.services.dto import CentrePublic, Page, UserPublic
from pacs_app.services.seed import DEMO_PASSWORDS

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CENTRE_CODE_RE = re.compile(r"^[A-Z0-9]{2,16}$")
MIN_PASSWORD_LENGTH = 8
MAX_NAME_LENGTH = 200
SYSTEM = "system"
# A few passwords long enough for the length rule that every guessing list starts with.
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "87654321",
        "qwertyui",
        "qwerty123",
        "qwertyuiop",
        "asdfghjk",
        "abcdefgh",
        "abc12345",
        "iloveyou",
        "letmein1",
        "welcome1",
        "admin1234",
        "changeme",
    }
)
# Study states in which the assigned radiologist still has work to do on the study.
_OPEN_READING = (
    StudyStatus.ASSIGNED,
    StudyStatus.IN_PROGRESS,
    StudyStatus.REPORTED,
    StudyStatus.VERIFIED,
)


class _Keep(Enum):
    """The type of :data:`KEEP`: "leave this field as it is" where ``None`` is a value."""

    KEEP = "keep"


KEEP: Final = _Keep.KEEP


class CentreDetail(CentrePublic):
    """A centre as its administrators see it: with its switches and its number of accounts.

    (It belongs beside :class:`CentrePublic` in ``services/dto.py``; it lives here until then.)
    """

    auto_release_to_pool: bool
    ai_auto_process: bool
    created_at: datetime
    users: int = 0
    active_users: int = 0

    @classmethod
    def of_centre(cls, centre: Centre, *, users: int = 0, active_users: int = 0) -> CentreDetail:
        return cls(
            **CentrePublic.of(centre).model_dump(),
            auto_release_to_pool=centre.auto_release_to_pool,
            ai_auto_process=centre.ai_auto_process,
            created_at=centre.created_at,
            users=users,
            active_users=active_users,
        )


def _require(actor: Actor | None, action: Action, resource=None) -> None:
    if actor is not None:  # None: the trusted operator at the shell
        require(actor, action, resource)


def validate_password(password: str, *, username: str | None = None) -> None:
    """Refuse a weak password with the reason: shorter than :data:`MIN_PASSWORD_LENGTH`, one
    character repeated, a well-known password, containing the username, or (in production) a
    documented demo password."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if settings.is_production and password in DEMO_PASSWORDS:
        raise InvalidInput("Production mode refuses the documented demo passwords.")
    if len(set(password)) == 1 or password.lower() in COMMON_PASSWORDS:
        raise InvalidInput("This password is too easy to guess: choose a less common one.")
    if username and username.strip().lower() in password.lower():
        raise InvalidInput("The password must not contain the username.")


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
    name = _centre_name(name)
    code = (code or "").strip().upper()
    if not CENTRE_CODE_RE.match(code):
        raise InvalidInput("The centre code must be 2 to 16 uppercase letters or digits.")
    currency = _currency(currency)
    if session.exec(select(Centre).where(Centre.code == code)).first():
        raise Conflict(f"A centre with code {code!r} already exists.")
    _require_unique_centre_name(session, name)
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


def _centre_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise InvalidInput("The centre needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The centre name must be at most {MAX_NAME_LENGTH} characters.")
    return name


def _currency(currency: Currency | str) -> Currency:
    try:
        return Currency(currency)
    except ValueError as exc:
        choices = ", ".join(c.value for c in Currency)
        raise InvalidInput(f"Unknown currency {currency!r}: use one of {choices}.") from exc


def _require_unique_centre_name(session: Session, name: str, *, other_than: int | None = None):
    """Names are unique case-insensitively ("City Diagnostics" and "city diagnostics" clash)."""
    query = select(Centre).where(func.lower(Centre.name) == name.lower())
    if other_than is not None:
        query = query.where(Centre.id != other_than)
    if session.exec(query).first():
        raise Conflict(f"A centre named {name!r} already exists.")


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
    validate_password(password, username=username)
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
    return can(actor, Action.VIEW_USER, user)


def _require_manage(actor: Actor | None, user: User | UserDraft) -> None:
    """:func:`require` ``MANAGE_USER``, with the centre manager's rule spelled out."""
    if actor is None or can(actor, Action.MANAGE_USER, user):
        return
    if actor.role is Role.CENTRE:
        raise PermissionDenied(
            "Centre managers may manage only their own centre's technicians and internal "
            "radiologists."
        )
    require(actor, Action.MANAGE_USER, user)


def can_manage(actor: Actor, user: UserPublic) -> bool:
    """Whether ``actor`` may edit, (de)activate and reset the password of ``user`` (for pages
    that offer those buttons; the services check again)."""
    draft = UserDraft(role=user.role, centre_id=user.centre.id if user.centre else None)
    return can(actor, Action.MANAGE_USER, draft)


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
    _require_manage(actor, user)
    if actor is not None and user.id == actor.user_id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    if active and not user.is_active and user.centre_id is not None:
        centre = session.get(Centre, user.centre_id)
        if centre is not None and not centre.is_active:
            raise InvalidInput(
                f"The centre {centre.code} is deactivated: reactivate the centre first "
                "(that reactivates its accounts)."
            )
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


def _store_password(
    session: Session,
    actor: Actor | None,
    user: User,
    new_password: str,
    action: AuditAction,
    address: str | None,
) -> UserPublic:
    """Check and store a new password (ending the account's open sessions) and audit it."""
    validate_password(new_password, username=user.username)
    user.hashed_password = hash_password(new_password)
    user.password_changed_at = utcnow()  # every open session of the account ends
    session.add(user)
    audit.record(
        session,
        action=action,
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
        _require_manage(actor, user)
    return _store_password(
        session, actor, user, new_password, AuditAction.PASSWORD_CHANGED, address
    )


def update_user(
    *,
    session: Session,
    actor: Actor | None,
    user_id: int,
    full_name: str | None = None,
    email: str | None = None,
    role: Role | str | None = None,
    centre_id: int | _Keep | None = KEEP,
    address: str | None = None,
) -> UserPublic:
    """Edit an account: ``None`` (``KEEP`` for ``centre_id``) leaves a field as it is.

    ``full_name=""`` and ``email=""`` clear them (both are optional, as at creation);
    ``centre_id=None`` makes a radiologist a tele-radiologist. The username is immutable. The
    role and centre follow :func:`create_user`'s rules, checked for the result too: a centre
    manager edits only its own centre's technicians and internal radiologists and cannot move
    them out of it nor promote them to administrator or centre manager. A radiologist with
    studies still to read (assigned, opened, reported or verified) keeps role and centre until
    they are reassigned.

    Raises :class:`NotFound` for a user the actor cannot see, :class:`PermissionDenied`,
    :class:`InvalidInput` and :class:`Conflict` (e-mail taken); nothing is changed then. The
    change is audited as ``user.updated`` with the names of the changed fields.

    Example::

        update_user(session=s, actor=manager, user_id=12, full_name="Dr A. Rao")
    """
    user = _get_user(session, actor, user_id=user_id)
    _require_manage(actor, user)
    changes: dict[str, Any] = {}

    if full_name is not None:
        new_name = " ".join(full_name.split()) or None
        if new_name and len(new_name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"The full name must be at most {MAX_NAME_LENGTH} characters.")
        if new_name != user.full_name:
            changes["full_name"] = new_name
    if email is not None:
        new_email = email.strip().lower() or None
        if new_email and (len(new_email) > 254 or not EMAIL_RE.match(new_email)):
            raise InvalidInput(f"{new_email!r} is not a valid e-mail address.")
        if new_email != user.email:
            if (
                new_email
                and session.exec(
                    select(User).where(User.email == new_email, User.id != user.id)
                ).first()
            ):
                raise Conflict(
                    f"The e-mail address {new_email!r} is already used by another account."
                )
            changes["email"] = new_email

    new_role = user.role
    if role is not None:
        try:
            new_role = Role(role)
        except ValueError as exc:
            raise InvalidInput(
                f"Unknown role {role!r}: use admin, centre, technician or radiologist."
            ) from exc
    new_centre_id = user.centre_id if centre_id is KEEP else centre_id
    if new_role is not user.role or new_centre_id != user.centre_id:
        _check_placement(session, actor, user, new_role, new_centre_id)
        if new_role is not user.role:
            changes["role"] = new_role
        if new_centre_id != user.centre_id:
            changes["centre_id"] = new_centre_id

    if not changes:
        return _user_public(session, user)
    for field, value in changes.items():
        setattr(user, field, value)
    session.add(user)
    detail: dict[str, Any] = {"fields": sorted(changes)}
    if "role" in changes:
        detail["role"] = new_role.value
    if "centre_id" in changes:
        detail["centre_id"] = new_centre_id
    audit.record(
        session,
        action=AuditAction.USER_UPDATED,
        actor=actor,
        username=None if actor else SYSTEM,
        resource_type="user",
        resource_id=user.id,
        centre_id=new_centre_id,
        address=address,
        detail=detail,
    )
    session.commit()
    return _user_public(session, user)


def _check_placement(
    session: Session, actor: Actor | None, user: User, role: Role, centre_id: int | None
) -> None:
    """The checks of a new role or centre for an existing account (see :func:`update_user`)."""
    if actor is not None and actor.user_id == user.id:
        raise InvalidInput("You cannot change your own role or centre.")
    if role is Role.ADMIN and centre_id is not None:
        raise InvalidInput("An administrator belongs to the business, not to a centre.")
    if role in (Role.CENTRE, Role.TECHNICIAN) and centre_id is None:
        raise InvalidInput(f"A {role.value} user must belong to a centre.")
    if centre_id is not None and centre_id != user.centre_id:
        centre = session.get(Centre, centre_id)
        if centre is None:
            raise InvalidInput(f"No centre with id {centre_id}.")
        if not centre.is_active:
            raise InvalidInput(f"The centre {centre.code} is deactivated.")
    _require_manage(actor, UserDraft(role=role, centre_id=centre_id))
    if user.role is Role.RADIOLOGIST:
        open_studies = session.exec(
            select(func.count())
            .select_from(Study)
            .where(
                Study.assigned_radiologist_id == user.id,
                col(Study.status).in_(_OPEN_READING),
            )
        ).one()
        if open_studies:
            raise Conflict(
                f"{user.username} still has {open_studies} "
                f"stud{'y' if open_studies == 1 else 'ies'} to read: reassign "
                f"{'it' if open_studies == 1 else 'them'} before changing the role or centre."
            )


def reset_password(
    *,
    session: Session,
    actor: Actor | None,
    user_id: int,
    new_password: str,
    address: str | None = None,
) -> UserPublic:
    """Set a new password for an account the actor manages (administrators: any account;
    centre managers: their centre's technicians and internal radiologists).

    The password follows :func:`validate_password`. Audited as ``user.password_reset``
    (never the password). Raises :class:`NotFound` for a user the actor cannot see,
    :class:`PermissionDenied`, :class:`InvalidInput` for a weak password.
    """
    user = _get_user(session, actor, user_id=user_id)
    _require_manage(actor, user)
    return _store_password(session, actor, user, new_password, AuditAction.PASSWORD_RESET, address)


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


def list_centres(
    *, session: Session, actor: Actor, search: str | None = None
) -> list[CentrePublic]:
    """Centres the actor may see (everyone's for administrators and tele-radiologists), by
    name; ``search`` matches the name or the code."""
    query = _centre_query(search)
    centres = visible_centre_ids(actor)
    if centres is not None and not actor.is_tele_radiologist:
        query = query.where(col(Centre.id).in_(centres))
    return [CentrePublic.of(c) for c in session.exec(query)]


def _centre_query(search: str | None):
    query = select(Centre).order_by(Centre.name)
    if search and search.strip():
        like = f"%{search.strip().lower()}%"
        query = query.where(
            or_(func.lower(Centre.name).like(like), func.lower(Centre.code).like(like))
        )
    return query


def _user_counts(session: Session, centre_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(accounts, active accounts) per centre."""
    if not centre_ids:
        return {}
    rows = session.exec(
        select(User.centre_id, col(User.is_active), func.count())
        .where(col(User.centre_id).in_(centre_ids))
        .group_by(User.centre_id, col(User.is_active))
    ).all()
    counts: dict[int, tuple[int, int]] = {}
    for centre_id, active, n in rows:
        total, live = counts.get(centre_id, (0, 0))
        counts[centre_id] = (total + n, live + (n if active else 0))
    return counts


def _detail(session: Session, centre: Centre) -> CentreDetail:
    total, live = _user_counts(session, [centre.id]).get(centre.id, (0, 0))
    return CentreDetail.of_centre(centre, users=total, active_users=live)


def list_centre_details(
    *, session: Session, actor: Actor, search: str | None = None
) -> list[CentreDetail]:
    """Every centre with its switches and account counts, by name (administrators)."""
    require(actor, Action.MANAGE_CENTRES)
    centres = list(session.exec(_centre_query(search)))
    counts = _user_counts(session, [c.id for c in centres])
    details = []
    for centre in centres:
        total, live = counts.get(centre.id, (0, 0))
        details.append(CentreDetail.of_centre(centre, users=total, active_users=live))
    return details


def get_centre(*, session: Session, actor: Actor | None, centre_id: int) -> CentreDetail:
    """One centre, for administrators and the centre's own users (:class:`NotFound` else)."""
    centre = session.get(Centre, centre_id)
    if centre is None or (actor is not None and not can(actor, Action.VIEW_CENTRE, centre)):
        raise NotFound(f"No centre with id {centre_id}.")
    return _detail(session, centre)


def _get_centre_to_manage(session: Session, actor: Actor | None, centre_id: int) -> Centre:
    _require(actor, Action.MANAGE_CENTRES)
    centre = session.get(Centre, centre_id)
    if centre is None:
        raise NotFound(f"No centre with id {centre_id}.")
    return centre


def update_centre(
    *,
    session: Session,
    actor: Actor | None,
    centre_id: int,
    name: str | None = None,
    code: str | None = None,
    currency: Currency | str | None = None,
    auto_release_to_pool: bool | None = None,
    ai_auto_process: bool | None = None,
    address: str | None = None,
) -> CentreDetail:
    """Edit a centre (administrators); ``None`` leaves a field as it is.

    The code is immutable: it names the centre's storage folder, so ``code`` is accepted only
    when it is the current one. ``currency`` is the default billing currency (USD, INR or
    AED); ``auto_release_to_pool`` sends new studies straight to the tele-radiology pool (off:
    they wait in the centre's queue); ``ai_auto_process`` queues an AI analysis per upload.

    Raises :class:`PermissionDenied`, :class:`NotFound`, :class:`InvalidInput` (empty name,
    unknown currency, another code) or :class:`Conflict` (the name is taken); nothing is
    changed then. Audited as ``centre.updated`` with the changed fields and their new values.

    Example::

        update_centre(session=s, actor=admin, centre_id=3, currency="AED", ai_auto_process=False)
    """
    centre = _get_centre_to_manage(session, actor, centre_id)
    changes: dict[str, Any] = {}
    if code is not None and code.strip().upper() != centre.code:
        raise InvalidInput(
            f"The centre code {centre.code} cannot change: it names the centre's stored files."
        )
    if name is not None:
        new_name = _centre_name(name)
        if new_name != centre.name:
            _require_unique_centre_name(session, new_name, other_than=centre.id)
            changes["name"] = new_name
    if currency is not None:
        new_currency = _currency(currency)
        if new_currency != centre.default_currency:
            changes["default_currency"] = new_currency
    for field, value in (
        ("auto_release_to_pool", auto_release_to_pool),
        ("ai_auto_process", ai_auto_process),
    ):
        if value is not None and bool(value) != getattr(centre, field):
            changes[field] = bool(value)
    if changes:
        for field, value in changes.items():
            setattr(centre, field, value)
        session.add(centre)
        audit.record(
            session,
            action=AuditAction.CENTRE_UPDATED,
            actor=actor,
            username=None if actor else SYSTEM,
            resource_type="centre",
            resource_id=centre.id,
            centre_id=centre.id,
            address=address,
            detail={k: (v.value if isinstance(v, Enum) else v) for k, v in changes.items()},
        )
        session.commit()
    return _detail(session, centre)


def set_centre_active(
    *,
    session: Session,
    actor: Actor | None,
    centre_id: int,
    active: bool,
    address: str | None = None,
) -> CentreDetail:
    """Deactivate or reactivate a centre (administrators).

    Deactivating switches off the centre's active accounts (their tokens stop working at
    once, so nobody can sign in or upload for it) and refuses new accounts in it; their ids
    are kept in the ``centre.deactivated`` audit event. Reactivating switches those same
    accounts back on (those still in the centre), not the ones deactivated on their own.
    Each account change is audited too (``user.deactivated`` / ``user.activated`` with
    ``reason: centre_deactivated`` / ``centre_activated``). Doing what is already done changes
    nothing.
    """
    centre = _get_centre_to_manage(session, actor, centre_id)
    if centre.is_active == active:
        return _detail(session, centre)
    centre.is_active = active
    session.add(centre)
    if active:
        switched = _users_switched_off_with(session, centre)
        affected = (
            list(
                session.exec(
                    select(User).where(
                        col(User.id).in_(switched),
                        User.centre_id == centre.id,
                        col(User.is_active).is_(False),
                    )
                )
            )
            if switched
            else []
        )
        key, reason = "users_reactivated", "centre_activated"
    else:
        affected = list(
            session.exec(
                select(User)
                .where(User.centre_id == centre.id, col(User.is_active))
                .order_by(User.id)
            )
        )
        key, reason = "users_deactivated", "centre_deactivated"
    for user in affected:
        user.is_active = active
        session.add(user)
        audit.record(
            session,
            action=AuditAction.USER_ACTIVATED if active else AuditAction.USER_DEACTIVATED,
            actor=actor,
            username=None if actor else SYSTEM,
            resource_type="user",
            resource_id=user.id,
            centre_id=centre.id,
            address=address,
            detail={"reason": reason},
        )
    audit.record(
        session,
        action=AuditAction.CENTRE_ACTIVATED if active else AuditAction.CENTRE_DEACTIVATED,
        actor=actor,
        username=None if actor else SYSTEM,
        resource_type="centre",
        resource_id=centre.id,
        centre_id=centre.id,
        address=address,
        detail={key: sorted(u.id for u in affected)},
    )
    session.commit()
    return _detail(session, centre)


def _users_switched_off_with(session: Session, centre: Centre) -> list[int]:
    """The accounts the centre's latest deactivation switched off."""
    event = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == AuditAction.CENTRE_DEACTIVATED.value,
            AuditEvent.resource_type == "centre",
            AuditEvent.resource_id == str(centre.id),
        )
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    ids = (event.detail or {}).get("users_deactivated", []) if event else []
    return [int(i) for i in ids]


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
