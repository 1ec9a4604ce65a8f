"""Reports: the working draft, signing, addenda, delivery to the centre, the PDF; templates.

The draft is saved as the radiologist types (every save names the revision it started from, so
two tabs cannot silently overwrite each other). Verifying copies the draft into an immutable
:class:`ReportVersion`; after that only an addendum, itself a new version, changes what the
centre reads. Status changes go through :mod:`pacs_app.services.workflow`.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pydicom
from pydicom.uid import generate_uid
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from pacs_app.config import settings
from pacs_app.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from pacs_app.dicom import gsps, kos, orientation, pixels, sr
from pacs_app.models import (
    Centre,
    DraftSource,
    Instance,
    KeyImage,
    Report,
    ReportTemplate,
    ReportVersion,
    Role,
    Series,
    Study,
    StudyStatus,
    User,
    VersionKind,
)
from pacs_app.models.base import utcnow
from pacs_app.services import audit, dicomweb, drawn, ingest, workflow
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Action, Actor, Comparison, can, require
from pacs_app.services.dto import (
    ComparisonStudy,
    KeyImagePublic,
    ReportDraft,
    ReportMeasurements,
    ReportVersionPublic,
    ReportView,
    TemplatePublic,
)
from pacs_app.services.studies import study_public
from pacs_app.services.workflow import Step
from pacs_app.storage import Storage, StoredObject

log = logging.getLogger(__name__)
S = StudyStatus
MAX_TEXT = 20_000


def _report_of(session: Session, study: Study, *, create: bool = False) -> Report | None:
    report = session.exec(select(Report).where(Report.study_pk == study.id)).first()
    if report is None and create:
        report = Report(study_pk=study.id)
        session.add(report)
        session.flush()
    return report


def _versions(session: Session, report: Report | None) -> list[ReportVersion]:
    if report is None:
        return []
    return list(
        session.exec(
            select(ReportVersion)
            .where(ReportVersion.report_id == report.id)
            .order_by(col(ReportVersion.number))
        )
    )


def _sees_signed(actor: Actor, study: Study) -> bool:
    """The centre reads the report once it is delivered; readers and admins once signed."""
    if study.status is S.DELIVERED:
        return True
    return study.status is S.VERIFIED and can(actor, Action.VIEW_REPORT_DRAFT, study)


def _clean(text: str | None, what: str) -> str:
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"The {what} is too long ({MAX_TEXT} characters at most).")
    return text


def get_report(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> ReportView:
    """The report as the actor may see it. The reading radiologist's first look at an
    assigned study marks it opened (the turnaround clock's "first opening")."""
    study = workflow.load_visible(session, actor, study_id)
    if workflow.open_for_reading(session, actor, study, address=address):
        session.commit()
    report = _report_of(session, study)
    reader = can(actor, Action.VIEW_REPORT_DRAFT, study)
    writer = can(actor, Action.WRITE_REPORT, study)
    draft = None
    if reader:
        saved_by = (
            session.get(User, report.draft_saved_by_id)
            if report and (report.draft_saved_by_id)
            else None
        )
        draft = ReportDraft(
            findings=report.findings if report else "",
            impression=report.impression if report else "",
            revision=report.revision if report else 0,
            source=(report.source if report else DraftSource.BLANK).value,
            source_detail=report.source_detail if report else "",
            saved_at=report.draft_saved_at if report else None,
            saved_by=(saved_by.full_name or saved_by.username) if saved_by else None,
        )
    versions = _versions(session, report) if _sees_signed(actor, study) else []
    assigned = (
        session.get(User, study.assigned_radiologist_id)
        if (study.assigned_radiologist_id)
        else None
    )
    return ReportView(
        study=study_public(session, study),
        status=study.status,
        assigned_to=(assigned.full_name or assigned.username) if assigned else "",
        draft=draft,
        versions=[ReportVersionPublic.model_validate(v) for v in versions],
        templates=matching_templates(session, study) if writer else [],
        ai_draft=_ai_draft(session, actor, study) if writer else None,
        can_edit=writer and study.status in workflow.TRANSITIONS[Step.SAVE_DRAFT],
        can_verify=writer and study.status in workflow.TRANSITIONS[Step.VERIFY],
        can_deliver=can(actor, Action.DELIVER_REPORT, study) and study.status is S.VERIFIED,
        can_add_addendum=writer and study.status in workflow.TRANSITIONS[Step.ADDENDUM],
        can_download_pdf=bool(versions) or (reader and report is not None),
    )


def _ai_draft(session: Session, actor: Actor, study: Study):
    from pacs_app.services import ai  # ai -> reports at call time only

    if not can(actor, Action.VIEW_AI_FINDINGS, study):
        return None
    return ai.draft_of(ai.latest_job(session, study))


def save_draft(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    findings: str,
    impression: str,
    base_revision: int | None = None,
    address: str | None = None,
) -> ReportDraft:
    """Save the working draft (the reading radiologist only, before verification).

    ``base_revision`` is the revision the editor started from; a save from an older one is
    refused (409) instead of overwriting newer text from another tab.
    """
    study = workflow.load_visible(session, actor, study_id)
    workflow.check_step(session, actor, study, Step.SAVE_DRAFT)
    findings = _clean(findings, "findings")
    impression = _clean(impression, "impression")
    workflow.open_for_reading(session, actor, study, address=address)
    report = _report_of(session, study, create=True)
    if base_revision is not None and base_revision != report.revision:
        session.rollback()
        raise Conflict(
            "The report was changed elsewhere (another tab or window) since you opened it; "
            "reload it before saving."
        )
    has_text = bool(findings or impression)
    first_words = not (report.findings or report.impression) and has_text
    report.findings, report.impression = findings, impression
    report.draft_saved_at = utcnow()
    report.draft_saved_by_id = actor.user_id
    report.revision += 1
    session.add(report)
    target = S.REPORTED if has_text else S.IN_PROGRESS
    if study.status is not target:
        workflow.move(
            session,
            actor,
            study,
            Step.SAVE_DRAFT,
            to=target,
            audit_action=AuditAction.REPORT_STARTED,
            address=address,
        )
    elif first_words:
        audit.record_study(
            session, action=AuditAction.REPORT_STARTED, actor=actor, study=study, address=address
        )
    session.commit()
    return ReportDraft(
        findings=report.findings,
        impression=report.impression,
        revision=report.revision,
        source=report.source.value,
        source_detail=report.source_detail,
        saved_at=report.draft_saved_at,
        saved_by=actor.username,
    )


def apply_template(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    template_id: int,
    replace: bool = False,
    address: str | None = None,
) -> ReportDraft:
    """Start the draft from a template. Text already written is replaced only when asked."""
    study = workflow.load_visible(session, actor, study_id)
    workflow.check_step(session, actor, study, Step.SAVE_DRAFT)
    template = session.get(ReportTemplate, template_id)
    if template is None or not template.is_active:
        raise NotFound(f"No active report template {template_id}.")
    report = _report_of(session, study, create=True)
    if (report.findings or report.impression) and not replace:
        raise Conflict("The draft already has text; confirm to replace it with the template.")
    draft = save_draft(
        session=session,
        actor=actor,
        study_id=study_id,
        findings=template.findings,
        impression=template.impression,
        address=address,
    )
    report = _report_of(session, study)
    report.source, report.source_detail = DraftSource.TEMPLATE, template.name[:200]
    session.add(report)
    audit.record_study(
        session,
        action=AuditAction.REPORT_TEMPLATE_APPLIED,
        actor=actor,
        study=study,
        address=address,
        detail={"template": template.name},
    )
    session.commit()
    return draft.model_copy(update={"source": "template", "source_detail": template.name})


def _signer_name(session: Session, actor: Actor) -> str:
    user = session.get(User, actor.user_id)
    return (user.full_name or user.username) if user else actor.username


def verify(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    storage: Storage,
    address: str | None = None,
) -> ReportView:
    """Sign the draft: it becomes version 1, immutable, with the signer and the time.

    Its key images, if it has any, are filed with the study as a DICOM Key Object Selection
    Document (a new series, "Key images") in ``storage``, so that wherever the study goes the
    images the report rests on go marked, each greyscale one with a presentation state of
    how it was seen (a series "Key image views": its window and turn): the documents and the
    signature are kept together or not at all."""
    study = workflow.load_visible(session, actor, study_id)
    workflow.check_step(session, actor, study, Step.VERIFY)
    report = _report_of(session, study)
    if report is None or not report.impression.strip():
        raise InvalidInput(
            "The report has no impression: write the findings and the impression before verifying."
        )
    if _versions(session, report):
        raise Conflict(f"The report of study {study.study_id} is already signed.")
    now = utcnow()
    signer = _signer_name(session, actor)
    session.add(
        ReportVersion(
            report_id=report.id,
            number=1,
            kind=VersionKind.SIGNED,
            findings=report.findings,
            impression=report.impression,
            signed_by_id=actor.user_id,
            signed_by_name=signer,
            signed_at=now,
        )
    )
    filed: _FiledKeyObject | None = None
    try:
        _freeze_marks(session, study)
        filed = _file_key_images(session, study, storage, signer, now)
        workflow.move(
            session,
            actor,
            study,
            Step.VERIFY,
            to=S.VERIFIED,
            audit_action=AuditAction.REPORT_VERIFIED,
            address=address,
            detail=filed.audit_detail() if filed else None,
            verified_at=now,
        )
        session.commit()
    except BaseException:
        session.rollback()
        if filed is not None:
            for stored in filed.stored:
                storage.delete(stored.key)
        raise
    return get_report(session=session, actor=actor, study_id=study_id)


class _FiledKeyObject(NamedTuple):
    stored: list[StoredObject]
    sop_instance_uid: str
    images: int
    presentation_states: int

    def audit_detail(self) -> dict:
        return {
            "key_object": self.sop_instance_uid,
            "key_images": self.images,
            "presentation_states": self.presentation_states,
        }


def _file_key_images(
    session: Session, study: Study, storage: Storage, signer: str, when: datetime
) -> _FiledKeyObject | None:
    """The study's key images as a Key Object Selection Document, each greyscale one
    pointing at a Grayscale Softcopy Presentation State of how it was seen (its window and
    turn), stored with the study in the session's transaction (see
    :func:`ingest.add_generated_series`); ``None`` when the report has no key images. On a
    failure, what it stored is deleted."""
    rows = _key_image_rows(session, study)
    if not rows:
        return None
    header = session.exec(
        select(Instance.dicom_json).where(
            Instance.study_pk == study.id, Instance.sop_instance_uid == rows[0].key.sop_instance_uid
        )
    ).one()
    refs = [
        kos.KeyImageRef(
            series_instance_uid=row.key.series_instance_uid,
            sop_class_uid=row.sop_class_uid,
            sop_instance_uid=row.key.sop_instance_uid,
            frame=row.key.frame,
            multiframe=row.frames > 1,
        )
        for row in rows
    ]
    signed = f"signed by {signer} on {when:%Y-%m-%d %H:%M} UTC"
    # the key object selection's series first, its images' views the next
    series_number = ingest.next_series_number(session, study)
    stored: list[StoredObject] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pacs-kos-") as folder:
            marks = list(_marks(session, study, rows, signed=True))
            states = gsps.presentation_states(
                list(_shown_key_images(study, storage, rows, refs, marks)),
                gsps.Filing(
                    study_header=header or {},
                    study_instance_uid=study.study_instance_uid,
                    creator=signer[:64],
                    description=f"Key images as seen, {signed}",
                    series_instance_uid=generate_uid(prefix=None),
                    series_number=series_number + 1,
                    when=when,
                ),
            )
            shown_with = {
                (image.ref.sop_instance_uid, image.ref.frame): kos.ObjectRef(
                    state.SeriesInstanceUID, state.SOPClassUID, state.SOPInstanceUID
                )
                for state, images in states
                for image in images
            }
            ds = kos.key_object_selection(
                study_instance_uid=study.study_instance_uid,
                study_header=header or {},
                images=[
                    replace(ref, presentation=shown_with.get((ref.sop_instance_uid, ref.frame)))
                    for ref in refs
                ],
                description=f"Key images of the report of study {study.study_id}, {signed}.",
                observer=signer[:64],
                series_number=series_number,
                when=when,
            )
            path = Path(folder) / "key-images.dcm"
            kos.write(ds, path)
            stored += ingest.add_generated_series(session, study, [path], storage)
            if states:
                paths = []
                for number, (state, _) in enumerate(states, start=1):
                    paths.append(Path(folder) / f"key-image-view-{number}.dcm")
                    kos.write(state, paths[-1])
                stored += ingest.add_generated_series(session, study, paths, storage)
    except BaseException:
        for done in stored:
            storage.delete(done.key)
        raise
    return _FiledKeyObject(stored, ds.SOPInstanceUID, len(rows), len(states))


def _shown_key_images(
    study: Study,
    storage: Storage,
    rows: list[_KeyImageRow],
    refs: list[kos.KeyImageRef],
    marks: list[list[gsps.Mark]],
):
    """How each greyscale key image was seen (with the measurements drawn on it), for its
    presentation state. One that cannot be read (or whose LUTs cannot) has none: the report
    is signed all the same, and the key object selection names it without a state."""
    for row, ref, drawn_on in zip(rows, refs, marks, strict=True):
        key = row.key
        try:
            found = dicomweb.StoredInstance.of(study, row.storage_key, row.frames, storage)
            shown = gsps.shown_image(
                dicomweb.dataset(found),
                ref,
                key.frame - 1,
                _seen_window(key),
                orientation.Turn(key.rotation, key.flipped),
                drawn_on,
            )
        except (
            NotFound,
            InvalidInput,
            ValueError,
            TypeError,
            AttributeError,  # a header value malformed past what pydicom forgives
            OSError,
            pydicom.errors.InvalidDicomError,
        ) as e:
            log.warning(
                "study %s: a key image has no presentation state (%s)",
                study.study_id,
                type(e).__name__,
            )
            continue
        if shown is not None:
            yield shown


def _seen_window(key: KeyImagePublic) -> pixels.Window | None:
    """The window a key image was marked with; ``None`` where it was seen through the
    image's own VOI (its VOI LUT)."""
    if key.window_center is None or key.window_width is None:
        return None
    return pixels.Window(key.window_center, key.window_width, key.window_function or "")


def add_addendum(
    *, session: Session, actor: Actor, study_id: str, text: str, address: str | None = None
) -> ReportView:
    """Add to a signed report, as a new signed version; the centre is told if delivered."""
    study = workflow.load_visible(session, actor, study_id)
    workflow.check_step(session, actor, study, Step.ADDENDUM)
    text = _clean(text, "addendum")
    if not text:
        raise InvalidInput("The addendum is empty.")
    report = _report_of(session, study)
    versions = _versions(session, report)
    if report is None or not versions:
        raise Conflict(f"The report of study {study.study_id} is not signed yet.")
    number = versions[-1].number + 1
    session.add(
        ReportVersion(
            report_id=report.id,
            number=number,
            kind=VersionKind.ADDENDUM,
            text=text,
            signed_by_id=actor.user_id,
            signed_by_name=_signer_name(session, actor),
            signed_at=utcnow(),
        )
    )
    workflow.move(
        session,
        actor,
        study,
        Step.ADDENDUM,
        to=None,
        audit_action=AuditAction.REPORT_ADDENDUM,
        address=address,
        detail={"version": number},
    )
    if study.status is S.DELIVERED:
        workflow.notify_delivered(session, study, addendum=True)
    session.commit()
    return get_report(session=session, actor=actor, study_id=study_id)


def deliver(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> ReportView:
    """Send the signed report to the centre (its users are notified)."""
    study = workflow.load_visible(session, actor, study_id)
    workflow.move(
        session,
        actor,
        study,
        Step.DELIVER,
        to=S.DELIVERED,
        audit_action=AuditAction.REPORT_DELIVERED,
        address=address,
        delivered_at=utcnow(),
    )
    workflow.notify_delivered(session, study)
    from pacs_app.services import billing  # billing follows delivered reports

    billing.bill_delivered(session, study)  # once per study, in the delivery's transaction
    session.commit()
    return get_report(session=session, actor=actor, study_id=study_id)


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content: bytes


def report_pdf(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    storage: Storage | None = None,
    address: str | None = None,
) -> ReportFile:
    """The report as PDF: the signed version and addenda; for the reader and administrators
    before signing, the draft marked preliminary. The centre gets it once delivered. With
    ``storage``, the key images are printed after the text, each with its window."""
    from pacs_app.documents.pdf import ReportAddendum, ReportDocument, render_report_pdf

    study = workflow.load_visible(session, actor, study_id)
    report = _report_of(session, study)
    versions = _versions(session, report)  # signed: its key images' measurements are frozen
    signed = versions if _sees_signed(actor, study) else []
    reader = can(actor, Action.VIEW_REPORT_DRAFT, study)
    if not signed and not (reader and report is not None):
        raise NotFound(f"Study {study.study_id} has no report to download yet.")
    centre = session.get(Centre, study.centre_id)
    main = signed[0] if signed else None
    status_note = ""
    if main is None:
        status_note = "PRELIMINARY DRAFT - NOT VERIFIED - NOT FOR CLINICAL USE"
    elif study.status is not S.DELIVERED:
        status_note = "VERIFIED - NOT YET DELIVERED"
    document = ReportDocument(
        centre_name=centre.name if centre else "",
        study_id=study.study_id,
        patient_name=study.patient_name,
        patient_id=study.patient_id,
        patient_age=study.patient_age,
        patient_sex=study.patient_sex,
        modality=study.modality,
        body_part=study.body_part,
        description=study.description,
        study_date=study.study_date,
        accession_number=study.accession_number,
        priority=study.priority.value,
        received_at=study.received_at,
        verified_at=study.verified_at,
        delivered_at=study.delivered_at,
        findings=main.findings if main else report.findings,
        impression=main.impression if main else report.impression,
        signed_by=main.signed_by_name if main else "",
        signed_at=main.signed_at if main else None,
        addenda=tuple(
            ReportAddendum(
                number=v.number, text=v.text, signed_by=v.signed_by_name, signed_at=v.signed_at
            )
            for v in signed[1:]
        ),
        status_note=status_note,
        key_images=tuple(_key_image_prints(session, study, storage, signed=bool(versions)))
        if storage
        else (),
    )
    content = render_report_pdf(document, font_path=settings.pacs_pdf_font or None)
    audit.record_study(
        session,
        action=AuditAction.REPORT_DOWNLOADED,
        actor=actor,
        study=study,
        address=address,
        detail={"versions": len(signed), "preliminary": main is None},
    )
    session.commit()
    return ReportFile(filename=f"report_{study.study_id}.pdf", content=content)


# --- measurements from the study's structured reports ----------------------------------


#: Structured reports read for their measurements, newest first; lines kept from each.
MAX_MEASURED_REPORTS = 20
MAX_MEASUREMENT_LINES = 200


def study_measurements(
    *, session: Session, actor: Actor, study_id: str, storage: Storage
) -> list[ReportMeasurements]:
    """The numeric measurements in the study's structured reports (:func:`sr.measurements`),
    one entry per report that has any, oldest first, for the radiologist to take into the
    findings. A report whose file cannot be read is left out (the viewer says why)."""
    study = workflow.load_visible(session, actor, study_id)
    rows = session.exec(
        select(Instance.sop_instance_uid, Series.series_instance_uid, Instance.storage_key)
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(
            Instance.study_pk == study.id,
            col(Instance.sop_class_uid).startswith(sr.SR_CLASS_ROOT),
        )
        .order_by(col(Instance.received_at).desc(), col(Instance.id).desc())
        .limit(MAX_MEASURED_REPORTS)
    ).all()
    found = []
    for sop_uid, series_uid, storage_key in reversed(rows):
        stored = dicomweb.StoredInstance.of(study, storage_key, 1, storage)
        try:
            report = sr.read(dicomweb.dataset(stored))
        except (NotFound, ValueError, OSError, pydicom.errors.InvalidDicomError):
            continue
        lines = sr.measurements(report)[:MAX_MEASUREMENT_LINES]
        if not lines:
            continue
        title = report.title or report.document
        observed = report.content_datetime.partition(".")[0]  # to the second
        heading = f"Measurements from the structured report “{title}”"
        heading += f" ({observed}):" if observed else ":"
        found.append(
            ReportMeasurements(
                sop_instance_uid=sop_uid,
                series_instance_uid=series_uid,
                title=title,
                observed=observed,
                lines=lines,
                text="\n".join([heading, *(f"- {line}" for line in lines)]),
            )
        )
    return found


# --- key images ---------------------------------------------------------------------------

#: Key images a report may have (its PDF prints them all).
MAX_KEY_IMAGES = 24


def key_images(*, session: Session, actor: Actor, study_id: str) -> list[KeyImagePublic]:
    """The images the reading radiologist marked as key to the study's report, in series and
    image order; whoever may see the study may see them."""
    return _key_images(session, workflow.load_visible(session, actor, study_id))


def key_images_to_mark(
    *, session: Session, actor: Actor, study_id: str
) -> tuple[list[KeyImagePublic], bool]:
    """The study's key images, and whether the actor may mark and unmark them now."""
    study = workflow.load_visible(session, actor, study_id)
    return _key_images(session, study), _may_mark_key_images(actor, study)


def _may_mark_key_images(actor: Actor, study: Study) -> bool:
    return (
        can(actor, Action.WRITE_REPORT, study)
        and study.status in workflow.TRANSITIONS[Step.SAVE_DRAFT]
    )


def _key_images(session: Session, study: Study) -> list[KeyImagePublic]:
    return [row.key for row in _key_image_rows(session, study)]


class _KeyImageRow(NamedTuple):
    key: KeyImagePublic
    storage_key: str
    frames: int
    sop_class_uid: str
    marked_by: int | None = None
    # the measurements on it as frozen at signing (None before)
    frozen_marks: list[dict] | None = None


def _key_image_rows(session: Session, study: Study) -> list[_KeyImageRow]:
    """The study's key images in series and image order, each with its instance's storage
    key, number of frames and SOP class."""
    rows = session.exec(
        select(
            KeyImage,
            Series.series_number,
            Instance.instance_number,
            Instance.storage_key,
            Instance.number_of_frames,
            Instance.sop_class_uid,
        )
        .join(
            Instance,
            (col(Instance.study_pk) == KeyImage.study_pk)
            & (col(Instance.sop_instance_uid) == KeyImage.sop_instance_uid),
        )
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(KeyImage.study_pk == study.id)
        .order_by(  # NULLS LAST on both databases (their defaults differ)
            col(Series.series_number).asc().nulls_last(),
            col(Instance.instance_number).asc().nulls_last(),
            col(KeyImage.frame),
            col(KeyImage.id),
        )
    ).all()
    return [
        _KeyImageRow(
            KeyImagePublic(
                series_instance_uid=key.series_instance_uid,
                sop_instance_uid=key.sop_instance_uid,
                frame=key.frame + 1,
                series_number=series_number,
                instance_number=instance_number,
                window_center=key.window_center,
                window_width=key.window_width,
                window_function=key.window_function,
                rotation=key.rotation,
                flipped=key.flipped,
                marked_at=key.marked_at,
            ),
            storage_key,
            frames,
            sop_class_uid,
            key.marked_by_id,
            key.marks,
        )
        for key, series_number, instance_number, storage_key, frames, sop_class_uid in rows
    ]


def _marks_now(session: Session, study: Study):
    """What each user has drawn on each image of the study, as kept now (each user's read
    once): ``(user id, SOP Instance UID, frame 0-based)`` to a list of marks (none for no
    user)."""
    kept: dict[int, dict[str, list[dict]]] = {}

    def on(user_id: int | None, sop_instance_uid: str, frame: int) -> list[dict]:
        if user_id is None:
            return []
        if user_id not in kept:
            kept[user_id] = drawn.marks_of(session, study.id, user_id)
        # the viewer's name of an image: "SOP Instance UID:frame"
        return kept[user_id].get(f"{sop_instance_uid}:{frame}", [])

    return on


def _marks(session: Session, study: Study, rows: list[_KeyImageRow], *, signed: bool):
    """The measurements drawn on each key image: as frozen at signing, once the report is
    signed (none on key images of reports signed before they were kept); before, its
    marker's as kept now."""
    now = _marks_now(session, study)
    for row in rows:
        found = (
            (row.frozen_marks or [])
            if signed
            else now(row.marked_by, row.key.sop_instance_uid, row.key.frame - 1)
        )
        yield [gsps.Mark(m["kind"], tuple(m["p"]), m.get("label", "")) for m in found]


def _freeze_marks(session: Session, study: Study) -> None:
    """Keep on each key image the measurements its marker has drawn on it, as the report is
    signed (in the signature's transaction)."""
    now = _marks_now(session, study)
    for key in session.exec(select(KeyImage).where(KeyImage.study_pk == study.id)).all():
        key.marks = now(key.marked_by_id, key.sop_instance_uid, key.frame)
        session.add(key)
    session.flush()


def set_key_image(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    sop_instance_uid: str,
    frame: int = 1,
    key: bool = True,
    window: pixels.Window | None = None,
    rotation: int = 0,
    flipped: bool = False,
    address: str | None = None,
) -> list[KeyImagePublic]:
    """Mark frame ``frame`` (1-based) of an instance of the study as a key image of its
    report, with the ``window`` it is looked at with and as the reader turned it (mirrored
    left to right if ``flipped``, then turned ``rotation`` degrees clockwise: its print
    shows it so), or (``key=False``) no longer. Only the reading radiologist, while
    the report can be edited: once signed, the key images are part of it. Marking again
    keeps the latest window and turn. Answers the study's key images."""
    turn = orientation.Turn(rotation, flipped)
    study = workflow.load_visible(session, actor, study_id)
    require(actor, Action.WRITE_REPORT, study)
    if not _may_mark_key_images(actor, study):
        raise InvalidTransition(
            f"The key images of study {study.study_id} cannot change: it is "
            f"{workflow.status_words(study.status)}."
        )
    found = session.exec(
        select(Series.series_instance_uid, Instance.number_of_frames)
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(Instance.study_pk == study.id, Instance.sop_instance_uid == sop_instance_uid)
    ).first()
    if found is None:
        raise NotFound(f"Study {study.study_id} has no instance {sop_instance_uid}.")
    series_uid, frames = found
    if not 1 <= frame <= max(frames, 1):
        raise InvalidInput(
            f"Instance {sop_instance_uid} has {frames} frame(s): frame {frame} does not exist."
        )
    marked = session.exec(
        select(KeyImage).where(
            KeyImage.study_pk == study.id,
            KeyImage.sop_instance_uid == sop_instance_uid,
            KeyImage.frame == frame - 1,
        )
    ).first()
    detail = {"sop_instance_uid": sop_instance_uid, "frame": frame}
    # how it is seen: the window (and its function) and the turn, which its print keeps
    seen = {
        "window_center": window.center if window else None,
        "window_width": window.width if window else None,
        "window_function": (window.function or None) if window else None,
        "rotation": turn.rotation,
        "flipped": turn.flipped,
    }
    if key and marked is None:
        count = session.exec(
            select(func.count()).select_from(KeyImage).where(KeyImage.study_pk == study.id)
        ).one()
        if count >= MAX_KEY_IMAGES:
            raise InvalidInput(
                f"A report has {MAX_KEY_IMAGES} key images at most: unmark one first."
            )
        session.add(
            KeyImage(
                study_pk=study.id,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
                frame=frame - 1,
                marked_by_id=actor.user_id,
                **seen,
            )
        )
        action = AuditAction.KEY_IMAGE_MARKED
    elif key:  # marked already: as it is seen now
        marked.sqlmodel_update(seen)
        session.add(marked)
        session.commit()
        return _key_images(session, study)
    elif not key and marked is not None:
        session.delete(marked)
        action = AuditAction.KEY_IMAGE_UNMARKED
    else:
        return _key_images(session, study)  # as asked already
    audit.record_study(
        session, action=action, actor=actor, study=study, address=address, detail=detail
    )
    try:
        session.commit()
    except IntegrityError:  # marked at the same moment from another tab: it is marked
        session.rollback()
    return _key_images(session, study)


#: The longest side of a key image as put in a report's PDF, in pixels.
KEY_IMAGE_PRINT_PX = 1024
BLANK = ("", "", "", "")  # a print's edges where the image names no directions


def _key_image_prints(session: Session, study: Study, storage: Storage, *, signed: bool):
    """The study's key images rendered for its PDF (with the window each was marked with,
    turned as it was, and the measurements drawn on it: :func:`_marks`), or, for one that
    cannot be, why."""
    from PIL import Image

    from pacs_app.documents.pdf import KeyImagePrint

    rows = _key_image_rows(session, study)
    for (key, storage_key, frames, *_), marks in zip(
        rows, _marks(session, study, rows, signed=signed), strict=True
    ):
        try:
            window = _seen_window(key)
            found = dicomweb.StoredInstance.of(study, storage_key, frames, storage)
            ds = dicomweb.dataset(found)
            turn = orientation.Turn(key.rotation, key.flipped)
            shown = pixels.render(ds, key.frame - 1, window)
            image = Image.fromarray(turn.pixels(shown))
        except (NotFound, InvalidInput, ValueError, OSError, pydicom.errors.InvalidDicomError) as e:
            yield KeyImagePrint(key.caption, None, problem=f"Could not be rendered: {e}")
            continue
        image.thumbnail((KEY_IMAGE_PRINT_PX, KEY_IMAGE_PRINT_PX))
        if marks:
            image = _drawn(image, marks, turn, width=shown.shape[1], height=shown.shape[0])
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=88)
        yield KeyImagePrint(
            key.caption,
            buffer.getvalue(),
            aspect=image.height / image.width,
            edges=turn.edges(named) if (named := orientation.edges(ds, key.frame - 1)) else BLANK,
        )


#: measurements on a print: the viewer's colour (``drawMeasure`` in assets/viewer.js)
MARK_COLOUR = (255, 212, 59)


def _drawn(image, marks: list[gsps.Mark], turn: orientation.Turn, *, width: int, height: int):
    """``image`` (a print of a ``width`` x ``height`` image, turned and scaled down) in
    colour, with ``marks`` drawn on it where they lie on the image, and their words beside
    them, upright."""
    from PIL import ImageDraw, ImageFont

    image = image.convert("RGB")
    scale = image.width / (height if turn.rotation in (90, 270) else width)

    def at(x: float, y: float) -> tuple[float, float]:
        tx, ty = turn.point(x, y, width, height)
        return tx * scale, ty * scale

    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, round(image.width / 48)))
    line = max(2, round(image.width / 300))  # JPEG's colour keeps a 2-pixel line yellow
    for mark in marks:
        points = [at(mark.points[i], mark.points[i + 1]) for i in range(0, len(mark.points), 2)]
        if mark.kind == "roi":  # a quarter turn keeps the box's sides upright
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            draw.ellipse((min(xs), min(ys), max(xs), max(ys)), outline=MARK_COLOUR, width=line)
            x, y = max(xs), max(ys)  # its words past its lower right, as the viewer puts them
        else:
            draw.line(points, fill=MARK_COLOUR, width=line)
            x, y = points[-1]  # at its last point
        if mark.label:
            draw.text((x + 6, y - 6), mark.label, fill=MARK_COLOUR, font=font, anchor="ls")
    return image


# --- the patient's other studies --------------------------------------------------------

#: Other studies of the patient listed beside the one read, newest first.
MAX_COMPARISON_STUDIES = 50


def comparison_studies(
    *, session: Session, actor: Actor, study_id: str, address: str | None = None
) -> list[ComparisonStudy]:
    """The patient's other studies at the study's centre (the same patient ID) that the actor
    may see beside it (``Action.VIEW_FOR_COMPARISON``: for the reading radiologist, its
    priors), newest first, each with its signed report and addenda where the actor may read
    them. Listing them is audited on the study being read, naming them."""
    study = workflow.load_visible(session, actor, study_id)
    if not (study.patient_id or "").strip():
        return []  # no patient ID: nothing says which studies are the same patient's
    candidates = session.exec(
        select(Study)
        .where(
            Study.centre_id == study.centre_id,
            Study.patient_id == study.patient_id,
            Study.id != study.id,
        )
        .order_by(
            col(Study.study_date).desc().nulls_last(),
            col(Study.received_at).desc(),
            col(Study.id).desc(),
        )
        .limit(MAX_COMPARISON_STUDIES)
    ).all()
    others = [
        o
        for o in candidates
        if can(actor, Action.VIEW_FOR_COMPARISON, Comparison(other=o, current=study))
    ]
    if not others:
        return []
    readable = [o.id for o in others if _sees_signed(actor, o)]
    signed: dict[int, list[ReportVersion]] = {}
    if readable:
        for study_pk, version in session.exec(
            select(Report.study_pk, ReportVersion)
            .join(ReportVersion, col(ReportVersion.report_id) == Report.id)
            .where(col(Report.study_pk).in_(readable))
            .order_by(col(ReportVersion.number))
        ):
            signed.setdefault(study_pk, []).append(version)
    audit.record_study(
        session,
        action=AuditAction.STUDIES_COMPARED,
        actor=actor,
        study=study,
        address=address,
        detail={"studies": [o.study_id for o in others]},
    )
    session.commit()
    listed = []
    for o in others:
        versions = signed.get(o.id, [])
        report = versions[0] if versions else None
        listed.append(
            ComparisonStudy(
                study_id=o.study_id,
                study_date=o.study_date,
                received_at=o.received_at,
                modality=o.modality,
                body_part=o.body_part,
                description=o.description,
                status=o.status,
                num_series=o.num_series,
                num_instances=o.num_instances,
                own_page=can(actor, Action.VIEW_STUDY, o),
                report_signed_at=report.signed_at if report else None,
                report_signed_by=report.signed_by_name if report else "",
                findings=report.findings if report else "",
                impression=report.impression if report else "",
                addenda=[v.text for v in versions[1:]],
            )
        )
    return listed


# --- templates ---------------------------------------------------------------------------


def matching_templates(session: Session, study: Study) -> list[TemplatePublic]:
    """Active templates for the study's modality and body part, the most specific first."""
    modality = (study.modality or "").upper()
    body = (study.body_part or "").upper()
    rows = session.exec(
        select(ReportTemplate).where(
            col(ReportTemplate.is_active),
            or_(ReportTemplate.modality == "", func.upper(ReportTemplate.modality) == modality),
            or_(ReportTemplate.body_part == "", func.upper(ReportTemplate.body_part) == body),
        )
    ).all()
    rows = sorted(rows, key=lambda t: (-(bool(t.modality) + bool(t.body_part)), t.name))
    return [TemplatePublic.model_validate(t) for t in rows]


def list_templates(*, session: Session, actor: Actor) -> list[TemplatePublic]:
    if actor.role not in (Role.ADMIN, Role.RADIOLOGIST):
        require(actor, Action.MANAGE_TEMPLATES)
    query = select(ReportTemplate)
    if not actor.is_admin:
        query = query.where(col(ReportTemplate.is_active))
    rows = session.exec(
        query.order_by(
            col(ReportTemplate.modality), col(ReportTemplate.body_part), col(ReportTemplate.name)
        )
    ).all()
    return [TemplatePublic.model_validate(t) for t in rows]


def save_template(
    *,
    session: Session,
    actor: Actor,
    template_id: int | None,
    name: str,
    modality: str,
    body_part: str,
    findings: str,
    impression: str,
    is_active: bool = True,
    address: str | None = None,
) -> TemplatePublic:
    """Create (``template_id=None``) or change a report template (administrators)."""
    require(actor, Action.MANAGE_TEMPLATES)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A template needs a name.")
    if len(name) > 120:
        raise InvalidInput("The template name is too long (120 characters at most).")
    modality = (modality or "").strip().upper()
    body_part = (body_part or "").strip().upper()
    if len(modality) > 16 or len(body_part) > 64:
        raise InvalidInput("Modality (16) or body part (64 characters) is too long.")
    findings = _clean(findings, "template findings")
    impression = _clean(impression, "template impression")
    if not (findings or impression):
        raise InvalidInput("The template is empty: give findings or an impression.")
    clash = session.exec(select(ReportTemplate).where(ReportTemplate.name == name)).first()
    if clash is not None and clash.id != template_id:
        raise Conflict(f"A template named {name!r} already exists.")
    if template_id is None:
        template = ReportTemplate(name=name)
    else:
        template = session.get(ReportTemplate, template_id)
        if template is None:
            raise NotFound(f"No report template {template_id}.")
    template.name, template.modality, template.body_part = name, modality, body_part
    template.findings, template.impression = findings, impression
    template.is_active = is_active
    template.updated_at = utcnow()
    template.updated_by_id = actor.user_id
    session.add(template)
    session.flush()
    audit.record(
        session,
        action=AuditAction.TEMPLATE_CHANGED,
        actor=actor,
        resource_type="report_template",
        resource_id=template.id,
        address=address,
        detail={"name": name, "created": template_id is None, "active": is_active},
    )
    session.commit()
    return TemplatePublic.model_validate(template)
