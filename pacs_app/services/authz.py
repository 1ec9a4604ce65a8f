"""Authorization: the one place that answers "may this actor do this to that resource".

Every rule of who may see or do what lives in :data:`POLICIES`. The API, the Reflex event
handlers, the CLI and later the DICOM listener all call :func:`can` / :func:`require` (or a
service that does), never their own ``if role == ...``.

Later capabilities plug in by adding :class:`Action` members and a policy function each; a
resource is any object with a ``centre_id`` attribute (a study, a report, a billing record),
so centre scoping is shared by all of them.

Example::

    actor = Actor(user_id=7, username="tech", role=Role.TECHNICIAN, centre_id=3)
    can(actor, Action.OPEN_DASHBOARD, Role.ADMIN)      # False
    require(actor, Action.VIEW_CENTRE, centre)          # raises PermissionDenied unless centre 3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

from pacs_app.core.errors import NotFound, PermissionDenied
from pacs_app.models import Centre, Role, Study, StudyStatus, User


@dataclass(frozen=True)
class Actor:
    """The authenticated user on whose behalf a use case runs (resolved again per request)."""

    user_id: int
    username: str
    role: Role
    centre_id: int | None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(
            user_id=user.id, username=user.username, role=user.role, centre_id=user.centre_id
        )

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_tele_radiologist(self) -> bool:
        """A radiologist of the business who reads for every centre (belongs to none)."""
        return self.role is Role.RADIOLOGIST and self.centre_id is None

    @property
    def is_internal_radiologist(self) -> bool:
        return self.role is Role.RADIOLOGIST and self.centre_id is not None


class Action(StrEnum):
    OPEN_DASHBOARD = "dashboard.open"  # resource: the Role whose dashboard is opened
    VIEW_CENTRE = "centre.view"  # resource: Centre
    MANAGE_CENTRES = "centre.manage"  # resource: None or Centre
    LIST_USERS = "user.list"  # resource: None (scoping by visible_centre_ids)
    VIEW_USER = "user.view"  # resource: User
    MANAGE_USER = "user.manage"  # resource: User, or a UserDraft for creation
    VIEW_AUDIT = "audit.view"  # resource: None
    UPLOAD_STUDY = "study.upload"  # resource: the Centre (or id holder) uploaded for
    VIEW_STUDY = "study.view"  # resource: Study
    DELETE_STUDY = "study.delete"  # resource: Study


@dataclass(frozen=True)
class UserDraft:
    """The parts of a user that decide who may create it."""

    role: Role
    centre_id: int | None


# Roles a centre user may create and manage inside its own centre.
CENTRE_MANAGED_ROLES = frozenset({Role.TECHNICIAN, Role.RADIOLOGIST})


def _centre_of(resource: Any) -> int | None:
    if isinstance(resource, Centre):
        return resource.id
    return getattr(resource, "centre_id", None)


def _same_centre(actor: Actor, resource: Any) -> bool:
    return actor.centre_id is not None and _centre_of(resource) == actor.centre_id


def _open_dashboard(actor: Actor, role: Any) -> bool:
    return isinstance(role, Role) and actor.role is role


def _view_centre(actor: Actor, centre: Any) -> bool:
    return actor.is_admin or _same_centre(actor, centre)


def _admin_only(actor: Actor, _resource: Any) -> bool:
    return actor.is_admin


def _list_users(actor: Actor, _resource: Any) -> bool:
    return actor.is_admin or actor.role is Role.CENTRE


def _view_user(actor: Actor, user: Any) -> bool:
    if actor.is_admin or getattr(user, "id", None) == actor.user_id:
        return True
    return actor.role is Role.CENTRE and _same_centre(actor, user)


def _manage_user(actor: Actor, user: Any) -> bool:
    if actor.is_admin:
        return True
    return (
        actor.role is Role.CENTRE
        and _same_centre(actor, user)
        and getattr(user, "role", None) in CENTRE_MANAGED_ROLES
    )


# Roles that upload studies, each for its own centre.
UPLOADER_ROLES = frozenset({Role.TECHNICIAN, Role.CENTRE})


def _upload_study(actor: Actor, centre: Any) -> bool:
    return actor.role in UPLOADER_ROLES and _same_centre(actor, centre)


def _in_tele_pool(study: Any) -> bool:
    """The tele-radiology pool: studies waiting for a radiologist, from every centre."""
    return (
        getattr(study, "assigned_radiologist_id", None) is None
        and getattr(study, "status", None) == StudyStatus.UNASSIGNED
    )


def _view_study(actor: Actor, study: Any) -> bool:
    if actor.is_admin:
        return True
    if actor.is_tele_radiologist:
        return _in_tele_pool(study) or getattr(study, "assigned_radiologist_id", None) == (
            actor.user_id
        )
    return _same_centre(actor, study)


def study_visibility(actor: Actor) -> ColumnElement[bool]:
    """The SQL form of :func:`_view_study`, for list queries (keep the two in step)."""
    if actor.is_admin:
        return true()
    if actor.is_tele_radiologist:
        return or_(
            and_(Study.assigned_radiologist_id.is_(None), Study.status == StudyStatus.UNASSIGNED),
            Study.assigned_radiologist_id == actor.user_id,
        )
    if actor.centre_id is None:
        return false()
    return Study.centre_id == actor.centre_id


POLICIES: dict[Action, Callable[[Actor, Any], bool]] = {
    Action.OPEN_DASHBOARD: _open_dashboard,
    Action.VIEW_CENTRE: _view_centre,
    Action.MANAGE_CENTRES: _admin_only,
    Action.LIST_USERS: _list_users,
    Action.VIEW_USER: _view_user,
    Action.MANAGE_USER: _manage_user,
    Action.VIEW_AUDIT: _admin_only,
    Action.UPLOAD_STUDY: _upload_study,
    Action.VIEW_STUDY: _view_study,
    Action.DELETE_STUDY: _admin_only,
}


def can(actor: Actor | None, action: Action, resource: Any = None) -> bool:
    """Whether ``actor`` may do ``action`` to ``resource``. No actor may do nothing."""
    if actor is None:
        return False
    return POLICIES[action](actor, resource)


def require(
    actor: Actor | None, action: Action, resource: Any = None, *, hide: bool = False
) -> None:
    """Raise unless :func:`can` allows it.

    With ``hide=True`` the refusal is a :class:`NotFound`, so that a resource outside the
    actor's scope looks as if it did not exist (used for patient data).
    """
    if can(actor, action, resource):
        return
    if hide:
        raise NotFound("Not found.")
    raise PermissionDenied(_refusal_message(action, resource))


def visible_centre_ids(actor: Actor) -> frozenset[int] | None:
    """The centres whose data the actor may list: ``None`` means all of them."""
    if actor.is_admin or actor.is_tele_radiologist:
        return None
    return frozenset({actor.centre_id}) if actor.centre_id is not None else frozenset()


def _refusal_message(action: Action, resource: Any) -> str:
    if action is Action.OPEN_DASHBOARD and isinstance(resource, Role):
        return f"Only {resource.value} users may open the {resource.value} dashboard."
    return {
        Action.VIEW_CENTRE: "You may only see your own centre.",
        Action.MANAGE_CENTRES: "Only administrators may manage centres.",
        Action.LIST_USERS: "Only administrators and centre managers may list users.",
        Action.VIEW_USER: "You may not see this user.",
        Action.MANAGE_USER: "You may not manage this user.",
        Action.VIEW_AUDIT: "Only administrators may read the audit trail.",
        Action.UPLOAD_STUDY: "Only technicians and centre users may upload, for their own centre.",
        Action.VIEW_STUDY: "Not found.",
        Action.DELETE_STUDY: "Only administrators may delete studies.",
    }.get(action, "You are not allowed to do this.")
