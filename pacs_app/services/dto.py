"""Data transfer objects: what the UI and the API receive instead of table rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from pacs_app.dicom import pixels
from pacs_app.models import AuditEvent, Centre, Currency, Priority, Role, StudyStatus, User

T = TypeVar("T")


class CentrePublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    code: str
    default_currency: Currency
    is_active: bool

    @classmethod
    def of(cls, centre: Centre) -> CentrePublic:
        return cls(
            id=centre.id,
            name=centre.name,
            code=centre.code,
            default_currency=centre.default_currency,
            is_active=centre.is_active,
        )


class UserPublic(BaseModel):
    """A user as shown to others: never the password hash."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    email: str | None
    full_name: str | None
    role: Role
    centre: CentrePublic | None
    is_active: bool
    is_tele_radiologist: bool
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User, centre: Centre | None) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            centre=CentrePublic.of(centre) if centre else None,
            is_active=user.is_active,
            is_tele_radiologist=user.role is Role.RADIOLOGIST and user.centre_id is None,
            last_login_at=user.last_login_at,
        )

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class IssuedToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor_id: int | None
    username: str | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    centre_id: int | None
    address: str | None
    detail: dict | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventPublic:
        return cls.model_validate(event, from_attributes=True)


class SeriesPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    series_instance_uid: str
    series_number: int | None
    modality: str
    body_part: str
    description: str
    num_instances: int


class Difference(BaseModel):
    """A field where the upload form and the DICOM header disagreed (the form's value won)."""

    field: str
    shown: str
    header: str


class StudyPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    study_id: str
    study_instance_uid: str
    centre_id: int
    centre_code: str
    patient_name: str
    patient_id: str
    patient_age: str
    patient_sex: str
    modality: str
    body_part: str
    description: str
    accession_number: str
    study_date: date | None
    clinical_notes: str
    priority: Priority
    status: StudyStatus
    assigned_radiologist_id: int | None
    uploaded_by: str | None
    num_series: int
    num_instances: int
    size_bytes: int
    received_at: datetime
    updated_at: datetime
    assigned_at: datetime | None = None
    first_opened_at: datetime | None = None
    verified_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    differences: list[Difference] = []


class InstancePublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int  # n of /studies/{id}/instances/{n}/file
    series_instance_uid: str
    instance_number: int | None
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    number_of_frames: int
    size_bytes: int


class StudyDetail(StudyPublic):
    series: list[SeriesPublic] = []
    instances: list[InstancePublic] = []  # the first MAX_DETAIL_INSTANCES, by series and number
    history: list[AuditEventPublic] = []


class StudyPage(BaseModel):
    """One page of a study list, with keyset cursors for the pages around it."""

    items: list[StudyPublic]
    total: int
    limit: int
    next_cursor: str | None = None
    prev_cursor: str | None = None


class WorklistItem(StudyPublic):
    assigned_to: str = ""  # the radiologist's display name
    ai_status: str = ""  # the latest AI job's: queued, running, done, done_with_warnings, failed
    waiting_seconds: int  # since receipt (until delivery or cancellation)
    target_minutes: int  # the turnaround target of its priority
    overdue: bool


class WorklistPage(BaseModel):
    items: list[WorklistItem]
    total: int
    page: int
    page_size: int
    stamp: str  # changes whenever any study the actor may see changes


class RadiologistOption(BaseModel):
    id: int
    name: str
    username: str
    tele: bool  # a tele-radiologist (no centre) rather than the centre's own


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    study_id: str
    message: str
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationPublic]
    unread: int


class ReportVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    kind: str  # signed | addendum
    findings: str
    impression: str
    text: str
    signed_by_name: str
    signed_at: datetime


class ReportDraft(BaseModel):
    findings: str
    impression: str
    revision: int
    source: str  # blank | template | ai
    source_detail: str
    saved_at: datetime | None
    saved_by: str | None


class ComparisonStudy(BaseModel):
    """Another study of the patient whose study is being read, for comparison: what it was,
    and its signed report where the actor may read it."""

    study_id: str
    study_date: date | None
    received_at: datetime
    modality: str
    body_part: str
    description: str
    status: StudyStatus
    num_series: int
    num_instances: int
    # whether the actor may open the study itself (its page), not only beside the one read
    own_page: bool = False
    report_signed_at: datetime | None = None  # None: no signed report the actor may read
    report_signed_by: str = ""
    findings: str = ""
    impression: str = ""
    addenda: list[str] = []


class KeyImagePublic(BaseModel):
    """An image the reading radiologist marked as key to the report."""

    series_instance_uid: str
    sop_instance_uid: str
    frame: int  # 1-based, as WADO-RS numbers frames
    series_number: int | None
    instance_number: int | None
    window_center: float | None = None  # the window it was marked with (greyscale)
    window_width: float | None = None
    window_function: str | None = None  # its VOI LUT function; None: the image's own
    # how the reader had turned it (mirrored left to right, then turned clockwise), as its
    # print shows it
    rotation: int = 0
    flipped: bool = False
    marked_at: datetime

    @property
    def window_param(self) -> str:
        """That window as the rendered resources' ``window`` parameter (PS3.18 8.3.5.1.3:
        center,width[,function]); ``""`` where it has none."""
        if self.window_center is None or self.window_width is None:
            return ""
        return pixels.window_param(
            self.window_center, self.window_width, self.window_function or ""
        )

    @property
    def caption(self) -> str:
        """Where it is: "Series 2, image 14" (", frame 3" for a later frame)."""
        parts = [] if self.series_number is None else [f"Series {self.series_number}"]
        parts.append("image" if self.instance_number is None else f"image {self.instance_number}")
        return ", ".join(parts) + (f", frame {self.frame}" if self.frame > 1 else "")


class ReportMeasurements(BaseModel):
    """The numeric measurements of one structured report of the study (an ultrasound's, a
    CAD's, a dose report's), as lines, and as the block of text a report takes them in."""

    sop_instance_uid: str
    series_instance_uid: str
    title: str
    observed: str  # the SR's content date and time, as text ("" where absent)
    lines: list[str]
    text: str


class TemplatePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    modality: str
    body_part: str
    findings: str
    impression: str
    is_active: bool


class AIDraftPublic(BaseModel):
    """An AI-generated draft offered to the radiologist, never merged by itself."""

    model: str
    version: str
    findings: str
    impression: str
    created_at: datetime


class ReportView(BaseModel):
    """A study's report as the actor may see it.

    ``draft`` only for the reading radiologist and administrators; ``versions`` (the signed
    report and its addenda) for everyone who may see the study once it is verified, and for
    the centre once it is delivered.
    """

    study: StudyPublic
    status: StudyStatus
    assigned_to: str
    draft: ReportDraft | None
    versions: list[ReportVersionPublic]
    templates: list[TemplatePublic] = []
    ai_draft: AIDraftPublic | None = None
    can_edit: bool = False
    can_verify: bool = False
    can_deliver: bool = False
    can_add_addendum: bool = False
    can_download_pdf: bool = False
