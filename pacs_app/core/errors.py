"""The domain error family. The API maps each class to one HTTP status in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``message`` is safe to show to the user (no PHI, no secrets)."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AuthenticationFailed(DomainError):
    """Credentials or token are missing, wrong, expired, revoked, or the account is inactive."""

    code = "authentication_failed"


class TooManyAttempts(DomainError):
    """Sign-in refused because of repeated failures (per account or per address)."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after_seconds: int):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PermissionDenied(DomainError):
    code = "permission_denied"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    code = "invalid_input"


class UnsupportedMediaType(InvalidInput):
    """The request's body is of a media type the endpoint does not take."""

    code = "unsupported_media_type"


class TooLarge(InvalidInput):
    """A file, archive or field over a configured size limit."""

    code = "too_large"


class NotAcceptable(DomainError):
    """No representation the request's Accept header takes can be made of the resource."""

    code = "not_acceptable"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StorageUnavailable(DomainError):
    """The file store failed (disk full, I/O error); nothing of the operation was kept."""

    code = "storage_unavailable"
