"""Authentication: sign-in with throttling, access tokens, token resolution, sign-out.

Every outcome is audited: sign-in, sign-out, failed and throttled sign-ins, rejected tokens.
Failures raise :class:`AuthenticationFailed` (HTTP 401) or :class:`TooManyAttempts` (429) with
a message that is safe to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists
from sqlmodel import Session, col, delete, select

from pacs_app.config import settings
from pacs_app.core import security
from pacs_app.core.errors import AuthenticationFailed, TooManyAttempts
from pacs_app.models import AuditEvent, Centre, RevokedToken, User
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction, Outcome
from pacs_app.services.authz import Actor
from pacs_app.services.dto import IssuedToken, UserPublic
from pacs_app.services.seed import DEMO_PASSWORDS

INVALID_CREDENTIALS = "Incorrect username or password."
INACTIVE_ACCOUNT = "This account is deactivated. Ask your administrator to reactivate it."
DEMO_PASSWORD_REFUSED = (
    "This account still uses a documented demo password, which production mode refuses. "
    "An administrator must set a new password (`pacs set-password USERNAME`)."
)


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


@dataclass(frozen=True)
class _Throttle:
    locked: bool
    retry_after_seconds: int = 0


def _throttle(
    session: Session, *, column, value: str, limit: int, since: datetime, now: datetime
) -> _Throttle:
    """Locked while ``limit`` failures of ``column == value`` lie within the window."""
    window = timedelta(minutes=settings.login_lockout_minutes)
    rows = session.exec(
        select(AuditEvent.at)
        .where(AuditEvent.action == AuditAction.LOGIN_FAILED.value, column == value)
        .where(AuditEvent.at > since)
        .order_by(col(AuditEvent.at).desc())
        .limit(limit)
    ).all()
    if len(rows) < limit:
        return _Throttle(locked=False)
    unlock_at = rows[-1] + window
    return _Throttle(
        locked=True, retry_after_seconds=max(1, int((unlock_at - now).total_seconds()))
    )


def _check_throttle(session: Session, *, username: str, address: str | None, now: datetime) -> None:
    window_start = now - timedelta(minutes=settings.login_lockout_minutes)
    # Per account: count only failures since the account's last successful sign-in.
    last_success = session.exec(
        select(AuditEvent.at)
        .where(AuditEvent.action == AuditAction.LOGIN.value, AuditEvent.username == username)
        .order_by(col(AuditEvent.at).desc())
        .limit(1)
    ).first()
    since = max(window_start, last_success) if last_success else window_start
    account = _throttle(
        session,
        column=AuditEvent.username,
        value=username,
        limit=settings.login_max_failures_per_account,
        since=since,
        now=now,
    )
    by_address = (
        _throttle(
            session,
            column=AuditEvent.address,
            value=address,
            limit=settings.login_max_failures_per_address,
            since=window_start,
            now=now,
        )
        if address
        else _Throttle(locked=False)
    )
    if account.locked or by_address.locked:
        wait = max(account.retry_after_seconds, by_address.retry_after_seconds)
        scope = "this account" if account.locked else "your address"
        audit.record(
            session,
            action=AuditAction.LOGIN_LOCKED,
            username=username,
            outcome=Outcome.DENIED,
            address=address,
            detail={"scope": "account" if account.locked else "address"},
        )
        session.commit()
        minutes = max(1, -(-wait // 60))
        raise TooManyAttempts(
            f"Too many failed sign-ins for {scope}. Try again in {minutes} minute"
            f"{'s' if minutes != 1 else ''}.",
            retry_after_seconds=wait,
        )


def _fail(
    session: Session,
    *,
    username: str,
    address: str | None,
    reason: str,
    message: str,
    user: User | None = None,
) -> AuthenticationFailed:
    audit.record(
        session,
        action=AuditAction.LOGIN_FAILED,
        actor=Actor.of(user) if user else None,
        username=username,
        outcome=Outcome.FAILURE,
        address=address,
        detail={"reason": reason},
    )
    session.commit()
    return AuthenticationFailed(message)


def authenticate(
    *, session: Session, username: str, password: str, address: str | None = None
) -> IssuedToken:
    """Check credentials and issue an access token.

    Raises :class:`TooManyAttempts` while the account or the address is throttled, and
    :class:`AuthenticationFailed` for an unknown user, a wrong password, a deactivated account,
    or (in production) a documented demo password. Every outcome is audited and committed.

    Example::

        issued = authenticate(session=s, username="admin", password="admin123", address="10.0.0.9")
        issued.access_token  # a JWT for the Authorization: Bearer header
    """
    username = normalize_username(username)
    now = utcnow()
    if not username or not password:
        raise _fail(
            session,
            username=username or "",
            address=address,
            reason="empty",
            message="Enter a username and a password.",
        )
    _check_throttle(session, username=username, address=address, now=now)

    user = session.exec(select(User).where(User.username == username)).first()
    valid, new_hash = security.verify_password(password, user.hashed_password if user else None)
    if user is None:
        raise _fail(
            session,
            username=username,
            address=address,
            reason="unknown_user",
            message=INVALID_CREDENTIALS,
        )
    if not valid:
        raise _fail(
            session,
            username=username,
            address=address,
            reason="wrong_password",
            message=INVALID_CREDENTIALS,
            user=user,
        )
    if not user.is_active:
        raise _fail(
            session,
            username=username,
            address=address,
            reason="inactive",
            message=INACTIVE_ACCOUNT,
            user=user,
        )
    if settings.is_production and password in DEMO_PASSWORDS:
        raise _fail(
            session,
            username=username,
            address=address,
            reason="demo_password",
            message=DEMO_PASSWORD_REFUSED,
            user=user,
        )

    if new_hash:
        user.hashed_password = new_hash
    user.last_login_at = now
    session.add(user)
    token, claims = security.create_access_token(user.id, now=now)
    actor = Actor.of(user)
    audit.record(
        session,
        action=AuditAction.LOGIN,
        actor=actor,
        address=address,
        resource_type="user",
        resource_id=user.id,
        at=now,
    )
    session.commit()
    centre = session.get(Centre, user.centre_id) if user.centre_id else None
    return IssuedToken(
        access_token=token, expires_at=claims.expires_at, user=UserPublic.of(user, centre)
    )


def _reject_token(
    session: Session, *, reason: str, message: str, address: str | None, actor: Actor | None = None
) -> AuthenticationFailed:
    audit.record(
        session,
        action=AuditAction.TOKEN_REJECTED,
        actor=actor,
        outcome=Outcome.FAILURE,
        address=address,
        detail={"reason": reason},
    )
    session.commit()
    return AuthenticationFailed(message)


def token_signature_valid(token: str | None) -> bool:
    """A check without the database, before a large request body is read: the token is there,
    signed by this server and not expired. :func:`resolve_token` still decides (revocation,
    the account), and is what refuses (and audits) a token that fails here."""
    if not token:
        return False
    try:
        security.decode_access_token(token)
    except security.InvalidToken:
        return False
    return True


_USERS, _REVOKED = User.__table__, RevokedToken.__table__
# Every authenticated request runs this: one prepared statement for the account and the
# token's revocation.
_TOKEN_HOLDER = select(
    _USERS.c.id,
    _USERS.c.username,
    _USERS.c.role,
    _USERS.c.centre_id,
    _USERS.c.is_active,
    _USERS.c.password_changed_at,
    exists().where(_REVOKED.c.jti == bindparam("jti")).label("revoked"),
).where(_USERS.c.id == bindparam("user"))


def resolve_token(*, session: Session, token: str | None, address: str | None = None) -> Actor:
    """The actor a bearer token stands for, checked against the database on every call.

    A token stops working when it expires, when it was revoked by sign-out, when its user is
    deactivated or deleted, or when the account's password changed after it was issued.
    Rejections are audited.
    """
    if not token:
        raise AuthenticationFailed("Not signed in: an access token is required.")
    try:
        claims = security.decode_access_token(token)
    except security.InvalidToken as exc:
        raise _reject_token(session, reason="invalid", message=exc.reason, address=address) from exc
    user = (
        session.connection()
        .execute(_TOKEN_HOLDER, {"user": claims.user_id, "jti": claims.jti})
        .first()
    )
    if user is None:
        raise _reject_token(
            session,
            reason="unknown_user",
            address=address,
            message="The access token's account no longer exists.",
        )
    actor = Actor.of(user)
    if user.revoked:
        raise _reject_token(
            session,
            reason="revoked",
            address=address,
            actor=actor,
            message="The access token was revoked by signing out; sign in again.",
        )
    if not user.is_active:
        raise _reject_token(
            session, reason="inactive", address=address, actor=actor, message=INACTIVE_ACCOUNT
        )
    changed = user.password_changed_at
    if changed is not None and claims.issued_at < changed.replace(microsecond=0):
        raise _reject_token(
            session,
            reason="password_changed",
            address=address,
            actor=actor,
            message="The password of this account was changed; sign in again.",
        )
    return actor


def current_user(*, session: Session, actor: Actor) -> UserPublic:
    user = session.get(User, actor.user_id)
    if user is None:  # deleted since the token was resolved
        raise AuthenticationFailed("The account no longer exists.")
    centre = session.get(Centre, user.centre_id) if user.centre_id else None
    return UserPublic.of(user, centre)


def sign_out(*, session: Session, token: str | None, address: str | None = None) -> bool:
    """Revoke ``token`` so it cannot be used again. Returns whether a valid token was revoked.

    An invalid or already expired token needs no revocation and is ignored.
    """
    if not token:
        return False
    try:
        claims = security.decode_access_token(token)
    except security.InvalidToken:
        return False
    user = session.get(User, claims.user_id)
    if user is None:
        return False
    now = utcnow()
    # Expired revocations are useless: their tokens fail on expiry anyway.
    session.exec(delete(RevokedToken).where(col(RevokedToken.expires_at) < now))
    if session.get(RevokedToken, claims.jti) is None:
        session.add(RevokedToken(jti=claims.jti, user_id=user.id, expires_at=claims.expires_at))
    audit.record(
        session,
        action=AuditAction.LOGOUT,
        actor=Actor.of(user),
        address=address,
        resource_type="user",
        resource_id=user.id,
    )
    session.commit()
    return True
