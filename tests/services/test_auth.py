"""Sign-in, throttling, tokens and sign-out, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlmodel import select

from pacs_app.config import Environment
from pacs_app.core import security
from pacs_app.core.errors import AuthenticationFailed, TooManyAttempts
from pacs_app.models import AuditEvent, Role, User
from pacs_app.services import auth, users
from pacs_app.services.audit import AuditAction
from tests.factories import PASSWORD, make_centre, make_user


def _live_key() -> str:
    from pacs_app.config import settings

    return settings.secret_key


def _events(session, action: AuditAction) -> list[AuditEvent]:
    session.expire_all()
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action.value)))


def test_sign_in_issues_a_token_for_the_user_and_audits_it(session):
    centre = make_centre(session)
    tech = make_user(session, Role.TECHNICIAN, centre=centre, username="tina")

    issued = auth.authenticate(
        session=session, username="  Tina ", password=PASSWORD, address="10.1.2.3"
    )

    assert issued.token_type == "bearer"
    assert issued.user.id == tech.id and issued.user.centre.code == centre.code
    actor = auth.resolve_token(session=session, token=issued.access_token)
    assert (actor.user_id, actor.role, actor.centre_id) == (tech.id, Role.TECHNICIAN, centre.id)
    [event] = _events(session, AuditAction.LOGIN)
    assert (event.actor_id, event.username, event.address) == (tech.id, "tina", "10.1.2.3")
    assert session.get(User, tech.id).last_login_at is not None


@pytest.mark.parametrize(
    ("username", "password", "reason", "message"),
    [
        ("ghost", PASSWORD, "unknown_user", "Incorrect username or password."),
        ("rad", "wrong-password", "wrong_password", "Incorrect username or password."),
        ("", "", "empty", "Enter a username and a password."),
    ],
)
def test_bad_credentials_are_refused_with_a_clear_message_and_audited(
    session, username, password, reason, message
):
    make_user(session, Role.RADIOLOGIST, username="rad")
    with pytest.raises(AuthenticationFailed) as err:
        auth.authenticate(session=session, username=username, password=password, address="1.1.1.1")
    assert err.value.message == message
    [event] = _events(session, AuditAction.LOGIN_FAILED)
    assert event.detail == {"reason": reason} and event.outcome == "failure"


def test_an_inactive_user_cannot_sign_in(session):
    make_user(session, Role.RADIOLOGIST, username="olddoc", active=False)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        auth.authenticate(session=session, username="olddoc", password=PASSWORD)
    assert _events(session, AuditAction.LOGIN_FAILED)[0].detail == {"reason": "inactive"}


def test_deactivating_a_user_stops_their_existing_tokens(session):
    user = make_user(session, Role.RADIOLOGIST, username="doc")
    token = auth.authenticate(session=session, username="doc", password=PASSWORD).access_token
    assert auth.resolve_token(session=session, token=token).user_id == user.id

    users.set_active(session=session, actor=None, user_id=user.id, active=False)

    with pytest.raises(AuthenticationFailed, match="deactivated"):
        auth.resolve_token(session=session, token=token, address="9.9.9.9")
    [event] = _events(session, AuditAction.TOKEN_REJECTED)
    assert event.detail == {"reason": "inactive"} and event.actor_id == user.id


def test_sign_out_revokes_the_token_but_not_other_sessions(session):
    make_user(session, Role.ADMIN, username="boss")
    first = auth.authenticate(session=session, username="boss", password=PASSWORD).access_token
    second = auth.authenticate(session=session, username="boss", password=PASSWORD).access_token

    assert auth.sign_out(session=session, token=first, address="2.2.2.2") is True

    with pytest.raises(AuthenticationFailed, match="revoked"):
        auth.resolve_token(session=session, token=first)
    assert auth.resolve_token(session=session, token=second).username == "boss"
    assert len(_events(session, AuditAction.LOGOUT)) == 1
    assert auth.sign_out(session=session, token="not-a-token") is False


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda uid: "garbage", "malformed"),
        (
            lambda uid: security.create_access_token(
                uid, now=datetime.now(UTC) - timedelta(days=2), expires_minutes=60
            )[0],
            "expired",
        ),
        (
            lambda uid: jwt.encode(
                {
                    "sub": str(uid),
                    "jti": "x",
                    "iat": 1,
                    "exp": 4102444800,
                    "iss": "pacs",
                    "typ": "access",
                },
                "another-key-of-sufficient-length-000000",
                algorithm="HS256",
            ),
            "signature",
        ),
        (lambda uid: jwt.encode({"sub": str(uid)}, _live_key(), algorithm="HS256"), "malformed"),
    ],
    ids=["malformed", "expired", "foreign-key", "missing-claims"],
)
def test_bad_tokens_are_rejected_and_audited(session, make_token, message):
    user = make_user(session, Role.CENTRE, centre=make_centre(session))
    with pytest.raises(AuthenticationFailed, match=message):
        auth.resolve_token(session=session, token=make_token(user.id), address="3.3.3.3")
    [event] = _events(session, AuditAction.TOKEN_REJECTED)
    assert event.address == "3.3.3.3"


def test_a_verified_token_still_expires_and_a_new_key_still_refuses_it(
    session, settings, monkeypatch
):
    """Verified tokens' claims are kept to save a signature check per request: the expiry is
    checked again on every use, and a token is only ever kept for the key that verified it."""
    user = make_user(session, Role.CENTRE, centre=make_centre(session))
    token, claims = security.create_access_token(user.id, expires_minutes=5)
    assert auth.resolve_token(session=session, token=token).user_id == user.id  # kept now
    later = claims.expires_at.timestamp() + 1
    with monkeypatch.context() as clock:
        clock.setattr(security, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))
        with pytest.raises(AuthenticationFailed, match="expired"):
            auth.resolve_token(session=session, token=token)

    fresh, _ = security.create_access_token(user.id)
    assert auth.resolve_token(session=session, token=fresh).user_id == user.id
    monkeypatch.setattr(settings, "secret_key", "a-rotated-key-of-sufficient-length-0000")
    with pytest.raises(AuthenticationFailed, match="signature"):
        auth.resolve_token(session=session, token=fresh)


def test_a_token_for_a_deleted_user_is_rejected(session):
    user = make_user(session, Role.RADIOLOGIST)
    token, _ = security.create_access_token(user.id + 1000)
    with pytest.raises(AuthenticationFailed, match="no longer exists"):
        auth.resolve_token(session=session, token=token)


def test_no_token_is_refused(session):
    with pytest.raises(AuthenticationFailed, match="Not signed in"):
        auth.resolve_token(session=session, token=None)


def test_repeated_failures_lock_the_account_even_for_the_right_password(
    session, settings, monkeypatch
):
    monkeypatch.setattr(settings, "login_max_failures_per_account", 3)
    make_user(session, Role.TECHNICIAN, centre=make_centre(session), username="tech")
    for i in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(
                session=session, username="tech", password="nope", address=f"10.0.0.{i}"
            )

    with pytest.raises(TooManyAttempts) as err:
        auth.authenticate(session=session, username="tech", password=PASSWORD, address="10.0.0.99")
    assert "this account" in err.value.message
    assert 0 < err.value.retry_after_seconds <= settings.login_lockout_minutes * 60
    assert _events(session, AuditAction.LOGIN_LOCKED)[0].detail == {"scope": "account"}


def test_the_lock_ends_when_the_failures_leave_the_window(session, settings, monkeypatch):
    monkeypatch.setattr(settings, "login_max_failures_per_account", 2)
    make_user(session, Role.RADIOLOGIST, username="late")
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(session=session, username="late", password="nope")
    # Age the failures beyond the window, as if the minutes had passed.
    for event in _events(session, AuditAction.LOGIN_FAILED):
        event.at = event.at - timedelta(minutes=settings.login_lockout_minutes + 1)
        session.add(event)
    session.commit()
    assert auth.authenticate(session=session, username="late", password=PASSWORD).access_token


def test_a_successful_sign_in_resets_the_account_counter(session, settings, monkeypatch):
    monkeypatch.setattr(settings, "login_max_failures_per_account", 2)
    make_user(session, Role.RADIOLOGIST, username="typo")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(session=session, username="typo", password="nope")
    auth.authenticate(session=session, username="typo", password=PASSWORD)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(session=session, username="typo", password="nope")
    # one failure since the last success: not locked
    assert auth.authenticate(session=session, username="typo", password=PASSWORD)


def test_repeated_failures_from_one_address_are_throttled_across_accounts(
    session, settings, monkeypatch
):
    monkeypatch.setattr(settings, "login_max_failures_per_address", 3)
    make_user(session, Role.RADIOLOGIST, username="victim")
    for name in ("a1", "a2", "a3"):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(session=session, username=name, password="x", address="6.6.6.6")
    with pytest.raises(TooManyAttempts, match="your address"):
        auth.authenticate(session=session, username="victim", password=PASSWORD, address="6.6.6.6")
    # the same account from another address is fine
    assert auth.authenticate(
        session=session, username="victim", password=PASSWORD, address="7.7.7.7"
    )


def test_production_refuses_a_documented_demo_password(session, settings, monkeypatch):
    from pacs_app.core.security import hash_password

    session.add(User(username="admin", hashed_password=hash_password("admin123"), role=Role.ADMIN))
    session.commit()
    monkeypatch.setattr(settings, "pacs_env", Environment.PRODUCTION)
    with pytest.raises(AuthenticationFailed, match="demo password"):
        auth.authenticate(session=session, username="admin", password="admin123")
    assert _events(session, AuditAction.LOGIN_FAILED)[0].detail == {"reason": "demo_password"}


def test_outdated_hashes_are_upgraded_on_sign_in(session):
    from pwdlib.hashers.bcrypt import BcryptHasher

    user = make_user(session, Role.RADIOLOGIST, username="legacy")
    row = session.get(User, user.id)
    row.hashed_password = BcryptHasher().hash(PASSWORD)
    session.add(row)
    session.commit()

    auth.authenticate(session=session, username="legacy", password=PASSWORD)

    session.expire_all()
    assert session.get(User, user.id).hashed_password.startswith("$argon2")
