"""Reading workflow: assignment, claims, worklists, reports, templates, notifications."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.models import Priority, StudyStatus
from pacs_app.services import dicomweb, drawn, notifications, reports, turnaround, workflow
from pacs_app.services.dto import (
    ComparisonStudy,
    KeyImagePublic,
    NotificationList,
    RadiologistOption,
    ReportDraft,
    ReportMeasurements,
    ReportView,
    StudyPublic,
    TemplatePublic,
    WorklistPage,
)
from pacs_app.storage import get_storage

router = APIRouter(tags=["workflow"])

CONFLICT = {409: {"description": "The study's status does not allow it, or someone was first"}}


class AssignRequest(BaseModel):
    """``{"radiologist_id": N}`` assigns; ``{"pool": true}`` releases to the tele pool."""

    radiologist_id: int | None = None
    pool: bool = False
    reason: str | None = Field(default=None, description="needed to take it from someone")

    @model_validator(mode="after")
    def _one_target(self) -> AssignRequest:
        if (self.radiologist_id is None) == (not self.pool):
            raise ValueError('give either "radiologist_id" or "pool": true')
        return self


class DrawnMeasurementsBody(BaseModel):
    """A user's measurements on a study: each image (``SOP Instance UID:frame``, 0-based) to
    its list of ``{"id", "kind": "length"|"roi"|"angle", "p": [coordinates], "stats",
    "line", "sent"}``, and the revision they are (0 before any is kept)."""

    images: dict[str, Any]
    revision: int = 0


class DrawnMeasurementsSave(BaseModel):
    """Measurements to keep, and the revision they were made from (left out: kept whatever
    is kept)."""

    images: dict[str, Any]
    revision: int | None = None


class ReasonRequest(BaseModel):
    reason: str


class PriorityRequest(BaseModel):
    priority: Priority


class DraftRequest(BaseModel):
    findings: str = ""
    impression: str = ""
    base_revision: int | None = Field(
        default=None, description="the draft revision the editor started from"
    )


class TemplateApplyRequest(BaseModel):
    template_id: int
    replace: bool = False


class AddendumRequest(BaseModel):
    text: str


class TemplateRequest(BaseModel):
    name: str
    modality: str = ""
    body_part: str = ""
    findings: str = ""
    impression: str = ""
    is_active: bool = True


class ReadRequest(BaseModel):
    ids: list[int] | None = Field(default=None, description="omit to mark all read")


@router.post(
    "/studies/{study_id}/assign",
    response_model=StudyPublic,
    responses=CONFLICT,
    summary="Assign to a radiologist, or release to the tele-radiology pool",
)
def assign(
    study_id: str,
    body: AssignRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> StudyPublic:
    return workflow.assign(
        session=session,
        actor=actor,
        study_id=study_id,
        radiologist_id=None if body.pool else body.radiologist_id,
        reason=body.reason,
        address=address,
    )


@router.get(
    "/studies/{study_id}/radiologists",
    response_model=list[RadiologistOption],
    summary="Who the study may be assigned to",
)
def radiologists(study_id: str, actor: CurrentActor, session: SessionDep) -> list:
    return workflow.radiologist_options(session=session, actor=actor, study_id=study_id)


@router.post("/studies/{study_id}/unassign", response_model=StudyPublic, responses=CONFLICT)
def unassign(
    study_id: str,
    body: ReasonRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> StudyPublic:
    return workflow.unassign(
        session=session, actor=actor, study_id=study_id, reason=body.reason, address=address
    )


@router.post(
    "/studies/{study_id}/claim",
    response_model=StudyPublic,
    responses=CONFLICT,
    summary="A radiologist takes a free study (one of two simultaneous claims wins)",
)
def claim(study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep):
    return workflow.claim(session=session, actor=actor, study_id=study_id, address=address)


@router.post(
    "/studies/{study_id}/release",
    response_model=StudyPublic,
    responses=CONFLICT,
    summary="The reading radiologist gives the study back",
)
def release(study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep):
    return workflow.release(session=session, actor=actor, study_id=study_id, address=address)


@router.post("/studies/{study_id}/priority", response_model=StudyPublic, responses=CONFLICT)
def set_priority(
    study_id: str,
    body: PriorityRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> StudyPublic:
    return workflow.set_priority(
        session=session, actor=actor, study_id=study_id, priority=body.priority, address=address
    )


@router.post("/studies/{study_id}/cancel", response_model=StudyPublic, responses=CONFLICT)
def cancel(
    study_id: str,
    body: ReasonRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> StudyPublic:
    return workflow.cancel(
        session=session, actor=actor, study_id=study_id, reason=body.reason, address=address
    )


@router.get("/worklists/{kind}", response_model=WorklistPage, summary="Worklists")
def worklist(
    kind: workflow.Worklist,
    actor: CurrentActor,
    session: SessionDep,
    status: StudyStatus | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WorklistPage:
    """``mine`` and ``available`` for radiologists, ``all`` for everyone: most urgent first,
    then longest waiting. ``stamp`` changes whenever a visible study changes; poll
    ``/worklist-stamp`` to know when to reload."""
    return workflow.worklist(
        session=session, actor=actor, kind=kind, status=status, page=page, page_size=page_size
    )


@router.get("/worklist-stamp", summary="Changes whenever a study the caller may see changes")
def worklist_stamp(actor: CurrentActor, session: SessionDep) -> dict:
    return {"stamp": workflow.worklist_stamp(session=session, actor=actor)}


# --- reports ------------------------------------------------------------------------------


@router.get("/studies/{study_id}/report", response_model=ReportView)
def get_report(
    study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> ReportView:
    return reports.get_report(session=session, actor=actor, study_id=study_id, address=address)


@router.put(
    "/studies/{study_id}/report",
    response_model=ReportDraft,
    responses=CONFLICT,
    summary="Save the draft (the reading radiologist, before verification)",
)
def save_report(
    study_id: str, body: DraftRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> ReportDraft:
    return reports.save_draft(
        session=session,
        actor=actor,
        study_id=study_id,
        findings=body.findings,
        impression=body.impression,
        base_revision=body.base_revision,
        address=address,
    )


@router.get(
    "/studies/{study_id}/report/measurements",
    response_model=list[ReportMeasurements],
    summary="The numeric measurements in the study's structured reports",
    description=(
        "One entry per structured report of the study that holds measurements (an "
        "ultrasound's, a CAD's, a dose report's), oldest first: its lines and the block of "
        "text that takes them into the findings (append it and save the draft with PUT)."
    ),
)
def report_measurements(
    study_id: str, actor: CurrentActor, session: SessionDep
) -> list[ReportMeasurements]:
    return reports.study_measurements(
        session=session, actor=actor, study_id=study_id, storage=get_storage()
    )


@router.get(
    "/studies/{study_id}/key-images",
    response_model=list[KeyImagePublic],
    summary="The images marked as key to the study's report",
)
def key_images(study_id: str, actor: CurrentActor, session: SessionDep) -> list[KeyImagePublic]:
    return reports.key_images(session=session, actor=actor, study_id=study_id)


@router.get(
    "/studies/{study_id}/drawn-measurements",
    response_model=DrawnMeasurementsBody,
    summary="Your measurements drawn on the study's images in the viewer",
)
def drawn_measurements(
    study_id: str, actor: CurrentActor, session: SessionDep
) -> DrawnMeasurementsBody:
    kept = drawn.drawn(session=session, actor=actor, study_id=study_id)
    return DrawnMeasurementsBody(images=kept.images, revision=kept.revision)


@router.put(
    "/studies/{study_id}/drawn-measurements",
    response_model=DrawnMeasurementsBody,
    summary="Keep your measurements drawn on the study's images",
    description=(
        "In place of those kept before; each user keeps their own. With `revision` (the one "
        "they were made from), they are kept only if that revision is still the kept one; "
        "otherwise (another window saved since) the answer is 409 with the kept `images` and "
        "`revision`, into which to merge and save again. 422 names what is wrong (at most "
        f"{drawn.MAX_MEASUREMENTS} measurements on a study). Answers them as kept, with their "
        "new revision."
    ),
    responses={409: {"description": "Another window saved since `revision`: the kept ones"}},
)
def keep_drawn_measurements(
    study_id: str, body: DrawnMeasurementsSave, actor: CurrentActor, session: SessionDep
) -> DrawnMeasurementsBody | JSONResponse:
    try:
        kept = drawn.save_drawn(
            session=session,
            actor=actor,
            study_id=study_id,
            images=body.images,
            revision=body.revision,
        )
    except drawn.Stale as stale:
        kept = stale.current
        return JSONResponse(
            {
                "detail": stale.message,
                "code": stale.code,
                "images": kept.images,
                "revision": kept.revision,
            },
            status_code=409,
        )
    return DrawnMeasurementsBody(images=kept.images, revision=kept.revision)


def _set_key_image(
    study_id, sop_uid, frame, key, actor, session, address, window=None, rotation=0, flipped=False
):
    return reports.set_key_image(
        session=session,
        actor=actor,
        study_id=study_id,
        sop_instance_uid=sop_uid,
        frame=frame,
        key=key,
        window=dicomweb.parse_window(window),
        rotation=rotation,
        flipped=flipped,
        address=address,
    )


@router.put(
    "/studies/{study_id}/key-images/{sop_uid}",
    response_model=list[KeyImagePublic],
    responses=CONFLICT,
    summary="Mark an image (frame `frame`, 1-based) as key to the report",
    description=(
        "The reading radiologist, while the report can be edited (409 once it is signed). "
        "`window=center,width[,function]` (the function linear, linear-exact or sigmoid; "
        "without it, the image's own): the window it is looked at with, which the report's PDF "
        "prints it with (the header's otherwise); `rotation` (0, 90, 180 or 270 degrees "
        "clockwise) and `flipped` (mirrored left to right, before the rotation): how the "
        "reader turned it, which the PDF prints it as. Marking again keeps the latest. "
        "Answers the study's key images."
    ),
)
def mark_key_image(
    study_id: str,
    sop_uid: str,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
    frame: int = 1,
    window: str | None = None,
    rotation: int = 0,
    flipped: bool = False,
) -> list[KeyImagePublic]:
    return _set_key_image(
        study_id, sop_uid, frame, True, actor, session, address, window, rotation, flipped
    )


@router.delete(
    "/studies/{study_id}/key-images/{sop_uid}",
    response_model=list[KeyImagePublic],
    responses=CONFLICT,
    summary="Unmark a key image",
)
def unmark_key_image(
    study_id: str,
    sop_uid: str,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
    frame: int = 1,
) -> list[KeyImagePublic]:
    return _set_key_image(study_id, sop_uid, frame, False, actor, session, address)


@router.get(
    "/studies/{study_id}/comparison-studies",
    response_model=list[ComparisonStudy],
    summary="The patient's other studies, to compare with this one",
    description=(
        "The other studies of the same patient (same centre and patient ID) that the caller "
        "may see beside this one, newest first, with their signed reports where the caller "
        "may read them. The radiologist the study is assigned to sees its priors (the "
        "patient's studies of the same day or before), and opens their images over WADO-RS "
        "with `?for={study_id}` (this study's ID) on each request."
    ),
)
def comparison_studies(
    study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> list[ComparisonStudy]:
    return reports.comparison_studies(
        session=session, actor=actor, study_id=study_id, address=address
    )


@router.post("/studies/{study_id}/report/template", response_model=ReportDraft, responses=CONFLICT)
def apply_template(
    study_id: str,
    body: TemplateApplyRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> ReportDraft:
    return reports.apply_template(
        session=session,
        actor=actor,
        study_id=study_id,
        template_id=body.template_id,
        replace=body.replace,
        address=address,
    )


@router.post(
    "/studies/{study_id}/report/verify",
    response_model=ReportView,
    responses=CONFLICT,
    summary="Sign the report: it becomes an immutable version",
    description="The report's key images, if it has any, are filed with the study as a DICOM "
    "Key Object Selection Document (a new series, modality KO), in the same transaction.",
)
def verify(study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep):
    return reports.verify(
        session=session, actor=actor, study_id=study_id, storage=get_storage(), address=address
    )


@router.post("/studies/{study_id}/report/addenda", response_model=ReportView, responses=CONFLICT)
def add_addendum(
    study_id: str,
    body: AddendumRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> ReportView:
    return reports.add_addendum(
        session=session, actor=actor, study_id=study_id, text=body.text, address=address
    )


@router.post(
    "/studies/{study_id}/report/deliver",
    response_model=ReportView,
    responses=CONFLICT,
    summary="Send the verified report to the centre",
)
def deliver(study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep):
    return reports.deliver(session=session, actor=actor, study_id=study_id, address=address)


@router.get(
    "/studies/{study_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="The report as PDF",
)
def report_pdf(
    study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> Response:
    found = reports.report_pdf(
        session=session, actor=actor, study_id=study_id, storage=get_storage(), address=address
    )
    return Response(
        found.content,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Cache-Control": "no-store",
        },
    )


# --- templates ----------------------------------------------------------------------------


@router.get("/report-templates", response_model=list[TemplatePublic])
def list_templates(actor: CurrentActor, session: SessionDep) -> list:
    return reports.list_templates(session=session, actor=actor)


@router.post("/report-templates", response_model=TemplatePublic, status_code=201)
def create_template(
    body: TemplateRequest, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> TemplatePublic:
    return reports.save_template(
        session=session, actor=actor, template_id=None, address=address, **body.model_dump()
    )


@router.put("/report-templates/{template_id}", response_model=TemplatePublic)
def update_template(
    template_id: int,
    body: TemplateRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> TemplatePublic:
    return reports.save_template(
        session=session, actor=actor, template_id=template_id, address=address, **body.model_dump()
    )


# --- notifications ------------------------------------------------------------------------


@router.get("/notifications", response_model=NotificationList)
def list_notifications(
    actor: CurrentActor, session: SessionDep, unread_only: bool = False
) -> NotificationList:
    return notifications.list_for(session=session, actor=actor, unread_only=unread_only)


@router.post("/notifications/read", summary="Mark notifications read")
def mark_read(body: ReadRequest, actor: CurrentActor, session: SessionDep) -> dict:
    return {"marked": notifications.mark_read(session=session, actor=actor, ids=body.ids)}


# --- turnaround -----------------------------------------------------------------------------


@router.get("/turnaround", response_model=turnaround.TatSummary, summary="Turnaround times")
def turnaround_summary(
    actor: CurrentActor,
    session: SessionDep,
    date_from: date,
    date_to: date,
    centre_id: int | None = None,
) -> turnaround.TatSummary:
    """Minutes from receipt to assignment, first opening, verification and delivery, per
    centre and per radiologist, for studies received in the range (admins: all centres;
    centre managers: their own)."""
    return turnaround.summary(
        session=session, actor=actor, date_from=date_from, date_to=date_to, centre_id=centre_id
    )
