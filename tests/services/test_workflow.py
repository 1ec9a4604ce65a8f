"""The reading workflow through the domain layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import update
from sqlmodel import Session, func, select

from pacs_app.core.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from pacs_app.dicom import gsps, pixels
from pacs_app.models import (
    AuditEvent,
    Notification,
    NotificationKind,
    Priority,
    Report,
    ReportTemplate,
    ReportVersion,
    Role,
    Series,
    Study,
    StudyStatus,
)
from pacs_app.models.base import utcnow
from pacs_app.services import dicomweb, notifications, reports, studies, users, workflow
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import is_prior, same_patient
from pacs_app.services.ingest import StagedFile, StudyForm, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import make_ct, make_float_map, make_series
from tests.factories import actor_of, make_centre, make_user

S = StudyStatus


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def world(session):
    """Two centres, each with a manager, a technician and an internal radiologist; two
    tele-radiologists and an administrator."""
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    w = {
        "north": north,
        "south": south,
        "admin": make_user(session, Role.ADMIN),
        "tele": make_user(session, Role.RADIOLOGIST, username="tele1"),
        "tele2": make_user(session, Role.RADIOLOGIST, username="tele2"),
    }
    for key, centre in (("n", north), ("s", south)):
        w[f"{key}_centre"] = make_user(session, Role.CENTRE, centre=centre)
        w[f"{key}_tech"] = make_user(session, Role.TECHNICIAN, centre=centre)
        w[f"{key}_rad"] = make_user(session, Role.RADIOLOGIST, centre=centre)
    return {k: (actor_of(v) if hasattr(v, "role") else v) for k, v in w.items()}


@pytest.fixture
def upload(session, storage, tmp_path, world):
    count = iter(range(1000))

    def _upload(priority="routine", actor=None, n=2, patient_id="") -> str:
        # the slices' header says PID-001; a patient ID typed in the form wins
        files = make_series(tmp_path / f"s{next(count)}", n)
        result = ingest(
            session=session,
            actor=actor or world["n_tech"],
            files=[StagedFile(name=p.name, path=p) for p in files],
            form=StudyForm(
                patient_name="DOE^JANE", patient_id=patient_id, modality="CT", priority=priority
            ),
            storage=storage,
        )
        return result.studies[0].study_id

    return _upload


def study_row(session: Session, study_id: str) -> Study:
    session.expire_all()
    return session.exec(select(Study).where(Study.study_id == study_id)).one()


def notes_of(session: Session, actor) -> list[Notification]:
    session.expire_all()
    return list(session.exec(select(Notification).where(Notification.user_id == actor.user_id)))


def test_the_whole_journey_from_upload_to_delivered_report(session, world, upload, storage):
    sid = upload(priority="urgent")
    assert study_row(session, sid).status is S.UNASSIGNED  # the default: straight to the pool
    # an urgent arrival is announced to the centre, its radiologists, admins and the tele pool
    assert any(n.kind is NotificationKind.URGENT_ARRIVED for n in notes_of(session, world["tele"]))
    assert notes_of(session, world["n_centre"])
    assert not notes_of(session, world["s_centre"])

    workflow.assign(
        session=session,
        actor=world["n_centre"],
        study_id=sid,
        radiologist_id=world["n_rad"].user_id,
    )
    row = study_row(session, sid)
    assert (row.status, row.assigned_radiologist_id) == (S.ASSIGNED, world["n_rad"].user_id)
    assert row.assigned_at is not None
    assert [n.kind for n in notes_of(session, world["n_rad"])][
        -1
    ] is NotificationKind.ASSIGNED_TO_YOU

    view = reports.get_report(session=session, actor=world["n_rad"], study_id=sid)
    assert view.can_edit and view.can_verify and not view.can_deliver
    row = study_row(session, sid)
    assert row.status is S.IN_PROGRESS and row.first_opened_at is not None

    draft = reports.save_draft(
        session=session,
        actor=world["n_rad"],
        study_id=sid,
        findings="Small nodule right upper lobe.",
        impression="Indeterminate 6 mm nodule.",
        base_revision=0,
    )
    assert draft.revision == 1
    assert study_row(session, sid).status is S.REPORTED
    # the centre does not see the draft
    centre_view = reports.get_report(session=session, actor=world["n_centre"], study_id=sid)
    assert centre_view.draft is None and centre_view.versions == []

    reports.verify(session=session, actor=world["n_rad"], study_id=sid, storage=storage)
    row = study_row(session, sid)
    assert row.status is S.VERIFIED and row.verified_at is not None
    reports.deliver(session=session, actor=world["n_rad"], study_id=sid)
    row = study_row(session, sid)
    assert row.status is S.DELIVERED and row.delivered_at is not None

    centre_view = reports.get_report(session=session, actor=world["n_centre"], study_id=sid)
    assert [v.kind for v in centre_view.versions] == ["signed"]
    assert centre_view.versions[0].impression == "Indeterminate 6 mm nodule."
    assert centre_view.can_download_pdf
    for person in ("n_centre", "n_tech"):
        kinds = [n.kind for n in notes_of(session, world[person])]
        assert NotificationKind.REPORT_DELIVERED in kinds
    pdf = reports.report_pdf(session=session, actor=world["n_centre"], study_id=sid)
    assert pdf.content.startswith(b"%PDF") and pdf.filename == f"report_{sid}.pdf"

    actions = list(
        session.exec(
            select(AuditEvent.action).where(AuditEvent.resource_id == sid).order_by(AuditEvent.id)
        )
    )
    for expected in (
        "study.uploaded",
        "study.assigned",
        "study.opened_for_reading",
        "report.started",
        "report.verified",
        "report.delivered",
        "report.downloaded",
    ):
        assert expected in actions


def test_verifying_an_empty_report_is_refused_and_changes_nothing(session, world, upload, storage):
    sid = upload()
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    reports.get_report(session=session, actor=world["tele"], study_id=sid)
    with pytest.raises(InvalidInput, match="no impression"):
        reports.verify(session=session, actor=world["tele"], study_id=sid, storage=storage)
    reports.save_draft(
        session=session, actor=world["tele"], study_id=sid, findings="Lungs clear.", impression=""
    )
    with pytest.raises(InvalidInput, match="no impression"):
        reports.verify(session=session, actor=world["tele"], study_id=sid, storage=storage)
    assert study_row(session, sid).status is S.REPORTED
    assert session.exec(select(func.count()).select_from(ReportVersion)).one() == 0
    # and nobody but the reading radiologist signs
    with pytest.raises(PermissionDenied):
        reports.verify(session=session, actor=world["admin"], study_id=sid, storage=storage)


def _signed(session, world, upload, storage, reader="tele") -> str:
    sid = upload()
    workflow.claim(session=session, actor=world[reader], study_id=sid)
    reports.save_draft(
        session=session, actor=world[reader], study_id=sid, findings="F.", impression="I."
    )
    reports.verify(session=session, actor=world[reader], study_id=sid, storage=storage)
    return sid


def test_a_signed_report_changes_only_by_addendum(session, world, upload, storage):
    sid = _signed(session, world, upload, storage)
    with pytest.raises(InvalidTransition, match="only by an addendum"):
        reports.save_draft(
            session=session, actor=world["tele"], study_id=sid, findings="new", impression="new"
        )
    with pytest.raises(InvalidInput, match="empty"):
        reports.add_addendum(session=session, actor=world["tele"], study_id=sid, text="  ")
    view = reports.add_addendum(
        session=session, actor=world["tele"], study_id=sid, text="Comparison with prior: stable."
    )
    assert [(v.number, v.kind) for v in view.versions] == [(1, "signed"), (2, "addendum")]
    assert view.versions[0].impression == "I."  # untouched
    # the signed rows themselves refuse change
    version = session.exec(select(ReportVersion).where(ReportVersion.number == 1)).one()
    version.impression = "tampered"
    session.add(version)
    with pytest.raises(ValueError, match="cannot be changed"):
        session.flush()
    session.rollback()


def test_a_radiologist_of_another_centre_cannot_reach_the_study(session, world, upload):
    sid = upload()
    for who in ("s_rad", "s_centre", "s_tech"):
        with pytest.raises(NotFound):
            reports.get_report(session=session, actor=world[who], study_id=sid)
        with pytest.raises(NotFound):
            workflow.claim(session=session, actor=world[who], study_id=sid)
    with pytest.raises(InvalidInput, match="another centre"):
        workflow.assign(
            session=session,
            actor=world["n_centre"],
            study_id=sid,
            radiologist_id=world["s_rad"].user_id,
        )
    assert study_row(session, sid).status is S.UNASSIGNED


def test_claiming_a_claimed_study_names_who_has_it(session, world, upload):
    sid = upload()
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    with pytest.raises(Conflict, match="just taken by tele1"):
        # out of the pool, so out of the other tele-radiologist's sight: still told who
        workflow.claim(session=session, actor=world["tele2"], study_id=sid)
    with pytest.raises(NotFound):  # but the study itself stays hidden from them
        reports.get_report(session=session, actor=world["tele2"], study_id=sid)
    session.execute(  # long after the claim, a study outside their sight is not found
        update(AuditEvent)
        .where(AuditEvent.resource_id == sid)
        .values(at=utcnow() - timedelta(minutes=10))
    )
    session.commit()
    with pytest.raises(NotFound):
        workflow.claim(session=session, actor=world["tele2"], study_id=sid)
    with pytest.raises(Conflict, match="already taken by"):
        workflow.claim(session=session, actor=world["n_rad"], study_id=sid)
    assert study_row(session, sid).assigned_radiologist_id == world["tele"].user_id


def test_concurrent_claims_exactly_one_wins(engine, session, world, upload):
    sid = upload()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim_as(who: str) -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            try:
                workflow.claim(session=own, actor=world[who], study_id=sid)
                outcomes[who] = "won"
            except Conflict as exc:
                outcomes[who] = exc.message
            except Exception as exc:  # surfaced by the assertion below
                outcomes[who] = f"error {type(exc).__name__}: {exc}"

    for _ in range(3):  # a few rounds, each from a fresh pool state
        outcomes.clear()
        threads = [threading.Thread(target=claim_as, args=(w,)) for w in ("tele", "n_rad")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes.values()).count("won") == 1, outcomes
        loser = next(v for v in outcomes.values() if v != "won")
        assert "taken by" in loser or "changed meanwhile" in loser, loser
        winner = next(w for w, v in outcomes.items() if v == "won")
        assert study_row(session, sid).assigned_radiologist_id == world[winner].user_id
        claims = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.resource_id == sid, AuditEvent.action == "study.claimed")
        ).one()
        assert claims >= 1
        # put it back in the pool for the next round
        session.execute(
            update(Study)
            .where(Study.study_id == sid)
            .values(status=S.UNASSIGNED, assigned_radiologist_id=None)
        )
        session.commit()


def test_assigning_to_a_non_radiologist_or_an_inactive_one_is_refused(session, world, upload):
    sid = upload()
    with pytest.raises(InvalidInput, match="not a radiologist"):
        workflow.assign(
            session=session,
            actor=world["n_centre"],
            study_id=sid,
            radiologist_id=world["n_tech"].user_id,
        )
    users.set_active(session=session, actor=None, user_id=world["n_rad"].user_id, active=False)
    with pytest.raises(InvalidInput, match="deactivated"):
        workflow.assign(
            session=session,
            actor=world["n_centre"],
            study_id=sid,
            radiologist_id=world["n_rad"].user_id,
        )
    with pytest.raises(PermissionDenied):
        workflow.assign(
            session=session,
            actor=world["tele"],
            study_id=sid,
            radiologist_id=world["tele"].user_id,
        )
    row = study_row(session, sid)
    assert (row.status, row.assigned_radiologist_id) == (S.UNASSIGNED, None)


def test_reassigning_or_unassigning_needs_a_reason(session, world, upload):
    sid = upload()
    rad, tele = world["n_rad"].user_id, world["tele"].user_id
    workflow.assign(session=session, actor=world["n_tech"], study_id=sid, radiologist_id=rad)
    with pytest.raises(InvalidInput, match="reason"):
        workflow.assign(session=session, actor=world["n_tech"], study_id=sid, radiologist_id=tele)
    workflow.assign(
        session=session, actor=world["n_tech"], study_id=sid, radiologist_id=tele, reason="leave"
    )
    assert study_row(session, sid).assigned_radiologist_id == tele
    assert NotificationKind.UNASSIGNED_FROM_YOU in [
        n.kind for n in notes_of(session, world["n_rad"])
    ]
    with pytest.raises(InvalidInput, match="reason"):
        workflow.unassign(session=session, actor=world["n_centre"], study_id=sid, reason=" ")
    workflow.unassign(session=session, actor=world["n_centre"], study_id=sid, reason="wrong body")
    row = study_row(session, sid)
    assert (row.status, row.assigned_radiologist_id) == (S.RECEIVED, None)


def test_held_studies_wait_for_the_centre_then_go_to_the_pool(session, world, upload):
    from pacs_app.models import Centre

    centre = session.get(Centre, world["north"].id)
    centre.auto_release_to_pool = False
    session.add(centre)
    session.commit()
    sid = upload(priority="stat")
    assert study_row(session, sid).status is S.RECEIVED
    with pytest.raises(NotFound):  # not in the tele pool yet
        workflow.claim(session=session, actor=world["tele"], study_id=sid)
    assert not [n for n in notes_of(session, world["tele"]) if n.study_id == sid]
    # the centre's own radiologist may take it from the centre's queue
    available = workflow.worklist(session=session, actor=world["n_rad"], kind="available")
    assert [i.study_id for i in available.items] == [sid]

    workflow.assign(session=session, actor=world["n_centre"], study_id=sid, radiologist_id=None)
    assert study_row(session, sid).status is S.UNASSIGNED
    assert [n for n in notes_of(session, world["tele"]) if n.study_id == sid]  # STAT: told
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    workflow.release(session=session, actor=world["tele"], study_id=sid)
    row = study_row(session, sid)
    assert (row.status, row.assigned_radiologist_id) == (S.UNASSIGNED, None)


def test_priority_is_raised_by_the_centre_and_lowered_only_by_admins(session, world, upload):
    sid = upload()
    workflow.set_priority(session=session, actor=world["n_tech"], study_id=sid, priority="stat")
    assert study_row(session, sid).priority is Priority.STAT
    assert [n for n in notes_of(session, world["tele"]) if n.study_id == sid]
    with pytest.raises(InvalidInput, match="administrator"):
        workflow.set_priority(
            session=session, actor=world["n_centre"], study_id=sid, priority="routine"
        )
    with pytest.raises(InvalidInput, match="Unknown priority"):
        workflow.set_priority(session=session, actor=world["admin"], study_id=sid, priority="now")
    workflow.set_priority(session=session, actor=world["admin"], study_id=sid, priority="routine")
    row = study_row(session, sid)
    assert (row.priority, row.priority_rank) == (Priority.ROUTINE, 0)


def test_worklists_put_the_most_urgent_and_longest_waiting_first(session, world, upload):
    routine_old = upload()
    stat = upload(priority="stat")
    routine_new = upload()
    urgent = upload(priority="urgent")
    session.execute(
        update(Study)
        .where(Study.study_id == routine_old)
        .values(received_at=study_row(session, routine_old).received_at - timedelta(days=2))
    )
    session.commit()
    page = workflow.worklist(session=session, actor=world["tele"], kind="available")
    assert [i.study_id for i in page.items] == [stat, urgent, routine_old, routine_new]
    by_id = {i.study_id: i for i in page.items}
    assert by_id[routine_old].overdue and not by_id[routine_new].overdue
    assert by_id[routine_old].waiting_seconds >= 2 * 86400
    assert by_id[stat].target_minutes == 60

    stamp = workflow.worklist_stamp(session=session, actor=world["tele"])
    workflow.claim(session=session, actor=world["tele"], study_id=stat)
    assert workflow.worklist_stamp(session=session, actor=world["tele"]) != stamp
    mine = workflow.worklist(session=session, actor=world["tele"], kind="mine")
    assert [i.study_id for i in mine.items] == [stat]
    with pytest.raises(InvalidInput):
        workflow.worklist(session=session, actor=world["n_centre"], kind="mine")
    # the centre's list: all of its open studies; another centre's: none of them
    assert workflow.worklist(session=session, actor=world["n_centre"]).total == 4
    assert workflow.worklist(session=session, actor=world["s_centre"]).total == 0


def test_a_save_from_a_stale_editor_is_refused(session, world, upload):
    sid = upload()
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    reports.save_draft(
        session=session,
        actor=world["tele"],
        study_id=sid,
        findings="a",
        impression="b",
        base_revision=0,
    )
    with pytest.raises(Conflict, match="changed elsewhere"):
        reports.save_draft(
            session=session,
            actor=world["tele"],
            study_id=sid,
            findings="old tab",
            impression="",
            base_revision=0,
        )
    session.expire_all()
    report = session.exec(select(Report)).one()
    assert (report.findings, report.revision) == ("a", 1)


def test_templates_start_a_draft_and_never_overwrite_silently(session, world, upload):
    template = reports.save_template(
        session=session,
        actor=world["admin"],
        template_id=None,
        name="CT chest",
        modality="ct",
        body_part="",
        findings="Lungs:",
        impression="Normal.",
    )
    with pytest.raises(PermissionDenied):
        reports.save_template(
            session=session,
            actor=world["n_centre"],
            template_id=None,
            name="x",
            modality="",
            body_part="",
            findings="y",
            impression="",
        )
    sid = upload()
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    view = reports.get_report(session=session, actor=world["tele"], study_id=sid)
    assert [t.name for t in view.templates] == ["CT chest"]
    draft = reports.apply_template(
        session=session, actor=world["tele"], study_id=sid, template_id=template.id
    )
    assert (draft.findings, draft.source, draft.source_detail) == ("Lungs:", "template", "CT chest")
    reports.save_draft(
        session=session, actor=world["tele"], study_id=sid, findings="mine", impression="mine"
    )
    with pytest.raises(Conflict, match="confirm"):
        reports.apply_template(
            session=session, actor=world["tele"], study_id=sid, template_id=template.id
        )
    assert session.exec(select(Report.findings)).one() == "mine"
    assert session.exec(select(func.count()).select_from(ReportTemplate)).one() == 1


def test_cancelling_needs_a_reason_and_a_signed_study_cannot_be_cancelled_or_deleted(
    session, world, upload, storage
):
    sid = _signed(session, world, upload, storage)
    with pytest.raises(InvalidTransition, match="verified"):
        workflow.cancel(session=session, actor=world["n_centre"], study_id=sid, reason="dup")
    with pytest.raises(InvalidTransition, match="medical record"):
        studies.delete_study(
            session=session, actor=world["admin"], study_id=sid, confirm=sid, storage=storage
        )
    other = upload()
    with pytest.raises(InvalidInput, match="reason"):
        workflow.cancel(session=session, actor=world["n_centre"], study_id=other, reason="")
    with pytest.raises(PermissionDenied):
        workflow.cancel(session=session, actor=world["n_tech"], study_id=other, reason="dup")
    workflow.cancel(session=session, actor=world["n_centre"], study_id=other, reason="duplicate")
    assert study_row(session, other).status is S.CANCELLED


def test_notifications_are_private_and_can_be_marked_read(session, world, upload):
    upload(priority="urgent")
    mine = notifications.list_for(session=session, actor=world["n_centre"])
    assert mine.unread == len(mine.items) == 1
    assert "URGENT" in mine.items[0].message and "DOE" not in mine.items[0].message
    # someone else's ids are not theirs to mark
    assert (
        notifications.mark_read(session=session, actor=world["s_centre"], ids=[mine.items[0].id])
        == 0
    )
    assert notifications.mark_read(session=session, actor=world["n_centre"]) == 1
    assert notifications.unread_count(session=session, actor=world["n_centre"]) == 0


def test_turnaround_figures_per_centre_and_radiologist(session, world, upload, storage):
    from datetime import UTC, datetime

    from pacs_app.services import turnaround

    fast = _signed(session, world, upload, storage)
    reports.deliver(session=session, actor=world["tele"], study_id=fast)
    slow = upload()
    workflow.claim(session=session, actor=world["n_rad"], study_id=slow)
    # the slow study was received 30 hours ago: past the routine target of 24 h
    row = study_row(session, slow)
    session.execute(
        update(Study)
        .where(Study.study_id == slow)
        .values(received_at=row.received_at - timedelta(hours=30))
    )
    session.commit()
    reports.save_draft(
        session=session, actor=world["n_rad"], study_id=slow, findings="f", impression="i"
    )
    reports.verify(session=session, actor=world["n_rad"], study_id=slow, storage=storage)
    reports.deliver(session=session, actor=world["n_rad"], study_id=slow)
    upload()  # still waiting: counted, not delivered

    today = datetime.now(UTC).date()
    result = turnaround.summary(
        session=session, actor=world["admin"], date_from=today - timedelta(days=2), date_to=today
    )
    assert (result.overall.studies, result.overall.delivered) == (3, 2)
    assert (result.overall.within_target, result.overall.within_target_pct) == (1, 50.0)
    delivered = result.overall.steps["delivered"]
    assert delivered.count == 2 and delivered.p90_minutes > 24 * 60
    assert result.overall.steps["opened"].count == 2
    assert {r.label for r in result.by_radiologist} == {"tele1", world["n_rad"].username}
    assert [r.key for r in result.by_centre] == ["NORTH"]
    # a centre manager sees only their own centre; others may not look at all
    south = turnaround.summary(
        session=session, actor=world["s_centre"], date_from=today, date_to=today
    )
    assert south.overall.studies == 0
    with pytest.raises(PermissionDenied):
        turnaround.summary(session=session, actor=world["tele"], date_from=today, date_to=today)
    with pytest.raises(InvalidInput, match="ends before"):
        turnaround.summary(
            session=session, actor=world["admin"], date_from=today, date_to=today - timedelta(1)
        )


def test_percentile_interpolates():
    from pacs_app.services.turnaround import percentile

    assert percentile([], 50) is None
    assert percentile([10], 90) == 10
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([0, 10], 90) == 9


def test_administrators_set_turnaround_targets(session, world, upload):
    from pacs_app.services import turnaround

    assert workflow.tat_targets(session)[Priority.STAT] == 60  # the configuration's
    with pytest.raises(PermissionDenied):
        workflow.set_tat_target(
            session=session, actor=world["n_centre"], priority="stat", minutes=30
        )
    for bad in ("0", "soon", str(60 * 24 * 31)):
        with pytest.raises(InvalidInput):
            workflow.set_tat_target(
                session=session, actor=world["admin"], priority="stat", minutes=bad
            )
    targets = workflow.set_tat_target(
        session=session, actor=world["admin"], priority="stat", minutes=30
    )
    assert targets[Priority.STAT] == 30 and targets[Priority.ROUTINE] == 1440
    sid = upload(priority="stat")
    item = workflow.worklist(session=session, actor=world["tele"], kind="available").items[0]
    assert (item.study_id, item.target_minutes) == (sid, 30)
    today = datetime.now(UTC).date()
    summary = turnaround.summary(
        session=session, actor=world["admin"], date_from=today, date_to=today
    )
    assert summary.targets_minutes["stat"] == 30
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "turnaround.target_changed")
    ).first().detail == {"from_minutes": 60, "to_minutes": 30}


def test_opening_the_viewer_starts_the_reading_for_the_assigned_radiologist_only(
    session, world, upload
):
    sid = upload()
    workflow.assign(
        session=session,
        actor=world["n_centre"],
        study_id=sid,
        radiologist_id=world["n_rad"].user_id,
    )
    assert not workflow.mark_opened(session=session, actor=world["n_centre"], study_id=sid)
    assert study_row(session, sid).status is S.ASSIGNED
    assert workflow.mark_opened(session=session, actor=world["n_rad"], study_id=sid)
    row = study_row(session, sid)
    assert row.status is S.IN_PROGRESS and row.first_opened_at is not None
    assert not workflow.mark_opened(session=session, actor=world["n_rad"], study_id=sid)


def test_the_reading_radiologist_compares_with_the_patients_other_studies(
    session, world, upload, storage
):
    prior = _signed(session, world, upload, storage, reader="n_rad")  # the patient's (PID-001)
    reports.deliver(session=session, actor=world["n_rad"], study_id=prior)
    undelivered = _signed(session, world, upload, storage, reader="tele2")  # signed, not delivered
    stranger = upload(patient_id="PID-999")  # another patient of the centre
    upload(actor=world["s_tech"])  # PID-001 at another centre: another patient
    current = upload()
    tele = world["tele"]

    def listed(actor) -> dict:
        found = reports.comparison_studies(session=session, actor=actor, study_id=current)
        return {c.study_id: c for c in found}

    # in the pool a tele-radiologist sees the study, not the patient's others
    assert listed(tele) == {}
    workflow.claim(session=session, actor=tele, study_id=current)
    # read by them, it comes with all of them, newest first
    found = reports.comparison_studies(session=session, actor=tele, study_id=current)
    assert [c.study_id for c in found] == [undelivered, prior]
    by = {c.study_id: c for c in found}
    assert (by[prior].findings, by[prior].impression) == ("F.", "I.")
    assert by[prior].report_signed_at is not None and by[prior].report_signed_by
    # beside this one only: their own pages stay closed to them
    assert not by[prior].own_page
    # a report signed and not delivered is its reader's and the administrators' only
    assert (by[undelivered].impression, by[undelivered].report_signed_at) == ("", None)
    # listing them is audited on the study read, naming them
    session.expire_all()
    event = session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == AuditAction.STUDIES_COMPARED, AuditEvent.resource_id == current)
        .order_by(AuditEvent.id.desc())
    ).first()
    assert event.actor_id == tele.user_id and event.detail["studies"] == [undelivered, prior]

    # their images: when the study read is named, and only then
    prior_uid = study_row(session, prior).study_instance_uid
    with pytest.raises(NotFound):
        dicomweb.metadata(session=session, actor=tele, study_uid=prior_uid)
    assert dicomweb.metadata(session=session, actor=tele, study_uid=prior_uid, comparing=current)
    detail = studies.get_study(session=session, actor=tele, study_id=prior, comparing=current)
    assert detail.study_id == prior
    with pytest.raises(NotFound):  # a study of another patient opens nothing
        dicomweb.metadata(session=session, actor=tele, study_uid=prior_uid, comparing=stranger)
    with pytest.raises(NotFound):  # nor one its radiologist does not read
        dicomweb.metadata(
            session=session, actor=world["tele2"], study_uid=prior_uid, comparing=current
        )
    # the centre's users see their centre's studies anyway: the same list, the delivered text;
    # another centre nothing
    assert listed(world["n_centre"]).keys() == {prior, undelivered}
    assert listed(world["n_centre"])[prior].impression == "I."
    assert listed(world["n_centre"])[prior].own_page
    with pytest.raises(NotFound):
        listed(world["s_centre"])
    # a cancelled study opens no others
    workflow.cancel(session=session, actor=world["n_centre"], study_id=current, reason="Duplicate")
    assert listed(tele) == {}
    with pytest.raises(NotFound):
        dicomweb.metadata(session=session, actor=tele, study_uid=prior_uid, comparing=current)


def test_the_reading_radiologist_compares_with_priors_not_with_later_studies(
    session, world, upload, storage
):
    """A study stays assigned to its reader after delivery (for addenda): what that opens
    beside it must not grow with the patient's later studies."""
    prior, current, later = upload(), upload(), upload()
    undated = upload()
    dates = {prior: date(2026, 1, 5), current: date(2026, 3, 1), later: date(2026, 9, 9)}
    for sid, day in dates.items():
        session.exec(update(Study).where(Study.study_id == sid).values(study_date=day))
    session.exec(update(Study).where(Study.study_id == undated).values(study_date=None))
    session.commit()
    tele = world["tele"]
    workflow.claim(session=session, actor=tele, study_id=current)
    for sid in (prior, later, undated):  # out of the pool: not theirs to see but to compare
        workflow.claim(session=session, actor=world["tele2"], study_id=sid)

    def listed(actor) -> list[str]:
        found = reports.comparison_studies(session=session, actor=actor, study_id=current)
        return [c.study_id for c in found]

    # the earlier one (and none later); one without a study date by when it came: after
    assert listed(tele) == [prior]
    later_uid = study_row(session, later).study_instance_uid
    with pytest.raises(NotFound):
        dicomweb.metadata(session=session, actor=tele, study_uid=later_uid, comparing=current)
    with pytest.raises(NotFound):
        studies.get_study(session=session, actor=tele, study_id=undated, comparing=current)
    assert studies.get_study(session=session, actor=tele, study_id=prior, comparing=current)
    # the centre's users see their centre's studies anyway, later ones too
    assert set(listed(world["n_centre"])) == {prior, later, undated}
    # the same day is a prior (a CT and an MR of one visit)
    session.exec(update(Study).where(Study.study_id == later).values(study_date=date(2026, 3, 1)))
    session.commit()
    assert set(listed(tele)) == {prior, later}
    assert is_prior(
        SimpleNamespace(study_date=None, received_at=1),
        SimpleNamespace(study_date=date(2026, 1, 1), received_at=2),
    )
    assert not is_prior(
        SimpleNamespace(study_date=None, received_at=None),
        SimpleNamespace(study_date=None, received_at=2),
    )


def test_same_patient_needs_an_id_and_a_centre():
    class S:
        def __init__(self, id, centre_id, patient_id):
            self.id, self.centre_id, self.patient_id = id, centre_id, patient_id

    assert same_patient(S(1, 1, "P1"), S(2, 1, " P1 "))
    assert not same_patient(S(1, 1, "P1"), S(1, 1, "P1"))  # itself
    assert not same_patient(S(1, 1, "P1"), S(2, 2, "P1"))  # another centre's patient
    assert not same_patient(S(1, 1, "P1"), S(2, 1, "P2"))
    assert not same_patient(S(1, 1, ""), S(2, 1, ""))  # no ID: nothing says they are one
    assert not same_patient(S(1, 1, "  "), S(2, 1, "  "))


def test_key_images_are_marked_by_the_reader_and_printed_with_the_report(
    session, world, upload, storage
):
    import io

    import numpy as np
    import pydicom
    from pypdf import PdfReader

    from pacs_app.core.errors import InvalidInput as Invalid
    from pacs_app.dicom.pixels import Window
    from pacs_app.models import Instance

    sid = upload(n=3)
    tele = world["tele"]
    workflow.claim(session=session, actor=tele, study_id=sid)
    study = study_row(session, sid)
    sops = session.exec(
        select(Instance.sop_instance_uid)
        .where(Instance.study_pk == study.id)
        .order_by(Instance.instance_number)
    ).all()

    def mark(sop, *, actor=tele, key=True, frame=1, window=None):
        return reports.set_key_image(
            session=session,
            actor=actor,
            study_id=sid,
            sop_instance_uid=sop,
            frame=frame,
            key=key,
            window=window,
        )

    marked = mark(sops[2], window=Window(40, 400))
    marked = mark(sops[0])
    # in series and image order, each saying where it is and the window it was marked with
    assert [k.sop_instance_uid for k in marked] == [sops[0], sops[2]]
    assert marked[1].caption.endswith("image 3") and marked[1].frame == 1
    assert (marked[1].window_center, marked[1].window_width) == (40, 400)
    assert (marked[0].window_center, marked[0].window_width) == (None, None)
    # marking again keeps one, with the window it is seen with now
    again = mark(sops[2], window=Window(-600, 1500))
    assert len(again) == 2 and (again[1].window_center, again[1].window_width) == (-600, 1500)
    # the centre sees them; only the reader marks them
    assert len(reports.key_images(session=session, actor=world["n_centre"], study_id=sid)) == 2
    with pytest.raises(PermissionDenied):
        mark(sops[1], actor=world["n_centre"])
    with pytest.raises(NotFound):
        mark(sops[1], actor=world["tele2"])
    with pytest.raises(NotFound):
        mark("1.2.3.4")
    with pytest.raises(Invalid, match="frame 2 does not exist"):
        mark(sops[1], frame=2)
    assert [k.sop_instance_uid for k in mark(sops[0], key=False)] == [sops[2]]

    # the PDF prints each, rendered with its window
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    with pytest.raises(InvalidTransition, match="cannot change"):
        mark(sops[1])  # signed: they are part of the report
    found = reports.report_pdf(session=session, actor=tele, study_id=sid, storage=storage)
    reader = PdfReader(io.BytesIO(found.content))
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Key images" in text and marked[1].caption in text
    # an axial slice: the patient's directions on its edges (top, right, bottom, left)
    assert f"Key images A L P R {marked[1].caption}" in " ".join(text.split())
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 1
    printed = np.asarray(images[0].image.convert("L"), dtype=float)
    key = session.exec(select(Instance.storage_key).where(Instance.sop_instance_uid == sops[2]))
    ds = pydicom.dcmread(storage.local_path(key.one()))
    expected = pixels.render(ds, 0, Window(-600, 1500)).astype(float)
    assert printed.shape == expected.shape
    assert np.abs(printed - expected).mean() < 3  # JPEG's loss only
    assert np.abs(printed - pixels.render(ds, 0).astype(float)).mean() > 10  # not the header's
    # without the storage (as before), no images
    plain = reports.report_pdf(session=session, actor=tele, study_id=sid)
    assert not [i for p in PdfReader(io.BytesIO(plain.content)).pages for i in p.images]


def test_deleting_a_study_takes_its_key_images(session, world, upload, storage):
    from pacs_app.models import Instance, KeyImage

    sid = upload()
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    sop = session.exec(
        select(Instance.sop_instance_uid).where(Instance.study_pk == study_row(session, sid).id)
    ).first()
    reports.set_key_image(session=session, actor=world["tele"], study_id=sid, sop_instance_uid=sop)
    assert session.exec(select(func.count()).select_from(KeyImage)).one() == 1
    studies.delete_study(
        session=session, actor=world["admin"], study_id=sid, confirm=sid, storage=storage
    )
    assert session.exec(select(func.count()).select_from(KeyImage)).one() == 0


def test_key_images_of_a_series_without_a_number_come_last(session, world, storage, tmp_path):
    import pydicom

    from pacs_app.models import Instance

    numbered = make_series(tmp_path / "a", 1)
    unnumbered = make_series(
        tmp_path / "b", 1, study_uid=pydicom.dcmread(numbered[0]).StudyInstanceUID
    )
    ds = pydicom.dcmread(unnumbered[0])
    del ds.SeriesNumber
    ds.save_as(unnumbered[0])
    result = ingest(
        session=session,
        actor=world["n_tech"],
        files=[StagedFile(name=p.parent.name + p.name, path=p) for p in (*numbered, *unnumbered)],
        storage=storage,
    )
    sid = result.studies[0].study_id
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    sops = {pydicom.dcmread(p).SOPInstanceUID: p.parent.name for p in (*numbered, *unnumbered)}
    for sop in sorted(sops, key=lambda s: sops[s], reverse=True):  # the unnumbered first
        listed = reports.set_key_image(
            session=session, actor=world["tele"], study_id=sid, sop_instance_uid=sop
        )
    assert [sops[k.sop_instance_uid] for k in listed] == ["a", "b"]
    assert listed[1].series_number is None and listed[1].caption.startswith("image")
    assert session.exec(select(func.count()).select_from(Instance)).one() == 2


def _claimed(session, world, storage, path) -> tuple[str, object]:
    """``path`` uploaded by North's technician and claimed by the tele-radiologist: its
    Study ID, and the tele-radiologist."""
    result = ingest(
        session=session,
        actor=world["n_tech"],
        files=[StagedFile(name=path.name, path=path)],
        storage=storage,
    )
    sid = result.studies[0].study_id
    workflow.claim(session=session, actor=world["tele"], study_id=sid)
    return sid, world["tele"]


def test_a_key_image_keeps_the_function_of_its_window(session, world, storage, tmp_path):
    """A float map marked at a LINEAR_EXACT window of a width under 1 (as the viewer shows
    such a map) keeps the function: the report's PDF prints it as it was seen. (Before, a
    window under 1 wide was refused, and a key image kept no function.)"""
    import io

    import numpy as np
    import pydicom
    from pypdf import PdfReader

    from pacs_app.dicom.pixels import Window

    path = tmp_path / "map.dcm"
    make_float_map(path, scale=0.001)
    sid, tele = _claimed(session, world, storage, path)
    sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    window = Window(0.001, 0.004, "LINEAR_EXACT")
    [marked] = reports.set_key_image(
        session=session, actor=tele, study_id=sid, sop_instance_uid=sop, window=window
    )
    assert (marked.window_width, marked.window_function) == (0.004, "LINEAR_EXACT")
    assert marked.window_param == "0.001,0.004,linear-exact"
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    found = reports.report_pdf(session=session, actor=tele, study_id=sid, storage=storage)
    reader = PdfReader(io.BytesIO(found.content))
    assert "Could not be rendered" not in "".join(page.extract_text() for page in reader.pages)
    [image] = [image for page in reader.pages for image in page.images]
    printed = np.asarray(image.image.convert("L"), dtype=float)
    expected = pixels.render(pydicom.dcmread(path), 0, window).astype(float)
    assert printed.shape == expected.shape
    assert np.abs(printed - expected).mean() < 3  # JPEG's loss only


def test_a_key_image_prints_as_the_reader_turned_it(session, world, storage, tmp_path):
    """A radiograph read turned (the viewer's Rotate and Flip) and marked key prints turned
    so, its orientation markers turned with it; a turn that is not a quarter is refused, and
    nothing is marked."""
    import io

    import numpy as np
    import pydicom
    from pypdf import PdfReader

    path = make_ct(tmp_path / "ct.dcm", rows=96)  # not square: a quarter turn shows
    ds = pydicom.dcmread(path)
    sid, tele = _claimed(session, world, storage, path)

    def mark(**turn):
        return reports.set_key_image(
            session=session, actor=tele, study_id=sid, sop_instance_uid=ds.SOPInstanceUID, **turn
        )

    with pytest.raises(InvalidInput, match="0, 90, 180 or 270 degrees clockwise, not 45"):
        mark(rotation=45)
    assert reports.key_images(session=session, actor=tele, study_id=sid) == []
    [marked] = mark(rotation=90, flipped=True)
    assert (marked.rotation, marked.flipped) == (90, True)
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    found = reports.report_pdf(session=session, actor=tele, study_id=sid, storage=storage)
    reader = PdfReader(io.BytesIO(found.content))
    [image] = [image for page in reader.pages for image in page.images]
    printed = np.asarray(image.image.convert("L"), dtype=float)
    expected = np.rot90(pixels.render(ds)[:, ::-1], -1).astype(float)  # mirrored, then turned
    assert printed.shape == expected.shape == (128, 96)
    assert np.abs(printed - expected).mean() < 3  # JPEG's loss only
    # axial (A, L, P, R at top, right, bottom, left as stored): mirrored A R P L, turned L A R P
    text = " ".join("".join(page.extract_text() for page in reader.pages).split())
    assert f"Key images L A R P {marked.caption}" in text
    # its presentation state says the same to other viewers: rotated 270, then mirrored
    state = pydicom.dcmread(storage.local_path(_filed(session, sid, "PR")[0].storage_key))
    assert (state.ImageRotation, state.ImageHorizontalFlip) == (270, "Y")


def _filed(session, sid, modality):
    """The instances of the study's series of ``modality``, in their order."""
    from pacs_app.models import Instance

    return session.exec(
        select(Instance)
        .join(Series, Series.id == Instance.series_pk)
        .where(Series.study_pk == study_row(session, sid).id, Series.modality == modality)
        .order_by(Instance.instance_number)
    ).all()


def test_a_key_image_that_cannot_be_read_is_filed_without_its_view(session, world, upload, storage):
    """Signing does not wait on a presentation state: a key image whose file cannot be read
    is selected without one, the others with theirs."""
    import pydicom

    from pacs_app.models import Instance

    sid = upload(n=2)
    tele = world["tele"]
    workflow.claim(session=session, actor=tele, study_id=sid)
    study = study_row(session, sid)
    rows = session.exec(
        select(Instance).where(Instance.study_pk == study.id).order_by(Instance.instance_number)
    ).all()
    for row in rows:
        reports.set_key_image(
            session=session, actor=tele, study_id=sid, sop_instance_uid=row.sop_instance_uid
        )
    storage.local_path(rows[1].storage_key).write_bytes(b"not DICOM any more")
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    [key_object] = _filed(session, sid, "KO")
    [view] = _filed(session, sid, "PR")
    ds = pydicom.dcmread(storage.local_path(key_object.storage_key))
    items = [i.ReferencedSOPSequence[0] for i in ds.ContentSequence if i.ValueType == "IMAGE"]
    assert [i.ReferencedSOPInstanceUID for i in items] == [r.sop_instance_uid for r in rows]
    assert items[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == view.sop_instance_uid
    assert "ReferencedSOPSequence" not in items[1]
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.REPORT_VERIFIED)
    ).one()
    assert (event.detail["key_images"], event.detail["presentation_states"]) == (2, 1)


def _key_object_series(session, study):
    return session.exec(
        select(Series).where(Series.study_pk == study.id, Series.modality == "KO")
    ).all()


def test_signing_files_the_key_images_with_the_study_as_a_key_object_selection(
    session, world, upload, storage
):
    import hashlib
    import json

    import pydicom

    from pacs_app.models import AIJob, Instance

    sid = upload(n=3)
    tele = world["tele"]
    workflow.claim(session=session, actor=tele, study_id=sid)
    study = study_row(session, sid)
    before = (study.num_series, study.num_instances, study.size_bytes, study.next_instance_number)
    sops = session.exec(
        select(Instance.sop_instance_uid)
        .where(Instance.study_pk == study.id)
        .order_by(Instance.instance_number)
    ).all()
    for sop in (sops[2], sops[0]):
        reports.set_key_image(session=session, actor=tele, study_id=sid, sop_instance_uid=sop)
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    jobs = session.exec(select(func.count()).select_from(AIJob)).one()
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)

    study = study_row(session, sid)
    (series,) = _key_object_series(session, study)
    assert (series.series_number, series.description, series.num_instances) == (
        2,
        "Key images",
        1,
    )
    filed = session.exec(select(Instance).where(Instance.series_pk == series.id)).one()
    # a new instance of the study, counted with it like an uploaded one; and the series of
    # how its images were seen: one presentation state (one turn, one rescale)
    assert filed.storage_key == f"NORTH/{sid}/instance_{before[3]:03d}.dcm"
    (views,) = session.exec(
        select(Series).where(Series.study_pk == study.id, Series.modality == "PR")
    ).all()
    assert (views.series_number, views.description, views.num_instances) == (
        3,
        "Key image views",
        1,
    )
    view = session.exec(select(Instance).where(Instance.series_pk == views.id)).one()
    assert view.storage_key == f"NORTH/{sid}/instance_{before[3] + 1:03d}.dcm"
    assert (study.num_series, study.num_instances, study.next_instance_number) == (
        before[0] + 2,
        before[1] + 2,
        before[3] + 2,
    )
    assert study.size_bytes == before[2] + filed.size_bytes + view.size_bytes
    path = storage.local_path(filed.storage_key)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == filed.sha256
    ds = pydicom.dcmread(path)
    assert ds.SOPInstanceUID == filed.sop_instance_uid and ds.Modality == "KO"
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.PatientID == "PID-001"  # the images' header, not the form's
    images = [i.ReferencedSOPSequence[0] for i in ds.ContentSequence if i.ValueType == "IMAGE"]
    assert [r.ReferencedSOPInstanceUID for r in images] == [sops[0], sops[2]]
    # each image selected with its presentation state, which the evidence lists too
    state = pydicom.dcmread(storage.local_path(view.storage_key))
    assert [r.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for r in images] == [
        view.sop_instance_uid
    ] * 2
    assert images[0].ReferencedSOPSequence[0].ReferencedSOPClassUID == gsps.GSPS_SOP_CLASS
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {
        s.SeriesInstanceUID: [r.ReferencedSOPInstanceUID for r in s.ReferencedSOPSequence]
        for s in evidence
    }[views.series_instance_uid] == [view.sop_instance_uid]
    # marked without a window: shown as this PACS shows them (CT_small has no window: each
    # its min-max), as stored, through their rescale (CT: Hounsfield units)
    shown = state.ReferencedSeriesSequence[0].ReferencedImageSequence
    assert [r.ReferencedSOPInstanceUID for r in shown] == [sops[0], sops[2]]
    assert (state.ImageRotation, state.ImageHorizontalFlip) == (0, "N")
    assert (state.RescaleSlope, state.RescaleIntercept, state.RescaleType) == (1, -1024, "HU")
    for voi, sop in zip(state.SoftcopyVOILUTSequence, (sops[0], sops[2]), strict=True):
        assert voi.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sop
        path = storage.local_path(
            session.exec(select(Instance.storage_key).where(Instance.sop_instance_uid == sop)).one()
        )
        own = pixels.shown_voi(pydicom.dcmread(path))
        assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (own.center, own.width)
    assert (state.PatientID, state.StudyInstanceUID) == ("PID-001", study.study_instance_uid)
    signer = reports.get_report(session=session, actor=tele, study_id=sid).versions[0]
    observer = [i for i in ds.ContentSequence if i.ValueType == "PNAME"]
    assert str(observer[0].PersonName) == signer.signed_by_name
    # DICOMweb serves it with the study's metadata; the viewer's document links each image
    assert filed.sop_instance_uid in dicomweb.metadata(
        session=session, actor=world["n_centre"], study_uid=study.study_instance_uid
    )
    found = dicomweb.instance(
        session=session,
        actor=world["n_centre"],
        study_uid=study.study_instance_uid,
        series_uid=series.series_instance_uid,
        sop_uid=filed.sop_instance_uid,
        storage=storage,
    )
    document = json.loads(json.dumps(dicomweb.structured_report(session, found, storage)))
    linked = [i for i in document["items"] if i["value_type"] == "IMAGE"]
    assert [i["sop_instance_uid"] for i in linked] == [sops[0], sops[2]]
    assert all(i["series_uid"] for i in linked)
    assert [i["where"] for i in linked] == ["series 1, image 1", "series 1, image 3"]
    # each as its presentation state shows it: not turned, each by its own window
    own = [state.SoftcopyVOILUTSequence[n] for n in (0, 1)]
    assert [i["shown_as"] for i in linked] == [
        {
            "rotation": 0,
            "flipped": False,
            "window": f"{float(v.WindowCenter):.8g},{float(v.WindowWidth):.8g},linear",
            "marks": [],
        }
        for v in own
    ]
    # no analysis is queued for it; the signature's audit names it
    assert session.exec(select(func.count()).select_from(AIJob)).one() == jobs
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.REPORT_VERIFIED)
    ).one()
    assert (event.detail["key_object"], event.detail["key_images"]) == (filed.sop_instance_uid, 2)
    assert event.detail["presentation_states"] == 1
    # an addendum files nothing more
    reports.add_addendum(session=session, actor=tele, study_id=sid, text="More.")
    assert len(_key_object_series(session, study_row(session, sid))) == 1


def test_a_report_without_key_images_files_no_key_object(session, world, upload, storage):
    sid = _signed(session, world, upload, storage)
    study = study_row(session, sid)
    assert _key_object_series(session, study) == [] and study.num_series == 1
    assert len(list(storage.root.rglob("*.dcm"))) == 2


@pytest.mark.parametrize("fails", ["storage", "views", "signature"])
def test_a_failed_filing_leaves_the_report_unsigned_and_no_file(
    session, world, upload, storage, monkeypatch, fails
):
    from pacs_app.core.errors import StorageUnavailable
    from pacs_app.models import Instance
    from pacs_app.storage import StorageError

    sid = upload(n=2)
    tele = world["tele"]
    workflow.claim(session=session, actor=tele, study_id=sid)
    study = study_row(session, sid)
    sop = session.exec(select(Instance.sop_instance_uid).where(Instance.study_pk == study.id))
    reports.set_key_image(session=session, actor=tele, study_id=sid, sop_instance_uid=sop.first())
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    files, status = sorted(storage.root.rglob("*")), study_row(session, sid).status
    if fails == "storage":  # the disk refuses to make the file durable

        def refuse(keys):
            raise StorageError("disk full")

        monkeypatch.setattr(storage, "sync", refuse)
        expected = StorageUnavailable
    elif fails == "views":  # the key object is stored, then its images' views are refused
        synced = storage.sync

        def second_refused(keys, calls=[]):  # noqa: B006 (counts the calls)
            calls.append(keys)
            if len(calls) > 1:
                raise StorageError("disk full")
            synced(keys)

        monkeypatch.setattr(storage, "sync", second_refused)
        expected = StorageUnavailable
    else:  # the document is stored, then the signature loses a race

        def lost(*args, **kwargs):
            raise Conflict("Someone else moved the study.")

        monkeypatch.setattr(workflow, "move", lost)
        expected = Conflict
    with pytest.raises(expected):
        reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    monkeypatch.undo()
    study = study_row(session, sid)
    assert study.status is status and study.num_series == 1 and study.num_instances == 2
    assert session.exec(select(func.count()).select_from(ReportVersion)).one() == 0
    assert session.exec(select(func.count()).select_from(Series)).one() == 1
    assert sorted(storage.root.rglob("*")) == files  # no file, not even a temporary one
    # and signing again works: the key object and its image's view
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    assert len(_key_object_series(session, study_row(session, sid))) == 1
    assert study_row(session, sid).num_series == 3


def test_a_key_image_carries_the_measurements_drawn_on_it(session, world, storage, tmp_path):
    """A key image prints with the measurements its marker drew on it (in the viewer's
    colour, turned with it), and its presentation state carries them; the signature freezes
    them: what is drawn after it changes neither."""
    import io

    import numpy as np
    import pydicom
    from pypdf import PdfReader

    from pacs_app.models import KeyImage
    from pacs_app.services import drawn

    path = make_ct(tmp_path / "ct.dcm", rows=96)
    sop = pydicom.dcmread(path).SOPInstanceUID
    sid, tele = _claimed(session, world, storage, path)
    reports.set_key_image(
        session=session, actor=tele, study_id=sid, sop_instance_uid=sop, rotation=90
    )
    line = {"id": "a1", "kind": "length", "p": [10.0, 20.0, 90.0, 20.0]}
    line["line"] = "Length 40.1 mm (series 1, image 1)"
    drawn.save_drawn(session=session, actor=tele, study_id=sid, images={f"{sop}:0": [line]})
    # another user's measurements are theirs: not on the print
    other = {"id": "b1", "kind": "length", "p": [10.0, 80.0, 90.0, 80.0], "line": "x"}
    drawn.save_drawn(
        session=session, actor=world["admin"], study_id=sid, images={f"{sop}:0": [other]}
    )

    def printed() -> np.ndarray:
        found = reports.report_pdf(session=session, actor=tele, study_id=sid, storage=storage)
        [image] = [i for page in PdfReader(io.BytesIO(found.content)).pages for i in page.images]
        return np.asarray(image.image.convert("RGB"), dtype=int)

    def yellow(print_, x, y) -> bool:  # the viewer's #ffd43b, give or take JPEG's loss
        r, g, b = print_[y, x]
        return r > 190 and g > 150 and b < r - 70

    # turned a quarter clockwise (128 x 96 becomes 96 x 128): the line along row 20, columns
    # 10 to 90, runs down column 96 - 20 = 76, rows 10 to 90
    reports.save_draft(session=session, actor=tele, study_id=sid, findings="F.", impression="I.")
    draft = printed()
    assert draft.shape == (128, 96, 3)
    assert all(yellow(draft, 76, y) for y in range(15, 86, 5))
    assert not any(yellow(draft, 16, y) for y in range(15, 86, 5))  # the admin's
    reports.verify(session=session, actor=tele, study_id=sid, storage=storage)
    key = session.exec(select(KeyImage)).one()
    assert key.marks == [{"kind": "length", "p": line["p"], "label": "Length 40.1 mm"}]
    [view] = _filed(session, sid, "PR")
    state = pydicom.dcmread(storage.local_path(view.storage_key))
    [annotation] = state.GraphicAnnotationSequence
    assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sop
    [graphic] = annotation.GraphicObjectSequence
    assert (graphic.GraphicType, list(graphic.GraphicData)) == ("POLYLINE", line["p"])
    assert annotation.TextObjectSequence[0].UnformattedTextValue == "Length 40.1 mm"
    # drawn after signing: the signed print does not change
    moved = {**line, "p": [10.0, 60.0, 90.0, 60.0]}
    drawn.save_drawn(session=session, actor=tele, study_id=sid, images={f"{sop}:0": [moved]})
    signed = printed()
    assert all(yellow(signed, 76, y) for y in range(15, 86, 5))
    assert not any(yellow(signed, 36, y) for y in range(15, 86, 5))
