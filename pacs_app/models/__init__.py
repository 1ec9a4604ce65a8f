"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from pacs_app.models.ai import AIFinding, AIJob, Decision, JobStatus, LearnedModel
from pacs_app.models.audit import AuditEvent
from pacs_app.models.auth import RevokedToken
from pacs_app.models.billing import (
    BillingRecord,
    BillingStatus,
    ExchangeRate,
    Invoice,
    InvoiceStatus,
    PayoutRate,
    PricingRule,
)
from pacs_app.models.devices import DicomDevice
from pacs_app.models.imaging import Instance, Priority, Series, Study, StudyStatus
from pacs_app.models.users import Centre, Currency, Role, User
from pacs_app.models.workflow import (
    DraftSource,
    DrawnMeasurements,
    KeyImage,
    Notification,
    NotificationKind,
    Report,
    ReportTemplate,
    ReportVersion,
    TurnaroundTarget,
    VersionKind,
)

__all__ = [
    "AIFinding",
    "AIJob",
    "AuditEvent",
    "BillingRecord",
    "BillingStatus",
    "Centre",
    "Currency",
    "Decision",
    "DicomDevice",
    "DraftSource",
    "DrawnMeasurements",
    "ExchangeRate",
    "Instance",
    "Invoice",
    "InvoiceStatus",
    "JobStatus",
    "KeyImage",
    "LearnedModel",
    "Notification",
    "NotificationKind",
    "PayoutRate",
    "PricingRule",
    "Priority",
    "Report",
    "ReportTemplate",
    "ReportVersion",
    "RevokedToken",
    "Role",
    "Series",
    "Study",
    "StudyStatus",
    "TurnaroundTarget",
    "User",
    "VersionKind",
]
