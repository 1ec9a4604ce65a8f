"""Authorization: the one place that answers "may this actor do this to that resource".

Every rule of who may see or do what lives in :data:`POLICIES`. The API, the Reflex event
handlers, the CLI and the DICOM listener all call :func:`can` / :func:`require` (or a
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
        """The actor of a user: a ``User``, or a row with its ``id``, ``username``, ``role``
        and ``centre_id`` (as the token check reads them)."""
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
    VIEW_FOR_COMPARISON = "study.view_for_comparison"  # resource: Comparison
    DELETE_STUDY = "study.delete"  # resource: Study
    ROUTE_STUDY = "study.route"  # assign, reassign, unassign, release to pool; resource: Study
    CLAIM_STUDY = "study.claim"  # resource: Study
    SET_PRIORITY = "study.priority"  # resource: Study
    CANCEL_STUDY = "study.cancel"  # resource: Study
    WRITE_REPORT = "report.write"  # draft, verify, addendum; resource: Study
    VIEW_REPORT_DRAFT = "report.view_draft"  # resource: Study
    DELIVER_REPORT = "report.deliver"  # resource: Study
    MANAGE_TEMPLATES = "template.manage"  # resource: None
    VIEW_TURNAROUND = "turnaround.view"  # resource: None (scoping by visible_centre_ids)
    RUN_AI = "ai.run"  # queue an analysis; resource: Study
    VIEW_AI_FINDINGS = "ai.view_findings"  # resource: Study
    MANAGE_MODELS = "ai.manage_models"  # resource: None
    MANAGE_BILLING = "billing.manage"  # prices, credits, invoices, payouts, rates; resource: None
    VIEW_BILLING = "billing.view"  # a centre's own invoices and records; resource: None
    # register, edit, (de)activate, delete a DICOM device; resource: the Centre (or a device)
    MANAGE_DEVICES = "device.manage"


@dataclass(frozen=True)
class UserDraft:
    """The parts of a user that decide who may create it."""

    role: Role
    centre_id: int | None


@dataclass(frozen=True)
class Comparison:
    """Another study of the same patient (a prior, usually), shown while ``current`` is read."""

    other: Any  # a Study
    current: Any  # a Study


def same_patient(a: Any, b: Any) -> bool:
    """Two different studies of one patient: the same centre (patient IDs are a centre's
    own) and the same, non-empty, patient ID."""
    pid = (getattr(a, "patient_id", "") or "").strip()
    return (
        bool(pid)
        and getattr(a, "id", None) != getattr(b, "id", None)
        and getattr(a, "centre_id", None) == getattr(b, "centre_id", None)
        and pid == (getattr(b, "patient_id", "") or "").strip()
    )


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


def _manage_devices(actor: Actor, centre: Any) -> bool:
    """Administrators register any centre's DICOM devices, a centre user its own centre's
    (where the device is or goes; ``None`` for a list, scoped by :func:`visible_centre_ids`)."""
    if actor.is_admin:
        return True
    return actor.role is Role.CENTRE and (centre is None or _same_centre(actor, centre))


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


def _view_for_comparison(actor: Actor, pair: Any) -> bool:
    """Whoever may see a study may see the patient's other studies that they may see anyway;
    and the radiologist it is assigned to may see its priors at its centre, read only, to
    compare (a tele-radiologist otherwise sees only the pool and their own studies). Priors
    only (:func:`is_prior`): a study stays assigned to its reader after delivery (for
    addenda), and the patient's later studies are none of that reading's business."""
    if not isinstance(pair, Comparison) or not same_patient(pair.other, pair.current):
        return False
    if getattr(pair.current, "status", None) == StudyStatus.CANCELLED:
        return False
    if not _view_study(actor, pair.current):
        return False
    return _view_study(actor, pair.other) or (
        _is_assigned_radiologist(actor, pair.current) and is_prior(pair.other, pair.current)
    )


def is_prior(other: Any, current: Any) -> bool:
    """Whether ``other`` was acquired no later than ``current`` (the same day counts): by
    their study dates where both have one, else by when this server received them (a prior
    sent late for comparison needs its study date)."""
    dates = getattr(other, "study_date", None), getattr(current, "study_date", None)
    if None not in dates:
        return dates[0] <= dates[1]
    received = getattr(other, "received_at", None), getattr(current, "received_at", None)
    return None not in received and received[0] <= received[1]


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


def _route_study(actor: Actor, study: Any) -> bool:
    return actor.is_admin or (actor.role in UPLOADER_ROLES and _same_centre(actor, study))


def _claim_study(actor: Actor, study: Any) -> bool:
    """Tele-radiologists claim from the pool of every centre; internal ones in their centre.

    Whether the study is still free to claim is the state machine's question, not this one.
    """
    if actor.is_tele_radiologist:
        return _in_tele_pool(study)
    return actor.is_internal_radiologist and _same_centre(actor, study)


def _is_assigned_radiologist(actor: Actor, study: Any) -> bool:
    return actor.role is Role.RADIOLOGIST and (
        getattr(study, "assigned_radiologist_id", None) == actor.user_id
    )


def _view_report_draft(actor: Actor, study: Any) -> bool:
    return actor.is_admin or _is_assigned_radiologist(actor, study)


def _deliver_report(actor: Actor, study: Any) -> bool:
    return actor.is_admin or _is_assigned_radiologist(actor, study)


def _cancel_study(actor: Actor, study: Any) -> bool:
    return actor.is_admin or (actor.role is Role.CENTRE and _same_centre(actor, study))


def _view_turnaround(actor: Actor, _resource: Any) -> bool:
    return actor.is_admin or actor.role is Role.CENTRE


def _reads_ai(actor: Actor, study: Any) -> bool:
    """AI output is for the people who read images: radiologists who may see the study, and
    administrators. Centre users see the job's state only."""
    return actor.is_admin or (actor.role is Role.RADIOLOGIST and _view_study(actor, study))


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
    Action.VIEW_FOR_COMPARISON: _view_for_comparison,
    Action.DELETE_STUDY: _admin_only,
    Action.ROUTE_STUDY: _route_study,
    Action.CLAIM_STUDY: _claim_study,
    Action.SET_PRIORITY: _route_study,
    Action.CANCEL_STUDY: _cancel_study,
    Action.WRITE_REPORT: _is_assigned_radiologist,
    Action.VIEW_REPORT_DRAFT: _view_report_draft,
    Action.DELIVER_REPORT: _deliver_report,
    Action.MANAGE_TEMPLATES: _admin_only,
    Action.VIEW_TURNAROUND: _view_turnaround,
    Action.RUN_AI: _reads_ai,
    Action.VIEW_AI_FINDINGS: _reads_ai,
    Action.MANAGE_MODELS: _admin_only,
    Action.MANAGE_BILLING: _admin_only,
    Action.VIEW_BILLING: _view_turnaround,  # administrators and centre managers
    Action.MANAGE_DEVICES: _manage_devices,
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
        Action.VIEW_FOR_COMPARISON: "Not found.",
        Action.DELETE_STUDY: "Only administrators may delete studies.",
        Action.ROUTE_STUDY: (
            "Only the study's centre (centre and technician users) or an administrator "
            "may assign or release it."
        ),
        Action.CLAIM_STUDY: (
            "Only radiologists may claim studies: tele-radiologists from the pool, "
            "internal radiologists in their own centre."
        ),
        Action.SET_PRIORITY: "Only the study's centre or an administrator may change its priority.",
        Action.CANCEL_STUDY: "Only the study's centre manager or an administrator may cancel it.",
        Action.WRITE_REPORT: "Only the radiologist the study is assigned to may write its report.",
        Action.VIEW_REPORT_DRAFT: "Only the reading radiologist may see the draft report.",
        Action.DELIVER_REPORT: (
            "Only the reading radiologist or an administrator may deliver the report."
        ),
        Action.MANAGE_TEMPLATES: "Only administrators may edit report templates.",
        Action.VIEW_TURNAROUND: "Only administrators and centre managers see turnaround figures.",
        Action.RUN_AI: "Only radiologists and administrators may run the AI analysis.",
        Action.VIEW_AI_FINDINGS: "Only radiologists and administrators see AI findings.",
        Action.MANAGE_MODELS: "Only administrators may manage AI models.",
        Action.MANAGE_BILLING: "Only administrators may manage pricing and billing.",
        Action.VIEW_BILLING: "Only administrators and centre managers see billing.",
        Action.MANAGE_DEVICES: (
            "Only administrators, and centre users for their own centre, manage DICOM devices."
        ),
    }.get(action, "You are not allowed to do this.")
