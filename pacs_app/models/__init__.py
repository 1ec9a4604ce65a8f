"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from pacs_app.models.ai import AIFinding, AIJob, Decision, JobStatus, LearnedModel
from pacs_app.models.audit import AuditEvent
from pacs_app.models.auth import RevokedToken
from pacs_app.models.imaging import Instance, Priority, Series, Study, StudyStatus
from pacs_app.models.users import Centre, Currency, Role, User
from pacs_app.models.workflow import (
    DraftSource,
    Notification,
    NotificationKind,
    Report,
    ReportTemplate,
    ReportVersion,
    VersionKind,
)

__all__ = [
    "AIFinding",
    "AIJob",
    "AuditEvent",
    "Centre",
    "Currency",
    "Decision",
    "DraftSource",
    "Instance",
    "JobStatus",
    "LearnedModel",
    "Notification",
    "NotificationKind",
    "Priority",
    "Report",
    "ReportTemplate",
    "ReportVersion",
    "RevokedToken",
    "Role",
    "Series",
    "Study",
    "StudyStatus",
    "User",
    "VersionKind",
]
