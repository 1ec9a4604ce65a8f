"""Password hashing and JWT access tokens (and nothing else).

Passwords are hashed with pwdlib's recommended Argon2id; bcrypt hashes are still verified and
upgraded on the next successful sign-in. Tokens are HS256 JWTs signed with ``SECRET_KEY``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from pacs_app.config import settings

_password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))

# Verified against when the user does not exist, so that an unknown username costs as much
# time as a wrong password.
_DUMMY_HASH = _password_hash.hash(secrets.token_urlsafe(16))

TOKEN_ISSUER = "pacs"


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Check ``password`` against ``hashed``.

    Returns ``(valid, updated_hash)``; ``updated_hash`` is a new hash to store when the old one
    uses outdated parameters, else ``None``. A ``None`` hash is checked against a dummy hash so
    the call takes the same time.
    """
    if hashed is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False, None
    try:
        return _password_hash.verify_and_update(password, hashed)
    except Exception:  # an unreadable stored hash never signs anyone in
        return False, None


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    jti: str
    issued_at: datetime
    expires_at: datetime


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed with our key. ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def create_access_token(
    user_id: int, *, expires_minutes: int | None = None, now: datetime | None = None
) -> tuple[str, TokenClaims]:
    now = now or datetime.now(UTC)
    expires = now + timedelta(minutes=expires_minutes or settings.access_token_expire_minutes)
    claims = TokenClaims(
        user_id=user_id, jti=secrets.token_urlsafe(16), issued_at=now, expires_at=expires
    )
    payload = {
        "sub": str(user_id),
        "jti": claims.jti,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "iss": TOKEN_ISSUER,
        "typ": "access",
    }
    token = jwt.encode(payload, settings.secret_key, algorithm=settings.jwt_algorithm)
    return token, claims


def decode_access_token(token: str) -> TokenClaims:
    """The claims of a valid access token; :class:`InvalidToken` says why one is not.

    Verifying a signature with PyJWT costs more than the rest of a small request, and a
    client sends the same token with every request: a verified token's claims are kept (by
    the token's exact text and the key that verified it), and only its expiry is checked
    again. A token that fails is never kept, so it is verified, and refused, every time."""
    claims = _verified_claims(token, settings.secret_key, settings.jwt_algorithm)
    if claims.expires_at.timestamp() <= time.time():
        raise InvalidToken(EXPIRED)
    return claims


EXPIRED = "The access token has expired; sign in again."


@lru_cache(maxsize=4096)
def _verified_claims(token: str, key: str, algorithm: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=TOKEN_ISSUER,
            options={"require": ["sub", "jti", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken(EXPIRED) from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("The access token's signature is not valid.") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("The access token is malformed.") from exc
    if payload.get("typ") != "access":
        raise InvalidToken("The token is not an access token.")
    try:
        user_id = int(payload["sub"])
    except (TypeError, ValueError) as exc:
        raise InvalidToken("The access token is malformed.") from exc
    return TokenClaims(
        user_id=user_id,
        jti=str(payload["jti"]),
        issued_at=datetime.fromtimestamp(payload["iat"], UTC),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )
